package auth

import (
	"context"
	"testing"
	"time"

	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
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
