// Command gatewayd runs the gateway: the resident-facing HTTP/JSON API under /api/v1/ and the
// resident page under /.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/doorstep/doorstep/services/gateway/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "gateway")
	if err := run(ctx, log); err != nil {
		log.Error("gateway failed", "err", err)
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
