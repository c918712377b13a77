package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func wantStalls(t *testing.T, samples []diskSample, atLeast time.Duration, want []stall) {
	t.Helper()
	if got := findStalls(samples, atLeast); !slices.Equal(got, want) {
		t.Errorf("stalls %v, want %v", got, want)
	}
}

func TestFindStallsMeasuresSpellsWithIOInFlightAndNoneCompleting(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	// samples builds one sample every 10 ms from (completed, in flight) pairs.
	samples := func(counts ...[2]uint64) []diskSample {
		var s []diskSample
		for i, c := range counts {
			s = append(s, diskSample{at: t0.Add(time.Duration(i) * 10 * time.Millisecond), completed: c[0], inFlight: c[1]})
		}
		return s
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		samples []diskSample
		want    []stall
	}{
		{"busy disk completing all the time", samples([2]uint64{1, 1}, [2]uint64{5, 2}, [2]uint64{9, 1}, [2]uint64{12, 3}), nil},
		{"idle disk: nothing in flight, nothing completing", samples([2]uint64{7, 0}, [2]uint64{7, 0}, [2]uint64{7, 0}, [2]uint64{7, 0}), nil},
		{"a write stuck for four intervals",
			samples([2]uint64{1, 0}, [2]uint64{2, 1}, [2]uint64{2, 1}, [2]uint64{2, 3}, [2]uint64{2, 3}, [2]uint64{2, 3}, [2]uint64{6, 0}),
			[]stall{{start: at(1), length: 40 * time.Millisecond}}},
		{"shorter than atLeast", samples([2]uint64{1, 1}, [2]uint64{1, 1}, [2]uint64{1, 1}, [2]uint64{3, 0}), nil},
		{"two stalls", samples([2]uint64{1, 1}, [2]uint64{1, 1}, [2]uint64{1, 1}, [2]uint64{1, 1}, [2]uint64{2, 1},
			[2]uint64{2, 2}, [2]uint64{2, 2}, [2]uint64{2, 2}, [2]uint64{4, 0}),
			[]stall{{start: at(0), length: 30 * time.Millisecond}, {start: at(4), length: 30 * time.Millisecond}}},
		{"still stalled at the end", samples([2]uint64{1, 0}, [2]uint64{1, 2}, [2]uint64{1, 2}, [2]uint64{1, 2}, [2]uint64{1, 2}),
			[]stall{{start: at(1), length: 30 * time.Millisecond}}},
		{"one sample", samples([2]uint64{1, 1}), nil},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { wantStalls(t, tc.samples, 25*time.Millisecond, tc.want) })
	}
}

func TestFindStallsEndsASpellWhenNothingIsInFlight(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	// In flight at the first two samples, gone by the third without completing (requeued): the
	// wait seen is from the first to the second.
	s := []diskSample{{at: at(0), completed: 1, inFlight: 1}, {at: at(1), completed: 1, inFlight: 1},
		{at: at(2), completed: 1}, {at: at(3), completed: 1}, {at: at(4), completed: 1}}
	wantStalls(t, s, 5*time.Millisecond, []stall{{start: at(0), length: 10 * time.Millisecond}})
}

