package postgres_test

import (
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
)

// Every migration of the service's own tables, one at a time, goes down to exactly where it began.
func TestMigrationsRoundTrip(t *testing.T) {
	testkit.MigrationsRoundTrip(t, "tracking", postgres.Migrations())
}
