package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/testkit"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every RPC against every kind of caller. A caller may not learn that something they may not see
// exists: another household's order, another supplier's queue and another compound's notices are
// NOT_FOUND, as if unknown.
func TestWhoMaySeeWhat(t *testing.T) {
	e := start(t)
	const (
		household = "haixin-3-2-302"
		supplier  = "haixin-freshmart"
	)
	orderID, p1 := newID(), newID()
	e.publishAll(t,
		placeOrder(orderID, household, supplier, t0, p1),
		routePlanned("route-1", am, "haixin-courier-01", 1, t0.Add(time.Hour), stop{"3", []string{p1}}))
	e.publishNotices(t, noticePosted("haixin", "testing", t0, "Testing at 8"))
	e.timeline(t, orderID, 1)
	e.waitNotices(t, "haixin", "", "testing")
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(1, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("3", prog(1, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(1, 0, 0, 0, 0))}})

	// Each RPC, called as the identity in ctx; a stream is judged by its first message.
	rpcs := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"GetOrderTimeline", func(ctx context.Context) error {
			_, err := e.client.GetOrderTimeline(ctx, &trackingv1.GetOrderTimelineRequest{OrderId: orderID})
			return err
		}},
		{"WatchOrder", func(ctx context.Context) error {
			s, err := e.client.WatchOrder(ctx, &trackingv1.WatchOrderRequest{OrderId: orderID})
			if err != nil {
				return err
			}
			_, err = recvWithin(t, s.Recv)
			return err
		}},
		{"GetRoundProgress", func(ctx context.Context) error {
			_, err := e.client.GetRoundProgress(ctx, &trackingv1.GetRoundProgressRequest{RoundId: am})
			return err
		}},
		{"WatchRound", func(ctx context.Context) error {
			s, err := e.client.WatchRound(ctx, &trackingv1.WatchRoundRequest{RoundId: am})
			if err != nil {
				return err
			}
			_, err = recvWithin(t, s.Recv)
			return err
		}},
		{"GetSupplierQueue", func(ctx context.Context) error {
			_, err := e.client.GetSupplierQueue(ctx, &trackingv1.GetSupplierQueueRequest{SupplierId: supplier})
			return err
		}},
		{"ListNotices", func(ctx context.Context) error {
			resp, err := e.client.ListNotices(ctx, &trackingv1.ListNoticesRequest{Compound: "haixin", Building: "3"})
			if err == nil && len(resp.GetNotices()) != 1 {
				return fmt.Errorf("%d notices, want 1", len(resp.GetNotices()))
			}
			return err
		}},
	}

	as := func(role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
		return testkit.As(t, e.ctx, role, subject, opts...)
	}
	onBehalfOf := func(role typesv1.Role, subject, compound string) func(*auth.Identity) {
		return func(id *auth.Identity) {
			id.OnBehalfOf = &auth.Identity{Role: role, Subject: subject, Compound: compound}
		}
	}
	forged, err := auth.NewKeys([]byte("not-the-doorstep-key-but-32-bytes-long"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forgedCtx, err := forged.Outgoing(e.ctx, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "intruder"})
	if err != nil {
		t.Fatal(err)
	}

	haixin, yuyuan := testkit.InCompound("haixin"), testkit.InCompound("yuyuan")
	const (
		ok          = codes.OK
		notFound    = codes.NotFound
		denied      = codes.PermissionDenied
		unauthentic = codes.Unauthenticated
	)
	for _, tc := range []struct {
		caller string
		ctx    context.Context
		// Codes for GetOrderTimeline, WatchOrder, GetRoundProgress, WatchRound, GetSupplierQueue,
		// ListNotices (of haixin).
		want [6]codes.Code
	}{
		{"resident of the order", as(typesv1.Role_ROLE_RESIDENT, household, haixin), [6]codes.Code{ok, ok, denied, denied, denied, ok}},
		{"another resident", as(typesv1.Role_ROLE_RESIDENT, "haixin-9-1-901", haixin), [6]codes.Code{notFound, notFound, denied, denied, denied, ok}},
		{"resident of another compound", as(typesv1.Role_ROLE_RESIDENT, "yuyuan-1-1-101", yuyuan), [6]codes.Code{notFound, notFound, denied, denied, denied, notFound}},
		// Residents always belong to a compound; one that does not belongs to none, not to all.
		{"resident without a compound", as(typesv1.Role_ROLE_RESIDENT, household), [6]codes.Code{ok, ok, denied, denied, denied, notFound}},
		{"worker", as(typesv1.Role_ROLE_WORKER, "worker-li", haixin), [6]codes.Code{ok, ok, ok, ok, ok, ok}},
		{"city-wide worker", as(typesv1.Role_ROLE_WORKER, "worker-chen"), [6]codes.Code{ok, ok, ok, ok, ok, ok}},
		{"worker of another compound", as(typesv1.Role_ROLE_WORKER, "worker-zhao", yuyuan), [6]codes.Code{notFound, notFound, notFound, notFound, ok, notFound}},
		{"the order's supplier", as(typesv1.Role_ROLE_SUPPLIER, "staff-1", testkit.Supplier(supplier)), [6]codes.Code{denied, denied, denied, denied, ok, ok}},
		{"another supplier", as(typesv1.Role_ROLE_SUPPLIER, "staff-2", testkit.Supplier("other-mart")), [6]codes.Code{denied, denied, denied, denied, notFound, ok}},
		{"supplier of another compound", as(typesv1.Role_ROLE_SUPPLIER, "staff-3", testkit.Supplier("yuyuan-mart"), yuyuan), [6]codes.Code{denied, denied, denied, denied, notFound, notFound}},
		{"dispatcher", as(typesv1.Role_ROLE_DISPATCHER, "wang", haixin), [6]codes.Code{denied, denied, ok, ok, denied, ok}},
		{"dispatcher of another compound", as(typesv1.Role_ROLE_DISPATCHER, "zhou", yuyuan), [6]codes.Code{denied, denied, notFound, notFound, denied, notFound}},
		{"courier", as(typesv1.Role_ROLE_COURIER, "haixin-courier-01"), [6]codes.Code{denied, denied, denied, denied, denied, ok}},
		{"courier of another compound", as(typesv1.Role_ROLE_COURIER, "yuyuan-courier-01", yuyuan), [6]codes.Code{denied, denied, denied, denied, denied, notFound}},
		{"system", as(typesv1.Role_ROLE_SYSTEM, "gateway"), [6]codes.Code{ok, ok, ok, ok, ok, ok}},
		{"system for the order's resident", as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, household, "haixin")), [6]codes.Code{ok, ok, denied, denied, denied, ok}},
		{"system for another resident", as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, "haixin-9-1-901", "haixin")), [6]codes.Code{notFound, notFound, denied, denied, denied, ok}},
		{"system for a resident of another compound", as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, "yuyuan-1-1-101", "yuyuan")), [6]codes.Code{notFound, notFound, denied, denied, denied, notFound}},
		{"system for a courier", as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_COURIER, "haixin-courier-01", "")), [6]codes.Code{denied, denied, denied, denied, denied, ok}},
		{"no identity", e.ctx, [6]codes.Code{unauthentic, unauthentic, unauthentic, unauthentic, unauthentic, unauthentic}},
		{"identity signed with another key", forgedCtx, [6]codes.Code{unauthentic, unauthentic, unauthentic, unauthentic, unauthentic, unauthentic}},
	} {
		for i, rpc := range rpcs {
			t.Run(tc.caller+"/"+rpc.name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(tc.ctx)
				defer cancel()
				if err := rpc.call(ctx); status.Code(err) != tc.want[i] {
					t.Errorf("%s as %s: %v, want %v", rpc.name, tc.caller, err, tc.want[i])
				}
			})
		}
	}

	// Another household's order is refused exactly like one that does not exist.
	unknown := newID()
	_, errUnknown := e.client.GetOrderTimeline(as(typesv1.Role_ROLE_RESIDENT, "haixin-9-1-901"), &trackingv1.GetOrderTimelineRequest{OrderId: unknown})
	_, errOther := e.client.GetOrderTimeline(as(typesv1.Role_ROLE_RESIDENT, "haixin-9-1-901"), &trackingv1.GetOrderTimelineRequest{OrderId: orderID})
	if got, want := status.Convert(errOther).Message(), status.Convert(errUnknown).Message(); got != strings.ReplaceAll(want, unknown, orderID) {
		t.Errorf("another household's order says %q, an unknown one %q", got, want)
	}
}
