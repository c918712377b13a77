// Command doorstep-seed seeds the demo compound into a running deployment (docker compose,
// Kubernetes); `make run` seeds by itself. Safe to run again: it changes nothing the second time.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/grpcx"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/devstack/seed"
)

type config struct {
	Order    string `env:"ORDER_ADDR" envDefault:"127.0.0.1:50051"`
	Supplier string `env:"SUPPLIER_ADDR" envDefault:"127.0.0.1:50052"`
	Dispatch string `env:"DISPATCH_ADDR" envDefault:"127.0.0.1:50053"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "doorstep-seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return err
	}
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
	// In a fresh deployment the services may still be starting: wait for them for up to two minutes.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		sum, err := seed.Run(ctx, seed.Clients{Order: orderv1.NewOrderServiceClient(o),
			Supplier: supplierv1.NewSupplierServiceClient(s), Dispatch: dispatchv1.NewDispatchServiceClient(d)})
		if err == nil {
			fmt.Printf("%+v\n", sum)
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}
