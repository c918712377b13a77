// Package stack runs the whole of Doorstep in one process: an in-process NATS JetStream server,
// a private PostgreSQL cluster (unless a DATABASE_URL is given) and all six services, each on its
// own port exactly as it would run alone. `make run`, `make demo`'s target and the end-to-end test
// all start the system through Start, so what the test exercises is what a developer runs.
package stack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/localpg"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	courier "github.com/doorstep/doorstep/services/courier/app"
	dispatch "github.com/doorstep/doorstep/services/dispatch/app"
	gateway "github.com/doorstep/doorstep/services/gateway/app"
	order "github.com/doorstep/doorstep/services/order/app"
	supplier "github.com/doorstep/doorstep/services/supplier/app"
	tracking "github.com/doorstep/doorstep/services/tracking/app"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Ports of the stack; 0 picks a free port, except for metrics, where 0 serves none.
type Ports struct {
	Order, Supplier, Dispatch, Courier, Tracking, Gateway int
	NATS, Postgres                                        int
	// Prometheus metrics of the services' event pipelines.
	OrderMetrics, SupplierMetrics, DispatchMetrics, CourierMetrics, TrackingMetrics int
}

// DefaultPorts are SPEC.md's service ports, and NATS and PostgreSQL ports that stay clear of the
// machine's own servers on 4222 and 5432.
var DefaultPorts = Ports{Order: 50051, Supplier: 50052, Dispatch: 50053, Courier: 50054, Tracking: 50055,
	Gateway: 8080, NATS: 14222, Postgres: 15432,
	OrderMetrics: 9051, SupplierMetrics: 9052, DispatchMetrics: 9053, CourierMetrics: 9054, TrackingMetrics: 9055}

