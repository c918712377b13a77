package app_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Fakes of the staff consoles' peers: enough behaviour to see requests mapped and answers
// rendered. Methods they leave out answer UNIMPLEMENTED, as a service still being built does.

func (c *calls) keep(ctx context.Context, method string, req proto.Message) {
	c.record(ctx, method)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last[method] = req
}

// lastReq is the last request of a method.
func lastReq[T proto.Message](c *calls, method string) T {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, _ := c.last[method].(T)
	return v
}

const parcelFM = "019a0000-0000-7000-9000-0000000000f1"

// parcelPH is the pharmacy's parcel, checked in already.
const parcelPH = "019a0000-0000-7000-9000-0000000000f2"

func supplierParcel(supplierID string, state typesv1.ParcelState) *supplierv1.SupplierParcel {
	id := parcelFM
	if supplierID == "haixin-pharmacy" {
		id = parcelPH
	}
	return &supplierv1.SupplierParcel{ParcelId: id, OrderId: "019a0000-0000-7000-8000-0000000000f1", SupplierId: supplierID,
		HouseholdId: "haixin-3-2-302", State: state, RoundId: "haixin-2022-04-10-am", TotalFen: 525,
		Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
		Lines: []*supplierv1.ParcelLine{{ItemId: "cabbage", Name: "大白菜 Napa cabbage", Unit: "kg", Weighed: true, Quantity: 1500,
			UnitPriceFen: 350, AmountFen: 525}},
		UpdatedAt: timestamppb.New(placedAt)}
}

func (f *fakeSupplier) ListParcels(ctx context.Context, req *supplierv1.ListParcelsRequest) (*supplierv1.ListParcelsResponse, error) {
	f.calls.keep(ctx, "ListParcels", req)
	// The donated stock has no parcels but campaign packs.
	if req.GetCampaignId() != "" || req.GetSupplierId() == "haixin-donations" {
		return f.listPacks(req), nil
	}
	state := req.GetState()
	if state == typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED {
		state = typesv1.ParcelState_PARCEL_STATE_PLACED
	}
	// READY is two pages, one parcel each, as the real service pages a long list.
	switch {
	case state != typesv1.ParcelState_PARCEL_STATE_READY && req.GetPageToken() == "":
	case state == typesv1.ParcelState_PARCEL_STATE_READY && req.GetPageToken() == "":
		return &supplierv1.ListParcelsResponse{Parcels: []*supplierv1.SupplierParcel{supplierParcel(req.GetSupplierId(), state)},
			NextPageToken: "ready-2"}, nil
	case state == typesv1.ParcelState_PARCEL_STATE_READY && req.GetPageToken() == "ready-2":
		p := supplierParcel(req.GetSupplierId(), state)
		p.ParcelId = "019a0000-0000-7000-8000-0000000000e2"
		return &supplierv1.ListParcelsResponse{Parcels: []*supplierv1.SupplierParcel{p}}, nil
	default:
		return nil, grpcx.InvalidField("page_token", "is not a token of this listing (the same supplier, filters and order)")
	}
	return &supplierv1.ListParcelsResponse{Parcels: []*supplierv1.SupplierParcel{supplierParcel(req.GetSupplierId(), state)}}, nil
}

