package app_test

import (
	"strings"
	"testing"

	"github.com/doorstep/doorstep/pkg/grpcx"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestCreateSupplierValidatesEveryField(t *testing.T) {
	t.Parallel()
	e := start(t)
	valid := func() *supplierv1.CreateSupplierRequest {
		return &supplierv1.CreateSupplierRequest{RequestId: newID(), Compound: compound, Name: "FreshMart", Kind: "supermarket"}
	}
	tests := []struct {
		field string
		edit  func(*supplierv1.CreateSupplierRequest)
	}{
		{"compound", func(r *supplierv1.CreateSupplierRequest) { r.Compound = "" }},
		{"compound", func(r *supplierv1.CreateSupplierRequest) { r.Compound = "Hai Xin" }},
		{"name", func(r *supplierv1.CreateSupplierRequest) { r.Name = "  " }},
		{"kind", func(r *supplierv1.CreateSupplierRequest) { r.Kind = "bakery" }},
		{"supplier_id", func(r *supplierv1.CreateSupplierRequest) { r.SupplierId = "Fresh Mart" }},
		{"request_id", func(r *supplierv1.CreateSupplierRequest) { r.RequestId = strings.Repeat("x", 129) }},
	}
	for _, tt := range tests {
		req := valid()
		tt.edit(req)
		_, err := e.client.CreateSupplier(e.worker(), req)
		wantField(t, err, tt.field)
	}

	generated, err := e.client.CreateSupplier(e.worker(), valid())
	if err != nil {
		t.Fatal(err)
	}
	if len(generated.GetSupplier().GetSupplierId()) != 36 {
		t.Fatalf("generated id %q is not a UUID", generated.GetSupplier().GetSupplierId())
	}
	pharmacy := valid()
	pharmacy.SupplierId, pharmacy.Kind = "haixin-pharmacy", "pharmacy"
	if _, err := e.client.CreateSupplier(e.worker(), pharmacy); err != nil {
		t.Fatal(err)
	}
	pharmacy.RequestId = newID() // the same supplier id under a new request
	_, err = e.client.CreateSupplier(e.worker(), pharmacy)
	wantCode(t, err, codes.AlreadyExists)

	// A city-wide worker registers suppliers anywhere; a worker of the compound only there.
	other := valid()
	other.Compound = "other-compound"
	_, err = e.client.CreateSupplier(e.worker(), other)
	wantCode(t, err, codes.PermissionDenied)
	if _, err := e.client.CreateSupplier(e.as(typesv1.Role_ROLE_WORKER, "worker-chen"), other); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.ListSuppliers(e.worker(), &supplierv1.ListSuppliersRequest{Compound: compound})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetSuppliers()) != 2 {
		t.Fatalf("listed %d suppliers of %s, want 2", len(list.GetSuppliers()), compound)
	}
	_, err = e.client.ListSuppliers(e.worker(), &supplierv1.ListSuppliersRequest{Compound: "HAIXIN"})
	wantField(t, err, "compound")
}