func TestFindStallsCountsSlowCacheFlushes(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	// samples builds one sample every 10 ms from (flushes completed, their ticks in ms) pairs,
	// nothing shown in flight.
	samples := func(counts ...[2]uint64) []diskSample {
		var s []diskSample
		for i, c := range counts {
			s = append(s, diskSample{at: at(i), completed: 100, flushes: c[0], flushTicks: c[1]})
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		samples []diskSample
		want    []stall
	}{
		{"fast flushes", samples([2]uint64{0, 0}, [2]uint64{10, 2}, [2]uint64{20, 4}, [2]uint64{31, 7}), nil},
		// One flush of 180 ms: it ended by the sample that counted it.
		{"one slow flush", samples([2]uint64{0, 0}, [2]uint64{1, 1}, [2]uint64{1, 1}, [2]uint64{2, 181}, [2]uint64{5, 184}),
			[]stall{{start: at(3).Add(-180 * time.Millisecond), length: 180 * time.Millisecond}}},
		// Two flushes completing together with 90 ms between them: the slower took 45 ms at least.
		{"slow flushes completing together", samples([2]uint64{0, 0}, [2]uint64{2, 90}),
			[]stall{{start: at(1).Add(-45 * time.Millisecond), length: 45 * time.Millisecond}}},
		// Flushes of 15 ms, one after another: each shorter than 25 ms, not chained into one.
		{"short flushes back to back", samples([2]uint64{0, 0}, [2]uint64{1, 15}, [2]uint64{2, 30}, [2]uint64{3, 45}, [2]uint64{4, 60}), nil},
		// Counters that went back (a device reset) give nothing rather than a huge stall.
		{"counters going back", samples([2]uint64{5, 900}, [2]uint64{2, 30}, [2]uint64{3, 31}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) { wantStalls(t, tc.samples, 25*time.Millisecond, tc.want) })
	}
}

func TestFindStallsMergesOverlappingStalls(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	// Writes in flight complete nothing from 0 to 40 ms, though a flush completes at 20 ms (not a
	// request counted in flight: the spell goes on); at 50 ms a flush of 30 ms completes (20 to
	// 50 ms), with the writes: one stall from 0 to 50 ms.
	s := []diskSample{
		{at: at(0), completed: 10, inFlight: 2},
		{at: at(1), completed: 10, inFlight: 2},
		{at: at(2), completed: 10, inFlight: 3, flushes: 1, flushTicks: 1},
		{at: at(3), completed: 10, inFlight: 3, flushes: 1, flushTicks: 1},
		{at: at(4), completed: 10, inFlight: 3, flushes: 1, flushTicks: 1},
		{at: at(5), completed: 14, inFlight: 0, flushes: 2, flushTicks: 31},
	}
	wantStalls(t, s, 25*time.Millisecond, []stall{{start: at(0), length: 50 * time.Millisecond}})
}

func TestDescribeStalls(t *testing.T) {
	if got := describeStalls(nil); got != "none" {
		t.Errorf("no stalls: %q", got)
	}
	got := describeStalls([]stall{{length: 30 * time.Millisecond}, {length: 1360 * time.Millisecond}})
	if want := "2, longest 1360.00 ms, 1390.00 ms in all"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// fakeSys builds a sysfs tree in which the device holding dir is node (a path under
// devices/), with the given stat line for the disk named disk.
func fakeSys(t *testing.T, dir, node, disk, stat string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	sys := t.TempDir()
	for _, d := range []string{"dev/block", node, "block/" + disk} {
		if err := os.MkdirAll(filepath.Join(sys, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	if err := os.Symlink(filepath.Join(sys, node), filepath.Join(sys, "dev/block", dev)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "block", disk, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	return sys
}

const statLine = "   41048     6924  1988786    10556  1172210    43809 59773712   153661        3    76528   191245    31785       21 23873096     4552   514390    22474\n"

func TestWatchDiskReadsTheDiskHoldingTheDirectory(t *testing.T) {
	dir := t.TempDir()
	sys := fakeSys(t, dir, "devices/virtio1/block/vdb", "vdb", statLine)
	w, err := watchDisk(sys, dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.name != "vdb" || !w.flushes {
		t.Errorf("disk %q (flushes counted: %v), want vdb with its flushes", w.name, w.flushes)
	}
	s, err := w.sample()
	if err != nil {
		t.Fatal(err)
	}
	// Reads, writes and discards completed; I/O in flight; flushes and their milliseconds.
	if want := uint64(41048 + 1172210 + 31785); s.completed != want || s.inFlight != 3 || s.flushes != 514390 || s.flushTicks != 22474 {
		t.Errorf("sample %+v, want %d completed, 3 in flight, 514390 flushes in 22474 ms", s, want)
	}
}

func TestWatchDiskSaysWhenTheKernelCountsNoFlushes(t *testing.T) {
	dir := t.TempDir()
	// Linux before 5.5: 15 fields.
	sys := fakeSys(t, dir, "devices/virtio1/block/vdb", "vdb", "1 0 8 1 2 0 16 1 0 2 2 0 0 0 0\n")
	w, err := watchDisk(sys, dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.flushes || !strings.Contains(w.kinds(), "no cache flushes") {
		t.Errorf("flushes counted: %v; kinds %q", w.flushes, w.kinds())
	}
}

func TestWatchDiskWatchesThePartitionsDisk(t *testing.T) {
	dir := t.TempDir()
	sys := fakeSys(t, dir, "devices/nvme0/block/nvme0n1/nvme0n1p2", "nvme0n1", statLine)
	if err := os.WriteFile(filepath.Join(sys, "devices/nvme0/block/nvme0n1/nvme0n1p2/partition"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := watchDisk(sys, dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.name != "nvme0n1" {
		t.Errorf("disk %q, want nvme0n1", w.name)
	}
}

func TestWatchDiskRefusesWhatIsNotOnABlockDevice(t *testing.T) {
	dir := t.TempDir()
	_, err := watchDisk(t.TempDir(), dir) // a sysfs that knows no device
	if err == nil || !strings.Contains(err.Error(), "no block device counters") {
		t.Errorf("err %v, want one saying %s is on no block device", err, dir)
	}
	if _, err := watchDisk(t.TempDir(), filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory: no error")
	}
}

func TestNilWatchOnlyRuns(t *testing.T) {
	ran := false
	if stalls := (*diskWatch)(nil).during(time.Millisecond, func() { ran = true }); !ran || stalls != nil {
		t.Errorf("ran %v, stalls %v", ran, stalls)
	}
}

// The samples between are the ticker's, which this test cannot count on: one taken before f and
// one after it measure the stall all the same.
func TestDuringSamplesTheDiskBeforeAndAfterF(t *testing.T) {
	dir := t.TempDir()
	// The counters never move while 3 I/Os are in flight: stalled throughout.
	w, err := watchDisk(fakeSys(t, dir, "devices/virtio1/block/vdb", "vdb", statLine), dir)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	stalls := w.during(time.Nanosecond, func() { time.Sleep(30 * time.Millisecond) })
	took := time.Since(began)
	// Sampled before f and after it, whatever the ticker managed in between.
	if len(stalls) != 1 || stalls[0].length < 30*time.Millisecond || stalls[0].length > took || stalls[0].start.Before(began) {
		t.Errorf("stalls %v over a run of %v from %v, want one spanning the 30ms f ran", stalls, took, began)
	}
}