func (f *fakeSupplier) ConfirmParcel(ctx context.Context, req *supplierv1.ConfirmParcelRequest) (*supplierv1.ConfirmParcelResponse, error) {
	f.calls.keep(ctx, "ConfirmParcel", req)
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	for i, l := range req.GetLines() {
		v.Check(l.Quantity == nil || l.GetQuantity() >= 0, fmt.Sprintf("lines[%d].quantity", i), "must not be negative")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if req.GetParcelId() != parcelFM {
		return nil, status.Errorf(codes.NotFound, "parcel %s not found", req.GetParcelId())
	}
	p := supplierParcel(req.GetSupplierId(), typesv1.ParcelState_PARCEL_STATE_CONFIRMED)
	for _, l := range req.GetLines() {
		if l.Quantity != nil {
			p.Lines[0].ConfirmedQuantity = l.GetQuantity()
			p.Lines[0].ConfirmedAmountFen = (l.GetQuantity()*350 + 500) / 1000
		}
	}
	return &supplierv1.ConfirmParcelResponse{Parcel: p}, nil
}

func (f *fakeSupplier) RejectParcel(ctx context.Context, req *supplierv1.RejectParcelRequest) (*supplierv1.RejectParcelResponse, error) {
	f.calls.keep(ctx, "RejectParcel", req)
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	v.Required(req.GetReason(), "reason")
	if err := v.Err(); err != nil {
		return nil, err
	}
	p := supplierParcel(req.GetSupplierId(), typesv1.ParcelState_PARCEL_STATE_REJECTED)
	p.Reason = req.GetReason()
	return &supplierv1.RejectParcelResponse{Parcel: p}, nil
}

func (f *fakeSupplier) MarkParcelReady(ctx context.Context, req *supplierv1.MarkParcelReadyRequest) (*supplierv1.MarkParcelReadyResponse, error) {
	f.calls.keep(ctx, "MarkParcelReady", req)
	if req.GetRequestId() == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	if strings.HasPrefix(req.GetParcelId(), "pack-") {
		return f.markPackReady(ctx, req)
	}
	return &supplierv1.MarkParcelReadyResponse{Parcel: supplierParcel(req.GetSupplierId(), typesv1.ParcelState_PARCEL_STATE_READY)}, nil
}

func (f *fakeSupplier) BatchGetItems(ctx context.Context, req *supplierv1.BatchGetItemsRequest) (*supplierv1.BatchGetItemsResponse, error) {
	f.calls.keep(ctx, "BatchGetItems", req)
	resp := &supplierv1.BatchGetItemsResponse{}
	for _, id := range req.GetItemIds() {
		it, ok := catalogItems[id]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "item %s not found", id)
		}
		resp.Items = append(resp.Items, it)
	}
	return resp, nil
}

func (f *fakeSupplier) UpsertItem(ctx context.Context, req *supplierv1.UpsertItemRequest) (*supplierv1.UpsertItemResponse, error) {
	f.calls.keep(ctx, "UpsertItem", req)
	if req.GetRequestId() == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	it := proto.Clone(req.GetItem()).(*supplierv1.Item)
	if it.GetCurrentPriceFen() > it.GetReferencePriceFen() {
		return nil, grpcx.InvalidField("item.current_price_fen", "must not exceed the reference price")
	}
	if stored, ok := catalogItems[it.GetItemId()]; ok {
		it.Stock = stored.GetStock() // as the service does: an existing item keeps its stock
	}
	return &supplierv1.UpsertItemResponse{Item: it}, nil
}

func (f *fakeSupplier) AdjustStock(ctx context.Context, req *supplierv1.AdjustStockRequest) (*supplierv1.AdjustStockResponse, error) {
	f.calls.keep(ctx, "AdjustStock", req)
	if req.GetRequestId() == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	it, ok := catalogItems[req.GetItemId()]
	if !ok || it.GetSupplierId() != req.GetSupplierId() {
		return nil, status.Errorf(codes.NotFound, "item %s not found", req.GetItemId())
	}
	if it.GetStock()+req.GetDelta() < 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "%s: only %d in stock", it.GetName(), it.GetStock())
	}
	out := proto.Clone(it).(*supplierv1.Item)
	out.Stock += req.GetDelta()
	return &supplierv1.AdjustStockResponse{Item: out}, nil
}

func (f *fakeOrder) GetHousehold(ctx context.Context, req *orderv1.GetHouseholdRequest) (*orderv1.GetHouseholdResponse, error) {
	f.calls.keep(ctx, "GetHousehold", req)
	parts := strings.Split(req.GetHouseholdId(), "-")
	if len(parts) != 4 || parts[1] == "99" {
		return nil, status.Errorf(codes.NotFound, "household %s not found", req.GetHouseholdId())
	}
	return &orderv1.GetHouseholdResponse{Household: &orderv1.Household{HouseholdId: req.GetHouseholdId(),
		Address:   &typesv1.Address{Compound: parts[0], Building: parts[1], Unit: parts[2], Room: parts[3], Floor: 3},
		Residents: 1, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED, Occupied: true, Over_80: true, LivesAlone: true, Priority: true}}, nil
}

