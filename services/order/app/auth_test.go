package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/app"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

const (
	ok          = codes.OK
	notFound    = codes.NotFound
	denied      = codes.PermissionDenied
	unauthentic = codes.Unauthenticated
)

// Every RPC against every kind of caller, through the real server. Someone who may not see a
// household learns nothing of it: another household's or another compound's household, order or
// parcel is NOT_FOUND, as if unknown.
func TestWhoMayCallWhat(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household() // haixin-3-2-302
	o := e.place("mine", hh, basket())
	parcelID := o.Parcels[0].ParcelId
	const other = "haixin-9-1-901" // another household of the compound

	// Each RPC for the household hh, its order o and its parcel; call is the i-th caller's.
	rpcs := []struct {
		name string
		call func(ctx context.Context, i int) error
	}{
		{"UpsertHousehold", func(ctx context.Context, i int) error {
			_, err := e.client.UpsertHousehold(ctx, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
				HouseholdId: hh, Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
				Residents: 1, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED, Over_80: true, QuarantinedUntil: "2022-04-20",
				Phone: "+86 138-0013-8000"}})
			return err
		}},
		{"GetHousehold", func(ctx context.Context, _ int) error {
			_, err := e.client.GetHousehold(ctx, &orderv1.GetHouseholdRequest{HouseholdId: hh})
			return err
		}},
		{"ListHouseholds", func(ctx context.Context, _ int) error {
			_, err := e.client.ListHouseholds(ctx, &orderv1.ListHouseholdsRequest{Compound: "haixin"})
			return err
		}},
		{"ImportHouseholds", func(ctx context.Context, _ int) error {
			_, err := e.client.ImportHouseholds(ctx, &orderv1.ImportHouseholdsRequest{Compound: "haixin", Csv: []byte(roster), DryRun: true})
			return err
		}},
		{"ExportHouseholds", func(ctx context.Context, _ int) error {
			_, err := e.client.ExportHouseholds(ctx, &orderv1.ExportHouseholdsRequest{Compound: "haixin"})
			return err
		}},
		{"PlaceOrder", func(ctx context.Context, i int) error {
			_, err := e.client.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{RequestId: fmt.Sprintf("place-%d", i), HouseholdId: hh,
				Lines: []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 1}}})
			return err
		}},
		{"GetOrder", func(ctx context.Context, _ int) error {
			_, err := e.client.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: o.OrderId})
			return err
		}},
		{"ListOrders", func(ctx context.Context, _ int) error {
			_, err := e.client.ListOrders(ctx, &orderv1.ListOrdersRequest{HouseholdId: hh})
			return err
		}},
		{"CancelOrder", func(ctx context.Context, i int) error {
			// An order of its own for each caller to cancel, placed by a service.
			target, err := e.client.PlaceOrder(e.system(), &orderv1.PlaceOrderRequest{RequestId: fmt.Sprintf("to-cancel-%d", i),
				HouseholdId: hh, Lines: []*orderv1.BasketLine{{ItemId: "masks-10", Quantity: 1}}})
			if err != nil {
				t.Fatalf("order to cancel: %v", err)
			}
			_, err = e.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{RequestId: "cancel", OrderId: target.Order.OrderId})
			return err
		}},
		{"GetParcel", func(ctx context.Context, _ int) error {
			_, err := e.client.GetParcel(ctx, &orderv1.GetParcelRequest{ParcelId: parcelID})
			return err
		}},
		{"ListParcelsToCheckIn", func(ctx context.Context, _ int) error {
			_, err := e.client.ListParcelsToCheckIn(ctx, &orderv1.ListParcelsToCheckInRequest{Compound: "haixin"})
			return err
		}},
	}
	if len(rpcs)+campaignAndNoticeRPCs != len(orderv1.OrderService_ServiceDesc.Methods) {
		t.Fatalf("%d + %d RPCs tested, the service has %d", len(rpcs), campaignAndNoticeRPCs, len(orderv1.OrderService_ServiceDesc.Methods))
	}

	haixin, yuyuan := testkit.InCompound("haixin"), testkit.InCompound("yuyuan")
	forged, err := auth.NewKeys([]byte("not-the-doorstep-key-but-32-bytes-long"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forgedCtx, err := forged.Outgoing(e.ctx, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "intruder"})
	if err != nil {
		t.Fatal(err)
	}
	// Signed with the right key, but two years before the service's clock.
	stale, err := auth.NewKeys(testkit.AuthKey, func() time.Time { return time.Date(2020, 4, 10, 0, 0, 0, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	expiredCtx, err := stale.Outgoing(e.ctx, auth.Identity{Role: typesv1.Role_ROLE_WORKER, Subject: "worker-li"})
	if err != nil {
		t.Fatal(err)
	}

	const w = typesv1.Role_ROLE_WORKER
	all := func(c codes.Code) [11]codes.Code { return [11]codes.Code{c, c, c, c, c, c, c, c, c, c, c} }
	for i, tc := range []struct {
		caller string
		ctx    context.Context
		// Codes for UpsertHousehold, GetHousehold, ListHouseholds, ImportHouseholds, ExportHouseholds,
		// PlaceOrder, GetOrder, ListOrders, CancelOrder, GetParcel, ListParcelsToCheckIn.
		want [11]codes.Code
	}{
		{"the household", e.resident(hh), [11]codes.Code{denied, ok, denied, denied, denied, ok, ok, ok, ok, denied, denied}},
		{"another household", e.resident(other), [11]codes.Code{denied, notFound, denied, denied, denied, notFound, notFound, notFound, notFound, denied, denied}},
		{"worker of the compound", e.as(w, "worker-li", haixin), all(ok)},
		{"city-wide worker", e.as(w, "worker-chen"), all(ok)},
		{"worker of another compound", e.as(w, "worker-zhao", yuyuan), all(notFound)},
		{"dispatcher", e.as(typesv1.Role_ROLE_DISPATCHER, "gate-wang", haixin), [11]codes.Code{denied, ok, ok, denied, denied, denied, denied, denied, denied, ok, ok}},
		{"dispatcher of another compound", e.as(typesv1.Role_ROLE_DISPATCHER, "gate-zhou", yuyuan), [11]codes.Code{denied, notFound, notFound, denied, denied, denied, denied, denied, denied, notFound, notFound}},
		{"supplier", e.as(typesv1.Role_ROLE_SUPPLIER, "staff-1", testkit.Supplier("freshmart"), haixin), all(denied)},
		{"courier", e.as(typesv1.Role_ROLE_COURIER, "haixin-courier-01", haixin), all(denied)},
		{"service", e.system(), all(ok)},
		{"service for the household", e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, hh, haixin)),
			[11]codes.Code{denied, ok, denied, denied, denied, ok, ok, ok, ok, denied, denied}},
		{"service for another household", e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, other, haixin)),
			[11]codes.Code{denied, notFound, denied, denied, denied, notFound, notFound, notFound, notFound, denied, denied}},
		{"service for a dispatcher", e.as(typesv1.Role_ROLE_SYSTEM, "dispatch", onBehalfOf(typesv1.Role_ROLE_DISPATCHER, "gate-wang", haixin)),
			[11]codes.Code{denied, ok, ok, denied, denied, denied, denied, denied, denied, ok, ok}},
		{"service for a worker of another compound", e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(w, "worker-zhao", yuyuan)), all(notFound)},
		{"service for a courier", e.as(typesv1.Role_ROLE_SYSTEM, "courier", onBehalfOf(typesv1.Role_ROLE_COURIER, "haixin-courier-01")), all(denied)},
		{"service for a supplier", e.as(typesv1.Role_ROLE_SYSTEM, "supplier", onBehalfOf(typesv1.Role_ROLE_SUPPLIER, "staff-1", testkit.Supplier("freshmart"))), all(denied)},
		{"no identity", e.ctx, all(unauthentic)},
		{"identity signed with another key", forgedCtx, all(unauthentic)},
		{"expired identity", expiredCtx, all(unauthentic)},
	} {
		for j, rpc := range rpcs {
			t.Run(tc.caller+"/"+rpc.name, func(t *testing.T) {
				if err := rpc.call(tc.ctx, i); status.Code(err) != tc.want[j] {
					t.Errorf("%s as %s: %v, want %v", rpc.name, tc.caller, err, tc.want[j])
				}
			})
		}
	}

	// What is not the caller's reads exactly like what does not exist.
	unknownOrder, unknownParcel := "0190f1f6-3c1e-7000-8000-000000000000", "0190f1f6-3c1e-7000-8000-000000000001"
	sameAsUnknown := func(what string, errOther, errUnknown error, otherID, unknownID string) {
		t.Helper()
		got, want := status.Convert(errOther).Message(), status.Convert(errUnknown).Message()
		if status.Code(errOther) != codes.NotFound || got != strings.ReplaceAll(want, unknownID, otherID) {
			t.Errorf("%s not the caller's says %q, an unknown one %q", what, got, want)
		}
	}
	neighbour := e.resident(other)
	_, errOther := e.client.GetOrder(neighbour, &orderv1.GetOrderRequest{OrderId: o.OrderId})
	_, errUnknown := e.client.GetOrder(neighbour, &orderv1.GetOrderRequest{OrderId: unknownOrder})
	sameAsUnknown("an order", errOther, errUnknown, o.OrderId, unknownOrder)
	_, errOther = e.client.GetHousehold(neighbour, &orderv1.GetHouseholdRequest{HouseholdId: hh})
	_, errUnknown = e.client.GetHousehold(neighbour, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-9-9-999"})
	sameAsUnknown("a household", errOther, errUnknown, hh, "haixin-9-9-999")
	_, errOther = e.client.PlaceOrder(neighbour, &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: basket()})
	_, errUnknown = e.client.PlaceOrder(neighbour, &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: "haixin-9-9-999", Lines: basket()})
	sameAsUnknown("ordering for a household", errOther, errUnknown, hh, "haixin-9-9-999")
	farDispatcher := e.as(typesv1.Role_ROLE_DISPATCHER, "gate-zhou", yuyuan)
	_, errOther = e.client.GetParcel(farDispatcher, &orderv1.GetParcelRequest{ParcelId: parcelID})
	_, errUnknown = e.client.GetParcel(farDispatcher, &orderv1.GetParcelRequest{ParcelId: unknownParcel})
	sameAsUnknown("a parcel", errOther, errUnknown, parcelID, unknownParcel)
	farWorker := e.as(w, "worker-zhao", yuyuan)
	_, errOther = e.client.CancelOrder(farWorker, &orderv1.CancelOrderRequest{RequestId: "c", OrderId: o.OrderId})
	_, errUnknown = e.client.CancelOrder(farWorker, &orderv1.CancelOrderRequest{RequestId: "c", OrderId: unknownOrder})
	sameAsUnknown("cancelling an order", errOther, errUnknown, o.OrderId, unknownOrder)

	// Only the callers allowed to order placed one (every call reaching the suppliers carried the
	// order service's identity, which the fake peers check themselves).
	if got := e.count(`SELECT count(*) FROM orders WHERE request_id LIKE 'place-%'`); got != 5 {
		t.Errorf("%d orders placed by the callers, want 5 (those allowed)", got)
	}
}

