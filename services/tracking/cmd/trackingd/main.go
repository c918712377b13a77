// Command trackingd runs the tracking service: every event of an order becomes an entry of its
// timeline, served over gRPC as doorstep.tracking.v1.TrackingService.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/doorstep/doorstep/services/tracking/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "tracking")
	if err := run(ctx, log); err != nil {
		log.Error("tracking service failed", "err", err)
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
