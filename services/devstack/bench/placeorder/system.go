package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/services/devstack/faulttest"
	"github.com/doorstep/doorstep/services/devstack/stack"
)

// doorstep is the system under measurement: where its order and supplier services listen, its
// database, and the key its identities are signed with.
type doorstep struct {
	order, supplier string
	dbURL, natsURL  string
	keys            *auth.Keys
	stop            func()
}

// startProcesses runs every service as its own process, built as the Dockerfile builds it, with a
// NATS server and PostgreSQL of their own: as deployed, each service with its own heap and
// garbage collector, and the load generator apart from them.
func startProcesses(ctx context.Context, dir string, _ *slog.Logger) (doorstep, error) {
	root, err := faulttest.RepoRoot()
	if err != nil {
		return doorstep{}, err
	}
	binDir, err := faulttest.BinDir(root)
	if err != nil {
		return doorstep{}, err
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	kinds := []string{"dispatch", "supplier", "order", "tracking", "courier"} // each after the peers it calls
	bin, err := faulttest.Build(bctx, root, binDir, kinds...)
	if err != nil {
		return doorstep{}, fmt.Errorf("build: %w", err)
	}
	sys, err := faulttest.StartSystem(ctx, dir, bin)
	if err != nil {
		return doorstep{}, err
	}
	for _, k := range kinds {
		if _, err := sys.AddService(ctx, k, false); err != nil {
			sys.Close()
			return doorstep{}, err
		}
	}
	return doorstep{order: sys.Replicas("order")[0].Addr, supplier: sys.Replicas("supplier")[0].Addr, dbURL: sys.DBURL, natsURL: sys.NATSURL,
		keys: sys.Keys, stop: sys.Close}, nil
}

// startInProcess runs the dev stack in this process, as make run does.
func startInProcess(ctx context.Context, dir string, log *slog.Logger) (doorstep, error) {
	s, err := stack.Start(ctx, stack.Options{DataDir: dir, Log: log})
	if err != nil {
		return doorstep{}, err
	}
	keys, err := auth.NewKeys([]byte(s.AuthKey), nil)
	if err != nil {
		s.Stop()
		return doorstep{}, err
	}
	return doorstep{order: s.Order, supplier: s.Supplier, dbURL: s.DatabaseURL, natsURL: s.NATS, keys: keys, stop: s.Stop}, nil
}
