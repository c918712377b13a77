// Package testkit gives integration tests real infrastructure: a fresh PostgreSQL database per
// test and an in-process JetStream server. By default it starts a private PostgreSQL cluster from
// the installed binaries (once per test binary); set DOORSTEP_TEST_DATABASE_URL to a server's
// admin URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to use that server instead.
package testkit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/localpg"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

var (
	pgOnce    sync.Once
	pgCluster *localpg.Cluster
	pgDir     string
	pgAdmin   string
	pgErr     error
)

// Main runs a package's tests and stops the private cluster afterwards. Use it from TestMain in
// every package that calls Postgres:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if pgCluster != nil {
		_ = pgCluster.Stop()
		_ = os.RemoveAll(pgDir)
	}
	os.Exit(code)
}

func adminURL() (string, error) {
	pgOnce.Do(func() {
		if u := os.Getenv("DOORSTEP_TEST_DATABASE_URL"); u != "" {
			pgAdmin = u
			return
		}
		// Not t.TempDir: the cluster runs as an unprivileged user who must be able to reach it.
		pgDir, pgErr = os.MkdirTemp("", "doorstep-pg-")
		if pgErr != nil {
			return
		}
		if pgErr = os.Chmod(pgDir, 0o755); pgErr != nil {
			return
		}
		var port int
		if port, pgErr = localpg.FreePort(); pgErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pgCluster, pgErr = localpg.Start(ctx, localpg.Options{Dir: pgDir + "/data", Port: port, Ephemeral: true})
		if pgErr == nil {
			pgAdmin = pgCluster.URL()
		}
	})
	return pgAdmin, pgErr
}

// Postgres creates a fresh, empty database for t and returns its URL; it is dropped afterwards.
func Postgres(t testing.TB) string {
	t.Helper()
	admin, err := adminURL()
	if err != nil {
		t.Fatalf("testkit: postgres: %v", err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testkit: connect %s: %v", admin, err)
	}
	defer conn.Close(ctx)
	name := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := pgkit.DatabaseURL(admin, name)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return u
}

// NATS starts an in-process JetStream server with a temporary store for t and returns its URL.
func NATS(t testing.TB) string {
	t.Helper()
	s, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("testkit: nats: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// Eventually polls cond every 20ms until it returns nil or timeout passes, then fails with the
// last error. Tests wait for conditions, never for fixed sleeps.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Errorf is fmt.Errorf, for Eventually conditions.
var Errorf = fmt.Errorf
