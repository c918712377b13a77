// Package dispatchclient is the order service's adapter to the dispatch service, which keeps the
// compound's site plan: the roster import checks every row's building and unit against it.
package dispatchclient

import (
	"context"
	"fmt"

	"github.com/doorstep/doorstep/services/order/internal/order"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
)

// Client implements order.SitePlan over gRPC.
type Client struct {
	c dispatchv1.DispatchServiceClient
}

var _ order.SitePlan = (*Client)(nil)

// New wraps a dispatch service client. Its connection should come from grpcx.Dial, which gives
// every call a deadline and retries UNAVAILABLE (ListBuildings only reads), with the order
// service's identity (auth.Keys.DialOption("order")), acting for the worker importing a roster.
func New(c dispatchv1.DispatchServiceClient) *Client { return &Client{c: c} }

// Buildings implements order.SitePlan.
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