func TestUpsertItemValidatesEveryField(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	tests := []struct {
		name  string
		field string
		edit  func(*supplierv1.Item)
	}{
		{"bad id", "item.item_id", func(it *supplierv1.Item) { it.ItemId = "Rice!" }},
		{"no supplier", "item.supplier_id", func(it *supplierv1.Item) { it.SupplierId = "" }},
		{"no name", "item.name", func(it *supplierv1.Item) { it.Name = "" }},
		{"no unit", "item.unit", func(it *supplierv1.Item) { it.Unit = "" }},
		{"no reference price", "item.reference_price_fen", func(it *supplierv1.Item) { it.ReferencePriceFen = 0 }},
		{"negative reference price", "item.reference_price_fen", func(it *supplierv1.Item) { it.ReferencePriceFen = -5 }},
		{"no current price", "item.current_price_fen", func(it *supplierv1.Item) { it.CurrentPriceFen = 0 }},
		{"markup", "item.current_price_fen", func(it *supplierv1.Item) { it.CurrentPriceFen = it.ReferencePriceFen + 1 }},
		{"negative stock", "item.stock", func(it *supplierv1.Item) { it.Stock = -1 }},
		{"negative ration", "item.ration_per_day", func(it *supplierv1.Item) { it.RationPerDay = -1 }},
		{"counted without weight", "item.unit_weight_grams", func(it *supplierv1.Item) { it.UnitWeightGrams = 0 }},
		{"bundle without contents", "item.bundle_contents", func(it *supplierv1.Item) { it.Bundle = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := counted("freshmart", "masks", 2000, 10, 0)
			tt.edit(it)
			_, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: it})
			wantField(t, err, tt.field)
		})
	}
	_, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID()})
	wantField(t, err, "item")

	// No markup: the refusal says why.
	it := counted("freshmart", "masks", 2000, 10, 0)
	it.CurrentPriceFen = 2500
	_, err = e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: it})
	wantField(t, err, "item.current_price_fen")
	if !strings.Contains(status.Convert(err).Message(), "no markup") {
		t.Fatalf("message %q", status.Convert(err).Message())
	}

	_, err = e.client.UpsertItem(e.system(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: counted("nobody", "masks", 2000, 10, 0)})
	wantCode(t, err, codes.NotFound)

	// Create, then update in place: the stock of the request counts on creation only (stock
	// changes are AdjustStock's), and the answer shows the stock as it is. A weighed item ships
	// 1000 g per kilogram.
	masks := e.item(counted("freshmart", "masks", 2000, 10, 2))
	masks.CurrentPriceFen, masks.Stock = 1800, 40
	if got := e.item(masks); got.GetCurrentPriceFen() != 1800 || got.GetStock() != 10 {
		t.Fatalf("updated item %v, want price 1800 and stock still 10", got)
	}
	e.wantStock("masks", 10)
	pork := e.item(weighed("freshmart", "", 3000, 50000))
	if len(pork.GetItemId()) != 36 || pork.GetUnitWeightGrams() != 1000 {
		t.Fatalf("weighed item %v", pork)
	}

	// An item id is the supplier's own: another supplier cannot take it over.
	e.supplier("pharmacy")
	_, err = e.client.UpsertItem(e.staff("pharmacy"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: counted("pharmacy", "masks", 2000, 10, 0)})
	wantCode(t, err, codes.AlreadyExists)
	if got := e.stock("masks"); got != 10 {
		t.Fatalf("stock %d after a refused takeover", got)
	}
	e.item(counted("pharmacy", "thermometer", 3500, 5, 1))

	all, err := e.client.ListItems(e.worker(), &supplierv1.ListItemsRequest{Compound: compound})
	if err != nil {
		t.Fatal(err)
	}
	one, err := e.client.ListItems(e.worker(), &supplierv1.ListItemsRequest{Compound: compound, SupplierId: "pharmacy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.GetItems()) != 3 || len(one.GetItems()) != 1 || one.GetItems()[0].GetItemId() != "thermometer" {
		t.Fatalf("listed %d items, %d of the pharmacy", len(all.GetItems()), len(one.GetItems()))
	}
	_, err = e.client.ListItems(e.worker(), &supplierv1.ListItemsRequest{})
	wantField(t, err, "compound")
}

func TestBatchGetItemsAllOrNothing(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 2000, 10, 0))
	e.item(counted("freshmart", "rice", 4500, 10, 0))

	res, err := e.client.BatchGetItems(e.worker(), &supplierv1.BatchGetItemsRequest{ItemIds: []string{"rice", "masks", "rice"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetItems()) != 2 || res.GetItems()[0].GetItemId() != "rice" || res.GetItems()[1].GetItemId() != "masks" {
		t.Fatalf("got %v", res.GetItems())
	}
	_, err = e.client.BatchGetItems(e.worker(), &supplierv1.BatchGetItemsRequest{ItemIds: []string{"rice", "caviar", "truffle"}})
	wantCode(t, err, codes.NotFound)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "caviar") || !strings.Contains(msg, "truffle") || strings.Contains(msg, "rice") {
		t.Fatalf("message %q should name exactly the missing items", msg)
	}
	_, err = e.client.BatchGetItems(e.worker(), &supplierv1.BatchGetItemsRequest{})
	wantField(t, err, "item_ids")
	_, err = e.client.BatchGetItems(e.worker(), &supplierv1.BatchGetItemsRequest{ItemIds: []string{"rice", ""}})
	wantField(t, err, "item_ids[1]")
}

