// Package app wires the gateway: gRPC clients of the order, supplier and tracking services, the
// JSON API and the resident page on one HTTP server. cmd/gatewayd and the dev stack both run it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	"github.com/doorstep/doorstep/services/gateway/internal/httpapi"
	"github.com/doorstep/doorstep/services/gateway/internal/web"
)

// Config is the gateway's configuration. It has no database and no broker: it only calls peers.
type Config struct {
	Port         int    `env:"GATEWAY_PORT" envDefault:"8080"`
	OrderAddr    string `env:"ORDER_ADDR" envDefault:"127.0.0.1:50051"`
	SupplierAddr string `env:"SUPPLIER_ADDR" envDefault:"127.0.0.1:50052"`
	TrackingAddr string `env:"TRACKING_ADDR" envDefault:"127.0.0.1:50055"`
	// Compound is the catalog served when a request names none.
	Compound string `env:"COMPOUND" envDefault:"haixin"`
	// CallTimeout bounds every call to a peer; 0 means 5 s.
	CallTimeout time.Duration `env:"GATEWAY_CALL_TIMEOUT" envDefault:"5s"`
	// Listener, when set (tests, dev stack), is used instead of Port.
	Listener net.Listener `env:"-"`
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() (Config, error) {
	return env.ParseAs[Config]()
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log = log.With("service", "gateway")
	if cfg.Compound == "" {
		cfg.Compound = "haixin"
	}
	if !events.ValidCompound(cfg.Compound) {
		return fmt.Errorf("COMPOUND %q is not a compound slug", cfg.Compound)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	// Clients connect lazily: the gateway starts even while a peer is down, and answers 503
	// for the endpoints that need it.
	orderConn, err := grpcx.Dial(cfg.OrderAddr)
	if err != nil {
		return fmt.Errorf("order client %s: %w", cfg.OrderAddr, err)
	}
	defer orderConn.Close()
	supplierConn, err := grpcx.Dial(cfg.SupplierAddr)
	if err != nil {
		return fmt.Errorf("supplier client %s: %w", cfg.SupplierAddr, err)
	}
	defer supplierConn.Close()
	trackingConn, err := grpcx.Dial(cfg.TrackingAddr)
	if err != nil {
		return fmt.Errorf("tracking client %s: %w", cfg.TrackingAddr, err)
	}
	defer trackingConn.Close()

	mux := http.NewServeMux()
	httpapi.New(httpapi.Options{
		Order:       orderv1.NewOrderServiceClient(orderConn),
		Supplier:    supplierv1.NewSupplierServiceClient(supplierConn),
		Tracking:    trackingv1.NewTrackingServiceClient(trackingConn),
		Compound:    cfg.Compound,
		CallTimeout: cfg.CallTimeout,
		Log:         log,
	}).Register(mux)
	mux.Handle("/", web.Handler())

	lis := cfg.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", fmt.Sprintf(":%d", cfg.Port)); err != nil {
			return fmt.Errorf("listen on port %d: %w", cfg.Port, err)
		}
	}
	srv := &http.Server{
		Handler:           httpapi.AccessLog(log, mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Long enough for the slowest handler (cancel makes two calls) to answer.
		WriteTimeout:   2*cfg.CallTimeout + 10*time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	log.Info("gateway started", "addr", lis.Addr().String(), "compound", cfg.Compound)

	select {
	case err := <-errc:
		return fmt.Errorf("http serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
