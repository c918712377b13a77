package grpcapi

import (
	"context"
	"slices"
	"strings"

	"github.com/doorstep/doorstep/pkg/auth"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	courier    = typesv1.Role_ROLE_COURIER
	dispatcher = typesv1.Role_ROLE_DISPATCHER
	system     = typesv1.Role_ROLE_SYSTEM
)

// Policy is who may call each method at all; the auth interceptor enforces it. The handlers
// then narrow what the caller reaches (scope): a courier only their own courier_id, staff of a
// compound only routes in it. Residents, workers and suppliers have no business here.
var Policy = auth.Policy{
	courierv1.CourierService_GetRoute_FullMethodName:      {courier, dispatcher, system},
	courierv1.CourierService_WatchRoute_FullMethodName:    {courier, dispatcher, system},
	courierv1.CourierService_PickUp_FullMethodName:        {courier, system},
	courierv1.CourierService_MarkDelivered_FullMethodName: {courier, system},
	courierv1.CourierService_MarkFailed_FullMethodName:    {courier, system},
	courierv1.CourierService_CompleteStops_FullMethodName: {courier, system},
}

// scopeOf is what the caller of method may reach. A service acting for a person gets what that
// person's role allows (a gateway carrying a dispatcher's call reads routes but records no
// delivery); a service acting for nobody reaches every route and is recorded as itself.
func scopeOf(ctx context.Context, method string) (route.Scope, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		// Only a server built without the interceptor gets here; refuse rather than serve anyone.
		return route.Scope{}, status.Error(codes.Unauthenticated, "no identity: sign in through the gateway")
	}
	who := id.Originator()
	if !slices.Contains(Policy[method], who.Role) {
		return route.Scope{}, status.Errorf(codes.PermissionDenied, "%s may not call %s", describe(id), method)
	}
	s := route.Scope{Compound: who.Compound}
	switch who.Role {
	case courier:
		s.Courier = who.Subject
		s.Actor = route.Actor{Role: route.RoleCourier, ID: who.Subject}
	case system:
		s.Actor = route.Actor{Role: route.RoleSystem, ID: who.Subject}
	}
	return s, nil
}

// describe names a caller in a refusal: "dispatcher", or "gateway acting for a resident".
func describe(id auth.Identity) string {
	role := func(r typesv1.Role) string { return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_")) }
	if who := id.Originator(); who.Role != id.Role {
		return id.Subject + " acting for a " + role(who.Role)
	}
	return role(id.Role)
}
