package faulttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/localpg"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a private PostgreSQL cluster that can be stopped and started again on the same data
// directory and port, as a database restart in production would.
type Postgres struct {
	Dir  string
	Port int
	Log  string

	c    *localpg.Cluster
	logf *os.File
}

// Start starts (or restarts) the cluster and waits until it accepts connections. It runs with
// PostgreSQL's durable defaults (fsync and synchronous commit on): a test about not losing
// acknowledged work must not run on a database that may lose it.
func (p *Postgres) Start(ctx context.Context) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	c, err := localpg.Start(ctx, localpg.Options{Dir: p.Dir, Port: p.Port, Log: f})
	if err != nil {
		f.Close()
		return err
	}
	p.c, p.logf = c, f
	return nil
}

// Stop shuts the cluster down (fast mode: open transactions roll back, clients are cut off).
func (p *Postgres) Stop() error {
	if p.c == nil {
		return nil
	}
	err := p.c.Stop()
	p.logf.Close()
	p.c, p.logf = nil, nil
	return err
}

// Kill crashes the cluster: SIGKILL to the postmaster and every one of its processes at once, as
// if the machine had lost them, so no backend gets to finish anything. The next Start runs crash
// recovery from the WAL.
func (p *Postgres) Kill() error {
	if p.c == nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(p.Dir, "postmaster.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return fmt.Errorf("postmaster.pid: %w", err)
	}
	// Backends run in sessions of their own (PostgreSQL calls setsid), so a process-group kill
	// would miss them. Freeze the postmaster so it forks no more, kill its children, then it.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop postmaster %d: %w", pid, err)
	}
	procs := append(children(pid), pid)
	for _, c := range procs {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	_ = p.c.Stop() // only reaps the postmaster now
	p.logf.Close()
	p.c, p.logf = nil, nil
	// A new postmaster refuses to start while any old process still holds the shared memory.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		alive := 0
		for _, c := range procs {
			if syscall.Kill(c, 0) == nil && !zombie(c) {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d postgres processes still alive 10s after SIGKILL", alive)
		}
	}
}

// children are the processes whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so read after the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(st))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// zombie reports whether pid has exited and waits only to be reaped by its (new) parent.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// AdminURL is the superuser URL of the "postgres" database.
func (p *Postgres) AdminURL() string {
	return localpg.URL(p.Dir, p.Port, "postgres")
}

// Service is one replica of a Doorstep service running as its own process.
type Service struct {
	*Proc
	// Kind is the service's name: "order", "supplier", "tracking", ...
	Kind string
	// Addr is its gRPC address, MetricsAddr its Prometheus address ("" when not served).
	Addr, MetricsAddr string
}

// System is PostgreSQL, a NATS server and any number of service processes, all on 127.0.0.1.
type System struct {
	Dir     string
	Bin     Binaries
	PG      *Postgres
	NATS    *Proc
	NATSURL string
	// DBURL is the database every service's schema lives in; DB is a pool on it for checks.
	DBURL string
	DB    *pgxpool.Pool
	// Keys signs the identities clients present (DOORSTEP_AUTH_KEY of every service).
	Keys    *auth.Keys
	authKey string

	mu       sync.Mutex
	services []*Service
}

