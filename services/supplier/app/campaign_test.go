package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// parcelEvents are the events published about one parcel, subject by subject.
func (e *env) parcelEvents(parcelID string) []string {
	e.t.Helper()
	var out []string
	for _, p := range e.published("doorstep.>") {
		if p.event.GetParcelStateChanged().GetParcelId() == parcelID {
			out = append(out, p.subject)
		}
	}
	return out
}

// withoutIdentity is ev without what differs between any two events (id and time), for comparing
// what they say.
func withoutIdentity(ev *eventsv1.Event) *eventsv1.Event {
	ev = proto.Clone(ev).(*eventsv1.Event)
	ev.EventId, ev.OccurredAt = "", nil
	return ev
}

// A campaign's pack of a supermarket's goods: every line free, the ration not applied, stock
// taken, and the parcel confirmed at once by the worker, announced exactly as the supplier's own
// confirmation of the same parcel would be. A retry is the same parcel; it never expires.
func TestCampaignPackIsFreeAndConfirmedAtOnce(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 2000, 100, 1))
	e.item(weighed("freshmart", "pork", 3000, 10_000))

	req := packReq("freshmart", "302", "spring", line("masks", 3), line("pork", 500))
	res, err := e.client.ReserveStock(e.campaign(), req)
	if err != nil {
		t.Fatal(err)
	}
	p := res.GetParcel()
	if p.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED || p.GetTotalFen() != 0 || p.GetCampaignId() != "spring" ||
		p.GetConfirmBy() != nil || p.GetRoundId() != "haixin-2026-03-01-pm" || p.GetReason() != "free pack of campaign spring" {
		t.Fatalf("pack %v", p)
	}
	for _, l := range p.GetLines() {
		if l.GetUnitPriceFen() != 0 || l.GetAmountFen() != 0 || l.GetConfirmedQuantity() != l.GetQuantity() || l.GetConfirmedAmountFen() != 0 {
			t.Fatalf("line %v", l)
		}
	}
	e.wantStock("masks", 97)
	e.wantStock("pork", 9500)
	wantTransitions := []string{
		">placed by worker:worker-li (reserved for order " + req.GetOrderId() + " (free pack of campaign spring))",
		"placed>confirmed by worker:worker-li (free pack of campaign spring)",
	}
	if got := e.transitions(p.GetParcelId()); !slices.Equal(got, wantTransitions) {
		t.Fatalf("transitions %q, want %q", got, wantTransitions)
	}

	// The events of a placement (none: the order service announces orders) and a confirmation.
	if got := e.parcelEvents(p.GetParcelId()); !slices.Equal(got, []string{"doorstep.haixin.parcel.confirmed"}) {
		t.Fatalf("events %q", got)
	}
	packEvent := e.onlyEvent("doorstep.haixin.parcel.confirmed", p.GetParcelId())
	// The same parcel ordered and confirmed by the supplier is announced with the same event,
	// but for the prices, the actor and the reason.
	e.item(counted("freshmart", "masks", 2000, 100, 0)) // no ration for the comparison
	order := e.mustReserve("freshmart", "303", line("masks", 3), line("pork", 500))
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(order)); err != nil {
		t.Fatal(err)
	}
	orderEvent := withoutIdentity(e.onlyEvent("doorstep.haixin.parcel.confirmed", order.GetParcelId()))
	want := withoutIdentity(packEvent)
	want.OrderId = order.GetOrderId()
	want.Actor = &typesv1.Actor{Role: typesv1.Role_ROLE_SUPPLIER, Id: staffID("freshmart")}
	ch := want.GetParcelStateChanged()
	ch.ParcelId, ch.HouseholdId, ch.Reason = order.GetParcelId(), householdID("303"), ""
	ch.ConfirmedLines[0].AmountFen, ch.ConfirmedLines[1].AmountFen, ch.ConfirmedTotalFen = 6000, 1500, 7500
	if !proto.Equal(want, orderEvent) {
		t.Fatalf("a campaign's pack was announced as %v;\nthe supplier's confirmation as %v", packEvent, orderEvent)
	}
	pe := packEvent.GetParcelStateChanged()
	if packEvent.GetOrderId() != req.GetOrderId() || packEvent.GetActor().GetRole() != typesv1.Role_ROLE_WORKER ||
		packEvent.GetActor().GetId() != "worker-li" || pe.GetReason() != "free pack of campaign spring" || pe.GetConfirmedTotalFen() != 0 {
		t.Fatalf("pack event %v", packEvent)
	}

	// A retry answers with the stored pack and changes nothing; another request under its id,
	// even the same lines ordered outside the campaign, is refused.
	again, err := e.client.ReserveStock(e.campaign(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again.GetParcel(), p) {
		t.Fatalf("retry answered %v, first %v", again.GetParcel(), p)
	}
	notCampaign := proto.Clone(req).(*supplierv1.ReserveStockRequest)
	notCampaign.CampaignId = ""
	_, err = e.client.ReserveStock(e.order(req.GetHouseholdId()), notCampaign)
	wantCode(t, err, codes.AlreadyExists)
	e.wantStock("masks", 97-3)
	if n := len(e.transitions(p.GetParcelId())); n != 2 {
		t.Fatalf("%d transitions after a retry", n)
	}
	if got := e.parcelEvents(p.GetParcelId()); len(got) != 1 {
		t.Fatalf("events after a retry %q", got)
	}

	// The free masks count against no ration: the household may still buy its one a day.
	e.item(counted("freshmart", "masks", 2000, 100, 1))
	e.mustReserve("freshmart", "302", line("masks", 1))
	_, err = e.reserve("freshmart", "302", line("masks", 1))
	wantItemRefused(t, err, "RATION_EXCEEDED", "masks")

	// Confirmed, the pack never expires; the supplier hands it over at the gate like any parcel.
	later := newClock(e.clock.Now().Add(48 * time.Hour))
	if _, err := e.replica(later).ExpireDue(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.parcel("freshmart", p.GetParcelId()); got.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED {
		t.Fatalf("pack is %v after its round's cutoff", got.GetState())
	}
	ready, err := e.client.MarkParcelReady(e.staff("freshmart"), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId()})
	if err != nil {
		t.Fatal(err)
	}
	if ready.GetParcel().GetState() != typesv1.ParcelState_PARCEL_STATE_READY || ready.GetParcel().GetCampaignId() != "spring" {
		t.Fatalf("ready %v", ready.GetParcel())
	}
	e.onlyEvent("doorstep.haixin.parcel.ready", p.GetParcelId())
	// A confirmed pack is no longer the order service's to release.
	_, err = e.client.ReleaseReservation(e.campaign(), &supplierv1.ReleaseReservationRequest{ParcelId: p.GetParcelId()})
	wantCode(t, err, codes.FailedPrecondition)
}

