package app_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestReserveStockPricesAndTakesStock(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(weighed("freshmart", "pork", 3580, 5000))

	p := e.mustReserve("freshmart", "302", line("rice", 2), line("pork", 1234))
	if p.GetState() != typesv1.ParcelState_PARCEL_STATE_PLACED {
		t.Fatalf("state %v", p.GetState())
	}
	rice, pork := p.GetLines()[0], p.GetLines()[1]
	if rice.GetAmountFen() != 9000 || rice.GetUnitWeightGrams() != 250 {
		t.Fatalf("rice line %v", rice)
	}
	// 35.80 yuan/kg * 1.234 kg = 44.1772 yuan.
	if !pork.GetWeighed() || pork.GetUnitPriceFen() != 3580 || pork.GetAmountFen() != 4418 {
		t.Fatalf("pork line %v", pork)
	}
	if p.GetTotalFen() != 9000+4418 || p.GetAddress().GetRoom() != "302" || p.GetHouseholdId() != "haixin-3-2-302" {
		t.Fatalf("parcel %v", p)
	}
	e.wantStock("rice", 8)
	e.wantStock("pork", 5000-1234)

	var from *string
	var to, role, actor string
	if err := e.pool.QueryRow(e.ctx, `SELECT from_state, to_state, actor_role, actor_id FROM parcel_transitions
		WHERE parcel_id = $1`, p.GetParcelId()).Scan(&from, &to, &role, &actor); err != nil {
		t.Fatal(err)
	}
	// Recorded as placed by the resident the order service reserved for.
	if from != nil || to != "placed" || role != "resident" || actor != "haixin-3-2-302" {
		t.Fatalf("transition %v -> %s by %s %s", from, to, role, actor)
	}
	// Reservations are the order service's to announce.
	if evs := e.published("doorstep.>"); len(evs) != 0 {
		t.Fatalf("reservation published %d events", len(evs))
	}
}

func TestReserveStockRefusals(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.supplier("pharmacy")
	e.item(counted("freshmart", "rice", 4500, 3, 0))
	e.item(counted("freshmart", "oil", 6000, 1, 0))
	e.item(counted("pharmacy", "masks", 2000, 10, 0))

	_, err := e.reserve("freshmart", "302", line("rice", 4))
	wantItemRefused(t, err, "OUT_OF_STOCK", "rice")
	_, err = e.reserve("freshmart", "302", line("rice", 4), line("oil", 2))
	wantItemRefused(t, err, "OUT_OF_STOCK", "rice", "oil")
	_, err = e.reserve("freshmart", "302", line("rice", 1), line("masks", 1))
	wantItemRefused(t, err, "NOT_IN_CATALOG", "masks")
	_, err = e.reserve("freshmart", "302", line("caviar", 1))
	wantItemRefused(t, err, "NOT_IN_CATALOG", "caviar")
	_, err = e.reserve("nobody", "302", line("rice", 1))
	wantCode(t, err, codes.NotFound)
	e.wantStock("rice", 3)
	e.wantStock("oil", 1)

	tests := []struct {
		field string
		edit  func(*supplierv1.ReserveStockRequest)
	}{
		{"parcel_id", func(r *supplierv1.ReserveStockRequest) { r.ParcelId = "" }},
		{"parcel_id", func(r *supplierv1.ReserveStockRequest) { r.ParcelId = "parcel-1" }},
		{"order_id", func(r *supplierv1.ReserveStockRequest) { r.OrderId = "" }},
		{"supplier_id", func(r *supplierv1.ReserveStockRequest) { r.SupplierId = "" }},
		{"household_id", func(r *supplierv1.ReserveStockRequest) { r.HouseholdId = "" }},
		{"address", func(r *supplierv1.ReserveStockRequest) { r.Address = nil }},
		{"address.building", func(r *supplierv1.ReserveStockRequest) { r.Address.Building = "" }},
		{"address.room", func(r *supplierv1.ReserveStockRequest) { r.Address.Room = "" }},
		{"address.compound", func(r *supplierv1.ReserveStockRequest) { r.Address.Compound = "elsewhere" }},
		{"lines", func(r *supplierv1.ReserveStockRequest) { r.Lines = nil }},
		{"lines[0].item_id", func(r *supplierv1.ReserveStockRequest) { r.Lines[0].ItemId = "" }},
		{"lines[0].quantity", func(r *supplierv1.ReserveStockRequest) { r.Lines[0].Quantity = 0 }},
		{"lines[0].quantity", func(r *supplierv1.ReserveStockRequest) { r.Lines[0].Quantity = -3 }},
		{"lines[1].item_id", func(r *supplierv1.ReserveStockRequest) { r.Lines = append(r.Lines, line("rice", 1)) }},
	}
	for _, tt := range tests {
		req := reserveReq("freshmart", "302", line("rice", 1))
		tt.edit(req)
		_, err := e.client.ReserveStock(e.system(), req)
		wantField(t, err, tt.field)
	}
	e.wantStock("rice", 3)
}