// StartSystem starts PostgreSQL and the NATS server with their data under dir. dir must be
// reachable by the unprivileged user PostgreSQL runs as when the caller is root (not t.TempDir,
// whose parent is private).
func StartSystem(ctx context.Context, dir string, bin Binaries) (_ *System, err error) {
	for _, d := range []string{"logs", "nats"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &System{Dir: dir, Bin: bin, authKey: rand.Text() + rand.Text()}
	if s.Keys, err = auth.NewKeys([]byte(s.authKey), nil); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	pgPort, err := localpg.FreePort()
	if err != nil {
		return nil, err
	}
	s.PG = &Postgres{Dir: filepath.Join(dir, "pg"), Port: pgPort, Log: s.LogPath("postgres")}
	if err := s.PG.Start(ctx); err != nil {
		return nil, err
	}
	if s.DBURL, err = createDatabase(ctx, s.PG.AdminURL(), "doorstep"); err != nil {
		return nil, err
	}
	if s.DB, err = pgxpool.New(ctx, s.DBURL); err != nil {
		return nil, err
	}

	natsPort, err := localpg.FreePort()
	if err != nil {
		return nil, err
	}
	s.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	s.NATS = NATSServer(bin["nats-server"], filepath.Join(dir, "nats"), s.LogPath("nats-server"), natsPort)
	if err := s.StartNATS(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// LogPath is where the named process writes its output.
func (s *System) LogPath(name string) string { return filepath.Join(s.Dir, "logs", name+".log") }

// StartNATS starts the NATS server (again) and waits until JetStream answers.
func (s *System) StartNATS(ctx context.Context) error {
	if err := s.NATS.Start(); err != nil {
		return err
	}
	return WaitNATS(ctx, s.NATSURL, s.NATS.Exited())
}

// AddService starts one more replica of kind on free ports and waits until it is healthy. With
// metrics its Prometheus endpoint is served too.
func (s *System) AddService(ctx context.Context, kind string, metrics bool) (*Service, error) {
	port, err := localpg.FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort := 0
	if metrics {
		if metricsPort, err = localpg.FreePort(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	n := 0
	for _, o := range s.services {
		if o.Kind == kind {
			n++
		}
	}
	s.mu.Unlock()
	name := kind
	if n > 0 {
		name = fmt.Sprintf("%s-%d", kind, n+1)
	}
	up := strings.ToUpper(kind)
	env := []string{
		"DATABASE_URL=" + s.DBURL,
		"NATS_URL=" + s.NATSURL,
		"NATS_STREAM_REPLICAS=1",
		"DOORSTEP_AUTH_KEY=" + s.authKey,
		up + "_PORT=" + strconv.Itoa(port),
		up + "_METRICS_PORT=" + strconv.Itoa(metricsPort),
	}
	// Peers this system runs, and for those it does not, an address where nothing listens: the
	// defaults (127.0.0.1:5005x) may be another Doorstep running on this machine.
	for _, peer := range []string{"order", "supplier", "dispatch", "courier", "tracking"} {
		addr := "127.0.0.1:1"
		if ps := s.Replicas(peer); len(ps) > 0 {
			addr = ps[0].Addr
		}
		env = append(env, strings.ToUpper(peer)+"_ADDR="+addr)
	}
	bin, ok := s.Bin[kind+"d"]
	if !ok {
		return nil, fmt.Errorf("no binary built for %s", kind)
	}
	svc := &Service{Kind: kind, Addr: fmt.Sprintf("127.0.0.1:%d", port),
		Proc: &Proc{Name: name, Path: bin, Env: env, Log: s.LogPath(name)}}
	if metrics {
		svc.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	}
	s.mu.Lock()
	s.services = append(s.services, svc)
	s.mu.Unlock()
	return svc, s.StartService(ctx, svc)
}

// StartService starts svc (again, after a kill) and waits until it is healthy.
func (s *System) StartService(ctx context.Context, svc *Service) error {
	if err := svc.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := WaitHealthy(ctx, svc.Addr, svc.Exited()); err != nil {
		return fmt.Errorf("%s: %w (log: %s)", svc.Name, err, svc.Log)
	}
	return nil
}

// Revive starts whatever is not running: PostgreSQL, the NATS server, any service.
func (s *System) Revive(ctx context.Context) error {
	if s.PG.c == nil {
		if err := s.PG.Start(ctx); err != nil {
			return err
		}
	}
	if !s.NATS.Running() {
		if err := s.StartNATS(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	svcs := s.services
	s.mu.Unlock()
	for _, svc := range svcs {
		if !svc.Running() {
			if err := s.StartService(ctx, svc); err != nil {
				return err
			}
		}
	}
	return nil
}

// Replicas are the started replicas of kind, in start order.
func (s *System) Replicas(kind string) []*Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Service
	for _, svc := range s.services {
		if svc.Kind == kind {
			out = append(out, svc)
		}
	}
	return out
}

// Close stops the services gracefully, then the broker and the database.
func (s *System) Close() {
	s.mu.Lock()
	svcs := s.services
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, svc := range svcs {
		wg.Add(1)
		go func() { defer wg.Done(); svc.Stop(10 * time.Second) }()
	}
	wg.Wait()
	if s.DB != nil {
		s.DB.Close()
	}
	if s.NATS != nil {
		s.NATS.Stop(10 * time.Second)
	}
	if s.PG != nil {
		_ = s.PG.Stop()
	}
}

// createDatabase creates the named database and returns its URL.
func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return pgkit.DatabaseURL(adminURL, name)
}
