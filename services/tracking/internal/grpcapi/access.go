package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/doorstep/doorstep/pkg/auth"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/notices"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/doorstep/doorstep/services/tracking/internal/views"
)

const (
	resident   = typesv1.Role_ROLE_RESIDENT
	worker     = typesv1.Role_ROLE_WORKER
	supplier   = typesv1.Role_ROLE_SUPPLIER
	dispatcher = typesv1.Role_ROLE_DISPATCHER
	courier    = typesv1.Role_ROLE_COURIER
	system     = typesv1.Role_ROLE_SYSTEM
)

// Policy is who may call each method at all; the auth interceptor enforces it. The handlers then
// check what the caller may see: a resident only their household's orders, a supplier only their
// own queue, staff of a compound only that compound's orders and rounds. Notices are public within
// their compound: anyone signed in to it may read them (the couriers and suppliers who come to its
// gates too), nobody another compound's.
var Policy = auth.Policy{
	trackingv1.TrackingService_GetOrderTimeline_FullMethodName: {resident, worker, system},
	trackingv1.TrackingService_WatchOrder_FullMethodName:       {resident, worker, system},
	trackingv1.TrackingService_GetRoundProgress_FullMethodName: {dispatcher, worker, system},
	trackingv1.TrackingService_WatchRound_FullMethodName:       {dispatcher, worker, system},
	trackingv1.TrackingService_GetSupplierQueue_FullMethodName: {supplier, worker, system},
	trackingv1.TrackingService_ListNotices_FullMethodName:      {resident, worker, dispatcher, courier, supplier, system},
}

var (
	errNoIdentity = errors.New("no identity: sign in through the gateway")
	errForbidden  = errors.New("not allowed")
)

// caller is the person behind the call: for a service acting for someone, that someone, whose
// role must itself be allowed to call method (a service carrying a courier's request reads no
// more than the courier could).
func (s *Server) caller(ctx context.Context, method string) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		// Only a server built without the interceptor gets here; refuse rather than serve anyone.
		return auth.Identity{}, errNoIdentity
	}
	who := id.Originator()
	if !slices.Contains(Policy[method], who.Role) {
		return auth.Identity{}, fmt.Errorf("%w: %s may not call %s", errForbidden, who.Role, method)
	}
	return who, nil
}

// mayReadOrder answers NOT_FOUND, exactly as for an order that does not exist, when the order is
// not the caller's to see, so that nobody learns which order ids exist.
func (s *Server) mayReadOrder(ctx context.Context, method, orderID string) error {
	who, err := s.caller(ctx, method)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	o, err := s.Timelines.Order(ctx, orderID)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if (who.Role == resident && o.HouseholdID != who.Subject) || !inCompound(who, o.Compound) {
		return s.toStatus(ctx, fmt.Errorf("order %s: %w", orderID, timeline.ErrNotFound))
	}
	return nil
}

// mayReadRound lets staff of a compound see that compound's rounds only; round ids start with the
// compound (pkg/rounds.ID).
func (s *Server) mayReadRound(ctx context.Context, method, roundID string) error {
	who, err := s.caller(ctx, method)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if who.Compound != "" && !strings.HasPrefix(roundID, who.Compound+"-") {
		return s.toStatus(ctx, fmt.Errorf("round %s: %w", roundID, views.ErrNotFound))
	}
	return nil
}

// mayReadSupplier lets supplier staff see their own supplier's queue only.
func (s *Server) mayReadSupplier(ctx context.Context, supplierID string) error {
	who, err := s.caller(ctx, trackingv1.TrackingService_GetSupplierQueue_FullMethodName)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if who.Role == supplier && who.SupplierID != supplierID {
		return s.toStatus(ctx, fmt.Errorf("supplier %s: %w", supplierID, views.ErrNotFound))
	}
	return nil
}

// mayReadNotices lets callers read the notices of their own compound only. A resident always
// belongs to one: a resident identity without a compound sees none rather than every compound's.
func (s *Server) mayReadNotices(ctx context.Context, compound string) error {
	who, err := s.caller(ctx, trackingv1.TrackingService_ListNotices_FullMethodName)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if (who.Role == resident && who.Compound != compound) || !inCompound(who, compound) {
		return s.toStatus(ctx, fmt.Errorf("notices of compound %s: %w", compound, notices.ErrNotFound))
	}
	return nil
}

// inCompound reports whether who may see something of compound: city-wide callers (no compound)
// see every compound.
func inCompound(who auth.Identity, compound string) bool {
	return who.Compound == "" || who.Compound == compound
}