func TestCatalogRequestsAreIdempotent(t *testing.T) {
	t.Parallel()
	e := start(t)
	create := &supplierv1.CreateSupplierRequest{RequestId: "req-1", Compound: compound, Name: "FreshMart", Kind: "supermarket"}
	first, err := e.client.CreateSupplier(e.worker(), create)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client.CreateSupplier(e.worker(), create)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, again) {
		t.Fatalf("retry answered %v, first %v", again, first)
	}
	other := proto.Clone(create).(*supplierv1.CreateSupplierRequest)
	other.Name = "FreshMart 2"
	_, err = e.client.CreateSupplier(e.worker(), other)
	wantCode(t, err, codes.AlreadyExists)
	supplierID := first.GetSupplier().GetSupplierId()

	// A generated item id is generated once.
	upsert := &supplierv1.UpsertItemRequest{RequestId: "req-2", Item: counted(supplierID, "", 2000, 10, 0)}
	a, err := e.client.UpsertItem(e.staff(supplierID), upsert)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.client.UpsertItem(e.staff(supplierID), upsert)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetItem().GetItemId() != b.GetItem().GetItemId() {
		t.Fatalf("retry created %s and %s", a.GetItem().GetItemId(), b.GetItem().GetItemId())
	}
	list, err := e.client.ListItems(e.worker(), &supplierv1.ListItemsRequest{Compound: compound})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetItems()) != 1 {
		t.Fatalf("%d items after a retried create", len(list.GetItems()))
	}
	// The same request id for the same supplier on another method is a different request.
	_, err = e.client.AdjustStock(e.staff(supplierID), &supplierv1.AdjustStockRequest{RequestId: "req-2",
		SupplierId: supplierID, ItemId: a.GetItem().GetItemId(), Delta: 1, Reason: "delivery"})
	wantCode(t, err, codes.AlreadyExists)
	// Another supplier's request ids are its own: its staff picking "req-2" too is no conflict.
	e.supplier("othermart")
	if _, err := e.client.UpsertItem(e.staff("othermart"), &supplierv1.UpsertItemRequest{RequestId: "req-2", Item: counted("othermart", "x", 1, 1, 0)}); err != nil {
		t.Fatalf("another supplier's request id: %v", err)
	}
	// A refused request leaves its id free for a corrected retry.
	bad := &supplierv1.UpsertItemRequest{RequestId: "req-3", Item: counted(supplierID, "y", 100, 1, 0)}
	bad.Item.CurrentPriceFen = 200
	_, err = e.client.UpsertItem(e.staff(supplierID), bad)
	wantField(t, err, "item.current_price_fen")
	bad.Item.CurrentPriceFen = 100
	if _, err := e.client.UpsertItem(e.staff(supplierID), bad); err != nil {
		t.Fatal(err)
	}
}

