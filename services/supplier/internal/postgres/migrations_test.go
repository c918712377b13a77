package postgres_test

import (
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/supplier/internal/postgres"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Every migration of the service's own tables, one at a time, goes down to exactly where it began.
func TestMigrationsRoundTrip(t *testing.T) {
	testkit.MigrationsRoundTrip(t, "supplier", postgres.Migrations())
}
