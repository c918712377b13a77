package faulttest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	bins      Binaries
	buildErr  error
)

// binaries builds the NATS server and the services once per test binary.
func binaries(t *testing.T) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		var root string
		if root, buildErr = RepoRoot(); buildErr != nil {
			return
		}
		var binDir string
		if binDir, buildErr = BinDir(root); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bins, buildErr = Build(ctx, root, binDir, "order", "supplier", "tracking")
		t.Logf("built nats-server, orderd, supplierd and trackingd in %s", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return bins
}

// startSystem starts PostgreSQL and NATS, then the given services in order (a kind listed twice
// gets two replicas). Service metrics are served so replicas can be compared. When the test
// fails, the processes' logs are kept and their tails printed.
func startSystem(t *testing.T, kinds ...string) *System {
	t.Helper()
	bin := binaries(t)
	// Not t.TempDir: PostgreSQL runs as an unprivileged user when the test is root, and t.TempDir's
	// parent is private to root.
	dir, err := os.MkdirTemp("", "doorstep-faulttest-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	sys, err := StartSystem(ctx, dir, bin)
	if err != nil {
		t.Fatalf("start postgres and nats: %v", err)
	}
	t.Cleanup(func() {
		sys.Close()
		if t.Failed() {
			dumpLogs(t, sys)
			t.Logf("logs and data kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	for _, kind := range kinds {
		if _, err := sys.AddService(ctx, kind, true); err != nil {
			t.Fatalf("start %s: %v", kind, err)
		}
	}
	t.Logf("system up in %s: postgres :%d, nats %s, %v", time.Since(start).Round(time.Millisecond), sys.PG.Port, sys.NATSURL, kinds)
	return sys
}

// dumpLogs prints the last lines of every process's log.
func dumpLogs(t *testing.T, sys *System) {
	files, _ := filepath.Glob(filepath.Join(sys.Dir, "logs", "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
		t.Logf("--- %s (last %d of %d lines)\n%s", filepath.Base(f), min(len(lines), 25), len(lines),
			bytes.Join(lines[max(0, len(lines)-25):], []byte("\n")))
	}
}

// requireRunning fails the test when a service died that the test did not kill.
func requireRunning(t *testing.T, sys *System, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		for _, svc := range sys.Replicas(k) {
			if !svc.Running() {
				t.Errorf("%s is not running (it was not killed by the test); see %s", svc.Name, svc.Log)
			}
		}
	}
}
