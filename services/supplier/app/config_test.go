package app_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/supplier/app"
)

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("SUPPLIER_PORT", "6052")
	t.Setenv("DATABASE_URL", "postgres://db/doorstep")
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 6052 || cfg.DatabaseURL != "postgres://db/doorstep" || cfg.NATSURL != "nats://127.0.0.1:4222" ||
		cfg.DispatchAddr != "127.0.0.1:50053" || cfg.ConfirmLead != 30*time.Minute {
		t.Fatalf("config %+v", cfg)
	}
	t.Setenv("DOORSTEP_AUTH_KEY", string(testkit.AuthKey))
	if cfg, err = app.ConfigFromEnv(); err != nil || cfg.AuthKey != string(testkit.AuthKey) {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	t.Setenv("DISPATCH_ADDR", "dispatch:50053")
	t.Setenv("SUPPLIER_CONFIRM_LEAD", "45m")
	if cfg, err = app.ConfigFromEnv(); err != nil || cfg.DispatchAddr != "dispatch:50053" || cfg.ConfirmLead != 45*time.Minute {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	t.Setenv("SUPPLIER_CONFIRM_LEAD", "soon")
	if _, err := app.ConfigFromEnv(); err == nil {
		t.Fatal("a bad lead time was accepted")
	}
	t.Setenv("SUPPLIER_CONFIRM_LEAD", "30m")
	t.Setenv("SUPPLIER_PORT", "not-a-port")
	if _, err := app.ConfigFromEnv(); err == nil {
		t.Fatal("a bad port was accepted")
	}
}

// Without a key of at least 32 bytes the service refuses to start, before touching its database:
// it could verify no caller.
func TestRunNeedsAnAuthKeyOfAtLeast32Bytes(t *testing.T) {
	for _, key := range []string{"", "only-31-bytes-long-0123456789ab"} {
		err := app.Run(context.Background(), app.Config{AuthKey: key, DatabaseURL: "postgres://unused", NATSURL: "nats://unused"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "DOORSTEP_AUTH_KEY") {
			t.Errorf("Run with a %d-byte key: %v, want an error naming DOORSTEP_AUTH_KEY", len(key), err)
		}
	}
}
