// Package grpcapi is the dispatch service's gRPC transport: it validates requests at the edge
// (INVALID_ARGUMENT naming every bad field), maps protobuf messages to domain values and back, and
// turns domain errors into status codes in one place.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/rounds"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits on input; they keep one request from holding a transaction for long.
const (
	maxCheckIn    = 1000
	maxUnits      = 26
	maxFloors     = 60
	maxDistanceM  = 100_000
	maxParcels    = 1000
	maxGrams      = 1_000_000
	maxRequestID  = 200
	maxNameLength = 100
	maxNote       = 200
	// maxReason is the order service's own limit on a cancellation's reason, which it passes on.
	maxReason    = 500
	maxSlots     = 8
	maxCapacity  = 100_000
	maxShortages = 1000
)

var (
	// Building and unit names become parts of household ids (<compound>-<building>-<unit>-<room>),
	// so they hold letters and digits only.
	placeRE = regexp.MustCompile(`^[\p{L}\p{N}]{1,16}$`)
	idRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

// Server implements doorstep.dispatch.v1.DispatchService.
type Server struct {
	dispatchv1.UnimplementedDispatchServiceServer
	svc *dispatch.Service
	log *slog.Logger
}

// New serves svc.
func New(svc *dispatch.Service, log *slog.Logger) *Server { return &Server{svc: svc, log: log} }

// UpsertBuilding records a building of the site plan.
func (s *Server) UpsertBuilding(ctx context.Context, req *dispatchv1.UpsertBuildingRequest) (*dispatchv1.UpsertBuildingResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	b := req.GetBuilding()
	if b == nil {
		v.Add("building", "is required")
		return nil, v.Err()
	}
	compound(&v, b.GetCompound(), "building.compound")
	place(&v, b.GetBuilding(), "building.building")
	v.Check(len(b.GetUnits()) > 0, "building.units", "needs at least one unit")
	v.Check(len(b.GetUnits()) <= maxUnits, "building.units", fmt.Sprintf("at most %d units", maxUnits))
	for i, u := range b.GetUnits() {
		field := fmt.Sprintf("building.units[%d]", i)
		place(&v, u, field)
		if slices.Index(b.GetUnits(), u) < i {
			v.Add(field, "duplicates unit "+u)
		}
	}
	v.Check(b.GetFloors() >= 1 && b.GetFloors() <= maxFloors, "building.floors", fmt.Sprintf("must be 1..%d", maxFloors))
	v.Check(b.GetDistanceM() >= 0 && b.GetDistanceM() <= maxDistanceM, "building.distance_m",
		fmt.Sprintf("must be 0..%d metres", maxDistanceM))
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_UpsertBuilding_FullMethodName, b.GetCompound()); err != nil {
		return nil, err
	}
	got, err := s.svc.UpsertBuilding(ctx, req.GetRequestId(), dispatch.Building{Compound: b.GetCompound(),
		Name: b.GetBuilding(), Units: b.GetUnits(), Floors: int(b.GetFloors()), HasLift: b.GetHasLift(),
		DistanceM: int(b.GetDistanceM())})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.UpsertBuildingResponse{Building: buildingPB(got)}, nil
}

// ListBuildings returns the compound's site plan.
func (s *Server) ListBuildings(ctx context.Context, req *dispatchv1.ListBuildingsRequest) (*dispatchv1.ListBuildingsResponse, error) {
	var v grpcx.Violations
	compound(&v, req.GetCompound(), "compound")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_ListBuildings_FullMethodName, req.GetCompound()); err != nil {
		return nil, err
	}
	bs, err := s.svc.Buildings(ctx, req.GetCompound())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.ListBuildingsResponse{}
	for _, b := range bs {
		out.Buildings = append(out.Buildings, buildingPB(b))
	}
	return out, nil
}

