package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestMintVerifyRoundTrip(t *testing.T) {
	k, _ := NewKeys(key, nil)
	in := Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order",
		OnBehalfOf: &Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "haixin-3-2-502", Compound: "haixin"}}
	tok, err := k.Mint(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if out.Subject != "order" || out.Originator().Subject != "haixin-3-2-502" || out.Originator().Compound != "haixin" {
		t.Fatalf("round trip: %+v", out)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	k, _ := NewKeys(key, func() time.Time { return now })
	tok, _ := k.Mint(Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "h"})
	other, _ := NewKeys([]byte("another key that is 32 bytes long!!"), func() time.Time { return now })
	if _, err := other.Verify(tok); err == nil {
		t.Error("token verified under another key")
	}
	later, _ := NewKeys(key, func() time.Time { return now.Add(TokenTTL + time.Minute) })
	if _, err := later.Verify(tok); err == nil {
		t.Error("expired token accepted")
	}
	if _, err := k.Verify(tok[:len(tok)-2] + "xx"); err == nil {
		t.Error("tampered token accepted")
	}
	if _, err := NewKeys([]byte("short"), nil); err == nil {
		t.Error("short key accepted")
	}
}

func TestInterceptorPolicy(t *testing.T) {
	k, _ := NewKeys(key, nil)
	p := Policy{"/svc/Resident": {typesv1.Role_ROLE_RESIDENT}}
	icpt := k.UnaryServerInterceptor(p)
	call := func(method string, id *Identity) (Identity, codes.Code) {
		ctx := context.Background()
		if id != nil {
			tok, _ := k.Mint(*id)
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(MetadataKey, tok))
		}
		var got Identity
		_, err := icpt(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
			got, _ = FromContext(ctx)
			return nil, nil
		})
		return got, status.Code(err)
	}
	resident := &Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "h1"}
	courier := &Identity{Role: typesv1.Role_ROLE_COURIER, Subject: "c1"}
	if got, code := call("/svc/Resident", resident); code != codes.OK || got.Subject != "h1" {
		t.Errorf("resident: %v %+v", code, got)
	}
	if _, code := call("/svc/Resident", courier); code != codes.PermissionDenied {
		t.Errorf("courier on resident method: %v", code)
	}
	if _, code := call("/svc/Unlisted", resident); code != codes.PermissionDenied {
		t.Errorf("unlisted method: %v", code)
	}
	if _, code := call("/svc/Resident", nil); code != codes.Unauthenticated {
		t.Errorf("anonymous: %v", code)
	}
	if _, code := call("/grpc.health.v1.Health/Check", nil); code != codes.OK {
		t.Errorf("health: %v", code)
	}
}

// clock is a settable time for the caches' tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestVerifiedTokensStillExpire(t *testing.T) {
	c := &clock{t: time.Now()}
	k, _ := NewKeys(key, c.now)
	tok, _ := k.Mint(Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "h"})
	for range 2 { // the second answer comes from the cache
		if id, err := k.Verify(tok); err != nil || id.Subject != "h" {
			t.Fatalf("fresh token: %+v, %v", id, err)
		}
	}
	c.t = c.t.Add(TokenTTL + leeway - time.Second)
	if _, err := k.Verify(tok); err != nil {
		t.Errorf("token within the leeway refused: %v", err)
	}
	c.t = c.t.Add(2 * time.Second)
	if _, err := k.Verify(tok); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("cached token past its expiry: err = %v, want %v", err, jwt.ErrTokenExpired)
	}
	if _, err := k.Verify(tok); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("expired token asked again: err = %v, want %v", err, jwt.ErrTokenExpired)
	}
	if _, err := k.Verify(tok[:len(tok)-2] + "xx"); err == nil {
		t.Error("tampered copy of a cached token accepted")
	}
}

func TestVerifyAnswersAreNotShared(t *testing.T) {
	k, _ := NewKeys(key, nil)
	tok, _ := k.Mint(Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order",
		OnBehalfOf: &Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "h1"}})
	first, _ := k.Verify(tok)
	first.OnBehalfOf.Subject = "someone else"
	if again, _ := k.Verify(tok); again.OnBehalfOf == nil || again.OnBehalfOf.Subject != "h1" {
		t.Fatalf("a caller's change to its identity reached the cache: %+v", again.OnBehalfOf)
	}
}

func TestOutgoingReusesATokenForHalfItsLife(t *testing.T) {
	c := &clock{t: time.Now()}
	k, _ := NewKeys(key, c.now)
	token := func(id Identity) string {
		t.Helper()
		ctx, err := k.Outgoing(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		md, _ := metadata.FromOutgoingContext(ctx)
		if v := md.Get(MetadataKey); len(v) == 1 {
			return v[0]
		}
		t.Fatalf("metadata %v", md)
		return ""
	}
	forH1 := Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order", OnBehalfOf: &Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "h1"}}
	forH2 := Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order", OnBehalfOf: &Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "h2"}}
	first := token(forH1)
	if token(forH1) != first {
		t.Error("a second call for the same identity minted a new token")
	}
	if other := token(forH2); other == first {
		t.Error("another household got the first household's token")
	} else if id, err := k.Verify(other); err != nil || id.Originator().Subject != "h2" {
		t.Errorf("token for h2 names %+v, %v", id.Originator(), err)
	}
	c.t = c.t.Add(TokenTTL/2 - time.Second)
	if token(forH1) != first {
		t.Error("token re-minted with more than half its life left")
	}
	c.t = c.t.Add(2 * time.Second)
	renewed := token(forH1)
	if renewed == first {
		t.Fatal("token reused with less than half its life left")
	}
	c.t = c.t.Add(TokenTTL - time.Second)
	if _, err := k.Verify(renewed); err != nil {
		t.Errorf("renewed token refused within its own life: %v", err)
	}
	nested := Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "gateway", OnBehalfOf: &forH1} // deeper than the cache keys
	if id, err := k.Verify(token(nested)); err != nil || id.OnBehalfOf.OnBehalfOf == nil || id.OnBehalfOf.OnBehalfOf.Subject != "h1" {
		t.Errorf("nested identity: %+v, %v", id, err)
	}
}

// BenchmarkAuthorize is what an incoming call's identity costs a service: the client's Outgoing
// and the server's Verify, for a service acting for one of 100 households. "cached" is the
// steady state; "uncached" signs and checks every time, as before the caches.
func BenchmarkAuthorize(b *testing.B) {
	ids := make([]Identity, 100)
	for i := range ids {
		ids[i] = Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order",
			OnBehalfOf: &Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: fmt.Sprintf("haixin-3-2-%d", i), Compound: "haixin"}}
	}
	k, _ := NewKeys(key, nil)
	b.Run("cached", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ctx, err := k.Outgoing(context.Background(), ids[i%len(ids)])
			if err != nil {
				b.Fatal(err)
			}
			md, _ := metadata.FromOutgoingContext(ctx)
			if _, err := k.Verify(md.Get(MetadataKey)[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			tok, err := k.Mint(ids[i%len(ids)])
			if err != nil {
				b.Fatal(err)
			}
			k.verified.Purge()
			if _, err := k.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