// Concurrent copies of one reservation (the order service retrying one order) all answer with
// the one parcel, even when it takes the last of the stock or the whole of the day's ration: a
// copy that waited for the item locks must find the parcel the first copy made, not judge the
// stock and the ration again with the first copy's use already counted.
func TestConcurrentCopiesOfAReservationAtTheLimit(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 300, 1000, 2))
	e.item(counted("freshmart", "flour", 900, 3*10, 0))

	const copies = 16
	for round := range 10 {
		room := fmt.Sprintf("%d", 301+round)
		for _, basket := range [][]*supplierv1.ReservationLine{{line("masks", 2)}, {line("flour", 3)}} {
			req := reserveReq("freshmart", room, basket...)
			answers := make([]*supplierv1.ReserveStockResponse, copies)
			errs := make([]error, copies)
			var wg sync.WaitGroup
			for i := range copies {
				wg.Go(func() { answers[i], errs[i] = e.client.ReserveStock(e.order(req.GetHouseholdId()), req) })
			}
			wg.Wait()
			for i := range copies {
				if errs[i] != nil {
					t.Fatalf("room %s, %s: copy %d of one reservation refused: %v", room, basket[0].GetItemId(), i, errs[i])
				}
				if !proto.Equal(answers[i], answers[0]) {
					t.Fatalf("room %s: copy %d answered %v, copy 0 %v", room, i, answers[i], answers[0])
				}
			}
		}
	}
	e.wantStock("masks", 1000-10*2)
	e.wantStock("flour", 0)
}

