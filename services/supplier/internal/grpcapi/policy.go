package grpcapi

import (
	"context"
	"slices"

	"github.com/doorstep/doorstep/pkg/auth"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/protomap"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	resident   = typesv1.Role_ROLE_RESIDENT
	worker     = typesv1.Role_ROLE_WORKER
	supplier   = typesv1.Role_ROLE_SUPPLIER
	dispatcher = typesv1.Role_ROLE_DISPATCHER
	courier    = typesv1.Role_ROLE_COURIER
	system     = typesv1.Role_ROLE_SYSTEM
)

var everyone = []typesv1.Role{resident, worker, supplier, dispatcher, courier, system}

// Policy is who may call each method at all; the auth interceptor enforces it, and a method
// missing here is refused to everyone. The handlers then narrow what each caller reaches
// (supply.Reach): a supplier's staff their own supplier, a resident their own household, anyone
// of a compound that compound. Workers keep the community's donated stock, which has no staff of
// its own: they may keep its catalog and stock and hand its packs over at the gate, and the
// domain refuses them the same for any other supplier.
var Policy = auth.Policy{
	supplierv1.SupplierService_ListSuppliers_FullMethodName:        everyone,
	supplierv1.SupplierService_ListItems_FullMethodName:            everyone,
	supplierv1.SupplierService_BatchGetItems_FullMethodName:        everyone,
	supplierv1.SupplierService_CreateSupplier_FullMethodName:       {worker, system},
	supplierv1.SupplierService_SetSupplierSuspended_FullMethodName: {worker, system},
	supplierv1.SupplierService_UpdateCredentials_FullMethodName:    {supplier, worker, system},
	supplierv1.SupplierService_UpsertItem_FullMethodName:           {supplier, worker, system},
	supplierv1.SupplierService_AdjustStock_FullMethodName:          {supplier, worker, system},
	supplierv1.SupplierService_ReserveStock_FullMethodName:         {system},
	supplierv1.SupplierService_ReleaseReservation_FullMethodName:   {system},
	supplierv1.SupplierService_ConfirmParcel_FullMethodName:        {supplier, system},
	supplierv1.SupplierService_RejectParcel_FullMethodName:         {supplier, system},
	supplierv1.SupplierService_MarkParcelReady_FullMethodName:      {supplier, worker, system},
	// Dispatchers list their compound's parcels to see what is waiting at the gate.
	supplierv1.SupplierService_ListParcels_FullMethodName: {supplier, worker, dispatcher, system},
}

// flows are the methods only services call, each with the people a service may call it for: the
// order service reserves and releases stock while placing and cancelling the orders of residents
// and of workers ordering for them, and reserves campaigns' free packs for the workers running
// them (the domain refuses a campaign's pack to anyone else). A service acting for anyone else, or calling any other method
// for someone, gets what that person's own role may do (Policy).
var flows = map[string][]typesv1.Role{
	supplierv1.SupplierService_ReserveStock_FullMethodName:       {resident, worker, system},
	supplierv1.SupplierService_ReleaseReservation_FullMethodName: {resident, worker, system},
}

// caller is the verified identity behind a call as the domain sees it: the person a service acts
// for, if any, else the caller itself; recorded as the actor of what it changes, and reaching
// what that person may reach.
func caller(ctx context.Context, method string) (supply.Caller, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		// Only a server built without the interceptor gets here; refuse rather than serve anyone.
		return supply.Caller{}, status.Error(codes.Unauthenticated, "no identity: sign in through the gateway")
	}
	who := id.Originator()
	if id.OnBehalfOf != nil {
		allowed, isFlow := flows[method]
		if !isFlow {
			allowed = Policy[method]
		}
		if !slices.Contains(allowed, who.Role) {
			return supply.Caller{}, status.Errorf(codes.PermissionDenied, "%s acting for a %s may not call %s",
				id.Subject, protomap.FromRole(who.Role), method)
		}
	}
	c := supply.Caller{Actor: supply.Actor{Role: protomap.FromRole(who.Role), ID: who.Subject},
		Reach: supply.Reach{Compound: who.Compound}}
	switch who.Role {
	case supplier:
		if who.SupplierID == "" {
			return supply.Caller{}, status.Error(codes.PermissionDenied, "supplier staff bound to no supplier")
		}
		c.Reach.SupplierID = who.SupplierID
	case resident:
		c.Reach.HouseholdID = who.Subject
	}
	return c, nil
}
