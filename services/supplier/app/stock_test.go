package app_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func adjustReq(supplierID, itemID string, delta int64, reason string) *supplierv1.AdjustStockRequest {
	return &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: supplierID, ItemId: itemID, Delta: delta, Reason: reason}
}

// adjust changes stock as the supplier's staff, under a fresh request id.
func (e *env) adjust(supplierID, itemID string, delta int64, reason string) (*supplierv1.Item, error) {
	res, err := e.client.AdjustStock(e.staff(supplierID), adjustReq(supplierID, itemID, delta, reason))
	return res.GetItem(), err
}

// adjustment is a row of stock_adjustments.
type adjustment struct {
	delta      int64
	reason     string
	stockAfter int64
	actor      string
	requestID  string
	at         time.Time
}

// adjustments are the recorded adjustments of an item, oldest first.
func (e *env) adjustments(itemID string) []adjustment {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT delta, reason, stock_after, actor_role || ':' || actor_id, request_id, at
		FROM stock_adjustments WHERE item_id = $1 ORDER BY id`, itemID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []adjustment
	for rows.Next() {
		var a adjustment
		if err := rows.Scan(&a.delta, &a.reason, &a.stockAfter, &a.actor, &a.requestID, &a.at); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// heldBy is how much of an item the parcels hold.
func (e *env) heldBy(itemID string) int64 {
	e.t.Helper()
	var held int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(quantity), 0) FROM parcel_lines WHERE item_id = $1`, itemID).Scan(&held); err != nil {
		e.t.Fatal(err)
	}
	return held
}

func TestAdjustStockAddsAndRemoves(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(weighed("freshmart", "pork", 3580, 5000))

	got, err := e.adjust("freshmart", "rice", 5, "delivery from the wholesaler")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetItemId() != "rice" || got.GetStock() != 15 || got.GetCurrentPriceFen() != 4500 {
		t.Fatalf("after a delivery: %v", got)
	}
	e.clock.Advance(time.Minute)
	if got, err = e.adjust("freshmart", "rice", -3, "  spoiled  "); err != nil || got.GetStock() != 12 {
		t.Fatalf("after spoilage: %v, %v", got, err)
	}
	// Weighed items count grams.
	if got, err = e.adjust("freshmart", "pork", -1250, "recount"); err != nil || got.GetStock() != 3750 {
		t.Fatalf("pork after a recount: %v, %v", got, err)
	}
	e.wantStock("rice", 12)
	e.wantStock("pork", 3750)

	// Removing more than there is is refused, naming the item and what is left; nothing changes.
	_, err = e.adjust("freshmart", "rice", -13, "recount")
	wantItemRefused(t, err, "OUT_OF_STOCK", "rice")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "12 in stock") {
		t.Fatalf("message %q does not say what is left", msg)
	}
	e.wantStock("rice", 12)
	if got, err = e.adjust("freshmart", "rice", -12, "sold at the counter"); err != nil || got.GetStock() != 0 {
		t.Fatalf("removing all: %v, %v", got, err)
	}

	// Each adjustment is on record: who (the verified caller), when (the service's clock), how
	// much, why and the stock it left. The refused one is not.
	start := startClock().Now().Truncate(time.Microsecond)
	recs := e.adjustments("rice")
	if len(recs) != 3 {
		t.Fatalf("%d adjustments recorded, want 3: %+v", len(recs), recs)
	}
	want := []adjustment{
		{delta: 5, reason: "delivery from the wholesaler", stockAfter: 15, at: start},
		{delta: -3, reason: "spoiled", stockAfter: 12, at: start.Add(time.Minute)},
		{delta: -12, reason: "sold at the counter", stockAfter: 0, at: start.Add(time.Minute)},
	}
	for i, r := range recs {
		w := want[i]
		if r.delta != w.delta || r.reason != w.reason || r.stockAfter != w.stockAfter || !r.at.Equal(w.at) ||
			r.actor != "supplier:freshmart-staff" || r.requestID == "" {
			t.Fatalf("adjustment %d: %+v, want %+v by supplier:freshmart-staff", i, r, w)
		}
	}

	// A service adjusting for nobody is recorded as itself. Adjustments announce nothing.
	if _, err := e.client.AdjustStock(e.system(), adjustReq("freshmart", "pork", 250, "returned by a courier")); err != nil {
		t.Fatal(err)
	}
	if recs := e.adjustments("pork"); len(recs) != 2 || recs[1].actor != "system:order" || recs[1].stockAfter != 4000 {
		t.Fatalf("pork adjustments %+v", recs)
	}
	if evs := e.published("doorstep.>"); len(evs) != 0 {
		t.Fatalf("adjustments published %d events", len(evs))
	}
}

