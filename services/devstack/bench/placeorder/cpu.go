package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuTime is the machine's CPU time, all cores, in clock ticks: the share busy says how close to
// saturation a latency was measured, whoever used the time (the services, PostgreSQL, the broker,
// the load generator or other work on the machine).
// Steal is time the hypervisor gave this virtual machine's cores to others: counted busy, since
// the work waited, and shown apart, since it is not the work's.
type cpuTime struct {
	busyTicks, totalTicks, stealTicks uint64
}

// readCPU reads the machine's CPU time so far from /proc/stat; zero where there is none.
func readCPU() cpuTime {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTime{}
	}
	first, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(first) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTime{}
	}
	var t cpuTime
	for i, f := range fields[1:9] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTime{}
		}
		t.totalTicks += n
		if i != 3 && i != 4 { // idle and iowait are not busy
			t.busyTicks += n
		}
		if i == 7 {
			t.stealTicks = n
		}
	}
	return t
}

// since is the time spent between an earlier reading and this one.
func (t cpuTime) since(earlier cpuTime) cpuTime {
	if earlier.totalTicks == 0 || t.totalTicks < earlier.totalTicks {
		return cpuTime{}
	}
	return cpuTime{busyTicks: t.busyTicks - earlier.busyTicks, totalTicks: t.totalTicks - earlier.totalTicks,
		stealTicks: t.stealTicks - earlier.stealTicks}
}

func (t cpuTime) busy() string {
	if t.totalTicks == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f %% (steal %.1f %%)", 100*float64(t.busyTicks)/float64(t.totalTicks), 100*float64(t.stealTicks)/float64(t.totalTicks))
}

// perOrder is the CPU time the machine's cores worked for, steal left out, per order of orders: a
// figure of the work an order costs at that load, steadier across runs than a latency.
func (t cpuTime) perOrder(orders int) string {
	if t.totalTicks == 0 || orders == 0 {
		return "unknown"
	}
	const userHZ = 100 // /proc/stat counts in USER_HZ, 100 on every Linux
	return ms(time.Duration(float64(t.busyTicks-t.stealTicks) / userHZ * float64(time.Second) / float64(orders)))
}
