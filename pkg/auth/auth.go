// Package auth carries who is calling through Doorstep. The gateway authenticates people (a
// household's sign-in code, a staff account) and mints a short-lived signed identity for each
// call; every service verifies it in a gRPC interceptor, checks the caller's role against the
// method's policy, and leaves ownership checks (this household's order, this supplier's parcel)
// to its handlers through FromContext. Services calling each other mint a SYSTEM identity of
// their own that names the person they act for.
//
// Identities are HS256 JWTs (github.com/golang-jwt/jwt/v5) under a key every service shares
// (DOORSTEP_AUTH_KEY); a token lives two minutes, long enough for one call chain and its retries.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"
)

// MetadataKey is the gRPC metadata header carrying the identity token.
const MetadataKey = "x-doorstep-identity"

// TokenTTL is how long a minted identity is valid.
const TokenTTL = 2 * time.Minute

const audience = "doorstep"

// Identity is who is calling.
type Identity struct {
	Role typesv1.Role
	// Subject is the household id, staff account id or service name.
	Subject string
	// SupplierID binds supplier staff to their supplier.
	SupplierID string
	// Compound the caller belongs to (empty for city-wide staff and services).
	Compound string
	// OnBehalfOf is, for a SYSTEM identity, the person whose request the service is carrying out.
	OnBehalfOf *Identity
}

// Actor is the identity as the events and transition records write it.
func (id Identity) Actor() *typesv1.Actor {
	return &typesv1.Actor{Role: id.Role, Id: id.Subject}
}

// Originator is the person behind a call: OnBehalfOf for a service acting for someone, else id.
func (id Identity) Originator() Identity {
	if id.Role == typesv1.Role_ROLE_SYSTEM && id.OnBehalfOf != nil {
		return *id.OnBehalfOf
	}
	return id
}

type claims struct {
	Role       string  `json:"role"`
	SupplierID string  `json:"sup,omitempty"`
	Compound   string  `json:"cmp,omitempty"`
	OnBehalfOf *claims `json:"obo,omitempty"`
	Subject    string  `json:"osub,omitempty"` // subject of an on-behalf-of identity
	jwt.RegisteredClaims
}

func toClaims(id Identity) *claims {
	c := &claims{Role: id.Role.String(), SupplierID: id.SupplierID, Compound: id.Compound}
	if id.OnBehalfOf != nil {
		c.OnBehalfOf = toClaims(*id.OnBehalfOf)
		c.OnBehalfOf.Subject = id.OnBehalfOf.Subject
	}
	return c
}

func fromClaims(c *claims, subject string) (Identity, error) {
	role, ok := typesv1.Role_value[c.Role]
	if !ok || typesv1.Role(role) == typesv1.Role_ROLE_UNSPECIFIED {
		return Identity{}, fmt.Errorf("unknown role %q", c.Role)
	}
	if subject == "" {
		return Identity{}, errors.New("identity without subject")
	}
	id := Identity{Role: typesv1.Role(role), Subject: subject, SupplierID: c.SupplierID, Compound: c.Compound}
	if c.OnBehalfOf != nil {
		obo, err := fromClaims(c.OnBehalfOf, c.OnBehalfOf.Subject)
		if err != nil {
			return Identity{}, fmt.Errorf("on behalf of: %w", err)
		}
		id.OnBehalfOf = &obo
	}
	return id, nil
}

// Keys signs and verifies identities.
type Keys struct {
	key []byte
	now func() time.Time
}

// NewKeys takes the shared key; it must be at least 32 bytes.
func NewKeys(key []byte, now func() time.Time) (*Keys, error) {
	if len(key) < 32 {
		return nil, errors.New("DOORSTEP_AUTH_KEY must be at least 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return &Keys{key: key, now: now}, nil
}

// Mint signs id for TokenTTL.
func (k *Keys) Mint(id Identity) (string, error) {
	c := toClaims(id)
	now := k.now()
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: id.Subject, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(TokenTTL))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.key)
}

// Verify checks a token's signature, audience and expiry and returns its identity.
func (k *Keys) Verify(token string) (Identity, error) {
	c := &claims{}
	_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return k.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(k.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return Identity{}, err
	}
	return fromClaims(c, c.RegisteredClaims.Subject)
}

// Outgoing returns ctx carrying a freshly minted token for id, for a client call.
func (k *Keys) Outgoing(ctx context.Context, id Identity) (context.Context, error) {
	tok, err := k.Mint(id)
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, tok), nil
}

type ctxKey struct{}

// WithIdentity stores a verified identity in ctx (the server interceptor does this).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext is the verified caller of the current call.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
