// Command courierd runs the courier service: couriers' routes, pick-up, delivered and failed.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/doorstep/doorstep/services/courier/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "courier")
	if err := run(ctx, log); err != nil {
		log.Error("courier service stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return app.Run(ctx, cfg, log)
}
