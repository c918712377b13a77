package main

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWriteTimelineListsOrdersByWhenTheyWereDue(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	err := writeTimeline(&out, map[string][]placed{
		// As answered: the later order came back first.
		"grpc":  {{due: t0.Add(4 * time.Second), took: 31 * time.Millisecond}, {due: t0.Add(5 * time.Millisecond), took: 7500 * time.Microsecond}},
		"floor": {{due: t0.Add(2 * time.Second), took: 4250 * time.Microsecond}},
	}, []stall{
		// One began before the first order was due: times count from that order all the same.
		{start: t0.Add(-time.Millisecond), length: 40 * time.Millisecond},
		{start: t0.Add(3990 * time.Millisecond), length: 1200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"system,due_ms,latency_ms",
		"disk stall,-6.000,40.000",
		"grpc,0.000,7.500",
		"floor,1995.000,4.250",
		"disk stall,3985.000,1200.000",
		"grpc,3995.000,31.000",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("file:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestWriteTimelineWithoutOrders(t *testing.T) {
	var out bytes.Buffer
	if err := writeTimeline(&out, map[string][]placed{"grpc": nil}, nil); err != nil {
		t.Fatal(err)
	}
	if want := "system,due_ms,latency_ms\n"; out.String() != want {
		t.Errorf("file %q, want %q", out.String(), want)
	}
	// Only stalls: times count from the first.
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	out.Reset()
	if err := writeTimeline(&out, nil, []stall{{start: t0.Add(time.Second), length: 30 * time.Millisecond}, {start: t0, length: 50 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if want := "system,due_ms,latency_ms\ndisk stall,0.000,50.000\ndisk stall,1000.000,30.000\n"; out.String() != want {
		t.Errorf("file %q, want %q", out.String(), want)
	}
}

// countingSystem answers every order at once, and counts them.
type countingSystem struct{ n atomic.Int64 }

func (s *countingSystem) place(context.Context, int64) error { return nil }
func (s *countingSystem) next() int64                        { return s.n.Add(1) }

func TestOpenLoopKeepsEachOrdersDueTimeWithItsLatency(t *testing.T) {
	s := &countingSystem{}
	r, err := openLoop(context.Background(), s, 1000, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.timeline) != int(s.n.Load()) || len(r.latencies) != len(r.timeline) {
		t.Fatalf("%d orders placed, %d in the timeline, %d latencies", s.n.Load(), len(r.timeline), len(r.latencies))
	}
	if len(r.timeline) < 2 {
		t.Fatalf("only %d orders offered in 50ms at 1000/s", len(r.timeline))
	}
	for i, p := range r.timeline {
		if p.took != r.latencies[i] || p.took <= 0 {
			t.Errorf("order %d: took %v, latency %v", i, p.took, r.latencies[i])
		}
	}
	// Orders were due a millisecond apart, so no two share a due time.
	seen := map[time.Time]bool{}
	for _, p := range r.timeline {
		if seen[p.due] {
			t.Fatalf("two orders due at %v", p.due)
		}
		seen[p.due] = true
	}
}

func TestLatenciesNeedTheHalfLoadPhase(t *testing.T) {
	if _, err := parseFlags([]string{"-latencies", "x.csv", "-half-duration", "0"}); err == nil || !strings.Contains(err.Error(), "-latencies") {
		t.Errorf("-latencies without a half-load phase: err = %v, want one naming -latencies", err)
	}
	c, err := parseFlags([]string{"-latencies", "x.csv"})
	if err != nil || c.latencies != "x.csv" {
		t.Errorf("parseFlags = %+v, %v", c, err)
	}
}
