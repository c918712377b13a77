package app_test

import (
	"testing"

	"github.com/doorstep/doorstep/services/supplier/app"
)

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("SUPPLIER_PORT", "6052")
	t.Setenv("DATABASE_URL", "postgres://db/doorstep")
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 6052 || cfg.DatabaseURL != "postgres://db/doorstep" || cfg.NATSURL != "nats://127.0.0.1:4222" {
		t.Fatalf("config %+v", cfg)
	}
	t.Setenv("SUPPLIER_PORT", "not-a-port")
	if _, err := app.ConfigFromEnv(); err == nil {
		t.Fatal("a bad port was accepted")
	}
}