// A person's order is theirs: a resident orders for their own household through the app, a
// worker's order is a proxy order recorded as theirs, and neither can sign in someone else's name.
// Their identity travels on to the suppliers.
func TestOrdersAreTheCallers(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	rice := []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 1}}

	t.Run("the household itself", func(t *testing.T) {
		resp, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "own", HouseholdId: hh, Lines: rice})
		if err != nil {
			t.Fatal(err)
		}
		o := resp.Order
		if o.Channel != orderv1.Channel_CHANNEL_APP || o.PlacedBy.GetRole() != typesv1.Role_ROLE_RESIDENT || o.PlacedBy.GetId() != hh {
			t.Errorf("placed through %v by %v", o.Channel, o.PlacedBy)
		}
		wantOnBehalfOf(t, e.sup.peerAuth, "ReserveStock", typesv1.Role_ROLE_RESIDENT, hh)
		wantOnBehalfOf(t, e.sup.peerAuth, "BatchGetItems", typesv1.Role_ROLE_RESIDENT, hh)
		// Naming the household itself is the same request; a retry gets the same order.
		again, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "own", HouseholdId: hh, Lines: rice,
			Channel: orderv1.Channel_CHANNEL_APP, PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: hh}})
		if err != nil || again.Order.OrderId != o.OrderId {
			t.Errorf("retry naming the household: %v %v", again, err)
		}
	})

	t.Run("a resident cannot order as someone else or by phone", func(t *testing.T) {
		_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "posing", HouseholdId: hh, Lines: rice,
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}})
		wantCode(t, err, codes.PermissionDenied)
		for _, ch := range []orderv1.Channel{orderv1.Channel_CHANNEL_PHONE, orderv1.Channel_CHANNEL_WORKER} {
			_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "channel", HouseholdId: hh, Lines: rice, Channel: ch})
			wantCode(t, err, codes.InvalidArgument)
		}
	})

	workerSaw := func(t *testing.T, orderID, channel string) {
		t.Helper()
		if n := e.count(`SELECT count(*) FROM orders WHERE order_id = $1 AND proxy AND placed_by_role = 'WORKER'
			AND placed_by_id = 'worker-li' AND channel = $2`, orderID, channel); n != 1 {
			t.Errorf("order %s not stored as worker-li's proxy order through %s", orderID, channel)
		}
		if n := e.count(`SELECT count(*) FROM parcel_transitions t JOIN parcels p USING (parcel_id)
			WHERE p.order_id = $1 AND t.actor_role = 'WORKER' AND t.actor_id = 'worker-li'`, orderID); n != 1 {
			t.Errorf("order %s: its parcel's creation is not recorded as worker-li's", orderID)
		}
	}

	t.Run("a worker's proxy order", func(t *testing.T) {
		before := len(e.sup.onBehalfOf("ReserveStock"))
		resp, err := e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "proxy", HouseholdId: hh, Lines: rice})
		if err != nil {
			t.Fatal(err)
		}
		o := resp.Order
		if o.Channel != orderv1.Channel_CHANNEL_WORKER || o.PlacedBy.GetRole() != typesv1.Role_ROLE_WORKER || o.PlacedBy.GetId() != "worker-li" {
			t.Errorf("placed through %v by %v", o.Channel, o.PlacedBy)
		}
		workerSaw(t, o.OrderId, "WORKER")
		calls := e.sup.onBehalfOf("ReserveStock")[before:]
		if len(calls) != 1 || calls[0].Role != typesv1.Role_ROLE_WORKER || calls[0].Subject != "worker-li" || calls[0].Compound != "haixin" {
			t.Errorf("reserved for %+v, want worker-li of haixin", calls)
		}
		for _, m := range e.waitStream("doorstep.haixin.order.placed", 2) {
			if m.event.OrderId == o.OrderId && (m.event.Actor.GetRole() != typesv1.Role_ROLE_WORKER || m.event.Actor.GetId() != "worker-li") {
				t.Errorf("order.placed actor %v", m.event.Actor)
			}
		}
	})

	t.Run("by phone", func(t *testing.T) {
		resp, err := e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "phoned", HouseholdId: hh, Lines: rice,
			Channel: orderv1.Channel_CHANNEL_PHONE})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Order.Channel != orderv1.Channel_CHANNEL_PHONE {
			t.Errorf("channel %v", resp.Order.Channel)
		}
		workerSaw(t, resp.Order.OrderId, "PHONE")
		_, err = e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "app", HouseholdId: hh, Lines: rice,
			Channel: orderv1.Channel_CHANNEL_APP})
		wantCode(t, err, codes.InvalidArgument)
	})

	t.Run("a worker cannot order in the household's name", func(t *testing.T) {
		_, err := e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "posing", HouseholdId: hh, Lines: rice,
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: hh}})
		wantCode(t, err, codes.PermissionDenied)
		_, err = e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "posing", HouseholdId: hh, Lines: rice,
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-chen"}})
		wantCode(t, err, codes.PermissionDenied)
	})

	t.Run("a service acting for a worker places the worker's order", func(t *testing.T) {
		ctx := e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_WORKER, "worker-li", testkit.InCompound("haixin")))
		resp, err := e.client.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{RequestId: "relayed", HouseholdId: hh, Lines: rice})
		if err != nil {
			t.Fatal(err)
		}
		workerSaw(t, resp.Order.OrderId, "WORKER")
	})

	t.Run("a service on its own says who placed it", func(t *testing.T) {
		resp, err := e.client.PlaceOrder(e.system(), &orderv1.PlaceOrderRequest{RequestId: "seeded", HouseholdId: hh, Lines: rice,
			Channel: orderv1.Channel_CHANNEL_PHONE, PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}})
		if err != nil {
			t.Fatal(err)
		}
		workerSaw(t, resp.Order.OrderId, "PHONE")
		resp, err = e.client.PlaceOrder(e.system(), &orderv1.PlaceOrderRequest{RequestId: "seeded-2", HouseholdId: hh, Lines: rice})
		if err != nil {
			t.Fatal(err)
		}
		if o := resp.Order; o.Channel != orderv1.Channel_CHANNEL_APP || o.PlacedBy.GetRole() != typesv1.Role_ROLE_RESIDENT || o.PlacedBy.GetId() != hh {
			t.Errorf("naming no one: placed through %v by %v, want the household through the app", o.Channel, o.PlacedBy)
		}
	})

	t.Run("cancelled by whoever cancels", func(t *testing.T) {
		o := e.place("to-cancel", hh, basket())
		before := len(e.sup.onBehalfOf("ReleaseReservation"))
		_, err := e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "c1", OrderId: o.OrderId,
			Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}})
		wantCode(t, err, codes.PermissionDenied)
		if _, err := e.client.CancelOrder(e.worker, &orderv1.CancelOrderRequest{RequestId: "c2", OrderId: o.OrderId, Reason: "phoned in"}); err != nil {
			t.Fatal(err)
		}
		if n := e.count(`SELECT count(*) FROM parcel_transitions t JOIN parcels p USING (parcel_id) WHERE p.order_id = $1
			AND t.to_state = 'CANCELLED' AND t.actor_role = 'WORKER' AND t.actor_id = 'worker-li'`, o.OrderId); n != 2 {
			t.Errorf("%d cancellations recorded as worker-li's, want 2", n)
		}
		for _, m := range e.waitStream("doorstep.haixin.parcel.cancelled", 2) {
			if m.event.Actor.GetRole() != typesv1.Role_ROLE_WORKER || m.event.Actor.GetId() != "worker-li" {
				t.Errorf("parcel.cancelled actor %v", m.event.Actor)
			}
		}
		calls := e.sup.onBehalfOf("ReleaseReservation")[before:]
		if len(calls) != 2 {
			t.Fatalf("%d releases, want 2", len(calls))
		}
		for _, c := range calls {
			if c.Role != typesv1.Role_ROLE_WORKER || c.Subject != "worker-li" {
				t.Errorf("released for %+v, want worker-li", c)
			}
		}
	})
}

