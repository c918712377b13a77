// Package grpcapi is the supplier service's gRPC transport: it says who may call each method
// (Policy), turns the verified caller into the domain's Caller, maps doorstep.supplier.v1
// messages to the supply domain and back, derives idempotency keys from requests, and turns
// domain errors into status codes in one function.
package grpcapi

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"strconv"
	"strings"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/protomap"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/protobuf/proto"
)

// Server implements doorstep.supplier.v1.SupplierService.
type Server struct {
	supplierv1.UnimplementedSupplierServiceServer
	Svc *supply.Service
	Log *slog.Logger
}

var _ supplierv1.SupplierServiceServer = (*Server)(nil)

// maxRequestID bounds a client's request id; UUIDs and ULIDs fit with room to spare.
const maxRequestID = 128

// key is the idempotency key of a mutating request: every one must carry a request id (SPEC.md,
// "Idempotency"), so a client's retry after a lost response cannot apply the change twice. The
// digest is of the request without its request_id, deterministically encoded, so a retry matches
// and any other request under the same id does not.
func key(requestID, method string, req proto.Message) (*supply.IdempotencyKey, error) {
	if requestID == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	if len(requestID) > maxRequestID {
		return nil, grpcx.InvalidField("request_id", "must be at most 128 characters")
	}
	msg := proto.Clone(req).ProtoReflect()
	msg.Clear(msg.Descriptor().Fields().ByName("request_id"))
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg.Interface())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &supply.IdempotencyKey{RequestID: requestID, Method: method, Hash: sum[:]}, nil
}

// CreateSupplier implements SupplierServiceServer.
func (s *Server) CreateSupplier(ctx context.Context, req *supplierv1.CreateSupplierRequest) (*supplierv1.CreateSupplierResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_CreateSupplier_FullMethodName)
	if err != nil {
		return nil, err
	}
	if !events.ValidCompound(req.GetCompound()) {
		return nil, grpcx.InvalidField("compound", "must be a compound slug (lower-case letters, digits, '-')")
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_CreateSupplier_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	sup, err := s.Svc.CreateSupplier(ctx, c, k, supply.Supplier{ID: req.GetSupplierId(), Compound: req.GetCompound(),
		Name: req.GetName(), Kind: supply.Kind(req.GetKind())})
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.CreateSupplierResponse{Supplier: supplierMsg(sup)}, nil
}

// ListSuppliers implements SupplierServiceServer.
func (s *Server) ListSuppliers(ctx context.Context, req *supplierv1.ListSuppliersRequest) (*supplierv1.ListSuppliersResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_ListSuppliers_FullMethodName)
	if err != nil {
		return nil, err
	}
	if !events.ValidCompound(req.GetCompound()) {
		return nil, grpcx.InvalidField("compound", "must be a compound slug")
	}
	list, err := s.Svc.ListSuppliers(ctx, c, req.GetCompound())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &supplierv1.ListSuppliersResponse{Suppliers: make([]*supplierv1.Supplier, len(list))}
	for i, sup := range list {
		out.Suppliers[i] = supplierMsg(sup)
	}
	return out, nil
}

// UpdateCredentials implements SupplierServiceServer.
func (s *Server) UpdateCredentials(ctx context.Context, req *supplierv1.UpdateCredentialsRequest) (*supplierv1.UpdateCredentialsResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_UpdateCredentials_FullMethodName)
	if err != nil {
		return nil, err
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_UpdateCredentials_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	sup, err := s.Svc.UpdateCredentials(ctx, c, k, credentialsFromMsg(req))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.UpdateCredentialsResponse{Supplier: supplierMsg(sup)}, nil
}

// SetSupplierSuspended implements SupplierServiceServer.
func (s *Server) SetSupplierSuspended(ctx context.Context, req *supplierv1.SetSupplierSuspendedRequest) (*supplierv1.SetSupplierSuspendedResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_SetSupplierSuspended_FullMethodName)
	if err != nil {
		return nil, err
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_SetSupplierSuspended_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	sup, err := s.Svc.SetSuspended(ctx, c, k, suspensionFromMsg(req))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.SetSupplierSuspendedResponse{Supplier: supplierMsg(sup)}, nil
}

