package grpcapi

import (
	"context"
	"slices"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

const (
	resident   = typesv1.Role_ROLE_RESIDENT
	worker     = typesv1.Role_ROLE_WORKER
	dispatcher = typesv1.Role_ROLE_DISPATCHER
	system     = typesv1.Role_ROLE_SYSTEM
)

// Policy is who may call each method at all; the auth interceptor enforces it, and a method
// missing here is refused to everyone. The domain then narrows what each caller reaches
// (order.Caller): a resident their own household, staff of a compound that compound. Suppliers
// and couriers call none of these: they learn of parcels from their own services.
var Policy = auth.Policy{
	orderv1.OrderService_UpsertHousehold_FullMethodName:      {worker, system},
	orderv1.OrderService_GetHousehold_FullMethodName:         {resident, worker, dispatcher, system},
	orderv1.OrderService_ListHouseholds_FullMethodName:       {worker, dispatcher, system},
	orderv1.OrderService_ImportHouseholds_FullMethodName:     {worker, system},
	orderv1.OrderService_ExportHouseholds_FullMethodName:     {worker, system},
	orderv1.OrderService_PlaceOrder_FullMethodName:           {resident, worker, system},
	orderv1.OrderService_GetOrder_FullMethodName:             {resident, worker, system},
	orderv1.OrderService_ListOrders_FullMethodName:           {resident, worker, system},
	orderv1.OrderService_CancelOrder_FullMethodName:          {resident, worker, system},
	orderv1.OrderService_GetParcel_FullMethodName:            {dispatcher, worker, system},
	orderv1.OrderService_ListParcelsToCheckIn_FullMethodName: {dispatcher, worker, system},

	orderv1.OrderService_CreateCampaign_FullMethodName:        {worker, system},
	orderv1.OrderService_GetCampaign_FullMethodName:           {worker, system},
	orderv1.OrderService_ListCampaigns_FullMethodName:         {worker, system},
	orderv1.OrderService_LaunchCampaign_FullMethodName:        {worker, system},
	orderv1.OrderService_RetryMissedHouseholds_FullMethodName: {worker, system},
	orderv1.OrderService_GetCampaignRoster_FullMethodName:     {worker, system},
	orderv1.OrderService_ExportCampaignRoster_FullMethodName:  {worker, system},
	orderv1.OrderService_PostNotice_FullMethodName:            {worker, system},
	orderv1.OrderService_WithdrawNotice_FullMethodName:        {worker, system},
	orderv1.OrderService_ListNotices_FullMethodName:           {worker, system},
}

// caller is the verified person behind a call as the domain sees it: the person a service acts
// for, if any (dispatch checking parcels in for a dispatcher), else the caller itself. The
// interceptor has let the caller's own role through; a service acting for someone gets no more
// than that someone's role may do here.
func caller(ctx context.Context, method string) (order.Caller, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		// Only a server built without the interceptor gets here; refuse rather than serve anyone.
		return order.Caller{}, status.Error(codes.Unauthenticated, "no identity: sign in through the gateway")
	}
	who := id.Originator()
	if !slices.Contains(Policy[method], who.Role) {
		return order.Caller{}, status.Errorf(codes.PermissionDenied, "%s acting for a %s may not call %s",
			id.Subject, pbconv.Role(who.Role), method)
	}
	return order.Caller{Actor: order.Actor{Role: pbconv.Role(who.Role), ID: who.Subject}, Compound: who.Compound}, nil
}
