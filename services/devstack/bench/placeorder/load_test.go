package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteTimelineListsOrdersByWhenTheyWereDue(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "latencies.csv")
	err := writeTimeline(path, map[string][]placed{
		"grpc":  {{due: t0.Add(5 * time.Millisecond), took: 7500 * time.Microsecond}, {due: t0.Add(4 * time.Second), took: 31 * time.Millisecond}},
		"floor": {{due: t0.Add(2 * time.Second), took: 4250 * time.Microsecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"system,due_ms,latency_ms",
		"grpc,0.000,7.500",
		"floor,1995.000,4.250",
		"grpc,3995.000,31.000",
	}, "\n") + "\n"
	if string(got) != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
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