// GetParcel knows the two suppliers' parcels: FreshMart's READY, the pharmacy's already AT_GATE.
func (f *fakeOrder) GetParcel(ctx context.Context, req *orderv1.GetParcelRequest) (*orderv1.GetParcelResponse, error) {
	f.calls.keep(ctx, "GetParcel", req)
	switch req.GetParcelId() {
	case parcelFM:
		return &orderv1.GetParcelResponse{Parcel: &orderv1.Parcel{ParcelId: parcelFM, State: typesv1.ParcelState_PARCEL_STATE_READY}}, nil
	case parcelPH:
		return &orderv1.GetParcelResponse{Parcel: &orderv1.Parcel{ParcelId: parcelPH, State: typesv1.ParcelState_PARCEL_STATE_AT_GATE}}, nil
	}
	return nil, status.Errorf(codes.NotFound, "parcel %s not found", req.GetParcelId())
}

// ListParcelsToCheckIn answers what waits at the gate: FreshMart's parcel (the pharmacy's is
// AT_GATE already) and the campaign packs handed over, a few at a time like listPacks.
func (f *fakeOrder) ListParcelsToCheckIn(ctx context.Context, req *orderv1.ListParcelsToCheckInRequest) (*orderv1.ListParcelsToCheckInResponse, error) {
	f.calls.keep(ctx, "ListParcelsToCheckIn", req)
	if req.GetCompound() != "haixin" {
		return &orderv1.ListParcelsToCheckInResponse{}, nil
	}
	sp := supplierParcel("haixin-freshmart", typesv1.ParcelState_PARCEL_STATE_READY)
	all := []*orderv1.Parcel{orderParcel(sp)}
	for token := ""; ; {
		packs := f.supplier.listPacks(&supplierv1.ListParcelsRequest{SupplierId: "haixin-donations",
			State: typesv1.ParcelState_PARCEL_STATE_READY, PageToken: token})
		for _, p := range packs.GetParcels() {
			all = append(all, orderParcel(p))
		}
		if token = packs.GetNextPageToken(); token == "" {
			break
		}
	}
	from, _ := strconv.Atoi(req.GetPageToken())
	from = min(from, len(all))
	to := min(from+packsPage, len(all))
	resp := &orderv1.ListParcelsToCheckInResponse{Parcels: all[from:to]}
	if to < len(all) {
		resp.NextPageToken = strconv.Itoa(to)
	}
	return resp, nil
}

// orderParcel is the order service's record of a supplier's parcel.
func orderParcel(p *supplierv1.SupplierParcel) *orderv1.Parcel {
	out := &orderv1.Parcel{ParcelId: p.GetParcelId(), OrderId: p.GetOrderId(), SupplierId: p.GetSupplierId(),
		HouseholdId: p.GetHouseholdId(), State: p.GetState(), TotalFen: p.GetTotalFen(), Address: p.GetAddress(), UpdatedAt: p.GetUpdatedAt()}
	for _, l := range p.GetLines() {
		out.Lines = append(out.Lines, &orderv1.OrderLine{ItemId: l.GetItemId(), Name: l.GetName(), Unit: l.GetUnit(), Weighed: l.GetWeighed(),
			Quantity: l.GetQuantity(), UnitPriceFen: l.GetUnitPriceFen(), AmountFen: l.GetAmountFen()})
	}
	return out
}

func (f *fakeOrder) ListHouseholds(ctx context.Context, req *orderv1.ListHouseholdsRequest) (*orderv1.ListHouseholdsResponse, error) {
	f.calls.keep(ctx, "ListHouseholds", req)
	resp := &orderv1.ListHouseholdsResponse{NextPageToken: "next"}
	for _, id := range []string{"haixin-1-1-101", "haixin-3-2-302"} {
		h, _ := f.GetHousehold(ctx, &orderv1.GetHouseholdRequest{HouseholdId: id})
		resp.Households = append(resp.Households, h.GetHousehold())
	}
	return resp, nil
}

type fakeDispatch struct {
	dispatchv1.UnimplementedDispatchServiceServer
	calls *calls
}