// UpsertItem implements SupplierServiceServer.
func (s *Server) UpsertItem(ctx context.Context, req *supplierv1.UpsertItemRequest) (*supplierv1.UpsertItemResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_UpsertItem_FullMethodName)
	if err != nil {
		return nil, err
	}
	if req.GetItem() == nil {
		return nil, grpcx.InvalidField("item", "is required")
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_UpsertItem_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	it, err := s.Svc.UpsertItem(ctx, c, k, itemFromMsg(req.GetItem()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.UpsertItemResponse{Item: itemMsg(it)}, nil
}

// AdjustStock implements SupplierServiceServer.
func (s *Server) AdjustStock(ctx context.Context, req *supplierv1.AdjustStockRequest) (*supplierv1.AdjustStockResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_AdjustStock_FullMethodName)
	if err != nil {
		return nil, err
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_AdjustStock_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	it, err := s.Svc.AdjustStock(ctx, c, k, supply.StockAdjustment{SupplierID: req.GetSupplierId(), ItemID: req.GetItemId(),
		Delta: req.GetDelta(), Reason: req.GetReason()})
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.AdjustStockResponse{Item: itemMsg(it)}, nil
}

// ListItems implements SupplierServiceServer.
func (s *Server) ListItems(ctx context.Context, req *supplierv1.ListItemsRequest) (*supplierv1.ListItemsResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_ListItems_FullMethodName)
	if err != nil {
		return nil, err
	}
	if !events.ValidCompound(req.GetCompound()) {
		return nil, grpcx.InvalidField("compound", "must be a compound slug")
	}
	list, err := s.Svc.ListItems(ctx, c, req.GetCompound(), req.GetSupplierId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.ListItemsResponse{Items: itemMsgs(list)}, nil
}

// BatchGetItems implements SupplierServiceServer.
func (s *Server) BatchGetItems(ctx context.Context, req *supplierv1.BatchGetItemsRequest) (*supplierv1.BatchGetItemsResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_BatchGetItems_FullMethodName)
	if err != nil {
		return nil, err
	}
	list, err := s.Svc.BatchGetItems(ctx, c, req.GetItemIds())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.BatchGetItemsResponse{Items: itemMsgs(list)}, nil
}

// ReserveStock implements SupplierServiceServer.
func (s *Server) ReserveStock(ctx context.Context, req *supplierv1.ReserveStockRequest) (*supplierv1.ReserveStockResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_ReserveStock_FullMethodName)
	if err != nil {
		return nil, err
	}
	if req.GetAddress() == nil {
		return nil, grpcx.InvalidField("address", "is required")
	}
	r := supply.Reservation{
		ParcelID:    req.GetParcelId(),
		OrderID:     req.GetOrderId(),
		SupplierID:  req.GetSupplierId(),
		HouseholdID: req.GetHouseholdId(),
		Address:     protomap.FromAddress(req.GetAddress()),
		Lines:       make([]supply.ReservationLine, len(req.GetLines())),
		CampaignID:  req.GetCampaignId(),
	}
	for i, l := range req.GetLines() {
		r.Lines[i] = supply.ReservationLine{ItemID: l.GetItemId(), Quantity: l.GetQuantity()}
	}
	p, err := s.Svc.Reserve(ctx, c, r)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.ReserveStockResponse{Parcel: parcelMsg(p)}, nil
}

// ReleaseReservation implements SupplierServiceServer.
func (s *Server) ReleaseReservation(ctx context.Context, req *supplierv1.ReleaseReservationRequest) (*supplierv1.ReleaseReservationResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_ReleaseReservation_FullMethodName)
	if err != nil {
		return nil, err
	}
	// The request's actor is not read: the release is recorded as the verified caller's.
	p, err := s.Svc.Release(ctx, c, req.GetParcelId(), req.GetReason())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.ReleaseReservationResponse{Parcel: parcelMsg(p)}, nil
}

