package stack_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"golang.org/x/sync/errgroup"
)

// TestSickCourierMidRound: the dispatcher plans a round of the demo compound's lift towers; one
// courier calls in sick before setting out and all their stops go to the others in one action;
// the others deliver, a few doors fail, and every parcel ends delivered, or failed with its reason
// and waiting in the next round; one household cancels its failed parcel, and the next round's
// plan takes only the others.
func TestSickCourierMidRound(t *testing.T) {
	_, c := startStack(t)

	// Forty households of towers 11–16 (couriers 06, 07 and 08 serve them) order eggs and milk.
	var households []string
	for b := 11; b <= 16 && len(households) < 40; b++ {
		for f := 2; f <= 18 && len(households) < 40; f += 3 {
			households = append(households, fmt.Sprintf("haixin-%d-1-%d01", b, f))
		}
	}
	var mu sync.Mutex
	var parcels []string
	g := new(errgroup.Group)
	g.SetLimit(8)
	for i, h := range households {
		g.Go(func() error {
			resp, err := c.order.PlaceOrder(c.as(t, typesv1.Role_ROLE_RESIDENT, h), &orderv1.PlaceOrderRequest{
				RequestId: fmt.Sprint("sick-", i), HouseholdId: h,
				Lines: []*orderv1.BasketLine{{ItemId: "fm-eggs-30", Quantity: 1}, {ItemId: "fm-milk-1l", Quantity: 2}}})
			if err != nil {
				return fmt.Errorf("order for %s: %w", h, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range resp.GetOrder().GetParcels() {
				parcels = append(parcels, p.GetParcelId())
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	fm := c.supplierStaff(t, "haixin-freshmart")
	for _, p := range parcels {
		mustOK(t)(c.supplier.ConfirmParcel(fm, &supplierv1.ConfirmParcelRequest{RequestId: "c-" + p, SupplierId: "haixin-freshmart", ParcelId: p}))
		mustOK(t)(c.supplier.MarkParcelReady(fm, &supplierv1.MarkParcelReadyRequest{RequestId: "r-" + p, SupplierId: "haixin-freshmart", ParcelId: p}))
	}
	waitStates(t, c, parcels, typesv1.ParcelState_PARCEL_STATE_READY)

	dispatch := c.as(t, typesv1.Role_ROLE_DISPATCHER, "dispatcher.haixin")
	in, err := c.dispatch.CheckInParcels(dispatch, &dispatchv1.CheckInParcelsRequest{RequestId: "sick-in", Compound: "haixin", ParcelIds: parcels})
	if err != nil {
		t.Fatal(err)
	}
	round := in.GetResults()[0].GetRoundId()
	plan, err := c.dispatch.PlanRound(dispatch, &dispatchv1.PlanRoundRequest{RequestId: "sick-plan", RoundId: round})
	if err != nil {
		t.Fatal(err)
	}
	var sick string
	for _, r := range plan.GetRoutes() {
		if len(r.GetStops()) > 0 && (sick == "" || r.GetCourierId() < sick) {
			sick = r.GetCourierId()
		}
	}
	if len(plan.GetRoutes()) < 2 || sick == "" {
		t.Fatalf("want the round shared by several couriers, got %d routes", len(plan.GetRoutes()))
	}

	// The courier calls in sick: one action hands all their stops to the others.
	moved, err := c.dispatch.ReassignCourier(dispatch, &dispatchv1.ReassignCourierRequest{RequestId: "sick-reassign", RoundId: round,
		FromCourierId: sick, Reason: "sick"})
	if err != nil {
		t.Fatal(err)
	}
	if moved.GetStopsKept() != 0 {
		t.Fatalf("%d stops stayed with the sick courier, who had picked up nothing", moved.GetStopsKept())
	}
	routes, err := c.dispatch.ListRoutes(dispatch, &dispatchv1.ListRoutesRequest{RoundId: round})
	if err != nil {
		t.Fatal(err)
	}
	onRoute := map[string]string{}
	for _, r := range routes.GetRoutes() {
		for _, s := range r.GetStops() {
			for _, p := range s.GetParcelIds() {
				if r.GetCourierId() == sick {
					t.Fatalf("parcel %s still on the sick courier's route", p)
				}
				onRoute[p] = r.GetCourierId()
			}
		}
	}
	if len(onRoute) != len(parcels) {
		t.Fatalf("%d of %d parcels on routes after the reassignment", len(onRoute), len(parcels))
	}

	// The others see their new routes, pick up and deliver; every fifth door is not home.
	failed := map[string]bool{}
	for i, p := range parcels {
		failed[p] = i%5 == 0
	}
	couriers := map[string]bool{}
	for _, id := range onRoute {
		couriers[id] = true
	}
	for id := range couriers {
		as := c.as(t, typesv1.Role_ROLE_COURIER, id)
		var route *courierv1.CourierRoute
		testkit.Eventually(t, 15*time.Second, func() error {
			resp, err := c.courier.GetRoute(as, &courierv1.GetRouteRequest{CourierId: id, RoundId: round})
			if err != nil {
				return err
			}
			route = resp.GetRoute()
			n := 0
			for _, s := range route.GetStops() {
				n += len(s.GetParcels())
			}
			want := 0
			for _, cid := range onRoute {
				if cid == id {
					want++
				}
			}
			if n != want {
				return fmt.Errorf("courier %s sees %d parcels, dispatch gave them %d", id, n, want)
			}
			return nil
		})
		mustOK(t)(c.courier.PickUp(as, &courierv1.PickUpRequest{RequestId: "pick-" + id, CourierId: id, RouteId: route.GetRouteId()}))
		for _, s := range route.GetStops() {
			for _, p := range s.GetParcels() {
				if failed[p.GetParcelId()] {
					mustOK(t)(c.courier.MarkFailed(as, &courierv1.MarkFailedRequest{RequestId: "f-" + p.GetParcelId(), CourierId: id,
						ParcelId: p.GetParcelId(), Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME}))
					continue
				}
				mustOK(t)(c.courier.MarkDelivered(as, &courierv1.MarkDeliveredRequest{RequestId: "d-" + p.GetParcelId(), CourierId: id,
					ParcelId: p.GetParcelId(), Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER}))
			}
		}
	}

	// Every parcel ends delivered, or failed with its reason and at the gate for the next round.
	var delivered, notHome []string
	for _, p := range parcels {
		if failed[p] {
			notHome = append(notHome, p)
		} else {
			delivered = append(delivered, p)
		}
	}
	waitStates(t, c, delivered, typesv1.ParcelState_PARCEL_STATE_DELIVERED)
	waitStates(t, c, notHome, typesv1.ParcelState_PARCEL_STATE_FAILED)
	for _, p := range notHome {
		resp, err := c.order.GetParcel(dispatch, &orderv1.GetParcelRequest{ParcelId: p})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetParcel().GetReason() == "" {
			t.Errorf("failed parcel %s carries no reason", p)
		}
	}
	// Dispatch puts them into the next open round (today's afternoon or tomorrow's morning).
	dates := map[string]bool{}
	for _, at := range []time.Time{time.Now(), time.Now().Add(24 * time.Hour), time.Now().Add(48 * time.Hour)} {
		dates[rounds.Date(at)] = true
	}
	var next []string // the later rounds they wait in
	testkit.Eventually(t, 15*time.Second, func() error {
		waiting := 0
		next = next[:0]
		for date := range dates {
			resp, err := c.dispatch.ListRounds(dispatch, &dispatchv1.ListRoundsRequest{Compound: "haixin", Date: date})
			if err != nil {
				return err
			}
			for _, r := range resp.GetRounds() {
				if r.GetRoundId() != round && r.GetState() == dispatchv1.RoundState_ROUND_STATE_OPEN && r.GetParcels() > 0 {
					waiting += int(r.GetParcels())
					next = append(next, r.GetRoundId())
				}
			}
		}
		if waiting != len(notHome) {
			return fmt.Errorf("%d parcels wait in later rounds, want the %d that failed", waiting, len(notHome))
		}
		return nil
	})

	// Unless the household cancels: the first one does, and its parcel is not planned again.
	gone, err := c.order.GetParcel(dispatch, &orderv1.GetParcelRequest{ParcelId: notHome[0]})
	if err != nil {
		t.Fatal(err)
	}
	household := gone.GetParcel().GetHouseholdId()
	cancelled, err := c.order.CancelOrder(c.as(t, typesv1.Role_ROLE_RESIDENT, household), &orderv1.CancelOrderRequest{
		RequestId: "cancel-after-failure", OrderId: gone.GetParcel().GetOrderId(), Reason: "bought eggs at the gate"})
	if err != nil {
		t.Fatal(err)
	}
	if ps := cancelled.GetOrder().GetParcels(); len(ps) != 1 || ps[0].GetParcelId() != notHome[0] ||
		ps[0].GetState() != typesv1.ParcelState_PARCEL_STATE_CANCELLED || ps[0].GetReason() != "bought eggs at the gate" {
		t.Fatalf("cancelled after failing: %v", cancelled.GetOrder())
	}
	replanned := map[string]bool{}
	for _, id := range next {
		plan, err := c.dispatch.PlanRound(dispatch, &dispatchv1.PlanRoundRequest{RequestId: "plan-" + id, RoundId: id})
		if err != nil {
			t.Fatalf("plan %s: %v", id, err)
		}
		for _, r := range plan.GetRoutes() {
			for _, s := range r.GetStops() {
				for _, p := range s.GetParcelIds() {
					replanned[p] = true
				}
			}
		}
	}
	for i, p := range notHome {
		if replanned[p] != (i > 0) {
			t.Errorf("parcel %s (failed, cancelled %v) planned again: %v", p, i == 0, replanned[p])
		}
	}
	waitStates(t, c, notHome[1:], typesv1.ParcelState_PARCEL_STATE_ASSIGNED)
	waitStates(t, c, notHome[:1], typesv1.ParcelState_PARCEL_STATE_CANCELLED)
	// The round they failed in still counts every failure, the cancelled one's too.
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := c.tracking.GetRoundProgress(dispatch, &trackingv1.GetRoundProgressRequest{RoundId: round})
		if err != nil {
			return err
		}
		if tot := resp.GetProgress().GetTotal(); tot.GetFailed() != int32(len(notHome)) || tot.GetDelivered() != int32(len(delivered)) {
			return fmt.Errorf("round %s progress %v, want %d failed and %d delivered", round, tot, len(notHome), len(delivered))
		}
		return nil
	})
	// The household's timeline says it was cancelled, once.
	timeline, err := c.tracking.GetOrderTimeline(c.as(t, typesv1.Role_ROLE_RESIDENT, household),
		&trackingv1.GetOrderTimelineRequest{OrderId: gone.GetParcel().GetOrderId()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range timeline.GetEntries() {
		if e.GetState() == typesv1.ParcelState_PARCEL_STATE_CANCELLED {
			n++
		}
	}
	if n != 1 {
		t.Errorf("timeline has %d cancellations: %v", n, timeline.GetEntries())
	}
	t.Logf("%d parcels, %d routes; courier %s sick, %d routes changed; %d delivered, %d failed, of which %d planned again and 1 cancelled",
		len(parcels), len(plan.GetRoutes()), sick, len(moved.GetRoutes()), len(delivered), len(notHome), len(replanned))
}

// waitStates waits until the order service shows every parcel in state.
func waitStates(t *testing.T, c clients, ids []string, state typesv1.ParcelState) {
	t.Helper()
	as := c.as(t, typesv1.Role_ROLE_DISPATCHER, "dispatcher.haixin")
	testkit.Eventually(t, 20*time.Second, func() error {
		for _, id := range ids {
			resp, err := c.order.GetParcel(as, &orderv1.GetParcelRequest{ParcelId: id})
			if err != nil {
				return err
			}
			if resp.GetParcel().GetState() != state {
				return fmt.Errorf("parcel %s is %s, want %s", id, resp.GetParcel().GetState(), state)
			}
		}
		return nil
	})
}
