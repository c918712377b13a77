package accounts_test

import (
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

// Every migration of the accounts' tables goes down and up again cleanly.
func TestMigrationsRoundTrip(t *testing.T) {
	testkit.MigrationsRoundTrip(t, "gateway", accounts.Migrations())
}