// ConfirmParcel implements SupplierServiceServer.
func (s *Server) ConfirmParcel(ctx context.Context, req *supplierv1.ConfirmParcelRequest) (*supplierv1.ConfirmParcelResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_ConfirmParcel_FullMethodName)
	if err != nil {
		return nil, err
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_ConfirmParcel_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	lines := make([]supply.ConfirmLine, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = supply.ConfirmLine{ItemID: l.GetItemId()}
		if l.Quantity != nil { // unset keeps the ordered quantity; 0 is a quantity
			lines[i].Quantity = proto.Int64(l.GetQuantity())
		}
	}
	p, err := s.Svc.Confirm(ctx, c, k, req.GetSupplierId(), req.GetParcelId(), lines)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.ConfirmParcelResponse{Parcel: parcelMsg(p)}, nil
}

// RejectParcel implements SupplierServiceServer.
func (s *Server) RejectParcel(ctx context.Context, req *supplierv1.RejectParcelRequest) (*supplierv1.RejectParcelResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_RejectParcel_FullMethodName)
	if err != nil {
		return nil, err
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_RejectParcel_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	p, err := s.Svc.Reject(ctx, c, k, req.GetSupplierId(), req.GetParcelId(), req.GetReason())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.RejectParcelResponse{Parcel: parcelMsg(p)}, nil
}

// MarkParcelReady implements SupplierServiceServer.
func (s *Server) MarkParcelReady(ctx context.Context, req *supplierv1.MarkParcelReadyRequest) (*supplierv1.MarkParcelReadyResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_MarkParcelReady_FullMethodName)
	if err != nil {
		return nil, err
	}
	k, err := key(req.GetRequestId(), supplierv1.SupplierService_MarkParcelReady_FullMethodName, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	p, err := s.Svc.MarkReady(ctx, c, k, req.GetSupplierId(), req.GetParcelId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &supplierv1.MarkParcelReadyResponse{Parcel: parcelMsg(p)}, nil
}

// ListParcels implements SupplierServiceServer.
func (s *Server) ListParcels(ctx context.Context, req *supplierv1.ListParcelsRequest) (*supplierv1.ListParcelsResponse, error) {
	c, err := caller(ctx, supplierv1.SupplierService_ListParcels_FullMethodName)
	if err != nil {
		return nil, err
	}
	f := supply.ParcelFilter{State: protomap.FromState(req.GetState()), RoundID: req.GetRoundId(), CampaignID: req.GetCampaignId(),
		NewestFirst: req.GetNewestFirst()}
	scope := parcelsScope(req)
	var v grpcx.Violations
	v.Check(req.GetPageSize() >= 0, "page_size", "must not be negative")
	after, ok := grpcx.ParsePageToken(req.GetPageToken(), scope)
	v.Check(ok, "page_token", "is not a token of this listing (the same supplier, filters and order)")
	if err := v.Err(); err != nil {
		return nil, err
	}
	size := grpcx.PageSize(req.GetPageSize(), defaultParcelsPage)
	f.After, f.Limit = after, size+1 // one more tells whether there is a next page
	list, err := s.Svc.ListParcels(ctx, c, req.GetSupplierId(), f)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &supplierv1.ListParcelsResponse{}
	if len(list) > size {
		list = list[:size]
		out.NextPageToken = grpcx.PageToken(scope, list[size-1].ID)
	}
	out.Parcels = make([]*supplierv1.SupplierParcel, len(list))
	for i, p := range list {
		out.Parcels[i] = parcelMsg(p)
	}
	return out, nil
}

// defaultParcelsPage is the page of ListParcels when the request names none.
const defaultParcelsPage = 500

// parcelsScope ties a ListParcels page token to the supplier, filters and order it was given for.
func parcelsScope(req *supplierv1.ListParcelsRequest) string {
	return strings.Join([]string{req.GetSupplierId(), req.GetState().String(), req.GetRoundId(), req.GetCampaignId(),
		strconv.FormatBool(req.GetNewestFirst())}, "|")
}
