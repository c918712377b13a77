package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
)

// callTimeout bounds one order; a call that needs it is a failure worth stopping for.
const callTimeout = 30 * time.Second

// result is a set of latencies over some elapsed time.
type result struct {
	latencies []time.Duration
	timeline  []placed // an open loop's orders, as answered, for -latencies
	elapsed   time.Duration
	sorted    bool
	cpu       cpuTime       // the whole machine's, while the latencies were taken
	drain     time.Duration // longest wait, after a slice, for the stack to apply its events
	drained   time.Duration // all those waits
	stalls    []stall       // of the disk, while the latencies were taken
}

func (r *result) add(o result) {
	r.latencies = append(r.latencies, o.latencies...)
	r.timeline = append(r.timeline, o.timeline...)
	r.elapsed += o.elapsed
	r.sorted = false
	r.cpu = r.cpu.add(o.cpu)
	r.drain = max(r.drain, o.drain)
	r.drained += o.drained
	r.stalls = append(r.stalls, o.stalls...)
}

// sustained is the throughput counting the time the stack took, after the slices, to apply their
// events: what it could keep up indefinitely.
func (r *result) sustained() float64 {
	if r.elapsed+r.drained <= 0 {
		return 0
	}
	return float64(len(r.latencies)) / (r.elapsed + r.drained).Seconds()
}

func (r *result) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

// over counts the latencies above d.
func (r *result) over(d time.Duration) int {
	n := 0
	for _, l := range r.latencies {
		if l > d {
			n++
		}
	}
	return n
}

// quantile q of the latencies, nearest rank; 1 is the maximum.
func (r *result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	if !r.sorted {
		slices.Sort(r.latencies)
		r.sorted = true
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// placed is one order of an open loop: when it was due and how long it took from then.
type placed struct {
	due  time.Time
	took time.Duration
}

// measure runs a closed loop: conc workers each place an order as soon as their previous one is
// answered, until d has passed or max orders were placed. Any failed order stops the run.
func measure(ctx context.Context, s system, conc int, d time.Duration, maxOrders int) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, 4096)
		firstErr error
		wg       sync.WaitGroup
	)
	began := time.Now()
	deadline := began.Add(d)
	for range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				mu.Lock()
				full := len(lat) >= maxOrders
				mu.Unlock()
				if full {
					return
				}
				n := s.next()
				cctx, ccancel := context.WithTimeout(ctx, callTimeout)
				t0 := time.Now()
				err := s.place(cctx, n)
				took := time.Since(t0)
				ccancel()
				mu.Lock()
				if err != nil {
					if firstErr == nil && ctx.Err() == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				lat = append(lat, took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	if err := ctx.Err(); err != nil && len(lat) == 0 {
		return result{}, err
	}
	return result{latencies: lat, elapsed: time.Since(began)}, nil
}

// openLoop offers orders at a fixed rate for d, whatever the answers' latency, so that a slow
// answer cannot hold back the next arrival; each latency counts from the order's scheduled start.
// At most 1024 orders are in flight; beyond that the run reports the load as unsustainable.
func openLoop(ctx context.Context, s system, rate float64, d time.Duration) (result, error) {
	if rate <= 0 {
		return result{}, fmt.Errorf("no rate to offer")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const inFlight = 1024
	sem := make(chan struct{}, inFlight)
	var (
		mu       sync.Mutex
		timeline []placed
		firstErr error
		wg       sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / rate)
	began := time.Now()
	for k := 0; ; k++ {
		due := began.Add(time.Duration(k) * interval)
		if due.Sub(began) >= d {
			break
		}
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			cancel()
			wg.Wait()
			return result{}, fmt.Errorf("more than %d orders in flight at %.0f orders/s: the system cannot keep up", inFlight, rate)
		}
		n := s.next()
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, ccancel := context.WithTimeout(ctx, callTimeout)
			err := s.place(cctx, n)
			ccancel()
			took := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				cancel()
				return
			}
			timeline = append(timeline, placed{due: due, took: took})
		})
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	lat := make([]time.Duration, len(timeline))
	for i, p := range timeline {
		lat[i] = p.took
	}
	return result{latencies: lat, timeline: timeline, elapsed: time.Since(began)}, ctx.Err()
}

// writeTimeline writes the orders of a phase to w as CSV, one row per order in the order they
// were due: the system, when the order was due (milliseconds from the phase's first order) and
// its latency. Slow orders in clusters at the same moment point at the machine (a write-out
// burst, another tenant); slow orders spread over one system's slices, at that system's work.
// The disk's stalls are rows too, of the system "disk stall": when each began (before the first
// order, for one already running then) and its length.
func writeTimeline(w io.Writer, systems map[string][]placed, stalls []stall) error {
	type row struct {
		system string
		placed
	}
	var rows []row
	for name, t := range systems {
		for _, p := range t {
			rows = append(rows, row{name, p})
		}
	}
	orders := len(rows)
	for _, s := range stalls {
		rows = append(rows, row{"disk stall", placed{due: s.start, took: s.length}})
	}
	byDue := func(a, b row) int { return a.due.Compare(b.due) }
	var first time.Time // the first order's due time; the first stall's without orders
	if orders > 0 {
		first = slices.MinFunc(rows[:orders], byDue).due
	} else if len(rows) > 0 {
		first = slices.MinFunc(rows, byDue).due
	}
	slices.SortStableFunc(rows, byDue)
	c := csv.NewWriter(w)
	_ = c.Write([]string{"system", "due_ms", "latency_ms"})
	for _, r := range rows {
		_ = c.Write([]string{r.system, strconv.FormatFloat(float64(r.due.Sub(first).Microseconds())/1000, 'f', 3, 64),
			strconv.FormatFloat(float64(r.took.Microseconds())/1000, 'f', 3, 64)})
	}
	c.Flush()
	return c.Error()
}
