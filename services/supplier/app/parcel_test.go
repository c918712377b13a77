package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/doorstep/doorstep/pkg/grpcx"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func confirmReq(p *supplierv1.SupplierParcel, lines ...*supplierv1.ConfirmLine) *supplierv1.ConfirmParcelRequest {
	return &supplierv1.ConfirmParcelRequest{RequestId: newID(), SupplierId: p.GetSupplierId(), ParcelId: p.GetParcelId(), Lines: lines}
}

func confirmLine(item string, q int64) *supplierv1.ConfirmLine {
	return &supplierv1.ConfirmLine{ItemId: item, Quantity: proto.Int64(q)}
}

func (e *env) transitions(parcelID string) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT coalesce(from_state, '') || '>' || to_state || ' by ' || actor_role || ':' || actor_id
		|| CASE WHEN reason = '' THEN '' ELSE ' (' || reason || ')' END
		FROM parcel_transitions WHERE parcel_id = $1 ORDER BY id`, parcelID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestConfirmWeighedWithinTolerance(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(weighed("freshmart", "pork", 3000, 10000))
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("pork", 1000), line("rice", 1))
	e.wantStock("pork", 9000)

	for _, grams := range []int64{1101, 899} {
		_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("rice", 0), confirmLine("pork", grams)))
		wantField(t, err, "lines[1].quantity")
	}
	e.wantStock("pork", 9000)

	res, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("pork", 1100)))
	if err != nil {
		t.Fatal(err)
	}
	c := res.GetParcel()
	pork := c.GetLines()[0]
	if c.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED || pork.GetConfirmedQuantity() != 1100 ||
		pork.GetConfirmedAmountFen() != 3300 || pork.GetAmountFen() != 3000 || c.GetTotalFen() != 3300+4500 {
		t.Fatalf("confirmed %v", c)
	}
	e.wantStock("pork", 8900) // the extra 100 g came out of stock

	ev := e.onlyEvent("doorstep.haixin.parcel.confirmed", p.GetParcelId())
	ch := ev.GetParcelStateChanged()
	if ev.GetOrderId() != p.GetOrderId() || ev.GetCompound() != compound || ch.GetHouseholdId() != p.GetHouseholdId() ||
		ch.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED || ch.GetConfirmedTotalFen() != 7800 ||
		len(ch.GetConfirmedLines()) != 2 || ch.GetConfirmedLines()[0].GetQuantity() != 1100 ||
		ch.GetConfirmedLines()[0].GetAmountFen() != 3300 {
		t.Fatalf("event %v", ev)
	}
	if ev.GetActor().GetRole() != typesv1.Role_ROLE_SUPPLIER || ev.GetActor().GetId() != staffID("freshmart") {
		t.Fatalf("actor %v", ev.GetActor())
	}

	// A lighter confirmation gives the difference back.
	q := e.mustReserve("freshmart", "303", line("pork", 2000))
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(q, confirmLine("pork", 1850))); err != nil {
		t.Fatal(err)
	}
	e.wantStock("pork", 8900-2000+150)
}

func TestConfirmHeavierNeedsStock(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(weighed("freshmart", "pork", 3000, 1050))
	p := e.mustReserve("freshmart", "302", line("pork", 1000))
	_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("pork", 1100)))
	wantItemRefused(t, err, "OUT_OF_STOCK", "pork")
	e.wantStock("pork", 50)
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("pork", 1050))); err != nil {
		t.Fatal(err)
	}
	e.wantStock("pork", 0)
}

func TestPartialConfirmReleasesStock(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "eggs", 1500, 10, 0))
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(counted("freshmart", "masks", 2000, 10, 2))
	e.item(weighed("freshmart", "pork", 3000, 10000))
	p := e.mustReserve("freshmart", "302", line("eggs", 6), line("rice", 2), line("masks", 2), line("pork", 500))
	e.wantStock("eggs", 4)

	for _, tt := range []struct {
		field string
		lines []*supplierv1.ConfirmLine
	}{
		{"lines[0].quantity", []*supplierv1.ConfirmLine{confirmLine("eggs", 7)}},
		{"lines[0].item_id", []*supplierv1.ConfirmLine{confirmLine("oil", 1)}},
		{"lines[0].quantity", []*supplierv1.ConfirmLine{confirmLine("eggs", -1)}},
		{"lines[1].item_id", []*supplierv1.ConfirmLine{confirmLine("eggs", 1), {ItemId: "eggs"}}},
		{"lines[0].quantity", []*supplierv1.ConfirmLine{confirmLine("pork", 1)}}, // a weighed line: within 10 %, or 0
	} {
		_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, tt.lines...))
		wantField(t, err, tt.field)
	}
	e.wantStock("eggs", 4)
	// Nothing left to deliver is a rejection, with a reason.
	nothing := e.mustReserve("freshmart", "303", line("eggs", 1), line("rice", 1))
	_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(nothing, confirmLine("eggs", 0), confirmLine("rice", 0)))
	wantField(t, err, "lines")
	if _, err := e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: nothing.GetParcelId()}); err != nil {
		t.Fatal(err)
	}
	e.wantStock("eggs", 4)

	// A weighed line none of which is to be had is dropped like a counted one, its grams released.
	noPork := e.mustReserve("freshmart", "304", line("eggs", 1), line("pork", 400))
	dropped, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(noPork, confirmLine("pork", 0)))
	if err != nil {
		t.Fatal(err)
	}
	if l := dropped.GetParcel().GetLines()[1]; l.GetItemId() != "pork" || l.GetConfirmedQuantity() != 0 || l.GetConfirmedAmountFen() != 0 ||
		dropped.GetParcel().GetTotalFen() != 1500 {
		t.Fatalf("confirmed without the pork: %v", dropped.GetParcel())
	}
	e.wantStock("eggs", 3)
	e.wantStock("pork", 10000-500)

	// Four of six eggs, no rice, one of two masks, the pork as estimated (its quantity unset).
	res, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("eggs", 4), confirmLine("rice", 0),
		confirmLine("masks", 1), &supplierv1.ConfirmLine{ItemId: "pork"}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int64{}
	for _, l := range res.GetParcel().GetLines() {
		got[l.GetItemId()] = [2]int64{l.GetConfirmedQuantity(), l.GetConfirmedAmountFen()}
	}
	want := map[string][2]int64{"eggs": {4, 6000}, "rice": {0, 0}, "masks": {1, 2000}, "pork": {500, 1500}}
	if fmt.Sprint(got) != fmt.Sprint(want) || res.GetParcel().GetTotalFen() != 6000+2000+1500 {
		t.Fatalf("confirmed %v, total %d; want %v", got, res.GetParcel().GetTotalFen(), want)
	}
	// Exactly the units not confirmed are back on the shelf.
	e.wantStock("eggs", 10-4-1)
	e.wantStock("rice", 10)
	e.wantStock("masks", 10-1)
	e.wantStock("pork", 10000-500)
	ev := e.onlyEvent("doorstep.haixin.parcel.confirmed", p.GetParcelId())
	if ev.GetParcelStateChanged().GetConfirmedTotalFen() != 9500 || len(ev.GetParcelStateChanged().GetConfirmedLines()) != 4 {
		t.Fatalf("event %v", ev)
	}
	// The ration counts what was confirmed: one more mask today, not two.
	_, err = e.reserve("freshmart", "302", line("masks", 2))
	wantItemRefused(t, err, "RATION_EXCEEDED", "masks")
	e.mustReserve("freshmart", "302", line("masks", 1))
	e.wantStock("masks", 10-2)
}

func TestRejectReleasesStock(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("rice", 4))
	e.wantStock("rice", 6)

	reject := &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId()}
	_, err := e.client.RejectParcel(e.staff("freshmart"), reject)
	wantField(t, err, "reason")
	reject.Reason = "rice delivery did not arrive"
	res, err := e.client.RejectParcel(e.staff("freshmart"), reject)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetParcel().GetState() != typesv1.ParcelState_PARCEL_STATE_REJECTED || res.GetParcel().GetReason() != reject.Reason {
		t.Fatalf("rejected %v", res.GetParcel())
	}
	e.wantStock("rice", 10)
	ev := e.onlyEvent("doorstep.haixin.parcel.rejected", p.GetParcelId())
	if ev.GetParcelStateChanged().GetReason() != reject.Reason || ev.GetOrderId() != p.GetOrderId() {
		t.Fatalf("event %v", ev)
	}
	reject.RequestId = newID() // a second attempt, not a retry of the first
	_, err = e.client.RejectParcel(e.staff("freshmart"), reject)
	wantCode(t, err, codes.FailedPrecondition)
	e.wantStock("rice", 10)
	if got := e.transitions(p.GetParcelId()); len(got) != 2 ||
		got[1] != "placed>rejected by supplier:freshmart-staff (rice delivery did not arrive)" {
		t.Fatalf("transitions %q", got)
	}
}

func TestReleaseReservation(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("rice", 4))

	// The actor a request names is not read: the release is the resident's, for whom the order
	// service calls.
	release := &supplierv1.ReleaseReservationRequest{ParcelId: p.GetParcelId(), Reason: "resident cancelled",
		Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "someone-else"}}
	for range 2 { // releasing twice gives the stock back once
		res, err := e.client.ReleaseReservation(e.order(p.GetHouseholdId()), release)
		if err != nil {
			t.Fatal(err)
		}
		if res.GetParcel().GetState() != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
			t.Fatalf("released %v", res.GetParcel())
		}
	}
	e.wantStock("rice", 10)
	if got := e.transitions(p.GetParcelId()); len(got) != 2 || got[1] != "placed>cancelled by resident:haixin-3-2-302 (resident cancelled)" {
		t.Fatalf("transitions %q", got)
	}
	// The order service announces cancellations, not the supplier.
	if evs := e.published("doorstep.>"); len(evs) != 0 {
		t.Fatalf("release published %d events", len(evs))
	}
	_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p))
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: newID()})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: "not-a-uuid"})
	wantField(t, err, "parcel_id")

	q := e.mustReserve("freshmart", "302", line("rice", 1))
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(q)); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: q.GetParcelId()})
	wantCode(t, err, codes.FailedPrecondition)
	e.wantStock("rice", 9)
}

func TestReadyAndIllegalTransitions(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.supplier("pharmacy")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("rice", 1))
	ready := &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId()}

	_, err := e.client.MarkParcelReady(e.staff("freshmart"), ready)
	wantCode(t, err, codes.FailedPrecondition)

	// Another supplier cannot see, let alone decide, this parcel.
	_, err = e.client.ConfirmParcel(e.staff("pharmacy"), &supplierv1.ConfirmParcelRequest{RequestId: newID(), SupplierId: "pharmacy", ParcelId: p.GetParcelId()})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.RejectParcel(e.staff("pharmacy"), &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "pharmacy", ParcelId: p.GetParcelId(), Reason: "x"})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.MarkParcelReady(e.staff("pharmacy"), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "pharmacy", ParcelId: p.GetParcelId()})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.ConfirmParcel(e.staff("freshmart"), &supplierv1.ConfirmParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: newID()})
	wantCode(t, err, codes.NotFound)
	_, err = e.client.ConfirmParcel(e.staff("freshmart"), &supplierv1.ConfirmParcelRequest{RequestId: newID(), ParcelId: p.GetParcelId()})
	wantField(t, err, "supplier_id")

	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p)); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p))
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.client.RejectParcel(e.staff("freshmart"), &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId(), Reason: "x"})
	wantCode(t, err, codes.FailedPrecondition)

	res, err := e.client.MarkParcelReady(e.staff("freshmart"), ready)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetParcel().GetState() != typesv1.ParcelState_PARCEL_STATE_READY {
		t.Fatalf("state %v", res.GetParcel().GetState())
	}
	ready.RequestId = newID() // a second attempt, not a retry of the first
	_, err = e.client.MarkParcelReady(e.staff("freshmart"), ready)
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "ready") {
		t.Fatalf("message %v", err)
	}

	ev := e.onlyEvent("doorstep.haixin.parcel.ready", p.GetParcelId())
	if ev.GetParcelStateChanged().GetHouseholdId() != "haixin-3-2-302" || ev.GetOrderId() != p.GetOrderId() {
		t.Fatalf("event %v", ev)
	}
	e.onlyEvent("doorstep.haixin.parcel.confirmed", p.GetParcelId())
	if n := len(e.published("doorstep.>")); n != 2 {
		t.Fatalf("%d events, want confirmed and ready", n)
	}
	want := []string{"placed>confirmed by supplier:freshmart-staff", "confirmed>ready by supplier:freshmart-staff"}
	if got := e.transitions(p.GetParcelId()); len(got) != 3 || got[1] != want[0] || got[2] != want[1] {
		t.Fatalf("transitions %q", got)
	}
}

// Retried decisions answer with the first response and announce once; the same request id on a
// different decision is refused.
func TestDecisionsAreIdempotent(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(weighed("freshmart", "pork", 3000, 10000))
	p := e.mustReserve("freshmart", "302", line("pork", 1000))

	confirm := confirmReq(p, confirmLine("pork", 1050))
	confirm.RequestId = "confirm-1"
	first, err := e.client.ConfirmParcel(e.staff("freshmart"), confirm)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client.ConfirmParcel(e.staff("freshmart"), confirm)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, again) {
		t.Fatalf("retry answered %v, first %v", again, first)
	}
	e.wantStock("pork", 10000-1050)
	changed := proto.Clone(confirm).(*supplierv1.ConfirmParcelRequest)
	changed.Lines[0].Quantity = proto.Int64(1000)
	_, err = e.client.ConfirmParcel(e.staff("freshmart"), changed)
	wantCode(t, err, codes.AlreadyExists)
	_, err = e.client.MarkParcelReady(e.staff("freshmart"), &supplierv1.MarkParcelReadyRequest{RequestId: "confirm-1", SupplierId: "freshmart", ParcelId: p.GetParcelId()})
	wantCode(t, err, codes.AlreadyExists)

	ready := &supplierv1.MarkParcelReadyRequest{RequestId: "ready-1", SupplierId: "freshmart", ParcelId: p.GetParcelId()}
	for range 3 {
		if _, err := e.client.MarkParcelReady(e.staff("freshmart"), ready); err != nil {
			t.Fatal(err)
		}
	}
	e.onlyEvent("doorstep.haixin.parcel.confirmed", p.GetParcelId())
	e.onlyEvent("doorstep.haixin.parcel.ready", p.GetParcelId())

	q := e.mustReserve("freshmart", "303", line("pork", 500))
	reject := &supplierv1.RejectParcelRequest{RequestId: "reject-1", SupplierId: "freshmart", ParcelId: q.GetParcelId(), Reason: "sold out"}
	for range 2 {
		if _, err := e.client.RejectParcel(e.staff("freshmart"), reject); err != nil {
			t.Fatal(err)
		}
	}
	e.onlyEvent("doorstep.haixin.parcel.rejected", q.GetParcelId())
	e.wantStock("pork", 10000-1050)
	if n := len(e.transitions(q.GetParcelId())); n != 2 {
		t.Fatalf("%d transitions after a retried rejection", n)
	}
}

func TestListParcels(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.supplier("pharmacy")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(counted("pharmacy", "masks", 2000, 10, 0))
	a := e.mustReserve("freshmart", "301", line("rice", 1))
	b := e.mustReserve("freshmart", "302", line("rice", 2))
	e.mustReserve("pharmacy", "302", line("masks", 1))
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(b)); err != nil {
		t.Fatal(err)
	}

	list := func(state typesv1.ParcelState) []*supplierv1.SupplierParcel {
		t.Helper()
		res, err := e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", State: state})
		if err != nil {
			t.Fatal(err)
		}
		return res.GetParcels()
	}
	if all := list(typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED); len(all) != 2 || all[0].GetParcelId() != a.GetParcelId() ||
		len(all[1].GetLines()) != 1 || all[1].GetLines()[0].GetConfirmedQuantity() != 2 {
		t.Fatalf("all parcels %v", all)
	}
	if placed := list(typesv1.ParcelState_PARCEL_STATE_PLACED); len(placed) != 1 || placed[0].GetParcelId() != a.GetParcelId() {
		t.Fatalf("placed parcels %v", placed)
	}
	if ready := list(typesv1.ParcelState_PARCEL_STATE_READY); len(ready) != 0 {
		t.Fatalf("ready parcels %v", ready)
	}
	_, err := e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{})
	wantField(t, err, "supplier_id")
	_, err = e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", State: 99})
	wantField(t, err, "state")
	_, err = e.client.ListParcels(e.worker(), &supplierv1.ListParcelsRequest{SupplierId: "nobody"})
	wantCode(t, err, codes.NotFound)
}

// ListParcels pages the queue: every parcel once, oldest first (or newest first if asked),
// across pages; a token answers only the listing it came from.
func TestListParcelsPages(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.supplier("pharmacy")
	e.item(counted("freshmart", "rice", 4500, 100, 0))
	e.item(counted("pharmacy", "masks", 2000, 10, 0))
	var want []string
	for i := range 7 {
		want = append(want, e.mustReserve("freshmart", fmt.Sprint(301+i), line("rice", 1)).GetParcelId())
	}
	e.mustReserve("pharmacy", "301", line("masks", 1))

	// pages reads every page of 3 and the ids on them.
	pages := func(req *supplierv1.ListParcelsRequest) (ids []string, pages int) {
		t.Helper()
		for pages = 1; ; pages++ {
			res, err := e.client.ListParcels(e.staff("freshmart"), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.GetParcels()) > 3 {
				t.Fatalf("page %d holds %d parcels; asked for 3", pages, len(res.GetParcels()))
			}
			for _, p := range res.GetParcels() {
				ids = append(ids, p.GetParcelId())
			}
			if res.GetNextPageToken() == "" {
				return ids, pages
			}
			req.PageToken = res.GetNextPageToken()
		}
	}
	if got, n := pages(&supplierv1.ListParcelsRequest{SupplierId: "freshmart", PageSize: 3}); n != 3 || !slices.Equal(got, want) {
		t.Fatalf("%d pages listed %v; want every parcel once on 3 pages, oldest first: %v", n, got, want)
	}
	newest := slices.Clone(want)
	slices.Reverse(newest)
	if got, n := pages(&supplierv1.ListParcelsRequest{SupplierId: "freshmart", PageSize: 3, NewestFirst: true}); n != 3 || !slices.Equal(got, newest) {
		t.Fatalf("%d pages listed %v; want every parcel once on 3 pages, newest first: %v", n, got, newest)
	}

	first, err := e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	token := first.GetNextPageToken()
	// The same token with other filters, or for another supplier, is refused, not misread.
	_, err = e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart",
		State: typesv1.ParcelState_PARCEL_STATE_PLACED, PageToken: token})
	wantField(t, err, "page_token")
	_, err = e.client.ListParcels(e.worker(), &supplierv1.ListParcelsRequest{SupplierId: "pharmacy", PageToken: token})
	wantField(t, err, "page_token")
	// Nor does a token of the oldest first answer the newest first: it would skip the rest.
	_, err = e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", NewestFirst: true, PageToken: token})
	wantField(t, err, "page_token")
	_, err = e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", PageToken: "not a token"})
	wantField(t, err, "page_token")
	// A token is the listing's scope and the last parcel shown: one made by hand in the
	// canonical spelling goes on after that parcel, another spelling of the id is refused.
	scope := "freshmart|PARCEL_STATE_UNSPECIFIED|||false"
	if next, err := e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", PageSize: 1,
		PageToken: grpcx.PageToken(scope, want[1])}); err != nil || len(next.GetParcels()) != 1 || next.GetParcels()[0].GetParcelId() != want[2] {
		t.Fatalf("the page after %s: %v, %v; want %s", want[1], next.GetParcels(), err, want[2])
	}
	_, err = e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart",
		PageToken: grpcx.PageToken(scope, "urn:uuid:"+want[0])})
	wantField(t, err, "page_token")
	_, err = e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", PageSize: -1})
	wantField(t, err, "page_size")
	// No page size is the default page, which holds all seven.
	if all, err := e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart"}); err != nil ||
		len(all.GetParcels()) != 7 || all.GetNextPageToken() != "" {
		t.Fatalf("default page: %d parcels, token %q, %v", len(all.GetParcels()), all.GetNextPageToken(), err)
	}
}
