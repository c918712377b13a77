package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/procfs/blockdevice"
	"golang.org/x/sys/unix"
)

// diskWatch samples, while a slice runs, the disk that holds PostgreSQL's data directory, to find
// the disk's stalls: spells in which it had I/O in flight and completed none. Every commit waits
// for its WAL flush, so a stall longer than the latency target makes every order committing
// meanwhile miss it, in either system, whatever the code does. On the development machine's
// virtual disk such stalls (up to 1.4 s, with a few writes in flight) are what failed the target;
// the report and the -latencies file show whether a slow tail fell on one.
type diskWatch struct {
	fs   blockdevice.FS
	disk string // its name under /sys/block
}

// diskSampleEvery is how often a watch reads the disk's counters: a read of one sysfs line, about
// 10 µs of CPU, so 0.1 % of a core.
const diskSampleEvery = 10 * time.Millisecond

// watchDisk finds the disk that holds dir, through the sysfs mounted at sysRoot. An error says
// why it cannot be watched: dir is not on a local block device (a tmpfs, an overlay, a server
// on another machine) or the kernel does not show the disk's counters.
func watchDisk(sysRoot, dir string) (*diskWatch, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, err
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	node, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "dev", "block", dev))
	if err != nil {
		return nil, fmt.Errorf("%s is on device %s, not a block device", dir, dev)
	}
	disk := filepath.Base(node)
	if _, err := os.Stat(filepath.Join(node, "partition")); err == nil {
		// A partition shares its disk's queue: what stalls is the disk.
		disk = filepath.Base(filepath.Dir(node))
	}
	fs, err := blockdevice.NewFS("/proc", sysRoot)
	if err != nil {
		return nil, err
	}
	if _, _, err := fs.SysBlockDeviceStat(disk); err != nil {
		return nil, fmt.Errorf("disk %s of %s: %w", disk, dir, err)
	}
	return &diskWatch{fs: fs, disk: disk}, nil
}

// diskSample is what a disk had completed, and had in flight, at a moment.
type diskSample struct {
	at        time.Time
	completed uint64 // reads, writes, discards and flushes
	inFlight  uint64
}

func (w *diskWatch) sample() (diskSample, error) {
	s, _, err := w.fs.SysBlockDeviceStat(w.disk)
	if err != nil {
		return diskSample{}, err
	}
	return diskSample{at: time.Now(), completed: s.ReadIOs + s.WriteIOs + s.DiscardIOs + s.FlushRequestsCompleted,
		inFlight: s.IOsInProgress}, nil
}

// stall is a spell in which a disk completed no I/O although some was in flight.
type stall struct {
	start  time.Time
	length time.Duration
}

// during runs f, sampling the disk meanwhile, and returns its stalls of at least min. A nil watch
// only runs f.
func (w *diskWatch) during(min time.Duration, f func()) []stall {
	if w == nil {
		f()
		return nil
	}
	var samples []diskSample
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(diskSampleEvery)
		defer tick.Stop()
		for {
			// A failed read leaves a gap: the spell around it is measured across it.
			if s, err := w.sample(); err == nil {
				samples = append(samples, s)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	<-stopped
	return findStalls(samples, min)
}

// findStalls returns the stalls of at least min in samples taken in time order. A stall runs from
// a sample that saw I/O in flight to the last sample before any I/O completed: the I/O in flight
// at its start was still waiting at its end, so its length is a lower bound of that wait. A stall
// still running at the last sample ends there.
func findStalls(samples []diskSample, min time.Duration) []stall {
	var stalls []stall
	from := -1 // the sample a stall started at; -1 outside one
	end := func(last int) {
		if d := samples[last].at.Sub(samples[from].at); d >= min {
			stalls = append(stalls, stall{start: samples[from].at, length: d})
		}
		from = -1
	}
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		quiet := cur.completed == prev.completed && prev.inFlight > 0
		switch {
		case quiet && from < 0:
			from = i - 1
		case !quiet && from >= 0:
			end(i - 1)
		}
	}
	if from >= 0 {
		end(len(samples) - 1)
	}
	return stalls
}

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