// UpsertCourier records a courier.
func (s *Server) UpsertCourier(ctx context.Context, req *dispatchv1.UpsertCourierRequest) (*dispatchv1.UpsertCourierResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	c := req.GetCourier()
	if c == nil {
		v.Add("courier", "is required")
		return nil, v.Err()
	}
	id(&v, c.GetCourierId(), "courier.courier_id")
	compound(&v, c.GetCompound(), "courier.compound")
	v.Required(c.GetName(), "courier.name")
	v.Check(len([]rune(c.GetName())) <= maxNameLength, "courier.name", fmt.Sprintf("at most %d characters", maxNameLength))
	for i, b := range c.GetBuildings() {
		field := fmt.Sprintf("courier.buildings[%d]", i)
		place(&v, b, field)
		if slices.Index(c.GetBuildings(), b) < i {
			v.Add(field, "duplicates building "+b)
		}
	}
	for i, r := range c.GetFloorRanges() {
		field := fmt.Sprintf("courier.floor_ranges[%d]", i)
		place(&v, r.GetBuilding(), field+".building")
		v.Check(r.GetMinFloor() >= 0 && r.GetMinFloor() <= maxFloors, field+".min_floor", fmt.Sprintf("must be 0..%d", maxFloors))
		v.Check(r.GetMaxFloor() >= 0 && r.GetMaxFloor() <= maxFloors, field+".max_floor", fmt.Sprintf("must be 0..%d", maxFloors))
		v.Check(r.GetMinFloor() == 0 || r.GetMaxFloor() == 0 || r.GetMinFloor() <= r.GetMaxFloor(), field+".max_floor",
			"must not be below min_floor")
	}
	v.Check(c.GetMaxParcels() > 0 && c.GetMaxParcels() <= maxParcels, "courier.max_parcels", fmt.Sprintf("must be 1..%d", maxParcels))
	v.Check(c.GetMaxGrams() > 0 && c.GetMaxGrams() <= maxGrams, "courier.max_grams", fmt.Sprintf("must be 1..%d", maxGrams))
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_UpsertCourier_FullMethodName, c.GetCompound()); err != nil {
		return nil, err
	}
	dc := dispatch.Courier{ID: c.GetCourierId(), Compound: c.GetCompound(), Name: c.GetName(), Buildings: c.GetBuildings(),
		MaxParcels: int(c.GetMaxParcels()), MaxGrams: c.GetMaxGrams(), OnDuty: c.GetOnDuty()}
	for _, r := range c.GetFloorRanges() {
		dc.FloorRanges = append(dc.FloorRanges, dispatch.FloorRange{Building: r.GetBuilding(), MinFloor: int(r.GetMinFloor()),
			MaxFloor: int(r.GetMaxFloor())})
	}
	got, err := s.svc.UpsertCourier(ctx, req.GetRequestId(), dc)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &dispatchv1.UpsertCourierResponse{Courier: courierPB(got)}, nil
}

// ListCouriers lists the compound's couriers.
func (s *Server) ListCouriers(ctx context.Context, req *dispatchv1.ListCouriersRequest) (*dispatchv1.ListCouriersResponse, error) {
	var v grpcx.Violations
	compound(&v, req.GetCompound(), "compound")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_ListCouriers_FullMethodName, req.GetCompound()); err != nil {
		return nil, err
	}
	cs, err := s.svc.Couriers(ctx, req.GetCompound())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.ListCouriersResponse{}
	for _, c := range cs {
		out.Couriers = append(out.Couriers, courierPB(c))
	}
	return out, nil
}

