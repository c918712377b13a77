// Package orderclient is the order service as the dispatch domain sees it: GetParcel over gRPC,
// mapped to domain types and errors.
package orderclient

import (
	"context"
	"fmt"
	"strings"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Client implements dispatch.Orders.
type Client struct{ Orders orderv1.OrderServiceClient }

// Parcel returns one parcel with its household's address. GetParcel only reads, so the dialer's
// retries of UNAVAILABLE are safe; the dialer also sets the deadline.
func (c Client) Parcel(ctx context.Context, id string) (dispatch.OrderParcel, error) {
	resp, err := c.Orders.GetParcel(ctx, &orderv1.GetParcelRequest{ParcelId: id})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound, codes.InvalidArgument:
		// An id the order service cannot even parse names no parcel either.
		return dispatch.OrderParcel{}, fmt.Errorf("parcel %s: %w", id, dispatch.ErrNotFound)
	case codes.Canceled, codes.DeadlineExceeded:
		if ctx.Err() != nil {
			return dispatch.OrderParcel{}, ctx.Err()
		}
		fallthrough
	default:
		return dispatch.OrderParcel{}, fmt.Errorf("%w: GetParcel %s: %v", dispatch.ErrPeerUnavailable, id, err)
	}
	p := resp.GetParcel()
	a := p.GetAddress()
	var lines []dispatch.OrderLine
	for _, l := range p.GetLines() {
		// What the supplier packed once confirmed, else what was ordered.
		q := l.GetConfirmedQuantity()
		if q == 0 {
			q = l.GetQuantity()
		}
		lines = append(lines, dispatch.OrderLine{ItemID: l.GetItemId(), Quantity: q})
	}
	return dispatch.OrderParcel{
		ID:          p.GetParcelId(),
		OrderID:     p.GetOrderId(),
		HouseholdID: p.GetHouseholdId(),
		State:       strings.TrimPrefix(p.GetState().String(), "PARCEL_STATE_"),
		Address: dispatch.Address{Compound: a.GetCompound(), Building: a.GetBuilding(), Unit: a.GetUnit(),
			Floor: int(a.GetFloor()), Room: a.GetRoom()},
		Priority:    p.GetPriority(),
		Contactless: p.GetContactless(),
		WeightGrams: p.GetWeightGrams(),
		Lines:       lines,
	}, nil
}
