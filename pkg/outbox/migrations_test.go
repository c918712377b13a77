package outbox_test

import (
	"testing"

	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/testkit"
)

// The shared outbox and inbox tables migrate down and up again cleanly.
func TestMigrationsRoundTrip(t *testing.T) {
	testkit.MigrationsRoundTrip(t, "roundtrip", outbox.Migrations(), inbox.Migrations())
}
