package main

import (
	"runtime"
	"testing"
	"time"
)

func TestCPUTimeSharesAndCostPerOrder(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	before := cpuTime{busy: 10 * time.Second, total: 40 * time.Second, steal: time.Second, waited: 3 * time.Second, pressure: true, at: t0}
	// Two cores for 2 s: 4 s of CPU time, 3 of them busy (0.4 of those stolen); some task waited 0.5 s.
	after := cpuTime{busy: 13 * time.Second, total: 44 * time.Second, steal: 1400 * time.Millisecond, waited: 3500 * time.Millisecond, pressure: true, at: t0.Add(2 * time.Second)}
	d := after.since(before)
	if got, want := d.busyShare(), "75 % (steal 10.0 %)"; got != want {
		t.Errorf("busy %q, want %q", got, want)
	}
	if got, want := d.waitedShare(), "25 %"; got != want {
		t.Errorf("waited %q, want %q", got, want)
	}
	if got, want := d.perOrder(1300), "2.00 ms"; got != want {
		t.Errorf("per order %q, want %q", got, want)
	}
	// Summed over slices, the shares are of all of them together.
	idle := cpuTime{total: 4 * time.Second, wall: 2 * time.Second, pressure: true}
	sum := cpuTime{}.add(d).add(idle)
	if got, want := sum.busyShare(), "38 % (steal 5.0 %)"; got != want {
		t.Errorf("summed busy %q, want %q", got, want)
	}
	if got, want := sum.waitedShare(), "12 %"; got != want {
		t.Errorf("summed waited %q, want %q", got, want)
	}
	// Where the kernel reports no pressure for a slice, the sum has none.
	if got := sum.add(cpuTime{total: time.Second, wall: time.Second}).waitedShare(); got != "unknown" {
		t.Errorf("waited without pressure: %q", got)
	}
	// A slice without a reading adds nothing, wherever it comes.
	if a, b := sum.add(cpuTime{}), (cpuTime{}).add(sum); a != sum || b != sum {
		t.Errorf("adding no reading: %+v and %+v, want %+v", a, b, sum)
	}
	if got := (cpuTime{}).busyShare(); got != "unknown" {
		t.Errorf("no reading: %q", got)
	}
}

func TestReadCPUReadsTheMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the machine's CPU time is read from Linux's /proc")
	}
	a := readCPU()
	if a.total <= 0 || a.busy <= 0 || a.busy > a.total {
		t.Fatalf("reading %+v", a)
	}
	if d := readCPU().since(a); d.wall <= 0 {
		t.Errorf("since: %+v", d)
	}
}
