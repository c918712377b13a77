package grpcapi

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/doorstep/doorstep/pkg/auth"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
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

var (
	// staffAndSystem: everyone but residents.
	staffAndSystem = []typesv1.Role{worker, supplier, dispatcher, courier, system}
	// compoundStaff keep a compound's site plan, couriers and round rules, and read its rounds.
	compoundStaff = []typesv1.Role{dispatcher, worker, system}
	// dispatchers run the gate and the rounds.
	dispatchers = []typesv1.Role{dispatcher, system}
)

// Policy is who may call each method at all; the auth interceptor enforces it, and a method
// missing here is refused to everyone. The handlers then narrow what each caller reaches: staff
// whose identity names a compound act within that compound only (another compound's site plan,
// couriers, settings and rounds are NOT_FOUND, as if unknown).
var Policy = auth.Policy{
	dispatchv1.DispatchService_ListBuildings_FullMethodName:          staffAndSystem,
	dispatchv1.DispatchService_UpsertBuilding_FullMethodName:         compoundStaff,
	dispatchv1.DispatchService_UpsertCourier_FullMethodName:          compoundStaff,
	dispatchv1.DispatchService_UpdateCompoundSettings_FullMethodName: compoundStaff,
	dispatchv1.DispatchService_ListCouriers_FullMethodName:           compoundStaff,
	dispatchv1.DispatchService_GetCompoundSettings_FullMethodName:    compoundStaff,
	dispatchv1.DispatchService_ListRounds_FullMethodName:             compoundStaff,
	dispatchv1.DispatchService_ListRoutes_FullMethodName:             compoundStaff,
	dispatchv1.DispatchService_CheckInParcels_FullMethodName:         dispatchers,
	dispatchv1.DispatchService_PlanRound_FullMethodName:              dispatchers,
	dispatchv1.DispatchService_ReplanRound_FullMethodName:            dispatchers,
	dispatchv1.DispatchService_CloseRound_FullMethodName:             dispatchers,
	dispatchv1.DispatchService_SetCourierDuty_FullMethodName:         dispatchers,
	dispatchv1.DispatchService_MoveStop_FullMethodName:               dispatchers,
	dispatchv1.DispatchService_ReassignCourier_FullMethodName:        dispatchers,
	dispatchv1.DispatchService_WithdrawParcel_FullMethodName:         {system},
}

// flow is a method only certain services call, for certain people.
type flow struct {
	services []string
	people   []typesv1.Role
}

// flows are the methods only services call: the order service withdraws a failed parcel from the
// gate pool when the resident, or a worker for them, cancels it. Anyone calling any other method
// for someone gets what that person's own role may do (Policy).
var flows = map[string]flow{
	dispatchv1.DispatchService_WithdrawParcel_FullMethodName: {services: []string{"order"}, people: []typesv1.Role{resident, worker, system}},
}

var actorRoles = map[typesv1.Role]dispatch.Role{
	resident:   dispatch.RoleResident,
	worker:     dispatch.RoleWorker,
	supplier:   dispatch.RoleSupplier,
	dispatcher: dispatch.RoleDispatcher,
	courier:    dispatch.RoleCourier,
	system:     dispatch.RoleSystem,
}

// caller is the person behind a call: for a service acting for someone, that someone, whose role
// must itself be allowed to call method (a service carrying a courier's request does no more than
// the courier could), unless method is a flow, which only its services call, for its people. They
// are recorded as the actor of what the call changes.
func caller(ctx context.Context, method string) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		// Only a server built without the interceptor gets here; refuse rather than serve anyone.
		return auth.Identity{}, status.Error(codes.Unauthenticated, "no identity: sign in through the gateway")
	}
	who := id.Originator()
	allowed := Policy[method]
	if f, isFlow := flows[method]; isFlow {
		if !slices.Contains(f.services, id.Subject) {
			return auth.Identity{}, status.Errorf(codes.PermissionDenied, "%s may not call %s: only %s do",
				id.Subject, method, strings.Join(f.services, ", "))
		}
		if id.OnBehalfOf != nil {
			allowed = f.people
		}
	}
	if !slices.Contains(allowed, who.Role) {
		return auth.Identity{}, status.Errorf(codes.PermissionDenied, "%s acting for a %s may not call %s", id.Subject,
			roleName(who.Role), method)
	}
	return who, nil
}

func roleName(r typesv1.Role) string { return string(actorRoles[r]) }

// inCompound checks that the caller of method may act in compound: callers whose identity names
// no compound (city-wide staff, the services) may act in any. Another compound is NOT_FOUND, the
// same for every compound whether it exists or not.
func inCompound(ctx context.Context, method, compound string) (dispatch.Actor, error) {
	who, err := caller(ctx, method)
	if err != nil {
		return dispatch.Actor{}, err
	}
	if who.Compound != "" && who.Compound != compound {
		return dispatch.Actor{}, status.Errorf(codes.NotFound, "compound %s: %s", compound, dispatch.ErrNotFound)
	}
	return dispatch.Actor{Role: actorRoles[who.Role], ID: who.Subject}, nil
}

// inRound checks that the caller of method may act on round id (validated already): round ids
// start with their compound (pkg/rounds.ID). A round of another compound is NOT_FOUND with the
// words of a round that does not exist, so that nobody learns which rounds exist.
func inRound(ctx context.Context, method, id string) (dispatch.Actor, error) {
	compound, _, _, err := dispatch.ParseRoundID(id)
	if err != nil {
		return dispatch.Actor{}, status.Error(codes.InvalidArgument, err.Error())
	}
	by, err := inCompound(ctx, method, compound)
	if status.Code(err) == codes.NotFound {
		return dispatch.Actor{}, status.Error(codes.NotFound, roundNotFound(id))
	}
	return by, err
}

// roundNotFound is how the store words a round that does not exist.
func roundNotFound(id string) string {
	return fmt.Errorf("round %s: %w", id, dispatch.ErrNotFound).Error()
}