// Options configure a stack.
type Options struct {
	// DataDir keeps the NATS store and the private PostgreSQL cluster between runs.
	DataDir string
	// DatabaseURL, when set, is used instead of starting a private PostgreSQL.
	DatabaseURL string
	Ports       Ports
	// AuthKey signs and verifies the identities the gateway passes to the services (≥ 32 bytes);
	// empty means a random key for this run.
	AuthKey string
	// Now is the services' clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Stack is a running system.
type Stack struct {
	// Addresses as host:port.
	Order, Supplier, Dispatch, Courier, Tracking, Gateway, NATS string
	DatabaseURL                                                 string
	// AuthKey is the identity key the services share.
	AuthKey string

	nats   *server.Server
	pg     *localpg.Cluster
	cancel context.CancelFunc
	group  *errgroup.Group
}

// Start brings everything up and returns once every service answers its health check.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.AuthKey, err = authKey(o); err != nil {
		return nil, err
	}
	s.nats, err = natsx.RunEmbedded(natsx.EmbeddedOptions{Port: portOrFree(o.Ports.NATS), StoreDir: filepath.Join(o.DataDir, "nats")})
	if err != nil {
		return nil, err
	}
	s.NATS = s.nats.ClientURL()

	s.DatabaseURL = o.DatabaseURL
	if s.DatabaseURL == "" {
		pgPort := o.Ports.Postgres
		if pgPort == 0 {
			if pgPort, err = localpg.FreePort(); err != nil {
				return nil, err
			}
		}
		log.Info("starting private PostgreSQL", "dir", filepath.Join(o.DataDir, "postgres"), "port", pgPort)
		s.pg, err = localpg.Start(ctx, localpg.Options{Dir: filepath.Join(o.DataDir, "postgres"), Port: pgPort,
			Log: &prefixWriter{log: log}})
		if err != nil {
			return nil, err
		}
		if s.DatabaseURL, err = ensureDatabase(ctx, s.pg.URL(), "doorstep"); err != nil {
			return nil, err
		}
	}

	lis := map[string]net.Listener{}
	for name, port := range map[string]int{"order": o.Ports.Order, "supplier": o.Ports.Supplier, "dispatch": o.Ports.Dispatch,
		"courier": o.Ports.Courier, "tracking": o.Ports.Tracking, "gateway": o.Ports.Gateway} {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			for _, open := range lis {
				open.Close()
			}
			return nil, fmt.Errorf("%s port %d: %w (set %s_PORT to use another)", name, port, err, strings.ToUpper(name))
		}
		lis[name] = l
	}
	addr := func(name string) string {
		return fmt.Sprintf("127.0.0.1:%d", lis[name].Addr().(*net.TCPAddr).Port)
	}
	s.Order, s.Supplier, s.Dispatch = addr("order"), addr("supplier"), addr("dispatch")
	s.Courier, s.Tracking, s.Gateway = addr("courier"), addr("tracking"), addr("gateway")

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.group, runCtx = errgroup.WithContext(runCtx)
	run := func(name string, fn func(context.Context, *slog.Logger) error) {
		s.group.Go(func() error {
			if err := fn(runCtx, log); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	db, nc, key := s.DatabaseURL, s.NATS, s.AuthKey
	run("supplier", func(ctx context.Context, l *slog.Logger) error {
		return supplier.Run(ctx, supplier.Config{AuthKey: key, MetricsPort: o.Ports.SupplierMetrics, DispatchAddr: s.Dispatch, DatabaseURL: db, NATSURL: nc, Listener: lis["supplier"], Now: o.Now}, l)
	})
	run("order", func(ctx context.Context, l *slog.Logger) error {
		return order.Run(ctx, order.Config{AuthKey: key, MetricsPort: o.Ports.OrderMetrics, DispatchAddr: s.Dispatch, DatabaseURL: db, NATSURL: nc, SupplierAddr: s.Supplier, Listener: lis["order"], Now: o.Now}, l)
	})
	run("dispatch", func(ctx context.Context, l *slog.Logger) error {
		return dispatch.Run(ctx, dispatch.Config{AuthKey: key, MetricsPort: o.Ports.DispatchMetrics, DatabaseURL: db, NATSURL: nc, OrderAddr: s.Order, Listener: lis["dispatch"], Now: o.Now}, l)
	})
	run("courier", func(ctx context.Context, l *slog.Logger) error {
		return courier.Run(ctx, courier.Config{AuthKey: key, MetricsPort: o.Ports.CourierMetrics, DatabaseURL: db, NATSURL: nc, Listener: lis["courier"], Now: o.Now}, l)
	})
	run("tracking", func(ctx context.Context, l *slog.Logger) error {
		return tracking.Run(ctx, tracking.Config{MetricsPort: o.Ports.TrackingMetrics, AuthKey: key, DatabaseURL: db, NATSURL: nc, Listener: lis["tracking"], Now: o.Now}, l)
	})
	run("gateway", func(ctx context.Context, l *slog.Logger) error {
		return gateway.Run(ctx, gateway.Config{DatabaseURL: db, AuthKey: key, OrderAddr: s.Order, SupplierAddr: s.Supplier,
			DispatchAddr: s.Dispatch, CourierAddr: s.Courier, TrackingAddr: s.Tracking, Compound: "haixin",
			Listener: lis["gateway"], Now: o.Now}, l)
	})

	if err := s.waitHealthy(ctx, runCtx); err != nil {
		return nil, err
	}
	return s, nil
}

// Wait blocks until a service fails or Stop is called.
func (s *Stack) Wait() error { return s.group.Wait() }

// Stop shuts the services down gracefully, then the broker and the database.
func (s *Stack) Stop() {
	if s.cancel != nil {
		s.cancel()
		_ = s.group.Wait()
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
	if s.pg != nil {
		_ = s.pg.Stop()
	}
}

// waitHealthy polls every gRPC health endpoint and the gateway until all answer SERVING.
func (s *Stack) waitHealthy(ctx, runCtx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, target := range []string{s.Supplier, s.Order, s.Dispatch, s.Courier, s.Tracking} {
		conn, err := grpcx.Dial(target)
		if err != nil {
			return err
		}
		hc := healthpb.NewHealthClient(conn)
		for {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				break
			}
			if werr := waitOrFail(ctx, runCtx, s); werr != nil {
				conn.Close()
				return fmt.Errorf("waiting for %s: %w (last: %v)", target, werr, err)
			}
		}
		conn.Close()
	}
	for {
		resp, err := http.Get("http://" + s.Gateway + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if werr := waitOrFail(ctx, runCtx, s); werr != nil {
			return fmt.Errorf("waiting for gateway: %w", werr)
		}
	}
}

func waitOrFail(ctx, runCtx context.Context, s *Stack) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-runCtx.Done():
		// A service exited during start-up; report its error rather than a time-out.
		if err := s.group.Wait(); err != nil {
			return err
		}
		return errors.New("a service stopped during start-up")
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

// authKey is the configured key, else the one kept in the data directory (made on first start),
// so tools started beside the stack (make demo) can sign identities the services accept.
func authKey(o Options) (string, error) {
	if o.AuthKey != "" {
		return o.AuthKey, nil
	}
	path := filepath.Join(o.DataDir, "auth.key")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	key := rand.Text() + rand.Text() // 52 base32 characters, 260 random bits
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write auth key: %w", err)
	}
	return key, nil
}

// ReadAuthKey is DOORSTEP_AUTH_KEY, else the key a stack keeps in dataDir.
func ReadAuthKey(dataDir string) (string, error) {
	if k := os.Getenv("DOORSTEP_AUTH_KEY"); k != "" {
		return k, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "auth.key"))
	if err != nil {
		return "", fmt.Errorf("no DOORSTEP_AUTH_KEY and no key in %s (start the stack with make run first): %w", dataDir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func portOrFree(p int) int {
	if p == 0 {
		return -1 // nats-server's "pick a free port"
	}
	return p
}

// ensureDatabase creates the named database on the cluster if missing and returns its URL.
func ensureDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return pgkit.DatabaseURL(adminURL, name)
}

// prefixWriter sends PostgreSQL's own log lines to slog at debug level.
type prefixWriter struct{ log *slog.Logger }

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w.log.Debug(line, "component", "postgres")
		}
	}
	return len(p), nil
}