// Every change needs a request id (SPEC.md, "Idempotency"): without one a client's retry after a
// lost answer would apply the change twice, so the change is refused, naming request_id, and
// nothing is written.
func TestEveryChangeNeedsARequestID(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("rice", 2))

	calls := []struct {
		name string
		call func() error
	}{
		{"CreateSupplier", func() error {
			_, err := e.client.CreateSupplier(e.worker(), &supplierv1.CreateSupplierRequest{Compound: compound, SupplierId: "other", Name: "Other", Kind: "supermarket"})
			return err
		}},
		{"UpdateCredentials", func() error {
			_, err := e.client.UpdateCredentials(e.worker(), &supplierv1.UpdateCredentialsRequest{SupplierId: "freshmart",
				Credentials: []*supplierv1.Credential{credential("business_licence", "2020-01-01"), credential("food_permit", "2020-01-01")}})
			return err
		}},
		{"SetSupplierSuspended", func() error {
			_, err := e.client.SetSupplierSuspended(e.worker(), &supplierv1.SetSupplierSuspendedRequest{SupplierId: "freshmart", Suspended: true, Reason: "inspection"})
			return err
		}},
		{"UpsertItem", func() error {
			_, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{Item: counted("freshmart", "rice", 4500, 99, 0)})
			return err
		}},
		{"AdjustStock", func() error {
			_, err := e.client.AdjustStock(e.staff("freshmart"), &supplierv1.AdjustStockRequest{SupplierId: "freshmart", ItemId: "rice", Delta: 5, Reason: "delivery"})
			return err
		}},
		{"ConfirmParcel", func() error {
			_, err := e.client.ConfirmParcel(e.staff("freshmart"), &supplierv1.ConfirmParcelRequest{SupplierId: "freshmart", ParcelId: p.GetParcelId()})
			return err
		}},
		{"RejectParcel", func() error {
			_, err := e.client.RejectParcel(e.staff("freshmart"), &supplierv1.RejectParcelRequest{SupplierId: "freshmart", ParcelId: p.GetParcelId(), Reason: "sold out"})
			return err
		}},
		{"MarkParcelReady", func() error {
			_, err := e.client.MarkParcelReady(e.staff("freshmart"), &supplierv1.MarkParcelReadyRequest{SupplierId: "freshmart", ParcelId: p.GetParcelId()})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) { wantField(t, c.call(), "request_id") })
	}

	list, err := e.client.ListSuppliers(e.worker(), &supplierv1.ListSuppliersRequest{Compound: compound})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.GetSuppliers(); len(got) != 1 || got[0].GetSuspended() || !got[0].GetAcceptingOrders() {
		t.Fatalf("suppliers after refused changes: %v", got)
	}
	e.wantStock("rice", 8)
	if got := e.transitions(p.GetParcelId()); len(got) != 1 {
		t.Fatalf("parcel transitions after refused decisions: %q", got)
	}
}

// The reference price caps what residents pay (SPEC.md, "No markup"); raising it together with the
// current price would be a markup, so the supplier's staff may lower it but never raise it. Only
// the system (an operator's tool) corrects it upwards.
func TestSupplierCannotRaiseTheReferencePrice(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))

	raised := counted("freshmart", "rice", 99000, 10, 0) // both prices 990 yuan
	_, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: raised})
	wantField(t, err, "item.reference_price_fen")
	if v := grpcx.FieldViolations(err)["item.reference_price_fen"]; !strings.Contains(v, "4500") {
		t.Errorf("the refusal should name the reference price it keeps: %q", v)
	}
	e.wantPrices("rice", 4500, 4500)

	// Lowering it is allowed, and then it cannot go back up either.
	lowered := counted("freshmart", "rice", 4000, 10, 0)
	if _, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: lowered}); err != nil {
		t.Fatal(err)
	}
	e.wantPrices("rice", 4000, 4000)
	_, err = e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: counted("freshmart", "rice", 4500, 10, 0)})
	wantField(t, err, "item.reference_price_fen")

	// The system corrects it.
	if _, err := e.client.UpsertItem(e.system(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: counted("freshmart", "rice", 4500, 10, 0)}); err != nil {
		t.Fatal(err)
	}
	e.wantPrices("rice", 4500, 4500)
}

func (e *env) wantPrices(itemID string, reference, current int64) {
	e.t.Helper()
	res, err := e.client.BatchGetItems(e.worker(), &supplierv1.BatchGetItemsRequest{ItemIds: []string{itemID}})
	if err != nil {
		e.t.Fatal(err)
	}
	if it := res.GetItems()[0]; it.GetReferencePriceFen() != reference || it.GetCurrentPriceFen() != current {
		e.t.Fatalf("%s priced %d (reference %d), want %d (reference %d)", itemID, it.GetCurrentPriceFen(), it.GetReferencePriceFen(), current, reference)
	}
}