func TestReserveStockIsIdempotentOnParcelID(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(counted("freshmart", "oil", 6000, 10, 0))

	req := reserveReq("freshmart", "302", line("rice", 2), line("oil", 1))
	first, err := e.client.ReserveStock(e.order(req.GetHouseholdId()), req)
	if err != nil {
		t.Fatal(err)
	}
	// A retry, even listing the lines the other way round, answers with the stored parcel.
	retry := proto.Clone(req).(*supplierv1.ReserveStockRequest)
	retry.Lines = []*supplierv1.ReservationLine{line("oil", 1), line("rice", 2)}
	for _, r := range []*supplierv1.ReserveStockRequest{req, retry} {
		again, err := e.client.ReserveStock(e.order(req.GetHouseholdId()), r)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(first, again) {
			t.Fatalf("retry answered %v, first %v", again, first)
		}
	}
	e.wantStock("rice", 8)
	e.wantStock("oil", 9)

	different := proto.Clone(req).(*supplierv1.ReserveStockRequest)
	different.Lines[0].Quantity = 3
	_, err = e.client.ReserveStock(e.order(req.GetHouseholdId()), different)
	wantCode(t, err, codes.AlreadyExists)
	e.wantStock("rice", 8)
	// The parcel id is what conflicts, whatever else the other request names.
	elsewhere := proto.Clone(req).(*supplierv1.ReserveStockRequest)
	elsewhere.SupplierId = "no-such-supplier"
	_, err = e.client.ReserveStock(e.order(req.GetHouseholdId()), elsewhere)
	wantCode(t, err, codes.AlreadyExists)

	// Concurrent duplicates of a new parcel reserve it once.
	dup := reserveReq("freshmart", "303", line("rice", 1))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	replies := make([]*supplierv1.ReserveStockResponse, len(errs))
	for i := range errs {
		wg.Go(func() { replies[i], errs[i] = e.client.ReserveStock(e.order(dup.GetHouseholdId()), dup) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		// The losers of the race answer as retries do: the same parcel, lines and all.
		if !proto.Equal(replies[i], replies[0]) || len(replies[i].GetParcel().GetLines()) != 1 {
			t.Fatalf("duplicate %d answered %v, the first %v", i, replies[i], replies[0])
		}
	}
	e.wantStock("rice", 7)
}

// 100 baskets race for 30 units: exactly 30 win, the others are told which item ran out, and
// stock ends at zero, never below.
func TestConcurrentReservationsNeverOversell(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 2000, 30, 0))

	const baskets = 100
	errs := make([]error, baskets)
	var wg sync.WaitGroup
	for i := range baskets {
		wg.Go(func() { _, errs[i] = e.reserve("freshmart", fmt.Sprint(100+i), line("masks", 1)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.FailedPrecondition:
			wantItemRefused(t, err, "OUT_OF_STOCK", "masks")
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if ok != 30 {
		t.Fatalf("%d reservations succeeded, want 30", ok)
	}
	e.wantStock("masks", 0)
	var held int64
	if err := e.pool.QueryRow(e.ctx, `SELECT sum(quantity) FROM parcel_lines`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != 30 {
		t.Fatalf("parcels hold %d masks, want 30", held)
	}
}

// Baskets naming the same items in opposite orders run at once; the fixed lock order means none
// deadlocks and the stock adds up.
func TestConcurrentBasketsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	for _, id := range []string{"a-rice", "b-oil", "c-eggs"} {
		e.item(counted("freshmart", id, 1000, 1000, 0))
	}
	orders := [][]string{{"a-rice", "b-oil", "c-eggs"}, {"c-eggs", "b-oil", "a-rice"}, {"b-oil", "c-eggs", "a-rice"}}
	const baskets = 60
	var wg sync.WaitGroup
	errs := make([]error, baskets)
	for i := range baskets {
		wg.Go(func() {
			var lines []*supplierv1.ReservationLine
			for _, id := range orders[i%len(orders)] {
				lines = append(lines, line(id, 2))
			}
			_, errs[i] = e.reserve("freshmart", fmt.Sprint(100+i), lines...)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a-rice", "b-oil", "c-eggs"} {
		e.wantStock(id, 1000-2*baskets)
	}
}

// Ten concurrent baskets of one household cannot together exceed its daily ration, another
// household has its own, a cancellation gives the ration back and a new Shanghai day starts afresh.
func TestRationsHoldUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("pharmacy")
	e.item(counted("pharmacy", "masks", 2000, 1000, 3))

	burst := func(room string) []*supplierv1.SupplierParcel {
		parcels := make([]*supplierv1.SupplierParcel, 10)
		errs := make([]error, 10)
		var wg sync.WaitGroup
		for i := range parcels {
			wg.Go(func() { parcels[i], errs[i] = e.reserve("pharmacy", room, line("masks", 1)) })
		}
		wg.Wait()
		var won []*supplierv1.SupplierParcel
		for i, err := range errs {
			if err != nil {
				wantItemRefused(t, err, "RATION_EXCEEDED", "masks")
				continue
			}
			won = append(won, parcels[i])
		}
		return won
	}
	a := burst("302")
	if len(a) != 3 {
		t.Fatalf("household 302 reserved %d masks, ration is 3", len(a))
	}
	if b := burst("303"); len(b) != 3 {
		t.Fatalf("household 303 reserved %d masks, ration is 3", len(b))
	}
	e.wantStock("masks", 1000-6)

	_, err := e.reserve("pharmacy", "302", line("masks", 1))
	wantItemRefused(t, err, "RATION_EXCEEDED", "masks")
	if _, err := e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: a[0].GetParcelId()}); err != nil {
		t.Fatal(err)
	}
	e.mustReserve("pharmacy", "302", line("masks", 1))
	_, err = e.reserve("pharmacy", "302", line("masks", 1))
	wantItemRefused(t, err, "RATION_EXCEEDED", "masks")

	// 02:00 UTC + 14h = midnight in Shanghai.
	e.clock.Advance(14 * time.Hour)
	e.mustReserve("pharmacy", "302", line("masks", 3))
	_, err = e.reserve("pharmacy", "302", line("masks", 1))
	wantItemRefused(t, err, "RATION_EXCEEDED", "masks")
}

func TestStockCannotGoNegativeInTheDatabase(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 1, 0))
	if _, err := e.pool.Exec(e.ctx, `UPDATE items SET stock = stock - 2 WHERE item_id = 'rice'`); err == nil {
		t.Fatal("stock went negative")
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE items SET current_price_fen = 4600 WHERE item_id = 'rice'`); err == nil {
		t.Fatal("price went above the reference")
	}
}
