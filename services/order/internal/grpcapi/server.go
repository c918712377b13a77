// Package grpcapi is the order service's gRPC transport: it says who may call each method
// (Policy) and passes the verified caller to the domain, validates requests at the edge (naming
// each bad field), maps proto to the domain and back, and turns domain errors into status codes
// in one function.
package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"
	"github.com/google/uuid"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// Limits of a request.
const (
	maxLines          = 50
	maxQuantity       = 1_000_000 // units, or grams (a tonne) for weighed goods
	maxRequestID      = 128
	maxReason         = 500
	defaultPageSize   = 100
	defaultOrdersPage = 50
	defaultGatePage   = 500
)

var householdIDRE = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N}-]{0,127}$`)

// Server implements orderv1.OrderServiceServer.
type Server struct {
	orderv1.UnimplementedOrderServiceServer
	svc *order.Service
	log *slog.Logger
}

// New returns the transport for svc.
func New(svc *order.Service, log *slog.Logger) *Server { return &Server{svc: svc, log: log} }

func (s *Server) err(ctx context.Context, err error) error { return toStatus(ctx, s.log, err) }

// UpsertHousehold implements orderv1.OrderServiceServer.
func (s *Server) UpsertHousehold(ctx context.Context, req *orderv1.UpsertHouseholdRequest) (*orderv1.UpsertHouseholdResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_UpsertHousehold_FullMethodName)
	if err != nil {
		return nil, err
	}
	h, err := upsertRequest(req)
	if err != nil {
		return nil, err
	}
	out, err := s.svc.UpsertHousehold(ctx, c, req.GetRequestId(), h)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.UpsertHouseholdResponse{Household: pbconv.HouseholdProto(out, s.svc.Now())}, nil
}

// upsertRequest validates an UpsertHousehold request and maps its household. The output-only
// fields (priority, quarantined, occupied) are ignored, not refused, so a client can send back a
// household it read.
func upsertRequest(req *orderv1.UpsertHouseholdRequest) (order.Household, error) {
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	ph := req.GetHousehold()
	if ph == nil {
		v.Add("household", "is required")
		return order.Household{}, v.Err()
	}
	if id := ph.GetHouseholdId(); id != "" {
		v.Check(householdIDRE.MatchString(id), "household.household_id", "must be 1 to 128 letters, digits or '-'")
	}
	a := ph.GetAddress()
	if a == nil {
		v.Add("household.address", "is required")
	} else {
		v.Check(events.ValidCompound(a.GetCompound()), "household.address.compound", "must be a compound slug: lower-case letters, digits and '-'")
	}
	h := pbconv.Household(ph)
	h.Phone = strings.TrimSpace(h.Phone)
	for _, fe := range order.CheckHousehold(h) {
		if a == nil && strings.HasPrefix(fe.Field, "address.") {
			continue
		}
		v.Add("household."+fe.Field, fe.Reason)
	}
	if err := v.Err(); err != nil {
		return order.Household{}, err
	}
	return h, nil
}

// GetHousehold implements orderv1.OrderServiceServer.
func (s *Server) GetHousehold(ctx context.Context, req *orderv1.GetHouseholdRequest) (*orderv1.GetHouseholdResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_GetHousehold_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkHouseholdID(&v, req.GetHouseholdId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	h, err := s.svc.Household(ctx, c, req.GetHouseholdId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.GetHouseholdResponse{Household: pbconv.HouseholdProto(h, s.svc.Now())}, nil
}

// ListHouseholds implements orderv1.OrderServiceServer. The page token is opaque to clients: the
// last id of the previous page with its compound, so a token cannot wander into another compound.
func (s *Server) ListHouseholds(ctx context.Context, req *orderv1.ListHouseholdsRequest) (*orderv1.ListHouseholdsResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ListHouseholds_FullMethodName)
	if err != nil {
		return nil, err
	}
	after, size, err := compoundPage(req.GetCompound(), req.GetPageSize(), req.GetPageToken(), defaultPageSize)
	if err != nil {
		return nil, err
	}
	hs, err := s.svc.Households(ctx, c, req.GetCompound(), after, size+1)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	resp := &orderv1.ListHouseholdsResponse{}
	if len(hs) > size {
		hs = hs[:size]
		resp.NextPageToken = grpcx.PageToken(req.GetCompound(), hs[size-1].ID)
	}
	now := s.svc.Now()
	for _, h := range hs {
		resp.Households = append(resp.Households, pbconv.HouseholdProto(h, now))
	}
	return resp, nil
}

// compoundPage checks the fields of a listing of one compound, a page at a time, and answers
// where its page starts (after the key in the token) and how long it is.
func compoundPage(compound string, pageSize int32, token string, def int) (after string, size int, err error) {
	var v grpcx.Violations
	v.Check(events.ValidCompound(compound), "compound", "must be a compound slug")
	v.Check(pageSize >= 0, "page_size", "must not be negative")
	after, ok := grpcx.ParsePageToken(token, compound)
	v.Check(ok, "page_token", "is not a token of this listing")
	return after, grpcx.PageSize(pageSize, def), v.Err()
}

// parseGatePosition reads the key of a gate list's page token: "<time> <parcel id>", or "" for
// the first page.
func parseGatePosition(key string) (order.GatePosition, bool) {
	if key == "" {
		return order.GatePosition{}, true
	}
	at, id, found := strings.Cut(key, " ")
	t, err := time.Parse(time.RFC3339Nano, at)
	u, uerr := uuid.Parse(id)
	if !found || err != nil || uerr != nil || u.String() != id {
		return order.GatePosition{}, false
	}
	return order.GatePosition{ReadyAt: t, ParcelID: id}, true
}

// ListParcelsToCheckIn implements orderv1.OrderServiceServer. The page token is the compound with
// where the previous page ended: its last parcel's time of becoming READY, and its id.
func (s *Server) ListParcelsToCheckIn(ctx context.Context, req *orderv1.ListParcelsToCheckInRequest) (*orderv1.ListParcelsToCheckInResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ListParcelsToCheckIn_FullMethodName)
	if err != nil {
		return nil, err
	}
	after, size, err := compoundPage(req.GetCompound(), req.GetPageSize(), req.GetPageToken(), defaultGatePage)
	if err != nil {
		return nil, err
	}
	pos, ok := parseGatePosition(after)
	if !ok {
		return nil, grpcx.InvalidField("page_token", "is not a token of this listing")
	}
	ps, err := s.svc.ParcelsToCheckIn(ctx, c, req.GetCompound(), pos, size+1)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	resp := &orderv1.ListParcelsToCheckInResponse{}
	if len(ps) > size {
		ps = ps[:size]
		last := ps[size-1]
		resp.NextPageToken = grpcx.PageToken(req.GetCompound(), last.UpdatedAt.UTC().Format(time.RFC3339Nano)+" "+last.ID)
	}
	for _, p := range ps {
		resp.Parcels = append(resp.Parcels, pbconv.ParcelProto(p))
	}
	return resp, nil
}

// ImportHouseholds implements orderv1.OrderServiceServer.
func (s *Server) ImportHouseholds(ctx context.Context, req *orderv1.ImportHouseholdsRequest) (*orderv1.ImportHouseholdsResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ImportHouseholds_FullMethodName)
	if err != nil {
		return nil, err
	}
	r, err := importRequest(req)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.ImportHouseholds(ctx, c, r)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return importResponse(res), nil
}

// importRequest validates an ImportHouseholds request. The file itself is the domain's to read:
// what is wrong in it is reported row by row in the response, not as INVALID_ARGUMENT.
func importRequest(req *orderv1.ImportHouseholdsRequest) (order.ImportRequest, error) {
	var v grpcx.Violations
	if req.GetDryRun() {
		// A dry run changes nothing, so it needs no key.
		v.Check(len(req.GetRequestId()) <= maxRequestID, "request_id", fmt.Sprintf("must be at most %d characters", maxRequestID))
	} else {
		checkRequestID(&v, req.GetRequestId())
	}
	v.Check(events.ValidCompound(req.GetCompound()), "compound", "must be a compound slug")
	v.Check(len(req.GetCsv()) > 0, "csv", "is required")
	if err := v.Err(); err != nil {
		return order.ImportRequest{}, err
	}
	return order.ImportRequest{RequestID: req.GetRequestId(), Compound: req.GetCompound(), CSV: req.GetCsv(), DryRun: req.GetDryRun()}, nil
}

func importResponse(res order.ImportResult) *orderv1.ImportHouseholdsResponse {
	resp := &orderv1.ImportHouseholdsResponse{Rows: int32(res.Rows), Created: int32(res.Created), Updated: int32(res.Updated),
		Unchanged: int32(res.Unchanged), Applied: res.Applied}
	for _, e := range res.Errors {
		// RowError.column and .message are proto strings, which must be UTF-8; the file may not be.
		resp.Errors = append(resp.Errors, &orderv1.RowError{Line: int32(e.Line), Column: strings.ToValidUTF8(e.Column, "\uFFFD"),
			Message: strings.ToValidUTF8(e.Message, "\uFFFD")})
	}
	return resp
}

// ExportHouseholds implements orderv1.OrderServiceServer.
func (s *Server) ExportHouseholds(ctx context.Context, req *orderv1.ExportHouseholdsRequest) (*orderv1.ExportHouseholdsResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ExportHouseholds_FullMethodName)
	if err != nil {
		return nil, err
	}
	if !events.ValidCompound(req.GetCompound()) {
		return nil, grpcx.InvalidField("compound", "must be a compound slug")
	}
	csv, err := s.svc.ExportHouseholds(ctx, c, req.GetCompound())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.ExportHouseholdsResponse{Csv: csv}, nil
}

// PlaceOrder implements orderv1.OrderServiceServer.
func (s *Server) PlaceOrder(ctx context.Context, req *orderv1.PlaceOrderRequest) (*orderv1.PlaceOrderResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_PlaceOrder_FullMethodName)
	if err != nil {
		return nil, err
	}
	r, err := placeRequest(req)
	if err != nil {
		return nil, err
	}
	o, err := s.svc.PlaceOrder(ctx, c, r)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.PlaceOrderResponse{Order: pbconv.OrderProto(o)}, nil
}

// placeRequest validates a PlaceOrder request and maps it to the domain.
func placeRequest(req *orderv1.PlaceOrderRequest) (order.PlaceRequest, error) {
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkHouseholdID(&v, req.GetHouseholdId())
	n := len(req.GetLines())
	v.Check(n >= 1 && n <= maxLines, "lines", fmt.Sprintf("must hold 1 to %d lines", maxLines))
	seen := map[string]int{}
	lines := make([]order.BasketLine, 0, min(n, maxLines))
	for i, l := range req.GetLines() {
		if i == maxLines {
			break // refused already; naming every line of a thousand helps nobody
		}
		f := fmt.Sprintf("lines[%d]", i)
		switch first, dup := seen[l.GetItemId()]; {
		case l.GetItemId() == "":
			v.Add(f+".item_id", "is required")
		case dup:
			v.Add(f+".item_id", fmt.Sprintf("duplicates lines[%d].item_id %q; put the whole quantity on one line", first, l.GetItemId()))
		default:
			seen[l.GetItemId()] = i
		}
		v.Check(l.GetQuantity() > 0, f+".quantity", "must be positive")
		v.Check(l.GetQuantity() <= maxQuantity, f+".quantity", fmt.Sprintf("must be at most %d", maxQuantity))
		lines = append(lines, order.BasketLine{ItemID: l.GetItemId(), Quantity: l.GetQuantity()})
	}
	_, known := orderv1.Channel_name[int32(req.GetChannel())]
	v.Check(known, "channel", "is not a known channel")
	v.Check(req.GetChannel() != orderv1.Channel_CHANNEL_CAMPAIGN, "channel", "campaign packs are made by LaunchCampaign, not ordered")
	checkActor(&v, "placed_by", req.GetPlacedBy())
	if err := v.Err(); err != nil {
		return order.PlaceRequest{}, err
	}
	return order.PlaceRequest{RequestID: req.GetRequestId(), HouseholdID: req.GetHouseholdId(),
		Lines: lines, Channel: pbconv.Channel(req.GetChannel()), PlacedBy: pbconv.Actor(req.GetPlacedBy())}, nil
}

// checkHouseholdID checks a household id named by a request, in the form household ids take.
func checkHouseholdID(v *grpcx.Violations, id string) {
	if id == "" {
		v.Add("household_id", "is required")
		return
	}
	v.Check(householdIDRE.MatchString(id), "household_id", "must be 1 to 128 letters, digits or '-'")
}

func checkRequestID(v *grpcx.Violations, id string) {
	v.Required(id, "request_id")
	v.Check(len(id) <= maxRequestID, "request_id", fmt.Sprintf("must be at most %d characters", maxRequestID))
}

// checkActor accepts no actor (the caller, or for a service acting on its own the household
// itself) or a complete one of a role that may order for a household. Who a person may name is
// the domain's to judge (order.Caller).
func checkActor(v *grpcx.Violations, field string, a *typesv1.Actor) {
	if a == nil || (a.GetRole() == typesv1.Role_ROLE_UNSPECIFIED && a.GetId() == "") {
		return
	}
	switch a.GetRole() {
	case typesv1.Role_ROLE_RESIDENT, typesv1.Role_ROLE_WORKER, typesv1.Role_ROLE_SYSTEM:
	case typesv1.Role_ROLE_UNSPECIFIED:
		v.Add(field+".role", "is required")
	default:
		v.Add(field+".role", "must be RESIDENT, WORKER or SYSTEM")
	}
	v.Required(a.GetId(), field+".id")
}

func checkUUID(v *grpcx.Violations, id, field string) {
	switch {
	case id == "":
		v.Add(field, "is required")
	case uuid.Validate(id) != nil:
		v.Add(field, "must be a UUID")
	}
}

// GetOrder implements orderv1.OrderServiceServer.
func (s *Server) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_GetOrder_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkUUID(&v, req.GetOrderId(), "order_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	o, err := s.svc.Order(ctx, c, req.GetOrderId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.GetOrderResponse{Order: pbconv.OrderProto(o)}, nil
}

// ListOrders implements orderv1.OrderServiceServer.
func (s *Server) ListOrders(ctx context.Context, req *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ListOrders_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkHouseholdID(&v, req.GetHouseholdId())
	v.Check(req.GetPageSize() >= 0, "page_size", "must not be negative")
	if err := v.Err(); err != nil {
		return nil, err
	}
	os, err := s.svc.Orders(ctx, c, req.GetHouseholdId(), grpcx.PageSize(req.GetPageSize(), defaultOrdersPage))
	if err != nil {
		return nil, s.err(ctx, err)
	}
	resp := &orderv1.ListOrdersResponse{}
	for _, o := range os {
		resp.Orders = append(resp.Orders, pbconv.OrderProto(o))
	}
	return resp, nil
}

// CancelOrder implements orderv1.OrderServiceServer.
func (s *Server) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.CancelOrderResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_CancelOrder_FullMethodName)
	if err != nil {
		return nil, err
	}
	r, err := cancelRequest(req)
	if err != nil {
		return nil, err
	}
	o, err := s.svc.CancelOrder(ctx, c, r)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.CancelOrderResponse{Order: pbconv.OrderProto(o)}, nil
}

// cancelRequest validates a CancelOrder request and maps it to the domain.
func cancelRequest(req *orderv1.CancelOrderRequest) (order.CancelRequest, error) {
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkUUID(&v, req.GetOrderId(), "order_id")
	v.Check(len(req.GetReason()) <= maxReason, "reason", fmt.Sprintf("must be at most %d characters", maxReason))
	checkActor(&v, "actor", req.GetActor())
	if err := v.Err(); err != nil {
		return order.CancelRequest{}, err
	}
	return order.CancelRequest{RequestID: req.GetRequestId(), OrderID: req.GetOrderId(),
		Reason: req.GetReason(), Actor: pbconv.Actor(req.GetActor())}, nil
}

// GetParcel implements orderv1.OrderServiceServer.
func (s *Server) GetParcel(ctx context.Context, req *orderv1.GetParcelRequest) (*orderv1.GetParcelResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_GetParcel_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkUUID(&v, req.GetParcelId(), "parcel_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	p, err := s.svc.Parcel(ctx, c, req.GetParcelId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.GetParcelResponse{Parcel: pbconv.ParcelProto(p)}, nil
}
