// Command supplierd runs the supplier service: catalogs, stock reservation and the suppliers'
// decisions on parcels (doorstep.supplier.v1.SupplierService, default port 50052).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/doorstep/doorstep/services/supplier/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("service", "supplier")
	if err := run(ctx, log); err != nil {
		log.Error("supplier service stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, log)
}
