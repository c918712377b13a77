package postgres_test

import (
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/supplier/internal/postgres"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Every migration of the service's own tables goes down and up again cleanly.
func TestMigrationsRoundTrip(t *testing.T) {
	testkit.MigrationsRoundTrip(t, "supplier", postgres.Migrations())
}
