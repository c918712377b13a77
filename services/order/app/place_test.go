package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestPlaceOrderValidation(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	many := make([]*orderv1.BasketLine, 51)
	for i := range many {
		many[i] = &orderv1.BasketLine{ItemId: "rice-5kg", Quantity: 1}
	}
	tests := []struct {
		name  string
		req   *orderv1.PlaceOrderRequest
		field string
	}{
		{"no request id", &orderv1.PlaceOrderRequest{HouseholdId: hh, Lines: basket()}, "request_id"},
		{"no household", &orderv1.PlaceOrderRequest{RequestId: "r", Lines: basket()}, "household_id"},
		{"malformed household", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: "haixin 3/2/302", Lines: basket()}, "household_id"},
		{"household id too long", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: strings.Repeat("h", 129), Lines: basket()}, "household_id"},
		{"no lines", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh}, "lines"},
		{"51 lines", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: many}, "lines"},
		{"no item id", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: []*orderv1.BasketLine{{Quantity: 1}}}, "lines[0].item_id"},
		{"zero quantity", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: []*orderv1.BasketLine{{ItemId: "pork"}}}, "lines[0].quantity"},
		{"negative quantity", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: []*orderv1.BasketLine{{ItemId: "pork", Quantity: -5}}}, "lines[0].quantity"},
		{"duplicate item", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: []*orderv1.BasketLine{
			{ItemId: "pork", Quantity: 100}, {ItemId: "rice-5kg", Quantity: 1}, {ItemId: "pork", Quantity: 200}}}, "lines[2].item_id"},
		{"unknown channel", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: basket(), Channel: 99}, "channel"},
		{"actor without id", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: basket(),
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER}}, "placed_by.id"},
		{"courier cannot order", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: basket(),
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: "c1"}}, "placed_by.role"},
		{"unknown item", &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: []*orderv1.BasketLine{
			{ItemId: "rice-5kg", Quantity: 1}, {ItemId: "caviar", Quantity: 1}}}, "lines[1].item_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.PlaceOrder(e.resident(hh), tt.req)
			wantCode(t, err, codes.InvalidArgument)
			if _, ok := grpcx.FieldViolations(err)[tt.field]; !ok {
				t.Errorf("violations %v do not name %s", grpcx.FieldViolations(err), tt.field)
			}
		})
	}
	t.Run("unknown household", func(t *testing.T) {
		_, err := e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: "haixin-9-9-999", Lines: basket()})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("a resident orders only for their own household", func(t *testing.T) {
		// Another household is one this resident cannot see: as if it did not exist.
		_, err := e.client.PlaceOrder(e.resident("haixin-1-1-101"), &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: basket()})
		wantCode(t, err, codes.NotFound)
		// A service acting on its own may name who placed an order, but not a resident for another household.
		_, err = e.client.PlaceOrder(e.system(), &orderv1.PlaceOrderRequest{RequestId: "r", HouseholdId: hh, Lines: basket(),
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: "haixin-1-1-101"}})
		wantCode(t, err, codes.PermissionDenied)
	})
	if n := e.sup.reservations(); n != 0 {
		t.Errorf("invalid requests reserved %d parcels", n)
	}
}

// A caller who does not reach the household is refused before anything is written: the claim of
// the request id goes in the same round trip as the household's read, and only where it is reached.
func TestPlaceOrderUnreachedClaimsNothing(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	outsiders := map[string]context.Context{
		"a resident of another household": e.resident("haixin-1-1-101"),
		"a worker of another compound":    e.as(typesv1.Role_ROLE_WORKER, "worker-zhao", testkit.InCompound("yuyuan")),
	}
	for name, ctx := range outsiders {
		_, err := e.client.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{RequestId: "claimless", HouseholdId: hh,
			Lines: []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 2}}})
		if status.Code(err) != codes.NotFound {
			t.Errorf("%s: %v, want NOT_FOUND", name, err)
		}
	}
	if n := e.sup.reservations(); n != 0 {
		t.Fatalf("refused requests reserved %d parcels", n)
	}
	// Had a refused call claimed its request id, the household's own order with that id and
	// another basket would be ALREADY_EXISTS.
	if _, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "claimless", HouseholdId: hh, Lines: basket()}); err != nil {
		t.Fatalf("the household's own order with the refused request id: %v", err)
	}
}

