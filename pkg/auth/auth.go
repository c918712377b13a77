// Package auth carries who is calling through Doorstep. The gateway authenticates people (a
// household's sign-in code, a staff account) and mints a short-lived signed identity for each
// call; every service verifies it in a gRPC interceptor, checks the caller's role against the
// method's policy, and leaves ownership checks (this household's order, this supplier's parcel)
// to its handlers through FromContext. Services calling each other mint a SYSTEM identity of
// their own that names the person they act for.
//
// Identities are HS256 JWTs (github.com/golang-jwt/jwt/v5) under a key every service shares
// (DOORSTEP_AUTH_KEY); a token lives two minutes, long enough for one call chain and its retries.
//
// Both ends cache. A service sends the same identity many times a minute (its own, acting for
// one household through a whole order) and receives the same few tokens as often, and decoding
// and checking a token's JSON, or signing a new one, was 13 % of the Go CPU of an order placed
// through the order and supplier services. Outgoing reuses a token while it has at least half its
// life left; Verify remembers a token whose signature it has checked, by the token's exact text,
// and checks only the expiry again.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/grpc/metadata"
)

// MetadataKey is the gRPC metadata header carrying the identity token.
const MetadataKey = "x-doorstep-identity"

// TokenTTL is how long a minted identity is valid.
const TokenTTL = 2 * time.Minute

const audience = "doorstep"

// leeway is how far past its expiry a token is still accepted, for clocks a little apart.
const leeway = 5 * time.Second

// cacheSize bounds each of the caches of minted and verified tokens (a token is about 400 bytes).
// Past it the least recently used token is forgotten and costs one more signature or check.
const cacheSize = 4096

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

// Keys signs and verifies identities, and caches both (see the package comment).
type Keys struct {
	key      []byte
	now      func() time.Time
	minted   *lru.Cache[identityKey, minted]
	verified *lru.Cache[string, verified]
}

type minted struct {
	token   string
	expires time.Time
}

type verified struct {
	id      Identity
	expires time.Time
}

// identityKey is an Identity that can key a map, with one level of OnBehalfOf: as deep as
// UnaryClientInterceptor nests (Originator is never a SYSTEM identity acting for someone).
type identityKey struct {
	self, onBehalfOf flatIdentity
	acting           bool // onBehalfOf is set
}

type flatIdentity struct {
	role                          typesv1.Role
	subject, supplierID, compound string
}

func flat(id Identity) flatIdentity {
	return flatIdentity{role: id.Role, subject: id.Subject, supplierID: id.SupplierID, compound: id.Compound}
}

// keyOf is id's cache key; false for an identity nested deeper than identityKey holds.
func keyOf(id Identity) (identityKey, bool) {
	k := identityKey{self: flat(id)}
	if o := id.OnBehalfOf; o != nil {
		if o.OnBehalfOf != nil {
			return identityKey{}, false
		}
		k.onBehalfOf, k.acting = flat(*o), true
	}
	return k, true
}

// clone copies id deeply, so that callers of Verify never share an OnBehalfOf with the cache.
func (id Identity) clone() Identity {
	if id.OnBehalfOf != nil {
		obo := id.OnBehalfOf.clone()
		id.OnBehalfOf = &obo
	}
	return id
}

// NewKeys takes the shared key; it must be at least 32 bytes.
func NewKeys(key []byte, now func() time.Time) (*Keys, error) {
	if len(key) < 32 {
		return nil, errors.New("DOORSTEP_AUTH_KEY must be at least 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	minted, err := lru.New[identityKey, minted](cacheSize)
	if err != nil {
		return nil, err
	}
	verified, err := lru.New[string, verified](cacheSize)
	if err != nil {
		return nil, err
	}
	return &Keys{key: key, now: now, minted: minted, verified: verified}, nil
}

// Mint signs a new token for id, valid for TokenTTL.
func (k *Keys) Mint(id Identity) (string, error) { return k.mint(id, k.now()) }

func (k *Keys) mint(id Identity, now time.Time) (string, error) {
	c := toClaims(id)
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: id.Subject, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(TokenTTL))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.key)
}

// Verify checks a token's signature, audience and expiry and returns its identity.
func (k *Keys) Verify(token string) (Identity, error) {
	if v, ok := k.verified.Get(token); ok {
		if k.now().After(v.expires.Add(leeway)) {
			k.verified.Remove(token)
			return Identity{}, fmt.Errorf("%w: %w", jwt.ErrTokenInvalidClaims, jwt.ErrTokenExpired)
		}
		return v.id.clone(), nil
	}
	c := &claims{}
	_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return k.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(k.now), jwt.WithLeeway(leeway))
	if err != nil {
		return Identity{}, err
	}
	id, err := fromClaims(c, c.RegisteredClaims.Subject)
	if err != nil {
		return Identity{}, err
	}
	k.verified.Add(token, verified{id: id.clone(), expires: c.ExpiresAt.Time})
	return id, nil
}

// Outgoing returns ctx carrying a token for id, for a client call: the one minted for id before
// while it has at least half of TokenTTL left, else a new one.
func (k *Keys) Outgoing(ctx context.Context, id Identity) (context.Context, error) {
	now := k.now()
	key, cacheable := keyOf(id)
	if m, ok := k.minted.Get(key); cacheable && ok && m.expires.Sub(now) >= TokenTTL/2 {
		return metadata.AppendToOutgoingContext(ctx, MetadataKey, m.token), nil
	}
	tok, err := k.mint(id, now)
	if err != nil {
		return nil, err
	}
	if cacheable {
		// Wall time, as the token's exp is: a monotonic reading stands still while the machine
		// sleeps, and would reuse a token past its expiry after a resume.
		k.minted.Add(key, minted{token: tok, expires: now.Add(TokenTTL).Round(0)})
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