// Staff of one compound do not reach into another: not by listing, importing or exporting its
// roster, nor by writing a household of theirs into it or one of its households into theirs.
func TestStaffStayInTheirCompound(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household() // haixin
	far := e.as(typesv1.Role_ROLE_WORKER, "worker-zhao", testkit.InCompound("yuyuan"))
	yuyuan := func(room string) *typesv1.Address {
		return &typesv1.Address{Compound: "yuyuan", Building: "1", Unit: "1", Floor: 1, Room: room}
	}
	if _, err := e.client.UpsertHousehold(far, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{Address: yuyuan("101")}}); err != nil {
		t.Fatalf("a worker registers a household of their own compound: %v", err)
	}

	// hh is haixin's: moving it to yuyuan, or into haixin under yuyuan's worker, is refused alike.
	_, err := e.client.UpsertHousehold(far, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{HouseholdId: hh, Address: yuyuan("102")}})
	wantCode(t, err, codes.NotFound)
	if msg := status.Convert(err).Message(); msg != "not found: household "+hh {
		t.Errorf("moving another compound's household: %q", msg)
	}
	_, err = e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
		HouseholdId: "yuyuan-1-1-101", Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "199"}}})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{Address: yuyuan("103")}})
	wantCode(t, err, codes.NotFound)
	if n := e.count(`SELECT count(*) FROM households WHERE compound = 'yuyuan'`); n != 1 {
		t.Errorf("%d yuyuan households, want the one its worker registered", n)
	}
	if n := e.count(`SELECT count(*) FROM households WHERE household_id = $1 AND compound = 'haixin' AND room = '302'`, hh); n != 1 {
		t.Errorf("%s was changed by another compound's worker", hh)
	}

	for name, call := range map[string]func() error{
		"list": func() error {
			_, err := e.client.ListHouseholds(far, &orderv1.ListHouseholdsRequest{Compound: "haixin"})
			return err
		},
		"import": func() error {
			_, err := e.client.ImportHouseholds(far, &orderv1.ImportHouseholdsRequest{RequestId: "i", Compound: "haixin", Csv: []byte(roster)})
			return err
		},
		"export": func() error {
			_, err := e.client.ExportHouseholds(far, &orderv1.ExportHouseholdsRequest{Compound: "haixin"})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.NotFound || status.Convert(err).Message() != "not found: compound haixin" {
			t.Errorf("%s another compound's roster: %v", name, err)
		}
	}
	if got := len(e.disp.onBehalfOf("ListBuildings")); got != 0 {
		t.Errorf("a refused import asked dispatch for the site plan %d times", got)
	}
}

func TestRunNeedsAnAuthKeyOfAtLeast32Bytes(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"", "too-short"} {
		err := app.Run(context.Background(), app.Config{AuthKey: key, DatabaseURL: "postgres://unused", NATSURL: "nats://unused"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "DOORSTEP_AUTH_KEY") {
			t.Errorf("key %q: %v", key, err)
		}
	}
}

func TestConfigReadsTheAuthKey(t *testing.T) {
	t.Setenv("DOORSTEP_AUTH_KEY", string(testkit.AuthKey))
	cfg, err := app.ConfigFromEnv()
	if err != nil || cfg.AuthKey != string(testkit.AuthKey) {
		t.Errorf("config %+v %v", cfg, err)
	}
}
