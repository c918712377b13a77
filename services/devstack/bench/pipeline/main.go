// Command pipeline measures Doorstep's event pipeline, from the outbox to the tracking read
// model, beside its floor measured in the same run: raw asynchronous JetStream publishing to the
// same server with the same payloads.
//
// It builds and starts real processes through the faulttest harness: a nats-server, a private
// PostgreSQL cluster (durable settings), orderd, whose outbox relay publishes, and trackingd,
// whose consumer stores every event in its timeline table. The producer writes orders' events
// straight into the order service's outbox, one transaction per order holding order.placed and a
// parcel.placed per parcel, built the way PlaceOrder builds them, so that the pipeline and not
// PlaceOrder (measured by bench/placeorder) is what is loaded.
//
// Lag is event committed → applied, both from PostgreSQL's commit timestamps
// (track_commit_timestamp): the producer's transaction and tracking's transaction that stored the
// timeline row, so both ends are read from one clock.
//
// Run it from services/devstack:
//
//	go run ./bench/pipeline
//	go run ./bench/pipeline -duration 5s -ramp 1000 -backlog 2000 -relay-batch 1024
//
// Phases, in this order:
//
//  1. paced: -rate orders/s (the target's 500) for -duration, then each -ramp rate until the
//     pipeline falls behind: events applied per second and the lag's p50, p99 and maximum;
//  2. drain: a backlog of -backlog orders written while orderd is stopped, then orderd started:
//     the relay's publish rate while tracking consumes beside it, and tracking's apply rate;
//  3. with orderd and trackingd stopped, so that nothing else runs: the floor (raw asynchronous
//     JetStream publishes of the drained payloads to a stream of its own on the same server,
//     -floor-runs times) and the outbox relay alone (pkg/outbox's Relay in this process, once per
//     -relay-batch size, the first being the services' default).
//
// Before the paced phase it gives the new cluster the disk behaviour of a running server, and
// checkpoints and syncs before every later phase (bench/internal/pgprep; -unprepared does not).
//
// Everything listens on 127.0.0.1, is bounded in count and time, and is removed at exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/services/devstack/bench/internal/pgprep"
	"github.com/doorstep/doorstep/services/devstack/faulttest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

