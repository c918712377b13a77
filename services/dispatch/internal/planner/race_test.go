//go:build race

package planner

// raceDetector: the race detector slows this pure, single-goroutine package tenfold and can find
// nothing in it, so the property tests try fewer generated instances under it; `go test` without
// -race runs them all.
const raceDetector = true