func TestAdjustStockValidatesEveryField(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(counted("freshmart", "full", 100, supply.MaxStock, 0))

	tests := []struct {
		name  string
		field string
		edit  func(*supplierv1.AdjustStockRequest)
	}{
		{"no request id", "request_id", func(r *supplierv1.AdjustStockRequest) { r.RequestId = "" }},
		{"long request id", "request_id", func(r *supplierv1.AdjustStockRequest) { r.RequestId = strings.Repeat("x", 129) }},
		{"no supplier", "supplier_id", func(r *supplierv1.AdjustStockRequest) { r.SupplierId = "" }},
		{"bad supplier", "supplier_id", func(r *supplierv1.AdjustStockRequest) { r.SupplierId = "Fresh Mart" }},
		{"no item", "item_id", func(r *supplierv1.AdjustStockRequest) { r.ItemId = "" }},
		{"bad item", "item_id", func(r *supplierv1.AdjustStockRequest) { r.ItemId = "Rice!" }},
		{"zero delta", "delta", func(r *supplierv1.AdjustStockRequest) { r.Delta = 0 }},
		{"huge delta", "delta", func(r *supplierv1.AdjustStockRequest) { r.Delta = supply.MaxStock + 1 }},
		{"huge removal", "delta", func(r *supplierv1.AdjustStockRequest) { r.Delta = -supply.MaxStock - 1 }},
		{"no reason", "reason", func(r *supplierv1.AdjustStockRequest) { r.Reason = "" }},
		{"blank reason", "reason", func(r *supplierv1.AdjustStockRequest) { r.Reason = " \t " }},
		{"long reason", "reason", func(r *supplierv1.AdjustStockRequest) { r.Reason = strings.Repeat("x", supply.MaxReason+1) }},
		// Against stored state: stock has an upper bound too.
		{"above the most stock", "delta", func(r *supplierv1.AdjustStockRequest) { r.ItemId = "full" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := adjustReq("freshmart", "rice", 1, "delivery")
			tt.edit(req)
			_, err := e.client.AdjustStock(e.staff("freshmart"), req)
			wantField(t, err, tt.field)
		})
	}
	// Zero is refused however it is asked, and says why.
	_, err := e.adjust("freshmart", "rice", 0, "nothing")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "delta: must not be 0") {
		t.Fatalf("message %q", msg)
	}

	_, err = e.adjust("freshmart", "caviar", 1, "delivery")
	wantCode(t, err, codes.NotFound)
	if msg := status.Convert(err).Message(); msg != "item caviar: not found" {
		t.Fatalf("message %q", msg)
	}
	_, err = e.client.AdjustStock(e.system(), adjustReq("nobody", "rice", 1, "delivery"))
	wantCode(t, err, codes.NotFound)
	if msg := status.Convert(err).Message(); msg != "supplier nobody: not found" {
		t.Fatalf("message %q", msg)
	}
	e.wantStock("rice", 10)
	e.wantStock("full", supply.MaxStock)
	if recs := e.adjustments("rice"); len(recs) != 0 {
		t.Fatalf("refused adjustments recorded: %+v", recs)
	}
}

