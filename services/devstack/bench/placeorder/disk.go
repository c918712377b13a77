package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/procfs/blockdevice"
	"golang.org/x/sys/unix"
)

// diskWatch samples, while a slice runs, the disk that holds PostgreSQL's WAL, to find the disk's
// stalls. Every commit waits for its WAL flush, so a stall of the disk holds up every order with
// a commit in flight meanwhile, in either system, whatever the code does; the report and the
// -latencies file show whether a slow tail fell on one.
type diskWatch struct {
	fs      blockdevice.FS
	name    string // the disk's, under /sys/block
	flushes bool   // whether the kernel counts the disk's cache flushes (Linux 5.5 and later)
}

// diskSampleEvery is how often a watch reads the disk's counters: a read of one sysfs line, about
// 10 µs of CPU, so 0.1 % of a core.
const diskSampleEvery = 10 * time.Millisecond

// watchDisk finds the disk that holds dir, through the sysfs mounted at sysRoot. An error says
// why it cannot be watched: dir is on no block device whose counters the kernel shows (a tmpfs,
// an overlay, a btrfs volume, whose device numbers name no disk).
func watchDisk(sysRoot, dir string) (*diskWatch, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	node, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "dev", "block", dev))
	if err != nil {
		return nil, fmt.Errorf("%s is on device %s, which the kernel shows no block device counters for", dir, dev)
	}
	name := filepath.Base(node)
	if _, err := os.Stat(filepath.Join(node, "partition")); err == nil {
		// A partition shares its disk's queue: what stalls is the disk.
		name = filepath.Base(filepath.Dir(node))
	}
	fs, err := blockdevice.NewFS("/proc", sysRoot)
	if err != nil {
		return nil, err
	}
	_, fields, err := fs.SysBlockDeviceStat(name)
	if err != nil {
		return nil, fmt.Errorf("disk %s of %s: %w", name, dir, err)
	}
	return &diskWatch{fs: fs, name: name, flushes: fields >= 17}, nil
}

// kinds says which kinds of stall the watch sees.
func (w *diskWatch) kinds() string {
	if !w.flushes {
		return "I/O in flight, none completing; the kernel counts no cache flushes, so slow ones go unseen"
	}
	return "I/O in flight, none completing; or cache flushes that slow"
}

// diskSample is a disk's counters at a moment.
type diskSample struct {
	at         time.Time
	completed  uint64 // reads, writes and discards (what inFlight counts)
	inFlight   uint64 // requests started and not completed (a cache flush is not among them)
	flushes    uint64 // cache flushes completed
	flushTicks uint64 // milliseconds those took, counted as each completes
}

func (w *diskWatch) sample() (diskSample, error) {
	s, _, err := w.fs.SysBlockDeviceStat(w.name)
	if err != nil {
		return diskSample{}, err
	}
	return diskSample{at: time.Now(), completed: s.ReadIOs + s.WriteIOs + s.DiscardIOs,
		inFlight: s.IOsInProgress, flushes: s.FlushRequestsCompleted, flushTicks: s.TimeSpentFlushing}, nil
}

// stall is a spell in which a disk made some I/O wait: it completed none although some was in
// flight, or a cache flush (what a commit's fdatasync waits for) took that long. Stalls that
// overlap are one, so a stall can be several waits back to back.
type stall struct {
	start  time.Time
	length time.Duration
}

// during runs f, sampling the disk meanwhile (from before f starts to after it ends), and returns
// its stalls of at least atLeast. A nil watch only runs f.
func (w *diskWatch) during(atLeast time.Duration, f func()) []stall {
	if w == nil {
		f()
		return nil
	}
	var samples []diskSample
	take := func() {
		// A failed read leaves a gap: a spell around it is measured across it.
		if s, err := w.sample(); err == nil {
			samples = append(samples, s)
		}
	}
	take()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(diskSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				take()
			}
		}
	}()
	f()
	close(stop)
	<-stopped
	take()
	return findStalls(samples, atLeast)
}

// findStalls returns the stalls of at least atLeast in samples taken in time order, of two kinds
// (those of atLeast or more that overlap are merged into one):
//   - a spell of samples that all saw I/O in flight with none completing between them: the I/O
//     in flight at its start was still waiting at its end, so the spell's length is a lower
//     bound of that wait. A spell still running at the last sample ends there.
//   - slow cache flushes: a flush is not among the requests counted in flight, but its time is
//     counted as it completes, so of the flushes completed between two samples the slowest took
//     their average at least (one slow flush among many fast ones shows much shorter). It is
//     placed as if it ended at the second sample, which it did by then.
func findStalls(samples []diskSample, atLeast time.Duration) []stall {
	var spells []stall
	from := -1 // the sample a spell of I/O in flight and none completing started at; -1 outside one
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		quiet := cur.completed == prev.completed && prev.inFlight > 0 && cur.inFlight > 0
		switch {
		case quiet && from < 0:
			from = i - 1
		case !quiet && from >= 0:
			spells = append(spells, stall{start: samples[from].at, length: samples[i-1].at.Sub(samples[from].at)})
			from = -1
		}
		if n := cur.flushes - prev.flushes; n > 0 && cur.flushTicks > prev.flushTicks {
			took := time.Duration((cur.flushTicks-prev.flushTicks)/n) * time.Millisecond
			spells = append(spells, stall{start: cur.at.Add(-took), length: took})
		}
	}
	if from >= 0 {
		spells = append(spells, stall{start: samples[from].at, length: samples[len(samples)-1].at.Sub(samples[from].at)})
	}
	// Keep what is long enough, then merge what overlaps (merging first would chain short ones).
	spells = slices.DeleteFunc(spells, func(s stall) bool { return s.length < atLeast })
	slices.SortFunc(spells, func(a, b stall) int { return a.start.Compare(b.start) })
	var stalls []stall
	for _, s := range spells {
		if n := len(stalls); n > 0 && !s.start.After(stalls[n-1].end()) {
			if s.end().After(stalls[n-1].end()) {
				stalls[n-1].length = s.end().Sub(stalls[n-1].start)
			}
			continue
		}
		stalls = append(stalls, s)
	}
	return stalls
}

func (s stall) end() time.Time { return s.start.Add(s.length) }

// describeStalls sums up stalls for the report: how many, the longest and all of them together.
func describeStalls(stalls []stall) string {
	if len(stalls) == 0 {
		return "none"
	}
	var longest, total time.Duration
	for _, s := range stalls {
		longest, total = max(longest, s.length), total+s.length
	}
	return fmt.Sprintf("%d, longest %s, %s in all", len(stalls), ms(longest), ms(total))
}
