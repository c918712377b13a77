// Package dispatchclient is the order service's adapter to the dispatch service, which keeps the
// compound's site plan (the roster import checks every row's building and unit against it) and
// the gate pool a cancelled parcel that failed at the door is withdrawn from.
package dispatchclient

import (
	"context"
	"fmt"

	"github.com/doorstep/doorstep/services/order/internal/order"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
)

// Client implements order.Dispatch over gRPC.
type Client struct {
	c dispatchv1.DispatchServiceClient
}

var _ order.Dispatch = (*Client)(nil)

// New wraps a dispatch service client. Its connection should come from grpcx.Dial, which gives
// every call a deadline and retries UNAVAILABLE, with the order service's identity
// (auth.Keys.DialOption("order")), acting for the worker importing a roster or the person
// cancelling an order.
func New(c dispatchv1.DispatchServiceClient) *Client { return &Client{c: c} }

// Buildings implements order.Dispatch.
func (c *Client) Buildings(ctx context.Context, compound string) ([]order.Building, error) {
	resp, err := c.c.ListBuildings(ctx, &dispatchv1.ListBuildingsRequest{Compound: compound})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.NotFound:
			return nil, nil // a compound dispatch has never heard of has no buildings
		case codes.InvalidArgument:
			return nil, fmt.Errorf("%w: dispatch: %s", order.ErrInvalid, st.Message())
		case codes.Unauthenticated, codes.PermissionDenied:
			// Dispatch refused the order service's identity, or what it carries: a deployment
			// fault no retry mends, answered as an internal error and logged.
			return nil, fmt.Errorf("dispatch refused the site plan to the order service: %s: %s", st.Code(), st.Message())
		default:
			// Whatever went wrong over there, the import cannot be checked now; retry later.
			return nil, fmt.Errorf("%w: dispatch: %s: %s", order.ErrUnavailable, st.Code(), st.Message())
		}
	}
	out := make([]order.Building, len(resp.GetBuildings()))
	for i, b := range resp.GetBuildings() {
		out[i] = order.Building{Name: b.GetBuilding(), Units: b.GetUnits(), Floors: int(b.GetFloors())}
	}
	return out, nil
}

// Withdraw implements order.Dispatch.
func (c *Client) Withdraw(ctx context.Context, w order.Withdrawal) (order.Withdrawn, error) {
	resp, err := c.c.WithdrawParcel(ctx, &dispatchv1.WithdrawParcelRequest{RequestId: w.RequestID, ParcelId: w.ParcelID,
		FailedRoundId: w.FailedIn, Reason: w.Reason})
	if err == nil {
		if resp.GetEventId() == "" {
			// Without it the order service would announce a cancellation dispatch announced too.
			return order.Withdrawn{}, fmt.Errorf("dispatch withdrew parcel %s but named no event", w.ParcelID)
		}
		return order.Withdrawn{RoundID: resp.GetRoundId(), EventID: resp.GetEventId()}, nil
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.FailedPrecondition:
		return order.Withdrawn{}, fmt.Errorf("%w: dispatch: %s", order.ErrIllegalTransition, st.Message())
	case codes.Aborted:
		// Dispatch has not heard of the failure yet; it will in a moment.
		return order.Withdrawn{}, fmt.Errorf("%w: the courier's report has not reached dispatch yet; try again in a moment",
			order.ErrUnavailable)
	case codes.NotFound:
		// The order service saw the parcel fail, so dispatch checked it in; and the order service
		// checked the caller reaches the household. The two disagree.
		return order.Withdrawn{}, fmt.Errorf("dispatch does not know parcel %s, which failed at the door, or not for this caller: %s",
			w.ParcelID, st.Message())
	case codes.InvalidArgument, codes.AlreadyExists, codes.Unauthenticated, codes.PermissionDenied:
		// What the order service sent, or who it is, was refused: a fault no retry mends,
		// answered as an internal error and logged.
		return order.Withdrawn{}, fmt.Errorf("dispatch refused to withdraw parcel %s: %s: %s", w.ParcelID, st.Code(), st.Message())
	default:
		return order.Withdrawn{}, fmt.Errorf("%w: dispatch: %s: %s", order.ErrUnavailable, st.Code(), st.Message())
	}
}