// ListRounds lists a compound's rounds of one day, opening them if needed.
func (s *Server) ListRounds(ctx context.Context, req *dispatchv1.ListRoundsRequest) (*dispatchv1.ListRoundsResponse, error) {
	var v grpcx.Violations
	compound(&v, req.GetCompound(), "compound")
	if d := req.GetDate(); d != "" {
		_, err := time.Parse(rounds.DateLayout, d)
		v.Check(err == nil, "date", "must be YYYY-MM-DD")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inCompound(ctx, dispatchv1.DispatchService_ListRounds_FullMethodName, req.GetCompound()); err != nil {
		return nil, err
	}
	rounds, err := s.svc.Rounds(ctx, req.GetCompound(), req.GetDate())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.ListRoundsResponse{}
	for _, r := range rounds {
		out.Rounds = append(out.Rounds, roundPB(r))
	}
	return out, nil
}

// CheckInParcels checks parcels in at the gate.
func (s *Server) CheckInParcels(ctx context.Context, req *dispatchv1.CheckInParcelsRequest) (*dispatchv1.CheckInParcelsResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	compound(&v, req.GetCompound(), "compound")
	ids := req.GetParcelIds()
	v.Check(len(ids) > 0, "parcel_ids", "needs at least one parcel")
	v.Check(len(ids) <= maxCheckIn, "parcel_ids", fmt.Sprintf("at most %d parcels per check-in", maxCheckIn))
	for i, p := range ids {
		field := fmt.Sprintf("parcel_ids[%d]", i)
		id(&v, p, field)
		if slices.Index(ids, p) < i {
			v.Add(field, "duplicates parcel "+p)
		}
	}
	shortages := req.GetShortages()
	v.Check(len(shortages) <= maxShortages, "shortages", fmt.Sprintf("at most %d shortages per check-in", maxShortages))
	var short []dispatch.Shortage
	for i, sh := range shortages {
		field := fmt.Sprintf("shortages[%d]", i)
		v.Check(slices.Contains(ids, sh.GetParcelId()), field+".parcel_id", "must be one of parcel_ids")
		id(&v, sh.GetItemId(), field+".item_id")
		if slices.IndexFunc(shortages[:i], func(o *dispatchv1.Shortage) bool {
			return o.GetParcelId() == sh.GetParcelId() && o.GetItemId() == sh.GetItemId()
		}) >= 0 {
			v.Add(field+".item_id", "duplicates the shortage of "+sh.GetItemId()+" in this parcel")
		}
		v.Check(sh.GetMissingQuantity() >= 0, field+".missing_quantity", "must not be negative")
		v.Check(sh.GetDamagedQuantity() >= 0, field+".damaged_quantity", "must not be negative")
		v.Check(sh.GetMissingQuantity() > 0 || sh.GetDamagedQuantity() > 0, field+".missing_quantity",
			"missing_quantity or damaged_quantity must be positive")
		v.Check(len([]rune(sh.GetNote())) <= maxNote, field+".note", fmt.Sprintf("at most %d characters", maxNote))
		short = append(short, dispatch.Shortage{ParcelID: sh.GetParcelId(), ItemID: sh.GetItemId(),
			Missing: sh.GetMissingQuantity(), Damaged: sh.GetDamagedQuantity(), Note: sh.GetNote()})
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, err := inCompound(ctx, dispatchv1.DispatchService_CheckInParcels_FullMethodName, req.GetCompound())
	if err != nil {
		return nil, err
	}
	results, err := s.svc.CheckIn(ctx, dispatch.CheckIn{RequestID: req.GetRequestId(), Compound: req.GetCompound(),
		ParcelIDs: ids, Shortages: short, By: by})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.CheckInParcelsResponse{}
	for _, r := range results {
		res := &dispatchv1.CheckInResult{ParcelId: r.ParcelID, CheckedIn: r.CheckedIn, RoundId: r.RoundID, Error: r.Error}
		for _, sh := range r.Shortages {
			res.Shortages = append(res.Shortages, &dispatchv1.Shortage{ParcelId: sh.ParcelID, ItemId: sh.ItemID,
				MissingQuantity: sh.Missing, DamagedQuantity: sh.Damaged, Note: sh.Note})
		}
		out.Results = append(out.Results, res)
	}
	return out, nil
}

// PlanRound plans a round and publishes its routes.
func (s *Server) PlanRound(ctx context.Context, req *dispatchv1.PlanRoundRequest) (*dispatchv1.PlanRoundResponse, error) {
	var v grpcx.Violations
	requestID(&v, req.GetRequestId())
	roundID(&v, req.GetRoundId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, err := inRound(ctx, dispatchv1.DispatchService_PlanRound_FullMethodName, req.GetRoundId())
	if err != nil {
		return nil, err
	}
	plan, err := s.svc.PlanRound(ctx, dispatch.PlanRoundCmd{RequestID: req.GetRequestId(), RoundID: req.GetRoundId(), By: by})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.PlanRoundResponse{Round: roundPB(plan.Round), Cost: costPB(plan.Cost), LowerBound: costPB(plan.LowerBound)}
	for _, r := range plan.Routes {
		out.Routes = append(out.Routes, routePB(r))
	}
	return out, nil
}

// ListRoutes returns a round's routes.
func (s *Server) ListRoutes(ctx context.Context, req *dispatchv1.ListRoutesRequest) (*dispatchv1.ListRoutesResponse, error) {
	var v grpcx.Violations
	roundID(&v, req.GetRoundId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := inRound(ctx, dispatchv1.DispatchService_ListRoutes_FullMethodName, req.GetRoundId()); err != nil {
		return nil, err
	}
	routes, err := s.svc.Routes(ctx, req.GetRoundId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &dispatchv1.ListRoutesResponse{}
	for _, r := range routes {
		out.Routes = append(out.Routes, routePB(r))
	}
	return out, nil
}

// toStatus is the one place domain errors become status codes.
func (s *Server) toStatus(ctx context.Context, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, dispatch.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, dispatch.ErrCannotPlan), errors.Is(err, dispatch.ErrNoOpenRound),
		errors.Is(err, dispatch.ErrIllegalTransition), errors.Is(err, dispatch.ErrOffDuty):
		code = codes.FailedPrecondition
	case errors.Is(err, dispatch.ErrRequestConflict):
		code = codes.AlreadyExists
	case errors.Is(err, dispatch.ErrPeerUnavailable):
		code = codes.Unavailable
	case errors.Is(err, dispatch.ErrNotHeardYet):
		code = codes.Aborted
	case errors.As(err, new(*dispatch.FieldError)):
		var fe *dispatch.FieldError
		errors.As(err, &fe)
		return grpcx.InvalidField(fe.Field, fe.Reason)
	case errors.Is(err, dispatch.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	if code == codes.Internal {
		// A bug or an infrastructure failure: the detail goes to the log, not to the caller.
		s.log.ErrorContext(ctx, "request failed", "err", err)
		return status.Error(code, "internal error")
	}
	return status.Error(code, err.Error())
}

func requestID(v *grpcx.Violations, s string) {
	v.Required(s, "request_id")
	v.Check(len(s) <= maxRequestID, "request_id", fmt.Sprintf("at most %d bytes", maxRequestID))
}

func compound(v *grpcx.Violations, s, field string) {
	if s == "" {
		v.Add(field, "is required")
		return
	}
	v.Check(events.ValidCompound(s), field, "must be a slug: lower-case letters, digits and '-'")
}

func place(v *grpcx.Violations, s, field string) {
	if s == "" {
		v.Add(field, "is required")
		return
	}
	v.Check(placeRE.MatchString(s), field, "must be 1-16 letters or digits")
}

func id(v *grpcx.Violations, s, field string) {
	if s == "" {
		v.Add(field, "is required")
		return
	}
	v.Check(idRE.MatchString(s), field, "must be 1-128 letters, digits, '.', '_', ':' or '-'")
}

func roundID(v *grpcx.Violations, s string) { roundIDField(v, s, "round_id") }

func roundIDField(v *grpcx.Violations, s, field string) {
	if s == "" {
		v.Add(field, "is required")
		return
	}
	c, _, _, err := dispatch.ParseRoundID(s)
	v.Check(err == nil && events.ValidCompound(c), field, "must be <compound>-<YYYY-MM-DD>-<slot>")
}

func buildingPB(b dispatch.Building) *dispatchv1.Building {
	return &dispatchv1.Building{Compound: b.Compound, Building: b.Name, Units: b.Units, Floors: int32(b.Floors),
		HasLift: b.HasLift, DistanceM: int32(b.DistanceM)}
}

func courierPB(c dispatch.Courier) *dispatchv1.Courier {
	out := &dispatchv1.Courier{CourierId: c.ID, Compound: c.Compound, Name: c.Name, Buildings: c.Buildings,
		MaxParcels: int32(c.MaxParcels), MaxGrams: c.MaxGrams, OnDuty: c.OnDuty}
	for _, r := range c.FloorRanges {
		out.FloorRanges = append(out.FloorRanges, &dispatchv1.FloorRange{Building: r.Building, MinFloor: int32(r.MinFloor),
			MaxFloor: int32(r.MaxFloor)})
	}
	return out
}

var roundStates = map[dispatch.RoundState]dispatchv1.RoundState{
	dispatch.RoundOpen:    dispatchv1.RoundState_ROUND_STATE_OPEN,
	dispatch.RoundClosed:  dispatchv1.RoundState_ROUND_STATE_CLOSED,
	dispatch.RoundPlanned: dispatchv1.RoundState_ROUND_STATE_PLANNED,
	dispatch.RoundDone:    dispatchv1.RoundState_ROUND_STATE_DONE,
}

func roundPB(r dispatch.Round) *dispatchv1.Round {
	return &dispatchv1.Round{RoundId: r.ID, Compound: r.Compound, Date: r.Date, Slot: r.Slot,
		Cutoff: timestamppb.New(r.Cutoff), State: roundStates[r.State], Parcels: int32(r.Parcels)}
}

func costPB(c dispatch.Cost) *dispatchv1.PlanCost {
	return &dispatchv1.PlanCost{Metres: c.Metres, Floors: c.Floors, Trips: int32(c.Trips)}
}

func routePB(r dispatch.Route) *dispatchv1.Route {
	out := &dispatchv1.Route{RouteId: r.ID, RoundId: r.RoundID, CourierId: r.CourierID, Cost: costPB(r.Cost),
		Version: int32(r.Version)}
	for _, s := range r.Stops {
		ps := &dispatchv1.Stop{Sequence: int32(s.Sequence), Trip: int32(s.Trip), HouseholdId: s.HouseholdID,
			Address: &typesv1.Address{Compound: s.Address.Compound, Building: s.Address.Building, Unit: s.Address.Unit,
				Floor: int32(s.Address.Floor), Room: s.Address.Room},
			Priority: s.Priority, Contactless: s.Contactless, WeightGrams: s.WeightGrams, Pinned: s.Pinned}
		for _, p := range s.Parcels {
			ps.ParcelIds = append(ps.ParcelIds, p.ParcelID)
		}
		out.Stops = append(out.Stops, ps)
	}
	return out
}