type config struct {
	rate         float64
	duration     time.Duration
	ramp         []float64
	rampDuration time.Duration
	backlog      int
	relayBatches []int
	sweepOrders  int
	writers      int
	floorRuns    int
	keep         bool
	relayProfile string
	unprepared   bool
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	c := config{}
	fs.Float64Var(&c.rate, "rate", 500, "paced orders per second of the first phase (the lag target is stated at 500)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of the paced phase")
	ramp := fs.String("ramp", "750,1000,1500,2000,3000", "higher paced rates (orders/s), tried in order until the pipeline falls behind; empty for none")
	fs.DurationVar(&c.rampDuration, "ramp-duration", 5*time.Second, "length of each ramp step")
	fs.IntVar(&c.backlog, "backlog", 5000, "orders written while orderd is stopped, then drained through it and tracking")
	batches := fs.String("relay-batch", fmt.Sprintf("%d,256,4096", outbox.DefaultBatch), "outbox relay batch sizes to measure the relay alone with (the first is the services' default); empty for none")
	fs.IntVar(&c.sweepOrders, "relay-orders", 10000, "orders drained by the relay alone at each batch size")
	fs.IntVar(&c.writers, "writers", 8, "concurrent producer transactions")
	fs.IntVar(&c.floorRuns, "floor-runs", 3, "runs of the raw-publish floor (the median is reported)")
	fs.BoolVar(&c.keep, "keep", false, "keep the data directory and the processes' logs")
	fs.StringVar(&c.relayProfile, "relay-cpuprofile", "", "write a CPU profile of this process while the relay drains alone at the first -relay-batch size")
	fs.BoolVar(&c.unprepared, "unprepared", false, pgprep.UnpreparedUsage)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *ramp != "" {
		for _, s := range strings.Split(*ramp, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || r <= 0 || r > 50000 {
				return c, fmt.Errorf("-ramp: %q is not a rate from 1 to 50000", s)
			}
			c.ramp = append(c.ramp, r)
		}
	}
	if *batches != "" {
		for _, s := range strings.Split(*batches, ",") {
			b, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || b < 1 || b > 65536 {
				return c, fmt.Errorf("-relay-batch: %q is not a batch size from 1 to 65536", s)
			}
			c.relayBatches = append(c.relayBatches, b)
		}
	}
	switch {
	case c.sweepOrders < 100 || c.sweepOrders > 200000:
		return c, errors.New("-relay-orders must be from 100 to 200000")
	case c.rate <= 0 || c.rate > 50000:
		return c, errors.New("-rate must be from 1 to 50000")
	case c.duration <= 0 || c.duration > 5*time.Minute, c.rampDuration <= 0 || c.rampDuration > 5*time.Minute:
		return c, errors.New("-duration and -ramp-duration must be positive and at most 5m")
	case c.backlog < 0 || c.backlog > 200000:
		return c, errors.New("-backlog must be from 0 to 200000")
	case c.writers < 1 || c.writers > 64:
		return c, errors.New("-writers must be from 1 to 64")
	case c.floorRuns < 1 || c.floorRuns > 20:
		return c, errors.New("-floor-runs must be from 1 to 20")
	}
	return c, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	load := loadAverage()
	sys, cleanup, err := start(ctx, cfg, out)
	if err != nil {
		return err
	}
	defer cleanup()

	pool, err := pgkit.Open(ctx, sys.DBURL, "orders")
	if err != nil {
		return err
	}
	defer pool.Close()
	p := &producer{pool: pool, writers: cfg.writers}
	if err := pool.Ping(ctx); err != nil {
		return err
	}

	// Warm up connections, the relay and the consumers; not reported.
	fmt.Fprintln(out, "warming up ...")
	if _, err := measure(ctx, sys.DB, p, "bench-warmup", 200, 2*time.Second, 0); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	cluster, err := pgprep.Prepare(ctx, sys.DB, out, cfg.unprepared)
	if err != nil {
		return err
	}

	var phases []*phase
	fmt.Fprintf(out, "paced %.0f orders/s for %s ...\n", cfg.rate, cfg.duration)
	ph, err := measure(ctx, sys.DB, p, "bench-paced", cfg.rate, cfg.duration, 0)
	if err != nil {
		return err
	}
	phases = append(phases, ph)
	for i, r := range cfg.ramp {
		if err := cluster.BeforePhase(ctx); err != nil {
			return err
		}
		fmt.Fprintf(out, "paced %.0f orders/s for %s ...\n", r, cfg.rampDuration)
		ph, err := measure(ctx, sys.DB, p, fmt.Sprintf("bench-ramp%d", i+1), r, cfg.rampDuration, 0)
		if err != nil {
			return err
		}
		phases = append(phases, ph)
		if !ph.keptUp() {
			break
		}
	}

	var dr *drain
	if cfg.backlog > 0 {
		if err := cluster.BeforePhase(ctx); err != nil {
			return err
		}
		fmt.Fprintf(out, "draining a backlog of %d orders ...\n", cfg.backlog)
		if dr, err = drainBacklog(ctx, sys, p, cfg.backlog); err != nil {
			return err
		}
	}

	// From here on nothing but this process works: the floor and the relay alone.
	for _, svc := range append(sys.Replicas("order"), sys.Replicas("tracking")...) {
		svc.Stop(10 * time.Second)
	}
	fmt.Fprintln(out, "floor: raw asynchronous JetStream publish ...")
	payloads := p.payloads()
	floors := make([]float64, 0, cfg.floorRuns)
	for range cfg.floorRuns {
		if err := cluster.BeforePhase(ctx); err != nil {
			return err
		}
		f, err := floor(ctx, sys.NATSURL, payloads)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		floors = append(floors, f)
	}
	var relays []relayRun
	for i, b := range cfg.relayBatches {
		if err := cluster.BeforePhase(ctx); err != nil {
			return err
		}
		fmt.Fprintf(out, "outbox relay alone, batch %d ...\n", b)
		profile := ""
		if i == 0 {
			profile = cfg.relayProfile
		}
		r, err := relayAlone(ctx, sys, p, b, cfg.sweepOrders, profile)
		if err != nil {
			return fmt.Errorf("relay batch %d: %w", b, err)
		}
		relays = append(relays, r)
	}

	report(out, load, p, phases, dr, floors, relays)
	fmt.Fprintf(out, "while measuring: %s\n", cluster.Used(ctx))
	return nil
}

