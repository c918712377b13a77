package app_test

import (
	"testing"
	"time"

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
