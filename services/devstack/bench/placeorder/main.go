// Command placeorder measures PlaceOrder end to end and against its floor, in one run.
//
// It starts the whole dev stack (stack.Start: every service in this process, an in-process
// JetStream and a private PostgreSQL cluster in a temporary directory; with -processes each
// service and the broker run as processes of their own, as deployed). It registers a compound of
// its own with two suppliers, and then, at each concurrency level, places orders of a 3-line
// basket from both suppliers over gRPC and issues the same database writes directly with pgx:
// the supplier's reservation transaction for each supplier and the order service's transactions,
// against a copy of both services' schemas in the same database. Slices of the two alternate, so
// that a neighbour's load on this shared machine falls on both, and each starts once the stack has
// applied the events of the slices before it. It then offers half of the highest gRPC throughput
// measured as an open-loop load and reports the latency at that rate, with how busy the machine's
// CPUs were meanwhile, the kernel's CPU pressure (how much runnable work queued for them) and the
// stalls of the disk that holds PostgreSQL's WAL (disk.go).
//
// Before measuring it gives the new cluster the disk behaviour of a running server, checkpoints
// and syncs before each phase and syncs before each slice (bench/internal/pgprep; -unprepared does
// none of these).
//
//	go run ./bench/placeorder                      (from services/devstack)
//	go run ./bench/placeorder -levels 1,4 -duration 2s
//
// Everything listens on 127.0.0.1 or a free port, runs for a bounded time and is removed at exit.
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
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/services/devstack/bench/internal/pgprep"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/procfs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "placeorder:", err)
		os.Exit(1)
	}
}

