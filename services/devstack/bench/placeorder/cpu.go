package main

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"
)

// cpuTime is the machine's CPU time, all cores: the share busy says how close to saturation a
// latency was measured, whoever used the time (the services, PostgreSQL, the broker, the load
// generator or other work on the machine).
// Steal is time the hypervisor gave this virtual machine's cores to others: counted busy, since
// the work waited, and shown apart, since it is not the work's.
// Waited is the kernel's CPU pressure ("some" in /proc/pressure/cpu): about the time in which
// runnable tasks waited for a core (each core's, weighted by how busy it was). A busy share of
// 60 % can be a steady load or bursts that queue, and queueing is what an order's latency
// pays. Wall is the time the reading spans.
type cpuTime struct {
	busy, total, steal time.Duration
	waited, wall       time.Duration
	pressure           bool // whether the kernel reports CPU pressure
	at                 time.Time
}

// readCPU reads the machine's CPU time so far from /proc; zero where there is none.
func readCPU() cpuTime {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return cpuTime{}
	}
	st, err := fs.Stat()
	if err != nil {
		return cpuTime{}
	}
	c := st.CPUTotal
	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	t := cpuTime{at: time.Now(),
		total: seconds(c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal),
		busy:  seconds(c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal), // idle and iowait are not busy
		steal: seconds(c.Steal)}
	if psi, err := fs.PSIStatsForResource("cpu"); err == nil && psi.Some != nil {
		t.waited, t.pressure = time.Duration(psi.Some.Total)*time.Microsecond, true
	}
	return t
}

// since is the time spent between an earlier reading and this one.
func (t cpuTime) since(earlier cpuTime) cpuTime {
	if earlier.total == 0 || t.total < earlier.total {
		return cpuTime{}
	}
	return cpuTime{busy: t.busy - earlier.busy, total: t.total - earlier.total, steal: t.steal - earlier.steal,
		waited: t.waited - earlier.waited, wall: t.at.Sub(earlier.at), pressure: t.pressure && earlier.pressure}
}

// add sums the time spent over two spans. A span without a reading (zero) adds nothing; the sum
// has the pressure where both spans with a reading have it.
func (t cpuTime) add(o cpuTime) cpuTime {
	switch {
	case o.total == 0:
		return t
	case t.total == 0:
		return o
	}
	return cpuTime{busy: t.busy + o.busy, total: t.total + o.total, steal: t.steal + o.steal,
		waited: t.waited + o.waited, wall: t.wall + o.wall, pressure: t.pressure && o.pressure}
}

func (t cpuTime) busyShare() string {
	if t.total == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f %% (steal %.1f %%)", 100*float64(t.busy)/float64(t.total), 100*float64(t.steal)/float64(t.total))
}

// waitedShare is the CPU pressure over the time spanned: about the share of it in which runnable
// tasks waited for a core.
func (t cpuTime) waitedShare() string {
	if !t.pressure || t.wall <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f %%", 100*float64(t.waited)/float64(t.wall))
}

// perOrder is the CPU time the machine's cores worked for, steal left out, per order of orders: a
// figure of the work an order costs at that load, steadier across runs than a latency.
func (t cpuTime) perOrder(orders int) string {
	if t.total == 0 || orders == 0 {
		return "unknown"
	}
	return ms((t.busy - t.steal) / time.Duration(orders))
}