var amRound = &dispatchv1.Round{RoundId: "haixin-2022-04-10-am", Compound: "haixin", Date: "2022-04-10", Slot: "am",
	Cutoff: timestamppb.New(placedAt.Add(time.Hour)), State: dispatchv1.RoundState_ROUND_STATE_OPEN, Parcels: 1}

var plannedRoute = &dispatchv1.Route{RouteId: "route-1", RoundId: "haixin-2022-04-10-am", CourierId: "haixin-courier-02", Version: 1,
	Cost: &dispatchv1.PlanCost{Metres: 310, Floors: 6, Trips: 1},
	Stops: []*dispatchv1.Stop{{Sequence: 1, Trip: 1, HouseholdId: "haixin-3-2-302", ParcelIds: []string{parcelFM}, Priority: true,
		Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}, WeightGrams: 1500}}}

func (f *fakeDispatch) ListRounds(ctx context.Context, req *dispatchv1.ListRoundsRequest) (*dispatchv1.ListRoundsResponse, error) {
	f.calls.keep(ctx, "ListRounds", req)
	return &dispatchv1.ListRoundsResponse{Rounds: []*dispatchv1.Round{amRound}}, nil
}

func (f *fakeDispatch) CheckInParcels(ctx context.Context, req *dispatchv1.CheckInParcelsRequest) (*dispatchv1.CheckInParcelsResponse, error) {
	f.calls.keep(ctx, "CheckInParcels", req)
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	v.Check(len(req.GetParcelIds()) > 0, "parcel_ids", "must name at least one parcel")
	if err := v.Err(); err != nil {
		return nil, err
	}
	resp := &dispatchv1.CheckInParcelsResponse{}
	for _, id := range req.GetParcelIds() {
		r := &dispatchv1.CheckInResult{ParcelId: id, CheckedIn: id == parcelFM, RoundId: amRound.GetRoundId()}
		if !r.CheckedIn {
			r.RoundId, r.Error = "", "parcel is not READY"
		}
		for _, s := range req.GetShortages() {
			if s.GetParcelId() == id {
				r.Shortages = append(r.Shortages, s)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func (f *fakeDispatch) PlanRound(ctx context.Context, req *dispatchv1.PlanRoundRequest) (*dispatchv1.PlanRoundResponse, error) {
	f.calls.keep(ctx, "PlanRound", req)
	if req.GetRoundId() != amRound.GetRoundId() {
		return nil, status.Errorf(codes.NotFound, "round %s not found", req.GetRoundId())
	}
	planned := proto.Clone(amRound).(*dispatchv1.Round)
	planned.State = dispatchv1.RoundState_ROUND_STATE_PLANNED
	return &dispatchv1.PlanRoundResponse{Round: planned, Routes: []*dispatchv1.Route{plannedRoute},
		Cost: plannedRoute.GetCost(), LowerBound: &dispatchv1.PlanCost{Metres: 300, Floors: 6, Trips: 1}}, nil
}

func (f *fakeDispatch) ListRoutes(ctx context.Context, req *dispatchv1.ListRoutesRequest) (*dispatchv1.ListRoutesResponse, error) {
	f.calls.keep(ctx, "ListRoutes", req)
	return &dispatchv1.ListRoutesResponse{Routes: []*dispatchv1.Route{plannedRoute}}, nil
}

func (f *fakeDispatch) ListCouriers(ctx context.Context, req *dispatchv1.ListCouriersRequest) (*dispatchv1.ListCouriersResponse, error) {
	f.calls.keep(ctx, "ListCouriers", req)
	return &dispatchv1.ListCouriersResponse{Couriers: []*dispatchv1.Courier{{CourierId: "haixin-courier-02", Compound: "haixin",
		Name: "李师傅", Buildings: []string{"3", "4"}, MaxParcels: 20, MaxGrams: 30000, OnDuty: true}}}, nil
}

type fakeCourier struct {
	courierv1.UnimplementedCourierServiceServer
	calls *calls
}

func courierRouteOf(courierID string, status courierv1.StopStatus) *courierv1.CourierRoute {
	return &courierv1.CourierRoute{RouteId: "route-1", RoundId: "haixin-2022-04-10-am", CourierId: courierID, Version: 1,
		Stops: []*courierv1.CourierStop{{Sequence: 1, Trip: 1, HouseholdId: "haixin-3-2-302", Priority: true,
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Parcels: []*courierv1.CourierParcel{{ParcelId: parcelFM, OrderId: "019a0000-0000-7000-8000-0000000000f1", Status: status}}}}}
}

func (f *fakeCourier) GetRoute(ctx context.Context, req *courierv1.GetRouteRequest) (*courierv1.GetRouteResponse, error) {
	f.calls.keep(ctx, "GetRoute", req)
	return &courierv1.GetRouteResponse{Route: courierRouteOf(req.GetCourierId(), courierv1.StopStatus_STOP_STATUS_PENDING)}, nil
}

// WatchRoute sends the route and then a newer version, as after a dispatcher's move.
func (f *fakeCourier) WatchRoute(req *courierv1.WatchRouteRequest, stream courierv1.CourierService_WatchRouteServer) error {
	f.calls.keep(stream.Context(), "WatchRoute", req)
	first := courierRouteOf(req.GetCourierId(), courierv1.StopStatus_STOP_STATUS_PENDING)
	if err := stream.Send(&courierv1.WatchRouteResponse{Route: first}); err != nil {
		return err
	}
	moved := courierRouteOf(req.GetCourierId(), courierv1.StopStatus_STOP_STATUS_PENDING)
	moved.Version = 2
	moved.Stops = append(moved.Stops, &courierv1.CourierStop{Sequence: 2, Trip: 1, HouseholdId: "haixin-3-2-402",
		Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 4, Room: "402"}})
	if err := stream.Send(&courierv1.WatchRouteResponse{Route: moved}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (f *fakeCourier) PickUp(ctx context.Context, req *courierv1.PickUpRequest) (*courierv1.PickUpResponse, error) {
	f.calls.keep(ctx, "PickUp", req)
	if req.GetRouteId() != "route-1" {
		return nil, status.Errorf(codes.NotFound, "route %s not found", req.GetRouteId())
	}
	return &courierv1.PickUpResponse{Route: courierRouteOf(req.GetCourierId(), courierv1.StopStatus_STOP_STATUS_OUT_FOR_DELIVERY)}, nil
}

func (f *fakeCourier) MarkDelivered(ctx context.Context, req *courierv1.MarkDeliveredRequest) (*courierv1.MarkDeliveredResponse, error) {
	f.calls.keep(ctx, "MarkDelivered", req)
	return &courierv1.MarkDeliveredResponse{Parcel: &courierv1.CourierParcel{ParcelId: req.GetParcelId(), Status: courierv1.StopStatus_STOP_STATUS_DELIVERED}}, nil
}

func (f *fakeCourier) MarkFailed(ctx context.Context, req *courierv1.MarkFailedRequest) (*courierv1.MarkFailedResponse, error) {
	f.calls.keep(ctx, "MarkFailed", req)
	if req.GetReason() == courierv1.FailureReason_FAILURE_REASON_OTHER && req.GetNote() == "" {
		return nil, grpcx.InvalidField("note", "is required when the reason is OTHER")
	}
	return &courierv1.MarkFailedResponse{Parcel: &courierv1.CourierParcel{ParcelId: req.GetParcelId(), Status: courierv1.StopStatus_STOP_STATUS_FAILED}}, nil
}

func (f *fakeCourier) CompleteStops(ctx context.Context, req *courierv1.CompleteStopsRequest) (*courierv1.CompleteStopsResponse, error) {
	f.calls.keep(ctx, "CompleteStops", req)
	resp := &courierv1.CompleteStopsResponse{}
	for _, o := range req.GetOutcomes() {
		st := courierv1.StopStatus_STOP_STATUS_DELIVERED
		if o.GetFailed() != nil {
			st = courierv1.StopStatus_STOP_STATUS_FAILED
		}
		r := &courierv1.OutcomeResult{ParcelId: o.GetParcelId(), Recorded: o.GetParcelId() == parcelFM,
			Parcel: &courierv1.CourierParcel{ParcelId: o.GetParcelId(), Status: st}}
		if !r.Recorded {
			r.Error, r.Parcel = "parcel not on your route", nil
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