// start builds and starts the processes. With -keep their data and logs stay.
func start(ctx context.Context, cfg config, out io.Writer) (*faulttest.System, func(), error) {
	root, err := faulttest.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	// Not os.TempDir's private subdirectory: PostgreSQL runs as an unprivileged user under root.
	dir, err := os.MkdirTemp("", "doorstep-bench-pipeline-")
	if err != nil {
		return nil, nil, err
	}
	removeDir := func() {
		if cfg.keep {
			fmt.Fprintln(out, "kept", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}
	fmt.Fprintln(out, "building nats-server, orderd and trackingd ...")
	binDir, err := faulttest.BinDir(root)
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	bins, err := faulttest.Build(ctx, root, binDir, "order", "tracking")
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	sys, err := faulttest.StartSystem(ctx, dir, bins)
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	cleanup := func() {
		sys.Close()
		removeDir()
	}
	// Commit timestamps are what the lag is read from; the setting needs a restart.
	if _, err := sys.DB.Exec(ctx, `ALTER SYSTEM SET track_commit_timestamp = on`); err != nil {
		cleanup()
		return nil, nil, err
	}
	if err := sys.PG.Stop(); err == nil {
		err = sys.PG.Start(ctx)
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("restart postgres with track_commit_timestamp: %w", err)
	}
	for _, kind := range []string{"order", "tracking"} {
		if _, err := sys.AddService(ctx, kind, false); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	return sys, cleanup, nil
}

// phase is one paced run and what it measured.
type phase struct {
	compound        string
	target          float64 // orders/s offered
	length          time.Duration
	orders, events  int
	produceFor      time.Duration
	lags            []time.Duration // per event, sorted
	firstCommit     time.Time
	lastApply       time.Time
	waitedAfterLoad time.Duration
}

func (ph *phase) achieved() float64 { return float64(ph.orders) / ph.produceFor.Seconds() }

// appliedRate is events applied per second, from the first commit to the last apply.
func (ph *phase) appliedRate() float64 {
	return float64(ph.events) / ph.lastApply.Sub(ph.firstCommit).Seconds()
}

func (ph *phase) pct(q float64) time.Duration {
	if len(ph.lags) == 0 {
		return 0
	}
	return ph.lags[min(len(ph.lags)-1, int(q*float64(len(ph.lags))))]
}

// keptUp: the producer offered (nearly) the rate and the pipeline followed without a queue
// building up (a queue shows as lag growing past a second).
func (ph *phase) keptUp() bool {
	return ph.achieved() >= 0.9*ph.target && ph.pct(0.99) < time.Second
}

// measure produces at rate for d (or count orders at full speed when rate is 0), waits until
// tracking has applied every event and reads the lags.
func measure(ctx context.Context, db *pgxpool.Pool, p *producer, compound string, rate float64, d time.Duration, count int) (*phase, error) {
	batch, took, err := p.produce(ctx, compound, rate, d, count)
	if err != nil {
		return nil, err
	}
	ph := &phase{compound: compound, target: rate, length: d, orders: len(batch), produceFor: took}
	for _, o := range batch {
		ph.events += len(o.eventIDs)
	}
	loaded := time.Now()
	if err := waitApplied(ctx, db, compound, ph.events, 5*time.Minute); err != nil {
		return nil, err
	}
	ph.waitedAfterLoad = time.Since(loaded)
	return ph, ph.readLags(ctx, db, batch)
}

// waitApplied polls tracking's table until want events of compound are in it.
func waitApplied(ctx context.Context, db *pgxpool.Pool, compound string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM tracking.timeline_entries WHERE compound = $1`, compound).Scan(&n); err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: tracking applied %d of %d events within %s", compound, n, want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readLags joins each event's producer transaction with the tracking transaction that stored it,
// by commit timestamp.
func (ph *phase) readLags(ctx context.Context, db *pgxpool.Pool, batch []produced) error {
	var ids []string
	var xids []int64
	for _, o := range batch {
		for _, id := range o.eventIDs {
			ids = append(ids, id)
			xids = append(xids, o.xid)
		}
	}
	rows, err := db.Query(ctx, `
		SELECT pg_xact_commit_timestamp((p.xid % 4294967296)::text::xid), pg_xact_commit_timestamp(t.xmin)
		FROM unnest($1::uuid[], $2::bigint[]) AS p(event_id, xid)
		JOIN tracking.timeline_entries t ON t.event_id = p.event_id`, ids, xids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var committed, applied time.Time
		if err := rows.Scan(&committed, &applied); err != nil {
			return err
		}
		ph.lags = append(ph.lags, applied.Sub(committed))
		if ph.firstCommit.IsZero() || committed.Before(ph.firstCommit) {
			ph.firstCommit = committed
		}
		if applied.After(ph.lastApply) {
			ph.lastApply = applied
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ph.lags) != ph.events {
		return fmt.Errorf("%s: %d of %d events found with commit timestamps", ph.compound, len(ph.lags), ph.events)
	}
	slices.Sort(ph.lags)
	return nil
}

// drain is the backlog phase: rates of the relay (rows marked published per second) and of
// tracking (events applied per second) while both work through a queue.
type drain struct {
	orders, events int
	relay, applied float64 // events per second
	total          time.Duration
}

// drainBacklog stops the order service (so its relay), writes count orders' events, starts it
// again and measures the relay and tracking emptying the queue.
func drainBacklog(ctx context.Context, sys *faulttest.System, p *producer, count int) (*drain, error) {
	ord := sys.Replicas("order")[0]
	ord.Stop(10 * time.Second)
	const compound = "bench-drain"
	batch, _, err := p.produce(ctx, compound, 0, 0, count)
	if err != nil {
		return nil, err
	}
	d := &drain{orders: len(batch)}
	var ids []string
	for _, o := range batch {
		d.events += len(o.eventIDs)
		ids = append(ids, o.eventIDs...)
	}
	started := time.Now()
	if err := sys.StartService(ctx, ord); err != nil {
		return nil, err
	}
	if err := waitApplied(ctx, sys.DB, compound, d.events, 5*time.Minute); err != nil {
		return nil, err
	}
	d.total = time.Since(started)
	// Rates from commit timestamps, leaving out the first batch (its start is not observed).
	var err2 error
	if d.relay, err2 = rate(ctx, sys.DB, `SELECT pg_xact_commit_timestamp(xmin) FROM orders.outbox WHERE event_id = ANY($1::uuid[])`, ids); err2 != nil {
		return nil, err2
	}
	if d.applied, err2 = rate(ctx, sys.DB, `SELECT pg_xact_commit_timestamp(xmin) FROM tracking.timeline_entries WHERE event_id = ANY($1::uuid[])`, ids); err2 != nil {
		return nil, err2
	}
	return d, nil
}

// rate is rows per second between the first and the last commit of the rows query returns,
// counting the rows committed after the first commit.
func rate(ctx context.Context, db *pgxpool.Pool, query string, ids []string) (float64, error) {
	var n int
	var first, last time.Time
	err := db.QueryRow(ctx, `WITH c AS (`+query+`)
		SELECT count(*) FILTER (WHERE pg_xact_commit_timestamp > (SELECT min(pg_xact_commit_timestamp) FROM c)),
			min(pg_xact_commit_timestamp), max(pg_xact_commit_timestamp) FROM c`, ids).Scan(&n, &first, &last)
	if err != nil {
		return 0, err
	}
	if !last.After(first) {
		return 0, errors.New("all rows committed at once; too small a backlog to measure")
	}
	return float64(n) / last.Sub(first).Seconds(), nil
}

func report(out io.Writer, load string, p *producer, phases []*phase, dr *drain, floors []float64, relays []relayRun) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Doorstep event pipeline: outbox (order service relay) -> JetStream -> tracking read model, all on 127.0.0.1")
	fmt.Fprintf(out, "machine: %d CPUs, load average before the run %s; PostgreSQL durable (fsync, synchronous_commit on); nats-server file store\n",
		runtime.NumCPU(), load)
	sizes := p.sizes()
	fmt.Fprintf(out, "payload: %.2f events per order; mean %.0f B (order.placed %.0f B, parcel.placed %.0f B); lag = producer commit -> tracking commit (PostgreSQL commit timestamps)\n\n",
		sizes.perOrder, sizes.mean, sizes.placed, sizes.parcel)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\torders/s offered\tachieved\tevents\tevents/s applied\tlag p50\tp99\tmax\tkept up\t")
	var best *phase
	for _, ph := range phases {
		fmt.Fprintf(tw, "paced %s\t%.0f\t%.0f\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n", ph.length, ph.target, ph.achieved(), ph.events,
			ph.appliedRate(), ms(ph.pct(0.5)), ms(ph.pct(0.99)), ms(ph.lags[len(ph.lags)-1]), yes(ph.keptUp()))
		if ph.keptUp() && (best == nil || ph.target > best.target) {
			best = ph
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
	if best != nil {
		fmt.Fprintf(out, "highest rate sustained: %.0f orders/s (%.0f events/s) with p99 lag %s", best.target, best.appliedRate(), ms(best.pct(0.99)))
		if best == phases[len(phases)-1] {
			fmt.Fprint(out, " (the highest rate tried: the ceiling is at least this)")
		}
		fmt.Fprintln(out)
	} else {
		fmt.Fprintln(out, "no paced rate was sustained")
	}
	floor := median(floors)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nthroughput\tevents/s\tvs floor\ttarget\t")
	fmt.Fprintf(tw, "raw async JetStream publish, same server and payloads (floor; runs %s)\t%.0f\t100 %%\t\t\n", joinRates(floors), floor)
	for i, r := range relays {
		note := ""
		if i == 0 {
			note = fmt.Sprintf(">= 30 %%: %s", yes(r.rate >= 0.3*floor))
		}
		fmt.Fprintf(tw, "outbox relay alone, batch %d, %d events (publish + mark)\t%.0f\t%.0f %%\t%s\t\n",
			r.batch, r.events, r.rate, 100*r.rate/floor, note)
	}
	if dr != nil {
		fmt.Fprintf(tw, "outbox relay draining %d events beside tracking (orderd, batch %d)\t%.0f\t%.0f %%\t\t\n",
			dr.events, outbox.DefaultBatch, dr.relay, 100*dr.relay/floor)
		fmt.Fprintf(tw, "end to end draining (tracking applied)\t%.0f\t%.0f %%\t\t\n", dr.applied, 100*dr.applied/floor)
	}
	if best != nil {
		fmt.Fprintf(tw, "end to end at the highest sustained paced rate\t%.0f\t%.0f %%\t\t\n", best.appliedRate(), 100*best.appliedRate()/floor)
	}
	tw.Flush()
	fmt.Fprintln(out)
	first := phases[0]
	fmt.Fprintf(out, "p99 lag at %.0f orders/s: %s (target < 250 ms at 500 orders/s: %s)\n", first.target, ms(first.pct(0.99)),
		yes(first.target >= 500 && first.pct(0.99) < 250*time.Millisecond))
	if dr != nil {
		fmt.Fprintf(out, "backlog of %d orders drained end to end in %s from the relay's restart\n", dr.orders, dr.total.Round(10*time.Millisecond))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func joinRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(parts, ", ")
}

// loadAverage is the machine's 1, 5 and 15 minute load, to read the figures against.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// relayRun is the outbox relay alone draining a backlog with one batch size.
type relayRun struct {
	batch, events int
	rate          float64
}

// relayAlone writes orders into the outbox and drains them with pkg/outbox's Relay in this
// process, exactly the code the services run, with batch as its Batch.
func relayAlone(ctx context.Context, sys *faulttest.System, p *producer, batch, orders int, profile string) (relayRun, error) {
	compound := fmt.Sprintf("bench-relay%d", batch)
	produced, _, err := p.produce(ctx, compound, 0, 0, orders)
	if err != nil {
		return relayRun{}, err
	}
	r := relayRun{batch: batch}
	var ids []string
	for _, o := range produced {
		ids = append(ids, o.eventIDs...)
	}
	r.events = len(ids)
	nc, js, err := natsx.Connect(sys.NATSURL, "bench-relay", discard)
	if err != nil {
		return relayRun{}, err
	}
	defer nc.Close()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return relayRun{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return relayRun{}, err
		}
		defer pprof.StopCPUProfile()
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- (&outbox.Relay{Pool: p.pool, JS: js, Log: discard, Batch: batch}).Run(rctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var left int
		if err = p.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&left); err != nil || left == 0 {
			break
		}
		if time.Now().After(deadline) {
			err = fmt.Errorf("%d of %d events still unpublished after 5 minutes", left, r.events)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if err != nil {
		return relayRun{}, err
	}
	r.rate, err = rate(ctx, sys.DB, `SELECT pg_xact_commit_timestamp(xmin) FROM orders.outbox WHERE event_id = ANY($1::uuid[])`, ids)
	return r, err
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