type config struct {
	levels     []int
	duration   time.Duration // per level and system, split into rounds
	rounds     int
	warmup     time.Duration
	maxOrders  int // per slice
	catalog    int // items of each kind per supplier
	households int
	halfFor    time.Duration
	verbose    bool
	cpuProfile string
	memProfile string
	processes  bool
	rate       float64
	unprepared bool
	latencies  string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("placeorder", flag.ContinueOnError)
	levels := fs.String("levels", "1,4,16,64", "concurrency levels (comma-separated)")
	c := config{}
	fs.DurationVar(&c.duration, "duration", 4*time.Second, "measuring time per level and system, split into -rounds alternating slices")
	fs.IntVar(&c.rounds, "rounds", 4, "alternating slices per level")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up per system before measuring")
	fs.IntVar(&c.maxOrders, "max-orders", 20000, "most orders in one slice")
	fs.IntVar(&c.catalog, "catalog", 8, "counted and weighed items of the supermarket and counted items of the pharmacy, each; 1 makes every basket the same three items")
	fs.IntVar(&c.households, "households", 500, "households placing the orders")
	// 16 s: at about 300 orders/s the p99 is then read from some 5,000 orders in 4 s slices
	// rather than 1,300 in 1 s slices, where one burst of background work or the first moments
	// of a slice decided it.
	fs.DurationVar(&c.halfFor, "half-duration", 16*time.Second, "how long to offer half the maximum throughput (split into -rounds alternating slices)")
	fs.BoolVar(&c.verbose, "v", false, "log the services' warnings to stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the services, broker, load generator and floor; with -processes only the last two) to this file")
	fs.StringVar(&c.memProfile, "memprofile", "", "write an allocation profile of this process at the end of the run to this file")
	fs.BoolVar(&c.processes, "processes", false, "run each service and the broker as its own process, built as the Dockerfile builds it, as deployed (default: all in this process, as make run does)")
	fs.Float64Var(&c.rate, "rate", 0, "offer this many orders/s open-loop instead of half the measured maximum (to explore latency at a chosen load; gives no verdict)")
	fs.BoolVar(&c.unprepared, "unprepared", false, pgprep.UnpreparedUsage)
	fs.StringVar(&c.latencies, "latencies", "", "write every order of the half-load phase (or -rate) to this CSV file: system, when it was due (ms from the phase's first order), latency (ms)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 512 {
			return c, fmt.Errorf("-levels: %q is not a concurrency from 1 to 512", s)
		}
		c.levels = append(c.levels, n)
	}
	switch {
	case c.duration <= 0 || c.duration > 2*time.Minute:
		return c, errors.New("-duration must be positive and at most 2m")
	case c.rounds < 1 || c.rounds > 20:
		return c, errors.New("-rounds must be 1 to 20")
	case c.catalog < 1 || c.catalog > 100:
		return c, errors.New("-catalog must be 1 to 100")
	case c.households < 1 || c.households > 5000:
		return c, errors.New("-households must be 1 to 5000")
	case c.halfFor < 0 || c.halfFor > 2*time.Minute:
		return c, errors.New("-half-duration must be at most 2m")
	case c.rate < 0 || c.rate > 5000:
		return c, errors.New("-rate must be 0 (half the maximum) to 5000 orders/s")
	case c.rate > 0 && c.halfFor == 0:
		return c, errors.New("-rate needs a positive -half-duration: it is the rate offered then")
	case c.latencies != "" && c.halfFor == 0:
		return c, errors.New("-latencies needs a positive -half-duration: it records the orders offered then")
	case c.maxOrders < 1:
		return c, errors.New("-max-orders must be positive")
	}
	return c, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	level := slog.LevelError + 4 // quiet: the services log every refused call as a warning
	if cfg.verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Created before the run, so that a path that cannot be written fails now, not after it.
	var latencies *os.File
	if cfg.latencies != "" {
		if latencies, err = os.Create(cfg.latencies); err != nil {
			return err
		}
		defer latencies.Close()
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.memProfile != "" {
		defer func() {
			if f, err := os.Create(cfg.memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}

	dir, err := os.MkdirTemp("", "doorstep-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The private cluster may run as another user (PostgreSQL refuses root), who must reach it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "starting the system (private PostgreSQL in %s) ...\n", dir)
	start := startInProcess
	if cfg.processes {
		start = startProcesses
	}
	s, err := start(ctx, dir, log)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer s.stop()
	keys := s.keys
	orderConn, err := grpcx.Dial(s.order, keys.DialOption("placeorder-bench"))
	if err != nil {
		return err
	}
	defer orderConn.Close()
	supplierConn, err := grpcx.Dial(s.supplier, keys.DialOption("placeorder-bench"))
	if err != nil {
		return err
	}
	defer supplierConn.Close()

	w, err := setUp(ctx, orderConn, supplierConn, cfg)
	if err != nil {
		return fmt.Errorf("set up compound: %w", err)
	}
	f, err := newFloor(ctx, s.dbURL, w)
	if err != nil {
		return fmt.Errorf("set up floor: %w", err)
	}
	defer f.close()

	settle, err := newSettler(ctx, s.dbURL, s.natsURL)
	if err != nil {
		return err
	}
	defer settle.close()
	if _, err := settle.wait(ctx, time.Minute); err != nil {
		return err
	}

	startLoad := loadAverage()
	real := &grpcSystem{client: w.orders, w: w, tag: "g"}
	if err := describe(ctx, out, s.dbURL, cfg, w, f); err != nil {
		return err
	}

	fmt.Fprintf(out, "warming up (%s each) ...\n", cfg.warmup)
	if _, err := measure(ctx, real, 4, cfg.warmup, cfg.maxOrders); err != nil {
		return err
	}
	if _, err := measure(ctx, f, 4, cfg.warmup, cfg.maxOrders); err != nil {
		return err
	}

	admin, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	cluster, err := pgprep.Prepare(ctx, admin, out, cfg.unprepared)
	if err != nil {
		return err
	}
	disk, err := watchWALDisk(ctx, admin)
	if err != nil {
		fmt.Fprintf(out, "not watching the disk for stalls: %v\n", err)
	} else {
		fmt.Fprintf(out, "watching disk %s, which holds PostgreSQL's WAL, for stalls of %d ms or more while each half-load slice runs (%s)\n",
			disk.name, p99Target.Milliseconds(), disk.kinds())
	}
	if !cfg.unprepared {
		fmt.Fprintln(out, "and a sync before each slice: no slice meets the write-out of another")
	}

	fmt.Fprintf(out, "\n%-6s | %-31s | %-31s | %s\n", "", "PlaceOrder over gRPC", "floor: same writes with pgx", "")
	fmt.Fprintf(out, "%-6s | %9s %10s %10s | %9s %10s %10s | %s\n", "conc", "orders/s", "p50", "p99", "orders/s", "p50", "p99", "ratio")
	fmt.Fprintln(out, strings.Repeat("-", 6)+"-+-"+strings.Repeat("-", 31)+"-+-"+strings.Repeat("-", 31)+"-+------")
	var rows []row
	var drain time.Duration
	for _, c := range cfg.levels {
		if err := cluster.BeforePhase(ctx); err != nil {
			return err
		}
		g, fl, err := alternate(ctx, settle, cluster, nil, cfg.rounds, real, f, func(s system) (result, error) {
			return measure(ctx, s, c, cfg.duration/time.Duration(cfg.rounds), cfg.maxOrders)
		})
		if err != nil {
			return err
		}
		rows = append(rows, row{conc: c, grpc: g, floor: fl})
		fmt.Fprintf(out, "%-6d | %9.0f %10s %10s | %9.0f %10s %10s | %4.0f %%\n", c,
			g.throughput(), ms(g.quantile(0.50)), ms(g.quantile(0.99)),
			fl.throughput(), ms(fl.quantile(0.50)), ms(fl.quantile(0.99)), 100*g.throughput()/fl.throughput())
		drain = max(drain, g.drain)
	}
	fmt.Fprintf(out, "(each slice starts once the stack has applied the events of the slices before it: after a gRPC slice that took %s at most)\n",
		drain.Round(time.Millisecond))

	best := slices.MaxFunc(rows, func(a, b row) int { return cmpFloat(a.grpc.throughput(), b.grpc.throughput()) })
	bestFloor := slices.MaxFunc(rows, func(a, b row) int { return cmpFloat(a.floor.throughput(), b.floor.throughput()) })
	ratio := best.grpc.throughput() / bestFloor.floor.throughput()
	target := " (target >= 60 %) " + verdict(ratio >= 0.6)
	if cfg.rate > 0 {
		target = "" // an exploration, not the measure
	}
	fmt.Fprintf(out, "\nmaximum: gRPC %.0f orders/s (concurrency %d), floor %.0f orders/s (concurrency %d): %.1f %% of the floor%s\n",
		best.grpc.throughput(), best.conc, bestFloor.floor.throughput(), bestFloor.conc, 100*ratio, target)
	fmt.Fprintf(out, "  counting the %s the stack took after those gRPC slices to apply their events: %.0f orders/s, %.1f %% of the floor\n",
		best.grpc.drained.Round(time.Millisecond), best.grpc.sustained(), 100*best.grpc.sustained()/bestFloor.floor.throughput())

	if cfg.halfFor > 0 {
		// Both are offered the same rate, in alternating slices, so the floor's latency is what
		// the writes alone take at that load on this machine at that moment.
		rate, what, target := best.grpc.throughput()/2, "half the gRPC maximum", fmt.Sprintf(" (target p99 < %d ms) ", p99Target.Milliseconds())
		if cfg.rate > 0 {
			// An exploration, not the measure: no verdict.
			rate, what, target = cfg.rate, "as set by -rate", ""
		}
		if err := cluster.BeforePhase(ctx); err != nil {
			return err
		}
		g, fl, err := alternate(ctx, settle, cluster, disk, cfg.rounds, real, f, func(s system) (result, error) {
			return openLoop(ctx, s, rate, cfg.halfFor/time.Duration(cfg.rounds))
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s, %.0f orders/s offered open-loop for %s each in %d alternating slices (latency from each order's scheduled start):\n",
			what, rate, cfg.halfFor, cfg.rounds)
		met := ""
		if target != "" {
			met = verdict(g.quantile(0.99) < p99Target)
		}
		fmt.Fprintf(out, "  gRPC : %4.0f orders/s achieved, p50 %s, p99 %s, max %s%s%s\n",
			g.throughput(), ms(g.quantile(0.5)), ms(g.quantile(0.99)), ms(g.quantile(1)), target, met)
		fmt.Fprintf(out, "  floor: %4.0f orders/s achieved, p50 %s, p99 %s, max %s\n",
			fl.throughput(), ms(fl.quantile(0.5)), ms(fl.quantile(0.99)), ms(fl.quantile(1)))
		fmt.Fprintf(out, "  orders over %d ms: gRPC %d of %d, floor %d of %d\n", p99Target.Milliseconds(), g.over(p99Target), len(g.latencies),
			fl.over(p99Target), len(fl.latencies))
		fmt.Fprintf(out, "  machine CPU busy: %s in the gRPC slices, %s in the floor's; the gRPC slices' events were applied %s after each at most\n",
			g.cpu.busyShare(), fl.cpu.busyShare(), g.drain.Round(time.Millisecond))
		fmt.Fprintf(out, "  CPU pressure (about the share of the time runnable tasks waited for a core): %s in the gRPC slices, %s in the floor's\n",
			g.cpu.waitedShare(), fl.cpu.waitedShare())
		fmt.Fprintf(out, "  CPU time per order in the slices, all processes: gRPC %s, floor %s\n", g.cpu.perOrder(len(g.latencies)), fl.cpu.perOrder(len(fl.latencies)))
		if disk != nil {
			fmt.Fprintf(out, "  stalls of disk %s measured at %d ms or more: gRPC slices %s; floor's %s\n",
				disk.name, p99Target.Milliseconds(), describeStalls(g.stalls), describeStalls(fl.stalls))
		}
		if latencies != nil {
			if err := writeTimeline(latencies, map[string][]placed{"grpc": g.timeline, "floor": fl.timeline}, slices.Concat(g.stalls, fl.stalls)); err != nil {
				fmt.Fprintf(out, "  every order's latency: not written: %v\n", err)
			} else if err := latencies.Close(); err != nil {
				fmt.Fprintf(out, "  every order's latency: not written: %v\n", err)
			} else {
				fmt.Fprintf(out, "  every order's latency, by when it was due: %s\n", cfg.latencies)
			}
		}
	}
	fmt.Fprintf(out, "\nwhile measuring: %s\n", cluster.Used(ctx))
	summary, err := verify(ctx, s.dbURL, real, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "every call succeeded; %s\n", summary)
	fmt.Fprintf(out, "machine load (1, 5, 15 min) at the start %s, at the end %s: other work on the machine shows in every figure\n", startLoad, loadAverage())
	return nil
}

// p99Target is issue 3's latency target at half the maximum throughput.
const p99Target = 25 * time.Millisecond

// alternate runs rounds pairs of slices, the gRPC system's then the floor's, and sums each
// system's. Every slice starts once the stack has published and applied every event of the slices
// before it, so that no slice pays for another's events (the wait after a gRPC slice is its
// drain), and after the cluster's BeforeSlice, so that it pays for none of their write-out either
// (unless -unprepared). The disk is watched while each slice runs (unless disk is nil).
func alternate(ctx context.Context, settle *settler, cluster *pgprep.Prepared, disk *diskWatch, rounds int, real, floor system, slice func(system) (result, error)) (g, fl result, err error) {
	run := func(s system, sum *result) error {
		cluster.BeforeSlice()
		before := readCPU()
		var r result
		var err error
		stalls := disk.during(p99Target, func() { r, err = slice(s) })
		if err != nil {
			return err
		}
		r.cpu = readCPU().since(before)
		r.stalls = stalls
		sum.add(r)
		return nil
	}
	for range rounds {
		if _, err := settle.wait(ctx, 5*time.Minute); err != nil {
			return g, fl, err
		}
		if err := run(real, &g); err != nil {
			return g, fl, err
		}
		drained, err := settle.wait(ctx, 5*time.Minute)
		if err != nil {
			return g, fl, err
		}
		g.drain = max(g.drain, drained)
		g.drained += drained
		if err := run(floor, &fl); err != nil {
			return g, fl, err
		}
	}
	return g, fl, nil
}

type row struct {
	conc        int
	grpc, floor result
}

func describe(ctx context.Context, out io.Writer, url string, cfg config, w *workload, f *floor) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var version, fsync, syncCommit string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&version, &fsync, &syncCommit); err != nil {
		return err
	}
	where := "services, broker and load generator share this process"
	if cfg.processes {
		where = "each service and the broker its own process, as deployed; the load generator and the floor in this one"
	}
	fmt.Fprintf(out, "\nPlaceOrder benchmark: %d CPUs (GOMAXPROCS %d), PostgreSQL %s (fsync %s, synchronous_commit %s); %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), version, fsync, syncCommit, where)
	fmt.Fprintf(out, "basket: 1 counted + 1 weighed item of %s and 1 counted item of %s, drawn from %d of each kind; %d households\n",
		w.market, w.pharmacy, cfg.catalog, len(w.households))
	fmt.Fprintf(out, "floor per order: the order's claim statement; per supplier, at the same time, the reservation tx (with the BEGIN: supplier\n"+
		"  FOR SHARE with credentials, lock items, read parcel; then with the COMMIT: parcel and lines, stock, transition);\n"+
		"  the order tx (with the BEGIN: attempt FOR SHARE, order; then with the COMMIT: parcels, lines, transitions, 3 outbox\n"+
		"  rows); on pools opened like the services', statements batched as the services batch them. Not in the floor: the\n"+
		"  household read, the gRPC hops, the outbox relay and the consumers that apply the events\n")
	fmt.Fprintf(out, "floor schemas copied from the services': %s\n", strings.Join(f.copied, ", "))
	fmt.Fprintf(out, "each level: %s per system in %d alternating slices, at most %d orders a slice\n", cfg.duration, cfg.rounds, cfg.maxOrders)
	return nil
}

// watchWALDisk watches the disk that holds the WAL of the server db is connected to (the
// benchmark's own, on this machine): what every commit waits for.
func watchWALDisk(ctx context.Context, db *pgx.Conn) (*diskWatch, error) {
	var dir string
	if err := db.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dir); err != nil {
		return nil, fmt.Errorf("read the data directory: %w", err)
	}
	return watchDisk("/sys", filepath.Join(dir, "pg_wal")) // Stat follows pg_wal where it links
}

// loadAverage is the machine's load average, where the system reports one.
func loadAverage() string {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "unknown"
	}
	l, err := fs.LoadAvg()
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "[met]"
	}
	return "[NOT met]"
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