func TestAdjustStockIsIdempotent(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	staff := e.staff("freshmart")

	delivery := &supplierv1.AdjustStockRequest{RequestId: "delivery-1", SupplierId: "freshmart", ItemId: "rice", Delta: 5, Reason: "delivery"}
	first, err := e.client.AdjustStock(staff, delivery)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client.AdjustStock(staff, delivery)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, again) || first.GetItem().GetStock() != 15 {
		t.Fatalf("retry answered %v, first %v", again, first)
	}
	e.wantStock("rice", 15)
	// A retry after later changes still gets the first answer, and changes nothing.
	if _, err := e.adjust("freshmart", "rice", -2, "spoiled"); err != nil {
		t.Fatal(err)
	}
	if again, err = e.client.AdjustStock(staff, delivery); err != nil || !proto.Equal(first, again) {
		t.Fatalf("late retry answered %v, %v; first %v", again, err, first)
	}
	e.wantStock("rice", 13)

	// The same id for anything else is refused.
	other := proto.Clone(delivery).(*supplierv1.AdjustStockRequest)
	other.Delta = 6
	_, err = e.client.AdjustStock(staff, other)
	wantCode(t, err, codes.AlreadyExists)
	_, err = e.client.UpsertItem(staff, &supplierv1.UpsertItemRequest{RequestId: "delivery-1", Item: counted("freshmart", "rice", 4500, 10, 0)})
	wantCode(t, err, codes.AlreadyExists)
	e.wantStock("rice", 13)
	if recs := e.adjustments("rice"); len(recs) != 2 || recs[0].requestID != "delivery-1" {
		t.Fatalf("adjustments %+v", recs)
	}

	// A refused adjustment leaves its id free: retried once the stock is there, it applies.
	recount := &supplierv1.AdjustStockRequest{RequestId: "recount-1", SupplierId: "freshmart", ItemId: "rice", Delta: -20, Reason: "recount"}
	_, err = e.client.AdjustStock(staff, recount)
	wantItemRefused(t, err, "OUT_OF_STOCK", "rice")
	if _, err := e.adjust("freshmart", "rice", 7, "delivery"); err != nil {
		t.Fatal(err)
	}
	if res, err := e.client.AdjustStock(staff, recount); err != nil || res.GetItem().GetStock() != 0 {
		t.Fatalf("retried recount: %v, %v", res, err)
	}

	// Concurrent copies of a new request apply once and all get its answer.
	restock := &supplierv1.AdjustStockRequest{RequestId: "restock-1", SupplierId: "freshmart", ItemId: "rice", Delta: 40, Reason: "delivery"}
	answers := make([]*supplierv1.AdjustStockResponse, 10)
	errs := make([]error, len(answers))
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = e.client.AdjustStock(staff, restock) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(answers[i], answers[0]) || answers[i].GetItem().GetStock() != 40 {
			t.Fatalf("copy %d answered %v, copy 0 %v", i, answers[i], answers[0])
		}
	}
	e.wantStock("rice", 40)
	if recs := e.adjustments("rice"); len(recs) != 5 {
		t.Fatalf("%d adjustments recorded, want 5", len(recs))
	}
}

// 50 concurrent removals of one unit from 30: exactly 30 apply, each seeing the stock the one
// before it left, and the other 20 are told the item has 0 left.
func TestConcurrentAdjustmentsNeverGoNegative(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 2000, 30, 0))

	const removals = 50
	errs := make([]error, removals)
	var wg sync.WaitGroup
	for i := range removals {
		wg.Go(func() { _, errs[i] = e.adjust("freshmart", "masks", -1, "damaged box") })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.FailedPrecondition:
			wantItemRefused(t, err, "OUT_OF_STOCK", "masks")
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "0 in stock, cannot remove 1") {
				t.Fatalf("message %q", msg)
			}
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if ok != 30 {
		t.Fatalf("%d removals applied, want 30", ok)
	}
	e.wantStock("masks", 0)
	var after []int64
	for _, r := range e.adjustments("masks") {
		after = append(after, r.stockAfter)
	}
	slices.Sort(after)
	want := make([]int64, 30)
	for i := range want {
		want[i] = int64(i)
	}
	if !slices.Equal(after, want) {
		t.Fatalf("stock after each removal %v, want each of 0..29 once", after)
	}
}

// A supplier edits a price from a screen loaded before reservations took stock: the edit changes
// the price and keeps the stock the reservations left, so they cannot sell the same units twice.
func TestStalePriceEditKeepsReservedStock(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	screen := e.item(counted("freshmart", "masks", 2000, 30, 0)) // the supplier's screen, stock 30

	for i := range 5 {
		e.mustReserve("freshmart", fmt.Sprint(100+i), line("masks", 1))
	}
	screen.CurrentPriceFen = 1800
	edited := e.item(screen)
	if edited.GetCurrentPriceFen() != 1800 || edited.GetStock() != 25 {
		t.Fatalf("edit answered %v, want price 1800 and the real stock 25", edited)
	}
	for i := range 25 {
		e.mustReserve("freshmart", fmt.Sprint(200+i), line("masks", 1))
	}
	_, err := e.reserve("freshmart", "300", line("masks", 1))
	wantItemRefused(t, err, "OUT_OF_STOCK", "masks")
	e.wantStock("masks", 0)
	if held := e.heldBy("masks"); held != 30 {
		t.Fatalf("parcels hold %d masks of 30", held)
	}
}

