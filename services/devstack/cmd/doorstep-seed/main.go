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
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/devstack/seed"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

type config struct {
	// AuthKey signs the seed's SYSTEM identity; the services' key.
	AuthKey string `env:"DOORSTEP_AUTH_KEY,required"`
	// DatabaseURL is where the gateway keeps accounts: the demo staff accounts go there.
	DatabaseURL string `env:"DATABASE_URL,required"`
	Order       string `env:"ORDER_ADDR" envDefault:"127.0.0.1:50051"`
	Supplier    string `env:"SUPPLIER_ADDR" envDefault:"127.0.0.1:50052"`
	Dispatch    string `env:"DISPATCH_ADDR" envDefault:"127.0.0.1:50053"`
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
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), nil)
	if err != nil {
		return err
	}
	o, err := grpcx.Dial(cfg.Order, keys.DialOption("seed"))
	if err != nil {
		return err
	}
	s, err := grpcx.Dial(cfg.Supplier, keys.DialOption("seed"))
	if err != nil {
		return err
	}
	d, err := grpcx.Dial(cfg.Dispatch, keys.DialOption("seed"))
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
			return seedAccounts(ctx, cfg.DatabaseURL)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

func seedAccounts(ctx context.Context, url string) error {
	store, err := accounts.Open(ctx, url, accounts.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	code, err := seed.Accounts(ctx, store)
	if err != nil {
		return err
	}
	fmt.Printf("demo staff accounts ready (password %s); household %s sign-in code %s\n", seed.DemoPassword, code.HouseholdID, code.Formatted)
	return nil
}
