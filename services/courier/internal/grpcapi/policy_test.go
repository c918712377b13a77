package grpcapi

import (
	"context"
	"testing"

	"github.com/doorstep/doorstep/pkg/auth"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every RPC the service offers is in the policy: one left out would be refused to everyone.
func TestPolicyCoversEveryRPC(t *testing.T) {
	for _, m := range courierv1.CourierService_ServiceDesc.Methods {
		if _, ok := Policy["/"+courierv1.CourierService_ServiceDesc.ServiceName+"/"+m.MethodName]; !ok {
			t.Errorf("%s is not in the policy", m.MethodName)
		}
	}
	for _, s := range courierv1.CourierService_ServiceDesc.Streams {
		if _, ok := Policy["/"+courierv1.CourierService_ServiceDesc.ServiceName+"/"+s.StreamName]; !ok {
			t.Errorf("%s is not in the policy", s.StreamName)
		}
	}
}

func TestScopeOfTheVerifiedCaller(t *testing.T) {
	courierA := auth.Identity{Role: courier, Subject: "haixin-courier-01", Compound: "haixin"}
	tests := []struct {
		name string
		id   *auth.Identity
		code codes.Code
		want route.Scope
	}{
		{"no identity (a server without the interceptor)", nil, codes.Unauthenticated, route.Scope{}},
		{"courier", &courierA, codes.OK, route.Scope{Courier: "haixin-courier-01", Compound: "haixin",
			Actor: route.Actor{Role: route.RoleCourier, ID: "haixin-courier-01"}}},
		{"service for a courier", &auth.Identity{Role: system, Subject: "gateway", OnBehalfOf: &courierA}, codes.OK,
			route.Scope{Courier: "haixin-courier-01", Compound: "haixin", Actor: route.Actor{Role: route.RoleCourier, ID: "haixin-courier-01"}}},
		{"service on its own", &auth.Identity{Role: system, Subject: "ops-console"}, codes.OK,
			route.Scope{Actor: route.Actor{Role: route.RoleSystem, ID: "ops-console"}}},
		{"service for a dispatcher", &auth.Identity{Role: system, Subject: "gateway",
			OnBehalfOf: &auth.Identity{Role: dispatcher, Subject: "wang", Compound: "haixin"}}, codes.PermissionDenied, route.Scope{}},
		{"dispatcher", &auth.Identity{Role: dispatcher, Subject: "wang"}, codes.PermissionDenied, route.Scope{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.id != nil {
				ctx = auth.WithIdentity(ctx, *tt.id)
			}
			got, err := scopeOf(ctx, courierv1.CourierService_MarkDelivered_FullMethodName)
			if status.Code(err) != tt.code || got != tt.want {
				t.Errorf("scopeOf = %+v, %v; want %+v, %s", got, err, tt.want, tt.code)
			}
		})
	}
	// Reading is open to a dispatcher, who acts as nobody and is bound to their compound.
	ctx := auth.WithIdentity(context.Background(), auth.Identity{Role: typesv1.Role_ROLE_DISPATCHER, Subject: "wang", Compound: "haixin"})
	if got, err := scopeOf(ctx, courierv1.CourierService_GetRoute_FullMethodName); err != nil || got != (route.Scope{Compound: "haixin"}) {
		t.Errorf("dispatcher reading: %+v, %v", got, err)
	}
}