// 100 baskets race for 30 units, in ten waves of ten, while in every wave the supplier saves the
// item three times from a screen that still says 30 in stock, with changing prices: exactly 30
// baskets win and the stock ends at 0. (Were the edits to write their stock, every wave after the
// first would find it back at 30.)
func TestConcurrentReservationsAndStaleEditsNeverOversell(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 2000, 30, 0))

	const waves, baskets, edits = 10, 10, 3
	errs := make([]error, waves*baskets)
	for w := range waves {
		var wg sync.WaitGroup
		for b := range baskets {
			i := w*baskets + b
			wg.Go(func() { _, errs[i] = e.reserve("freshmart", fmt.Sprint(100+i), line("masks", 1)) })
		}
		for n := range edits {
			wg.Go(func() {
				stale := counted("freshmart", "masks", 2000, 30, 0)
				stale.CurrentPriceFen = 1500 + int64(w*edits+n)
				if _, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: stale}); err != nil {
					t.Errorf("price edit: %v", err)
				}
			})
		}
		wg.Wait()
	}
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
		t.Fatalf("%d reservations succeeded alongside %d stale edits, want 30", ok, waves*edits)
	}
	e.wantStock("masks", 0)
	if held := e.heldBy("masks"); held != 30 {
		t.Fatalf("parcels hold %d masks of 30", held)
	}
}

// Reservations, removals, deliveries, releases and stale edits all at once: every unit is
// accounted for (start + deliveries = stock + held by parcels + removed) and stock never went
// below zero (the table's CHECK would have refused it, and every recorded stock_after is ≥ 0).
func TestStockAddsUpUnderMixedConcurrency(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "masks", 2000, 30, 0))

	const (
		baskets    = 60
		removals   = 30
		deliveries = 10
		delivered  = 3
	)
	var (
		mu                 sync.Mutex
		removed, released  int64
		placed             int64
		wg, basketsDone    sync.WaitGroup
		refusedRemovals    int
		refusedReservation int
	)
	fail := func(what string, err error) {
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s: %v", what, err)
			return
		}
		wantItemRefused(t, err, "OUT_OF_STOCK", "masks")
	}
	// Parcels go to the releaser as they are placed, so releases race everything else.
	toRelease := make(chan string, baskets)
	for i := range baskets {
		basketsDone.Go(func() {
			p, err := e.reserve("freshmart", fmt.Sprint(100+i), line("masks", 1))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusedReservation++
				fail("reserve", err)
				return
			}
			placed++
			toRelease <- p.GetParcelId()
		})
	}
	wg.Go(func() {
		basketsDone.Wait()
		close(toRelease)
	})
	for range removals {
		wg.Go(func() {
			_, err := e.adjust("freshmart", "masks", -1, "damaged box")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusedRemovals++
				fail("remove", err)
				return
			}
			removed++
		})
	}
	for range deliveries {
		wg.Go(func() {
			if _, err := e.adjust("freshmart", "masks", delivered, "delivery"); err != nil {
				t.Errorf("delivery: %v", err)
			}
		})
	}
	for i := range 10 {
		wg.Go(func() {
			stale := counted("freshmart", "masks", 2000, 30, 0)
			stale.CurrentPriceFen = 1900 - int64(i)
			if _, err := e.client.UpsertItem(e.staff("freshmart"), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: stale}); err != nil {
				t.Errorf("price edit: %v", err)
			}
		})
	}
	wg.Go(func() {
		for id := range toRelease {
			if released == 5 {
				continue // drain
			}
			if _, err := e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: id, Reason: "cancelled"}); err != nil {
				t.Errorf("release: %v", err)
			}
			released++ // only this goroutine writes it until wg.Wait
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}

	var held int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(l.quantity), 0) FROM parcel_lines l JOIN parcels p USING (parcel_id)
		WHERE l.item_id = 'masks' AND p.state = 'placed'`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	stock := e.stock("masks")
	if stock < 0 || held != placed-released || 30+deliveries*delivered != stock+held+removed {
		t.Fatalf("stock %d + held %d + removed %d != 30 + %d delivered (placed %d, released %d)",
			stock, held, removed, deliveries*delivered, placed, released)
	}
	recs := e.adjustments("masks")
	if len(recs) != int(removed)+deliveries {
		t.Fatalf("%d adjustments recorded, %d applied", len(recs), int(removed)+deliveries)
	}
	for _, r := range recs {
		if r.stockAfter < 0 {
			t.Fatalf("adjustment %+v left negative stock", r)
		}
	}
	t.Logf("%d placed (%d refused), %d released, %d removed (%d refused), %d delivered: stock %d, held %d",
		placed, refusedReservation, released, removed, refusedRemovals, deliveries*delivered, stock, held)
}
