// Command doorstep runs the whole system on one machine (`make run`): an in-process NATS
// JetStream server, a private PostgreSQL (unless DATABASE_URL is set), all six services and the
// seeded demo compound "haixin". Data stays under DOORSTEP_DATA_DIR between runs.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/devstack/seed"
	"github.com/doorstep/doorstep/services/devstack/stack"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

type config struct {
	DataDir     string `env:"DOORSTEP_DATA_DIR" envDefault:".data"`
	DatabaseURL string `env:"DATABASE_URL"`
	LogLevel    string `env:"LOG_LEVEL" envDefault:"info"`
	Order       int    `env:"ORDER_PORT" envDefault:"50051"`
	Supplier    int    `env:"SUPPLIER_PORT" envDefault:"50052"`
	Dispatch    int    `env:"DISPATCH_PORT" envDefault:"50053"`
	Courier     int    `env:"COURIER_PORT" envDefault:"50054"`
	Tracking    int    `env:"TRACKING_PORT" envDefault:"50055"`
	Gateway     int    `env:"GATEWAY_PORT" envDefault:"8080"`
	NATS        int    `env:"NATS_PORT" envDefault:"14222"`
	Postgres    int    `env:"PG_PORT" envDefault:"15432"`
	// Metrics ports, as each service reads them when it runs alone.
	OrderMetrics    int `env:"ORDER_METRICS_PORT" envDefault:"9051"`
	SupplierMetrics int `env:"SUPPLIER_METRICS_PORT" envDefault:"9052"`
	DispatchMetrics int `env:"DISPATCH_METRICS_PORT" envDefault:"9053"`
	CourierMetrics  int `env:"COURIER_METRICS_PORT" envDefault:"9054"`
	TrackingMetrics int `env:"TRACKING_METRICS_PORT" envDefault:"9055"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "doorstep:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("LOG_LEVEL: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}

	started := time.Now()
	s, err := stack.Start(ctx, stack.Options{DataDir: dataDir, DatabaseURL: cfg.DatabaseURL, Log: log,
		Ports: stack.Ports{Order: cfg.Order, Supplier: cfg.Supplier, Dispatch: cfg.Dispatch, Courier: cfg.Courier,
			Tracking: cfg.Tracking, Gateway: cfg.Gateway, NATS: cfg.NATS, Postgres: cfg.Postgres,
			OrderMetrics: cfg.OrderMetrics, SupplierMetrics: cfg.SupplierMetrics, DispatchMetrics: cfg.DispatchMetrics,
			CourierMetrics: cfg.CourierMetrics, TrackingMetrics: cfg.TrackingMetrics}})
	if err != nil {
		return err
	}
	defer s.Stop()

	sum, code, err := seedCompound(ctx, s)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	printWelcome(s, sum, code, time.Since(started))

	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "\nstopping…")
		return nil
	case err := <-done:
		if err == nil {
			err = errors.New("services stopped")
		}
		return err
	}
}

// seedCompound seeds the demo compound through the services (as the SYSTEM identity "seed") and
// the demo accounts into the gateway's database, returning the demo household's new sign-in code.
func seedCompound(ctx context.Context, s *stack.Stack) (seed.Summary, accounts.IssuedCode, error) {
	keys, err := auth.NewKeys([]byte(s.AuthKey), nil)
	if err != nil {
		return seed.Summary{}, accounts.IssuedCode{}, err
	}
	conns := map[string]string{"order": s.Order, "supplier": s.Supplier, "dispatch": s.Dispatch}
	var c seed.Clients
	for name, addr := range conns {
		conn, err := grpcx.Dial(addr, keys.DialOption("seed"))
		if err != nil {
			return seed.Summary{}, accounts.IssuedCode{}, err
		}
		defer conn.Close()
		switch name {
		case "order":
			c.Order = orderv1.NewOrderServiceClient(conn)
		case "supplier":
			c.Supplier = supplierv1.NewSupplierServiceClient(conn)
		case "dispatch":
			c.Dispatch = dispatchv1.NewDispatchServiceClient(conn)
		}
	}
	sum, err := seed.Run(ctx, c)
	if err != nil {
		return sum, accounts.IssuedCode{}, err
	}
	store, err := accounts.Open(ctx, s.DatabaseURL, accounts.Options{})
	if err != nil {
		return sum, accounts.IssuedCode{}, err
	}
	defer store.Close()
	code, err := seed.Accounts(ctx, store)
	return sum, code, err
}

func printWelcome(s *stack.Stack, sum seed.Summary, code accounts.IssuedCode, took time.Duration) {
	seeded := fmt.Sprintf("seeded compound %q: %d buildings, %d households, %d suppliers, %d items, %d couriers",
		seed.Compound, sum.Buildings, sum.Households, sum.Suppliers, sum.Items, sum.Couriers)
	if sum.Skipped {
		seeded = fmt.Sprintf("compound %q already seeded (%d catalog items); data kept from the last run", seed.Compound, sum.Items)
	}
	fmt.Printf(`
Doorstep is running (started in %s); %s.

  resident page  http://%[3]s/
  HTTP API       http://%[3]s/api/v1/
  gRPC           order %[4]s  supplier %[5]s  dispatch %[6]s  courier %[7]s  tracking %[8]s
  metrics        http://localhost:9051/metrics … 9055 (order, supplier, dispatch, courier, tracking)
  NATS           %[9]s (JetStream; subjects doorstep.haixin.>)
  PostgreSQL     %[10]s

Sign in:
  household %[11]s    code %[12]s   (new at every start)   http://%[3]s/signin?code=%[13]s
  staff (password %[14]s): worker.haixin  dispatcher.haixin  haixin-freshmart.staff
        haixin-hualian.staff  haixin-pharmacy.staff  courier01.haixin … courier08.haixin

Try:
  curl -s -c /tmp/doorstep.cookies -X POST http://%[3]s/api/v1/session/code -d '{"code":"%[12]s"}'
  curl -s -b /tmp/doorstep.cookies -X POST http://%[3]s/api/v1/orders -H 'Content-Type: application/json' \
    -d '{"request_id":"try-1","lines":[{"item_id":"fm-rice-5kg","quantity":1},{"item_id":"ph-84-disinfectant","quantity":1}]}'
  go -C tools tool grpcurl -plaintext %[4]s list
  make demo        # simulate a whole day: 300 households, two rounds, couriers delivering

Ctrl-C stops; data stays in the data directory for the next start.
`, took.Round(time.Millisecond), seeded, s.Gateway, s.Order, s.Supplier, s.Dispatch, s.Courier, s.Tracking, s.NATS, s.DatabaseURL,
		code.HouseholdID, code.Formatted, code.Code, seed.DemoPassword)
}