// 100 campaign packs race for 30 masks, ten for each of ten households, whose ration is one a
// day: the ration does not apply, stock does. Exactly 30 packs are made, the others are told
// which item ran out, and stock ends at zero.
func TestConcurrentCampaignPacksNeverOversell(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("pharmacy")
	e.item(counted("pharmacy", "masks", 2000, 30, 1))
	e.donations("donations")
	e.donated("donations", "notice", 5)

	const packs = 100
	errs := make([]error, packs)
	var wg sync.WaitGroup
	for i := range packs {
		wg.Go(func() {
			_, errs[i] = e.client.ReserveStock(e.campaign(), packReq("pharmacy", fmt.Sprint(100+i%10), "spring", line("masks", 1)))
		})
	}
	wg.Wait()
	made := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			made++
		case codes.FailedPrecondition:
			wantItemRefused(t, err, "OUT_OF_STOCK", "masks")
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if made != 30 {
		t.Fatalf("%d packs made, want 30", made)
	}
	e.wantStock("masks", 0)
	if held := e.heldBy("masks"); held != 30 {
		t.Fatalf("packs hold %d masks, want 30", held)
	}

	// The same for donated stock.
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.client.ReserveStock(e.campaign(), packReq("donations", fmt.Sprint(100+i), "spring", line("notice", 1)))
		})
	}
	wg.Wait()
	made = 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			made++
		case codes.FailedPrecondition:
			wantItemRefused(t, err, "OUT_OF_STOCK", "notice")
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if made != 5 {
		t.Fatalf("%d packs of donated stock made, want 5", made)
	}
	e.wantStock("notice", 0)
	if n := len(e.published("doorstep.haixin.parcel.confirmed")); n != 35 {
		t.Fatalf("%d confirmations published, want one per pack (35)", n)
	}
}

