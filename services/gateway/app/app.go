// Package app wires the gateway: the accounts database, gRPC clients of the services (each call
// carrying the signed-in person's signed identity), the JSON API and the pages on one HTTP
// server. cmd/gatewayd and the dev stack both run it.
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
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"github.com/doorstep/doorstep/services/gateway/internal/httpapi"
	"github.com/doorstep/doorstep/services/gateway/internal/web"
	"google.golang.org/grpc"
)

// Config is the gateway's configuration.
type Config struct {
	Port int `env:"GATEWAY_PORT" envDefault:"8080"`
	// DatabaseURL holds the accounts and sessions, in the "gateway" schema.
	DatabaseURL string `env:"DATABASE_URL"`
	// AuthKey signs the identities the gateway passes to the services; at least 32 bytes,
	// shared with every service.
	AuthKey      string `env:"DOORSTEP_AUTH_KEY"`
	OrderAddr    string `env:"ORDER_ADDR" envDefault:"127.0.0.1:50051"`
	SupplierAddr string `env:"SUPPLIER_ADDR" envDefault:"127.0.0.1:50052"`
	DispatchAddr string `env:"DISPATCH_ADDR" envDefault:"127.0.0.1:50053"`
	CourierAddr  string `env:"COURIER_ADDR" envDefault:"127.0.0.1:50054"`
	TrackingAddr string `env:"TRACKING_ADDR" envDefault:"127.0.0.1:50055"`
	// Compound is the catalog served when neither the request nor the session names one.
	Compound string `env:"COMPOUND" envDefault:"haixin"`
	// CallTimeout bounds every call to a peer; 0 means 5 s.
	CallTimeout time.Duration `env:"GATEWAY_CALL_TIMEOUT" envDefault:"5s"`
	// SecureCookies marks the session cookie Secure; set it when TLS ends at a proxy in front.
	SecureCookies bool `env:"GATEWAY_SECURE_COOKIES"`
	// PublicURL is the gateway as residents reach it, for printed sign-in links and QR codes.
	PublicURL string `env:"GATEWAY_PUBLIC_URL"`
	// ClientIPHeader names the header a trusted proxy puts the client's address in (X-Real-IP);
	// empty uses the connection's peer address.
	ClientIPHeader string `env:"GATEWAY_CLIENT_IP_HEADER"`
	// Limits of sign-in attempts and API requests; the zero value means the defaults.
	Limits httpapi.Limits `env:"-"`
	// BcryptCost of new staff passwords; 0 means bcrypt's default. Tests lower it.
	BcryptCost int `env:"-"`
	// Listener, when set (tests, dev stack), is used instead of Port.
	Listener net.Listener `env:"-"`
	// Now is the clock of sessions and rate limits; nil means time.Now.
	Now func() time.Time `env:"-"`
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
	keys, err := auth.NewKeys([]byte(cfg.AuthKey), cfg.Now)
	if err != nil {
		return err
	}
	store, err := accounts.Open(ctx, cfg.DatabaseURL, accounts.Options{Now: cfg.Now, BcryptCost: cfg.BcryptCost})
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	defer store.Close()

	// Clients connect lazily: the gateway starts even while a peer is down, and answers 503
	// for the endpoints that need it.
	dial := func(name, addr string) (*grpc.ClientConn, error) {
		conn, err := grpcx.Dial(addr, httpapi.ClientInterceptors(keys)...)
		if err != nil {
			return nil, fmt.Errorf("%s client %s: %w", name, addr, err)
		}
		return conn, nil
	}
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	peers := map[string]string{"order": cfg.OrderAddr, "supplier": cfg.SupplierAddr, "dispatch": cfg.DispatchAddr,
		"courier": cfg.CourierAddr, "tracking": cfg.TrackingAddr}
	conn := map[string]*grpc.ClientConn{}
	for name, addr := range peers {
		c, err := dial(name, addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		conn[name] = c
	}

	api := httpapi.New(httpapi.Options{
		Order:          orderv1.NewOrderServiceClient(conn["order"]),
		Supplier:       supplierv1.NewSupplierServiceClient(conn["supplier"]),
		Dispatch:       dispatchv1.NewDispatchServiceClient(conn["dispatch"]),
		Courier:        courierv1.NewCourierServiceClient(conn["courier"]),
		Tracking:       trackingv1.NewTrackingServiceClient(conn["tracking"]),
		Accounts:       store,
		Compound:       cfg.Compound,
		CallTimeout:    cfg.CallTimeout,
		SecureCookies:  cfg.SecureCookies,
		PublicURL:      cfg.PublicURL,
		ClientIPHeader: cfg.ClientIPHeader,
		Limits:         cfg.Limits,
		Now:            cfg.Now,
		Log:            log,
	})

	lis := cfg.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", fmt.Sprintf(":%d", cfg.Port)); err != nil {
			return fmt.Errorf("listen on port %d: %w", cfg.Port, err)
		}
	}
	srv := &http.Server{
		Handler:           httpapi.AccessLog(log, api.Handler(web.Handler())),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Long enough for the slowest handler (cancel makes two calls) to answer.
		WriteTimeout:   2*cfg.CallTimeout + 10*time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers but does not cancel them; event streams must be told to end.
	srv.RegisterOnShutdown(api.StopStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	go purgeSessions(ctx, store, log)
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

// purgeSessions deletes expired sessions hourly; a lookup already refuses them, this only keeps
// the table from growing with sessions nobody comes back to.
func purgeSessions(ctx context.Context, store *accounts.Store, log *slog.Logger) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := store.PurgeExpired(ctx); err != nil {
				log.WarnContext(ctx, "gateway: purge sessions", "err", err)
			} else if n > 0 {
				log.InfoContext(ctx, "gateway: purged expired sessions", "sessions", n)
			}
		}
	}
}
