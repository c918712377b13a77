package testkit

import (
	"context"
	"testing"

	"github.com/doorstep/doorstep/pkg/auth"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// AuthKey is the identity-signing key of services started by tests.
var AuthKey = []byte("doorstep-test-identity-key-0123456789")

// As returns ctx carrying a signed identity, for calling a service as that person in a test.
func As(t testing.TB, ctx context.Context, role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
	t.Helper()
	keys, err := auth.NewKeys(AuthKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := auth.Identity{Role: role, Subject: subject}
	for _, o := range opts {
		o(&id)
	}
	ctx, err = keys.Outgoing(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// Supplier binds a test identity to a supplier (for supplier staff).
func Supplier(id string) func(*auth.Identity) { return func(i *auth.Identity) { i.SupplierID = id } }

// InCompound sets a test identity's compound.
func InCompound(c string) func(*auth.Identity) { return func(i *auth.Identity) { i.Compound = c } }
