// Package supplierclient is the order service's adapter to the supplier service: it maps the
// domain's reservations to SupplierService calls and the supplier's status codes to the domain's
// errors, keeping the supplier's own message (which names the item at fault).
package supplierclient

import (
	"context"
	"fmt"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"

	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Client implements order.Suppliers over gRPC.
type Client struct {
	c supplierv1.SupplierServiceClient
}

var _ order.Suppliers = (*Client)(nil)

// New wraps a supplier service client. Its connection should come from grpcx.Dial, which gives
// every call a deadline and retries UNAVAILABLE (safe: every call here is idempotent), with the
// order service's identity (auth.Keys.DialOption("order")): the supplier reserves and releases
// stock for the order service only, acting for the person whose order it is.
func New(c supplierv1.SupplierServiceClient) *Client { return &Client{c: c} }

// Items implements order.Suppliers.
func (c *Client) Items(ctx context.Context, ids []string) (map[string]order.Item, error) {
	resp, err := c.c.BatchGetItems(ctx, &supplierv1.BatchGetItemsRequest{ItemIds: ids})
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(map[string]order.Item, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		out[it.GetItemId()] = order.Item{ID: it.GetItemId(), SupplierID: it.GetSupplierId(), Compound: it.GetCompound(), Name: it.GetName(), Weighed: it.GetWeighed()}
	}
	return out, nil
}

// Reserve implements order.Suppliers.
func (c *Client) Reserve(ctx context.Context, r order.Reservation) (order.Reserved, error) {
	lines := make([]*supplierv1.ReservationLine, len(r.Lines))
	for i, l := range r.Lines {
		lines[i] = &supplierv1.ReservationLine{ItemId: l.ItemID, Quantity: l.Quantity}
	}
	if r.ActingFor.Role == order.RoleWorker {
		// A campaign's launcher runs in the background, outside any call: the supplier is told
		// which worker launched the campaign, and judges the reservation as theirs.
		ctx = auth.WithIdentity(ctx, auth.Identity{Role: typesv1.Role_ROLE_WORKER, Subject: r.ActingFor.ID,
			Compound: r.Address.Compound})
	}
	resp, err := c.c.ReserveStock(ctx, &supplierv1.ReserveStockRequest{ParcelId: r.ParcelID, OrderId: r.OrderID,
		SupplierId: r.SupplierID, HouseholdId: r.HouseholdID, Address: pbconv.AddressProto(r.Address), Lines: lines,
		CampaignId: r.CampaignID})
	if err != nil {
		return order.Reserved{}, mapErr(err)
	}
	p := resp.GetParcel()
	out := order.Reserved{State: pbconv.State(p.GetState()), Lines: make([]order.Line, len(p.GetLines()))}
	for i, l := range p.GetLines() {
		out.Lines[i] = order.Line{ItemID: l.GetItemId(), Name: l.GetName(), Unit: l.GetUnit(), Weighed: l.GetWeighed(),
			Quantity: l.GetQuantity(), UnitPriceFen: l.GetUnitPriceFen(), AmountFen: l.GetAmountFen(),
			UnitWeightGrams: l.GetUnitWeightGrams()}
	}
	return out, nil
}

// Release implements order.Suppliers.
func (c *Client) Release(ctx context.Context, parcelID, reason string, actor order.Actor) error {
	_, err := c.c.ReleaseReservation(ctx, &supplierv1.ReleaseReservationRequest{ParcelId: parcelID, Reason: reason,
		Actor: pbconv.ActorProto(actor)})
	return mapErr(err)
}

// mapErr turns the supplier's status into the domain error of the same meaning.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %v", order.ErrUnavailable, err)
	}
	var class error
	switch st.Code() {
	case codes.FailedPrecondition, codes.ResourceExhausted:
		class = order.ErrRefused
	case codes.PermissionDenied:
		// The supplier would not do this for the person we act for.
		class = order.ErrPermissionDenied
	case codes.Unauthenticated:
		// Our own identity was refused: the services do not share one key. No retry helps, and
		// the caller is not at fault: an internal error, logged.
		return fmt.Errorf("supplier refused the order service's identity (is DOORSTEP_AUTH_KEY the same everywhere?): %s", st.Message())
	case codes.NotFound:
		class = order.ErrNotFound
	case codes.InvalidArgument, codes.OutOfRange:
		class = order.ErrInvalid
	case codes.AlreadyExists:
		class = order.ErrConflict
	default:
		class = order.ErrUnavailable
	}
	return fmt.Errorf("%w: %s", class, st.Message())
}