func TestPlaceOrderSplitsBySupplier(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())

	if len(o.Parcels) != 2 {
		t.Fatalf("%d parcels, want 2", len(o.Parcels))
	}
	if o.Status != orderv1.OrderStatus_ORDER_STATUS_PLACED || o.Channel != orderv1.Channel_CHANNEL_APP ||
		o.PlacedBy.GetRole() != typesv1.Role_ROLE_RESIDENT || o.PlacedBy.GetId() != hh {
		t.Errorf("order %v", o)
	}
	fresh, pharmacy := parcelOf(o, "freshmart"), parcelOf(o, "pharmacy")
	if fresh == nil || pharmacy == nil {
		t.Fatalf("parcels %v", o.Parcels)
	}
	// Rice 2 x 3000 + pork 500 g at 3600/kg = 6000 + 1800; weight 2 x 5000 g + 500 g.
	if fresh.TotalFen != 7800 || fresh.WeightGrams != 10500 || len(fresh.Lines) != 2 {
		t.Errorf("freshmart parcel %v", fresh)
	}
	if pharmacy.TotalFen != 4500 || pharmacy.WeightGrams != 120 || o.TotalFen != 12300 {
		t.Errorf("pharmacy parcel %v, order total %d", pharmacy, o.TotalFen)
	}
	for _, p := range o.Parcels {
		if p.State != typesv1.ParcelState_PARCEL_STATE_PLACED || p.OrderId != o.OrderId || p.HouseholdId != hh {
			t.Errorf("parcel %v", p)
		}
	}
	if got := e.sup.stock("rice-5kg"); got != 98 {
		t.Errorf("rice stock %d, want 98", got)
	}

	got, err := e.client.GetParcel(e.dispatcher, &orderv1.GetParcelRequest{ParcelId: fresh.ParcelId})
	if err != nil {
		t.Fatal(err)
	}
	p := got.Parcel
	if p.Address.GetBuilding() != "3" || p.Address.GetFloor() != 3 || !p.Priority || !p.Contactless || p.WeightGrams != 10500 {
		t.Errorf("GetParcel %v", p)
	}
	if !proto.Equal(e.getOrder(o.OrderId), o) {
		t.Errorf("GetOrder differs from the placed order")
	}

	placed := e.waitStream("doorstep.haixin.order.placed", 1)
	ev := placed[0].event
	if placed[0].msgID != ev.EventId || ev.OrderId != o.OrderId || ev.Actor.GetId() != hh {
		t.Errorf("order.placed msg id %q event %v", placed[0].msgID, ev)
	}
	op := ev.GetOrderPlaced()
	if op.GetHouseholdId() != hh || len(op.GetParcels()) != 2 || op.GetTotalFen() != 12300 || op.GetChannel() != "app" ||
		op.GetAddress().GetRoom() != "302" {
		t.Errorf("order.placed %v", op)
	}
	parcels := e.waitStream("doorstep.haixin.parcel.placed", 2)
	seen := map[string]bool{}
	for _, m := range parcels {
		sc := m.event.GetParcelStateChanged()
		if m.msgID != m.event.EventId || m.event.OrderId != o.OrderId || sc.GetHouseholdId() != hh {
			t.Errorf("parcel.placed msg id %q event %v", m.msgID, m.event)
		}
		seen[sc.GetParcelId()] = true
	}
	if !seen[fresh.ParcelId] || !seen[pharmacy.ParcelId] {
		t.Errorf("parcel.placed for %v, want both parcels", seen)
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE from_state IS NULL AND to_state = 'PLACED' AND actor_role = 'RESIDENT'`); n != 2 {
		t.Errorf("%d creation transitions, want 2", n)
	}
	// The suppliers were asked by the order service, for the household.
	wantOnBehalfOf(t, e.sup.peerAuth, "BatchGetItems", typesv1.Role_ROLE_RESIDENT, hh)
	wantOnBehalfOf(t, e.sup.peerAuth, "ReserveStock", typesv1.Role_ROLE_RESIDENT, hh)

	t.Run("a worker's proxy order records who placed it", func(t *testing.T) {
		resp, err := e.client.PlaceOrder(e.worker, &orderv1.PlaceOrderRequest{RequestId: "proxy-1", HouseholdId: hh,
			Lines: []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 1}}, Channel: orderv1.Channel_CHANNEL_WORKER,
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Order.PlacedBy.GetId() != "worker-li" || resp.Order.Channel != orderv1.Channel_CHANNEL_WORKER {
			t.Errorf("proxy order %v", resp.Order)
		}
		if n := e.count(`SELECT count(*) FROM orders WHERE proxy AND placed_by_id = 'worker-li'`); n != 1 {
			t.Errorf("proxy orders: %d", n)
		}
		list, err := e.client.ListOrders(e.resident(hh), &orderv1.ListOrdersRequest{HouseholdId: hh})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Orders) != 2 || list.Orders[0].OrderId != resp.Order.OrderId || list.Orders[1].OrderId != o.OrderId {
			t.Errorf("ListOrders not newest first: %v", list.Orders)
		}
	})

	t.Run("not found", func(t *testing.T) {
		_, err := e.client.GetOrder(e.worker, &orderv1.GetOrderRequest{OrderId: "0190f1f6-3c1e-7000-8000-000000000000"})
		wantCode(t, err, codes.NotFound)
		_, err = e.client.GetParcel(e.dispatcher, &orderv1.GetParcelRequest{ParcelId: "0190f1f6-3c1e-7000-8000-000000000000"})
		wantCode(t, err, codes.NotFound)
		_, err = e.client.GetOrder(e.worker, &orderv1.GetOrderRequest{OrderId: "nope"})
		if _, ok := grpcx.FieldViolations(err)["order_id"]; !ok {
			t.Errorf("malformed order id: %v", err)
		}
		_, err = e.client.ListOrders(e.worker, &orderv1.ListOrdersRequest{HouseholdId: "haixin-9-9-999"})
		wantCode(t, err, codes.NotFound)
	})
}

// Thirty concurrent retries of one request make one order and one reservation per supplier,
// and every caller gets that order.
func TestPlaceOrderConcurrentRetries(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	const n = 30
	orders := make([]*orderv1.Order, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "tap-tap-tap", HouseholdId: hh, Lines: basket()})
			orders[i], errs[i] = resp.GetOrder(), err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("retry %d: %v", i, errs[i])
		}
		if !proto.Equal(orders[i], orders[0]) {
			t.Fatalf("retry %d got a different order:\n%v\n%v", i, orders[i], orders[0])
		}
	}
	if got := e.sup.reservations(); got != 2 {
		t.Errorf("%d reservations at the suppliers, want 2", got)
	}
	if got := e.sup.stock("rice-5kg"); got != 98 {
		t.Errorf("rice stock %d, want 98 (reserved once)", got)
	}
	if got := e.sup.stock("masks-10"); got != 47 {
		t.Errorf("mask stock %d, want 47 (reserved once)", got)
	}
	if got := e.count(`SELECT count(*) FROM orders`); got != 1 {
		t.Errorf("%d orders stored, want 1", got)
	}
	if got := e.count(`SELECT count(*) FROM parcels`); got != 2 {
		t.Errorf("%d parcels stored, want 2", got)
	}
	if got := e.count(`SELECT count(*) FROM outbox`); got != 3 {
		t.Errorf("%d events written, want 3", got)
	}
	if got := e.sup.releasedParcels(); len(got) != 0 {
		t.Errorf("retries released %v", got)
	}

	again := e.place("tap-tap-tap", hh, basket())
	if !proto.Equal(again, orders[0]) {
		t.Errorf("a later retry got %v", again)
	}
}

func TestPlaceOrderSameRequestOtherBasket(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	e.place("req-1", hh, basket())
	other := basket()
	other[0].Quantity = 3
	_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "req-1", HouseholdId: hh, Lines: other})
	wantCode(t, err, codes.AlreadyExists)
	if got := e.sup.reservations(); got != 2 {
		t.Errorf("%d reservations, want the first request's 2", got)
	}
	// The same basket in another line order is the same request.
	reordered := basket()
	reordered[0], reordered[2] = reordered[2], reordered[0]
	e.place("req-1", hh, reordered)
}

// A reservation refused at the second supplier gives back the first supplier's reservation and
// stores nothing.
func TestPlaceOrderFailedReservationReleases(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	lines := []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 2}, {ItemId: "masks-10", Quantity: 60}}
	_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "greedy", HouseholdId: hh, Lines: lines})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "masks-10") {
		t.Errorf("message does not name the item: %v", err)
	}
	if got := e.sup.releasedParcels(); len(got) != 1 || e.sup.parcelState(got[0]) != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		t.Fatalf("released %v, want the freshmart parcel", got)
	}
	if got := e.sup.stock("rice-5kg"); got != 100 {
		t.Errorf("rice stock %d, want 100 (given back)", got)
	}
	wantOnBehalfOf(t, e.sup.peerAuth, "ReleaseReservation", typesv1.Role_ROLE_RESIDENT, hh)
	if got := e.count(`SELECT count(*) FROM orders`) + e.count(`SELECT count(*) FROM outbox`); got != 0 {
		t.Errorf("a failed placement stored %d rows", got)
	}
}

// A retry after a failed attempt is a fresh attempt: the first attempt's reservations were given
// back, so the retry reserves under new parcel ids and succeeds.
func TestPlaceOrderRetryAfterFailure(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	req := &orderv1.PlaceOrderRequest{RequestId: "retry-me", HouseholdId: hh, Lines: basket()}

	e.sup.mu.Lock()
	e.sup.failReserve["pharmacy"] = status.Error(codes.Unavailable, "pharmacy is down")
	e.sup.mu.Unlock()
	_, err := e.client.PlaceOrder(e.resident(hh), req)
	wantCode(t, err, codes.Unavailable)
	orderID := order.OrderID(hh, "retry-me")
	if got := e.sup.releasedParcels(); len(got) != 1 || got[0] != order.ParcelID(orderID, "freshmart", 0) {
		t.Fatalf("released %v, want the first attempt's freshmart parcel", got)
	}
	if got := e.sup.placedParcels(); len(got) != 0 {
		t.Fatalf("reservations left after the failure: %v", got)
	}

	e.sup.mu.Lock()
	delete(e.sup.failReserve, "pharmacy")
	e.sup.mu.Unlock()
	o := e.place("retry-me", hh, basket())
	if o.OrderId != orderID || len(o.Parcels) != 2 {
		t.Fatalf("retry placed %v", o)
	}
	for _, p := range o.Parcels {
		if want := order.ParcelID(orderID, p.SupplierId, 1); p.ParcelId != want {
			t.Errorf("parcel %s of %s, want the second attempt's %s", p.ParcelId, p.SupplierId, want)
		}
	}
	e.checkReservedOnce(o)
	if again := e.place("retry-me", hh, basket()); !proto.Equal(again, o) {
		t.Errorf("a retry after the success got %v", again)
	}

	t.Run("after a refusal too", func(t *testing.T) {
		lines := []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 1}, {ItemId: "masks-10", Quantity: 60}}
		_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "greedy", HouseholdId: hh, Lines: lines})
		wantCode(t, err, codes.FailedPrecondition)
		e.sup.mu.Lock()
		e.sup.items["masks-10"].Stock += 100
		e.sup.mu.Unlock()
		resp, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "greedy", HouseholdId: hh, Lines: lines})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Order.Parcels) != 2 {
			t.Errorf("order %v", resp.Order)
		}
	})
}

// checkReservedOnce checks that the suppliers hold exactly the parcels of o, and the seeded stock
// less o's quantities.
func (e *env) checkReservedOnce(o *orderv1.Order) {
	e.t.Helper()
	var ids []string
	for _, p := range o.Parcels {
		ids = append(ids, p.ParcelId)
	}
	slices.Sort(ids)
	if got := e.sup.placedParcels(); !slices.Equal(got, ids) {
		e.t.Errorf("suppliers hold %v, want the order's parcels %v", got, ids)
	}
	if r, m, p := e.sup.stock("rice-5kg"), e.sup.stock("masks-10"), e.sup.stock("pork"); r != 98 || m != 47 || p != 19500 {
		e.t.Errorf("stock rice %d masks %d pork %d, want 98 47 19500 (reserved once)", r, m, p)
	}
	if n := e.count(`SELECT count(*) FROM orders`); n != 1 {
		e.t.Errorf("%d orders stored, want 1", n)
	}
}

// An item sold in another compound is no item of this household's catalog: the line is named and
// no supplier is asked to reserve anything.
func TestPlaceOrderRefusesAnotherCompoundsItem(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	e.sup.addItem(&supplierv1.Item{ItemId: "yuyuan-eggs", SupplierId: "yuyuan-market", Compound: "yuyuan", Name: "Eggs", Unit: "box",
		ReferencePriceFen: 1200, CurrentPriceFen: 1200, Stock: 100, UnitWeightGrams: 600})
	lines := append(basket(), &orderv1.BasketLine{ItemId: "yuyuan-eggs", Quantity: 1})
	_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "across", HouseholdId: hh, Lines: lines})
	wantField(t, err, "lines[3].item_id")
	if n := e.sup.count("ReserveStock"); n != 0 {
		t.Errorf("%d reservations asked for a basket with another compound's item", n)
	}
	// A supplier service older than this one names no compound: its reservation is the check.
	e.sup.addItem(&supplierv1.Item{ItemId: "old-eggs", SupplierId: "freshmart", Name: "Eggs", Unit: "box",
		ReferencePriceFen: 1200, CurrentPriceFen: 1200, Stock: 100, UnitWeightGrams: 600})
	if _, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "old", HouseholdId: hh,
		Lines: []*orderv1.BasketLine{{ItemId: "old-eggs", Quantity: 1}}}); err != nil {
		t.Errorf("an item of a supplier naming no compound: %v", err)
	}
}

// A basket refused by two suppliers names both refusals, so the resident changes it once.
func TestPlaceOrderNamesEverySuppliersRefusal(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	e.sup.mu.Lock()
	e.sup.failReserve["pharmacy"] = status.Error(codes.FailedPrecondition, "item masks-10: out of stock")
	e.sup.failReserve["freshmart"] = status.Error(codes.FailedPrecondition, "item rice-5kg: daily ration exceeded")
	e.sup.mu.Unlock()
	_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "both", HouseholdId: hh, Lines: basket()})
	wantCode(t, err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "masks-10") || !strings.Contains(msg, "rice-5kg") {
		t.Errorf("refusal %q does not name both items", msg)
	}
}

// Thirty concurrent retries after a failed attempt still make one order.
func TestPlaceOrderConcurrentRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	req := &orderv1.PlaceOrderRequest{RequestId: "tap-tap-tap", HouseholdId: hh, Lines: basket()}
	e.sup.mu.Lock()
	e.sup.failReserve["pharmacy"] = status.Error(codes.FailedPrecondition, "pharmacy closed for stocktaking")
	e.sup.mu.Unlock()
	_, err := e.client.PlaceOrder(e.resident(hh), req)
	wantCode(t, err, codes.FailedPrecondition)
	e.sup.mu.Lock()
	delete(e.sup.failReserve, "pharmacy")
	e.sup.mu.Unlock()

	const n = 30
	orders := make([]*orderv1.Order, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := e.client.PlaceOrder(e.resident(hh), req)
			orders[i], errs[i] = resp.GetOrder(), err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("retry %d: %v", i, errs[i])
		}
		if !proto.Equal(orders[i], orders[0]) {
			t.Fatalf("retry %d got a different order:\n%v\n%v", i, orders[i], orders[0])
		}
	}
	e.checkReservedOnce(orders[0])
	if got := e.count(`SELECT count(*) FROM outbox`); got != 3 {
		t.Errorf("%d events written, want 3", got)
	}
}

// A reservation whose answer is lost (the call timed out after the supplier reserved) is given
// back with the rest of the failed attempt.
func TestPlaceOrderLostAnswerIsReleased(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	e.sup.chaos = func(supplierID string) (before, after error) {
		if supplierID == "pharmacy" {
			return nil, status.Error(codes.DeadlineExceeded, "answer lost")
		}
		return nil, nil
	}
	_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "lost", HouseholdId: hh, Lines: basket()})
	wantCode(t, err, codes.Unavailable)
	if got := e.sup.placedParcels(); len(got) != 0 {
		t.Errorf("reservations left: %v", got)
	}
	if got := e.sup.stock("masks-10"); got != 50 {
		t.Errorf("mask stock %d, want 50", got)
	}
}

// A failed placement gives its reservations back at every supplier at once: one supplier that
// does not answer the release does not keep the others' stock reserved.
func TestPlaceOrderReleasesPastAHangingSupplier(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	e.sup.mu.Lock()
	e.sup.hangRelease = map[string]bool{"freshmart": true}
	e.sup.unhang = make(chan struct{})
	e.sup.chaos = func(supplierID string) (before, after error) {
		if supplierID == "pharmacy" {
			return nil, status.Error(codes.DeadlineExceeded, "answer lost")
		}
		return nil, nil
	}
	unhang := e.sup.unhang
	e.sup.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		_, err := e.client.PlaceOrder(e.resident(hh), &orderv1.PlaceOrderRequest{RequestId: "hang", HouseholdId: hh, Lines: basket()})
		errc <- err
	}()
	orderID := order.OrderID(hh, "hang")
	// The pharmacy's stock comes back while FreshMart still holds its release.
	testkit.Eventually(t, 5*time.Second, func() error {
		if got := e.sup.parcelState(order.ParcelID(orderID, "pharmacy", 0)); got != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
			return fmt.Errorf("the pharmacy's reservation is %v, want CANCELLED", got)
		}
		return nil
	})
	close(unhang)
	wantCode(t, <-errc, codes.Unavailable)
	if got := e.sup.stock("masks-10"); got != 50 {
		t.Errorf("mask stock %d, want 50", got)
	}
	if got := e.sup.stock("rice-5kg"); got != 100 {
		t.Errorf("rice stock %d, want 100", got)
	}
}

// Concurrent clients retrying one request while the suppliers fail at random, before or after
// reserving: whatever the interleaving, one order is stored, every client gets it, and the
// suppliers hold exactly its reservations.
func TestPlaceOrderRetriesUnderFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	rng := rand.New(rand.NewPCG(7, 11))
	failures := 0
	e.sup.chaos = func(string) (before, after error) { // called under the fake's lock
		if failures >= 24 || rng.IntN(3) == 0 {
			return nil, nil
		}
		failures++
		if rng.IntN(2) == 0 {
			return status.Error(codes.Internal, "supplier hiccup"), nil
		}
		return nil, status.Error(codes.DeadlineExceeded, "answer lost")
	}
	req := &orderv1.PlaceOrderRequest{RequestId: "stubborn", HouseholdId: hh, Lines: basket()}
	const clients = 20
	orders := make([]*orderv1.Order, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for range 100 {
				resp, err := e.client.PlaceOrder(e.resident(hh), req)
				orders[i], errs[i] = resp.GetOrder(), err
				if c := status.Code(err); c != codes.Unavailable && c != codes.Aborted {
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if !proto.Equal(orders[i], orders[0]) {
			t.Fatalf("client %d got a different order:\n%v\n%v", i, orders[i], orders[0])
		}
	}
	e.checkReservedOnce(orders[0])
	e.sup.mu.Lock()
	defer e.sup.mu.Unlock()
	if failures == 0 {
		t.Error("no failure was injected")
	}
	t.Logf("%d injected failures, %d reservation calls", failures, e.sup.calls["ReserveStock"])
}