// The community's donated stock: a supplier needing no papers, whose free items only campaigns
// hand out, kept by the compound's workers.
func TestDonatedStock(t *testing.T) {
	t.Parallel()
	e := start(t)
	sup := e.donations("donations")
	if sup.GetKind() != "donations" {
		t.Fatalf("supplier %v", sup)
	}
	wantStanding(t, e.listSupplier("donations"), true, "")
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))

	// Free, and nothing else, there; priced, and nothing else, at a supermarket.
	priced := donatedItem("donations", "masks", 1300)
	priced.ReferencePriceFen, priced.CurrentPriceFen = 500, 500
	_, err := e.client.UpsertItem(e.worker(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: priced})
	wantField(t, err, "item.reference_price_fen")
	wantField(t, err, "item.current_price_fen")
	priced.ReferencePriceFen, priced.CurrentPriceFen = 500, 0
	_, err = e.client.UpsertItem(e.worker(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: priced})
	wantField(t, err, "item.reference_price_fen")
	rationed := donatedItem("donations", "masks", 1300)
	rationed.RationPerDay = 1
	_, err = e.client.UpsertItem(e.worker(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: rationed})
	wantField(t, err, "item.ration_per_day")
	_, err = e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: donatedItem("freshmart", "free-rice", 10)})
	wantField(t, err, "item.reference_price_fen")
	wantField(t, err, "item.current_price_fen")

	// The compound's worker keeps it: items, stock (recorded as theirs) and handing packs over.
	masks := e.donated("donations", "masks", 1300)
	if masks.GetReferencePriceFen() != 0 || masks.GetCurrentPriceFen() != 0 || masks.GetStock() != 1300 {
		t.Fatalf("donated item %v", masks)
	}
	if _, err := e.client.AdjustStock(e.worker(), adjustReq("donations", "masks", 200, "donated by the street office")); err != nil {
		t.Fatal(err)
	}
	e.wantStock("masks", 1500)
	if got := e.adjustments("masks"); len(got) != 1 || got[0].actor != "worker:worker-li" || got[0].stockAfter != 1500 {
		t.Fatalf("adjustments %+v", got)
	}
	pack, err := e.client.ReserveStock(e.campaign(), packReq("donations", "302", "spring", line("masks", 2)))
	if err != nil {
		t.Fatal(err)
	}
	ready, err := e.client.MarkParcelReady(e.worker(), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "donations",
		ParcelId: pack.GetParcel().GetParcelId()})
	if err != nil {
		t.Fatal(err)
	}
	if ready.GetParcel().GetState() != typesv1.ParcelState_PARCEL_STATE_READY {
		t.Fatalf("ready %v", ready.GetParcel())
	}
	if got := e.transitions(pack.GetParcel().GetParcelId()); len(got) != 3 || got[2] != "confirmed>ready by worker:worker-li" {
		t.Fatalf("transitions %q", got)
	}
	e.onlyEvent("doorstep.haixin.parcel.ready", pack.GetParcel().GetParcelId())
	list, err := e.client.ListParcels(e.worker(), &supplierv1.ListParcelsRequest{SupplierId: "donations"})
	if err != nil || len(list.GetParcels()) != 1 {
		t.Fatalf("worker's list of donated packs: %v, %v", list.GetParcels(), err)
	}

	// No supermarket's: the worker may not act as its staff.
	order := e.mustReserve("freshmart", "302", line("rice", 1))
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(order)); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.UpsertItem(e.worker(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: counted("freshmart", "rice", 4000, 10, 0)})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.AdjustStock(e.worker(), adjustReq("freshmart", "rice", 5, "found a bag"))
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.MarkParcelReady(e.worker(), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: order.GetParcelId()})
	wantCode(t, err, codes.PermissionDenied)
	e.wantStock("rice", 9)
	if got := e.parcel("freshmart", order.GetParcelId()); got.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED {
		t.Fatalf("supermarket's parcel is %v", got.GetState())
	}

	// Nobody orders it: the order service's reservation for a resident, or a worker's proxy
	// order, is refused naming the item, and takes nothing.
	_, err = e.reserve("donations", "303", line("masks", 1))
	wantItemRefused(t, err, "DONATED_STOCK", "masks")
	if msg := status.Convert(err).Message(); msg != "item masks is donated stock; it is handed out by campaigns" {
		t.Fatalf("message %q", msg)
	}
	proxy := e.as(typesv1.Role_ROLE_SYSTEM, "order", onBehalfOf(typesv1.Role_ROLE_WORKER, "worker-li", testkit.InCompound(compound)))
	_, err = e.client.ReserveStock(proxy, reserveReq("donations", "303", line("masks", 1)))
	wantItemRefused(t, err, "DONATED_STOCK", "masks")
	// Nor does a resident's order make itself a campaign's free pack.
	_, err = e.client.ReserveStock(e.order(householdID("303")), packReq("donations", "303", "spring", line("masks", 1)))
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.ReserveStock(e.order(householdID("303")), packReq("freshmart", "303", "spring", line("rice", 1)))
	wantCode(t, err, codes.PermissionDenied)
	e.wantStock("masks", 1498)
	e.wantStock("rice", 9)

	// Suspended, it gives no packs; reinstated, it does again.
	if _, err := e.client.SetSupplierSuspended(e.worker(), &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "donations",
		Suspended: true, Reason: "recount"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.ReserveStock(e.campaign(), packReq("donations", "303", "spring", line("masks", 1)))
	wantNotAccepting(t, err, "donations", "suspended: recount")
	if _, err := e.client.SetSupplierSuspended(e.worker(), &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "donations"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ReserveStock(e.campaign(), packReq("donations", "303", "spring", line("masks", 1))); err != nil {
		t.Fatal(err)
	}
	// A supermarket whose papers lapsed gives none either.
	e.credentials("freshmart", credential("business_licence", "2026-02-28"), credential("food_permit", "2030-12-31"))
	_, err = e.client.ReserveStock(e.campaign(), packReq("freshmart", "303", "spring", line("rice", 1)))
	wantNotAccepting(t, err, "freshmart", "business_licence expired on 2026-02-28")

	// The catalog residents order from leaves it out; those who hand it out or plan its delivery
	// see it. Named by id it is answered to anyone, so a household can read its pack.
	resident := e.as(typesv1.Role_ROLE_RESIDENT, householdID("302"), testkit.InCompound(compound))
	for _, tc := range []struct {
		caller string
		ctx    context.Context
		sees   bool
	}{
		{"resident", resident, false},
		{"service for a resident", e.order(householdID("302")), false},
		{"courier", e.as(typesv1.Role_ROLE_COURIER, "haixin-courier-01", testkit.InCompound(compound)), false},
		{"FreshMart's staff", e.staff("freshmart"), false},
		{"worker", e.worker(), true},
		{"service for a worker", e.campaign(), true},
		{"dispatcher", e.as(typesv1.Role_ROLE_DISPATCHER, "wang", testkit.InCompound(compound)), true},
		{"service", e.system(), true},
	} {
		all, err := e.client.ListItems(tc.ctx, &supplierv1.ListItemsRequest{Compound: compound})
		if err != nil {
			t.Fatal(err)
		}
		mine, err := e.client.ListItems(tc.ctx, &supplierv1.ListItemsRequest{Compound: compound, SupplierId: "donations"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range all.GetItems() {
			ids = append(ids, it.GetItemId())
		}
		want, wantMine := []string{"rice"}, 0
		if tc.sees {
			want, wantMine = []string{"masks", "rice"}, 1
		}
		if !slices.Equal(ids, want) || len(mine.GetItems()) != wantMine {
			t.Errorf("%s lists %v and %d donated items, want %v and %d", tc.caller, ids, len(mine.GetItems()), want, wantMine)
		}
	}
	got, err := e.client.BatchGetItems(resident, &supplierv1.BatchGetItemsRequest{ItemIds: []string{"masks"}})
	if err != nil || len(got.GetItems()) != 1 || got.GetItems()[0].GetCurrentPriceFen() != 0 {
		t.Fatalf("resident's look-up of the pack's item: %v, %v", got.GetItems(), err)
	}

	// The database keeps no markup, and knows the kind.
	if _, err := e.pool.Exec(e.ctx, `UPDATE items SET current_price_fen = 1 WHERE item_id = 'masks'`); err == nil {
		t.Fatal("a donated item's price went above its zero reference")
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE suppliers SET kind = 'charity' WHERE supplier_id = 'donations'`); err == nil ||
		!strings.Contains(err.Error(), "suppliers_kind_check") {
		t.Fatalf("an unknown kind was stored: %v", err)
	}
}

// ListParcels narrows to one campaign's packs, alone or with the other filters.
func TestListParcelsByCampaign(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 100, 0))
	a1, err := e.client.ReserveStock(e.campaign(), packReq("freshmart", "301", "spring", line("rice", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := e.client.ReserveStock(e.campaign(), packReq("freshmart", "302", "spring", line("rice", 1)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.client.ReserveStock(e.campaign(), packReq("freshmart", "301", "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f09", line("rice", 2)))
	if err != nil {
		t.Fatal(err)
	}
	order := e.mustReserve("freshmart", "301", line("rice", 1))
	if _, err := e.client.MarkParcelReady(e.staff("freshmart"), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart",
		ParcelId: a2.GetParcel().GetParcelId()}); err != nil {
		t.Fatal(err)
	}

	spring := e.list(&supplierv1.ListParcelsRequest{SupplierId: "freshmart", CampaignId: "spring"})
	if got, want := ids(spring), a1.GetParcel().GetParcelId()+","+a2.GetParcel().GetParcelId(); got != want {
		t.Fatalf("spring's packs %s, want %s", got, want)
	}
	for _, p := range spring {
		if p.GetCampaignId() != "spring" || p.GetTotalFen() != 0 {
			t.Fatalf("listed pack %v", p)
		}
	}
	if got := ids(e.list(&supplierv1.ListParcelsRequest{SupplierId: "freshmart", CampaignId: "spring",
		State: typesv1.ParcelState_PARCEL_STATE_CONFIRMED})); got != a1.GetParcel().GetParcelId() {
		t.Fatalf("spring's confirmed packs %s", got)
	}
	if got := ids(e.list(&supplierv1.ListParcelsRequest{SupplierId: "freshmart", CampaignId: "spring",
		RoundId: "haixin-2026-03-01-am"})); got != "" {
		t.Fatalf("spring's packs of the morning round %s", got)
	}
	if got := ids(e.list(&supplierv1.ListParcelsRequest{SupplierId: "freshmart", CampaignId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f09"})); got != b.GetParcel().GetParcelId() {
		t.Fatalf("the other campaign's packs %s", got)
	}
	all := e.list(&supplierv1.ListParcelsRequest{SupplierId: "freshmart"})
	if len(all) != 4 || all[3].GetParcelId() != order.GetParcelId() || all[3].GetCampaignId() != "" {
		t.Fatalf("all parcels %v", all)
	}
	_, err = e.client.ListParcels(e.worker(), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", CampaignId: "no such campaign!"})
	wantField(t, err, "campaign_id")
	_, err = e.client.ReserveStock(e.campaign(), packReq("freshmart", "303", "spring/2", line("rice", 1)))
	wantField(t, err, "campaign_id")
}
