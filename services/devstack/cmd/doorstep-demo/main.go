// Command doorstep-demo simulates a lockdown day against a running stack (`make demo`).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/devstack/demo"
	"github.com/doorstep/doorstep/services/devstack/stack"
)

type config struct {
	// DataDir is where make run keeps the identity key (unless DOORSTEP_AUTH_KEY is set).
	DataDir  string `env:"DOORSTEP_DATA_DIR" envDefault:".data"`
	Order    string `env:"ORDER_ADDR" envDefault:"127.0.0.1:50051"`
	Supplier string `env:"SUPPLIER_ADDR" envDefault:"127.0.0.1:50052"`
	Dispatch string `env:"DISPATCH_ADDR" envDefault:"127.0.0.1:50053"`
	Courier  string `env:"COURIER_ADDR" envDefault:"127.0.0.1:50054"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "doorstep-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	households := flag.Int("households", 300, "how many households order")
	failPct := flag.Int("fail-percent", 3, "percentage of deliveries that fail (nobody home)")
	rejectPct := flag.Int("reject-percent", 1, "percentage of parcels the suppliers reject")
	flag.Parse()
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return err
	}
	// grpc.NewClient connects lazily, so these only fail on a malformed address.
	o, err := grpcx.Dial(cfg.Order)
	if err != nil {
		return err
	}
	s, err := grpcx.Dial(cfg.Supplier)
	if err != nil {
		return err
	}
	d, err := grpcx.Dial(cfg.Dispatch)
	if err != nil {
		return err
	}
	c, err := grpcx.Dial(cfg.Courier)
	if err != nil {
		return err
	}
	key, err := stack.ReadAuthKey(cfg.DataDir)
	if err != nil {
		return err
	}
	keys, err := auth.NewKeys([]byte(key), nil)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rep, err := demo.Run(ctx, demo.Clients{
		Order: orderv1.NewOrderServiceClient(o), Supplier: supplierv1.NewSupplierServiceClient(s),
		Dispatch: dispatchv1.NewDispatchServiceClient(d), Courier: courierv1.NewCourierServiceClient(c), Keys: keys,
	}, demo.Config{Compound: "haixin", Households: *households, FailPercent: *failPct, RejectPercent: *rejectPct, Log: log})
	fmt.Print(rep)
	return err
}
