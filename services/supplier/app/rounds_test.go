package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/supplier/app"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// shanghai is a wall-clock time in the compound.
func shanghai(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04:05.999999 -0700", s+" +0800")
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

func wantDue(t *testing.T, p *supplierv1.SupplierParcel, roundID string, confirmBy time.Time) {
	t.Helper()
	if p.GetRoundId() != roundID || !p.GetConfirmBy().AsTime().Equal(confirmBy) {
		t.Fatalf("parcel due for %s by %v, want %s by %v", p.GetRoundId(), p.GetConfirmBy().AsTime(), roundID, confirmBy)
	}
}

func (e *env) list(req *supplierv1.ListParcelsRequest) []*supplierv1.SupplierParcel {
	e.t.Helper()
	res, err := e.client.ListParcels(e.staff(req.GetSupplierId()), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetParcels()
}

func (e *env) parcel(supplierID, parcelID string) *supplierv1.SupplierParcel {
	e.t.Helper()
	for _, p := range e.list(&supplierv1.ListParcelsRequest{SupplierId: supplierID}) {
		if p.GetParcelId() == parcelID {
			return p
		}
	}
	e.t.Fatalf("parcel %s not listed", parcelID)
	return nil
}

func ids(ps []*supplierv1.SupplierParcel) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.GetParcelId())
	}
	return strings.Join(out, ",")
}

// A reservation is due for the first round whose cutoff is at least the lead time (30 minutes by
// default) away, and suppliers can list a round's parcels.
func TestReservationsAreDueForARound(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	pm, nextAM := shanghai(t, "2026-03-01 15:00:00"), shanghai(t, "2026-03-02 09:00:00")

	a := e.mustReserve("freshmart", "301", line("rice", 1)) // 10:00
	wantDue(t, a, "haixin-2026-03-01-pm", pm)
	e.clock.Set(shanghai(t, "2026-03-01 14:30:00")) // exactly the lead before the cutoff
	b := e.mustReserve("freshmart", "302", line("rice", 1))
	wantDue(t, b, "haixin-2026-03-01-pm", pm)
	e.clock.Set(shanghai(t, "2026-03-01 14:30:00.000001"))
	c := e.mustReserve("freshmart", "303", line("rice", 1))
	wantDue(t, c, "haixin-2026-03-02-am", nextAM)
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(b)); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		req  *supplierv1.ListParcelsRequest
		want []*supplierv1.SupplierParcel
	}{
		{&supplierv1.ListParcelsRequest{SupplierId: "freshmart"}, []*supplierv1.SupplierParcel{a, b, c}},
		{&supplierv1.ListParcelsRequest{SupplierId: "freshmart", RoundId: "haixin-2026-03-01-pm"}, []*supplierv1.SupplierParcel{a, b}},
		{&supplierv1.ListParcelsRequest{SupplierId: "freshmart", RoundId: "haixin-2026-03-02-am"}, []*supplierv1.SupplierParcel{c}},
		{&supplierv1.ListParcelsRequest{SupplierId: "freshmart", RoundId: "haixin-2026-03-01-pm",
			State: typesv1.ParcelState_PARCEL_STATE_PLACED}, []*supplierv1.SupplierParcel{a}},
		{&supplierv1.ListParcelsRequest{SupplierId: "freshmart", RoundId: "haixin-2026-03-01-am"}, nil},
	} {
		got := e.list(tt.req)
		if ids(got) != ids(tt.want) {
			t.Fatalf("%v listed %s, want %s", tt.req, ids(got), ids(tt.want))
		}
		for _, p := range got {
			if p.GetRoundId() == "" || p.GetConfirmBy() == nil {
				t.Fatalf("listed parcel without its round: %v", p)
			}
		}
	}
	_, err := e.client.ListParcels(e.staff("freshmart"), &supplierv1.ListParcelsRequest{SupplierId: "freshmart", RoundId: strings.Repeat("x", 201)})
	wantField(t, err, "round_id")
}

func TestConfirmLeadIsConfigurable(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *app.Config) { c.ConfirmLead = 6 * time.Hour })
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	// 10:00 + 6 h is past the 15:00 cutoff: tomorrow morning.
	wantDue(t, e.mustReserve("freshmart", "301", line("rice", 1)), "haixin-2026-03-02-am", shanghai(t, "2026-03-02 09:00:00"))
}

// fakeDispatch is the dispatch service's round settings, as the real one will answer them.
type fakeDispatch struct {
	dispatchv1.UnimplementedDispatchServiceServer
	mu      sync.Mutex
	slots   []*dispatchv1.RoundSlot
	calls   int
	callers []auth.Identity
}

func (f *fakeDispatch) GetCompoundSettings(ctx context.Context, req *dispatchv1.GetCompoundSettingsRequest) (*dispatchv1.GetCompoundSettingsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	id, _ := auth.FromContext(ctx)
	f.callers = append(f.callers, id)
	return &dispatchv1.GetCompoundSettingsResponse{Settings: &dispatchv1.CompoundSettings{Compound: req.GetCompound(), Slots: f.slots}}, nil
}

func (f *fakeDispatch) set(slots ...*dispatchv1.RoundSlot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slots = slots
}

func (f *fakeDispatch) called() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// askedBy is who asked for round settings.
func (f *fakeDispatch) askedBy() []auth.Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.callers)
}

// dispatchPolicy is the dispatch service's word on GetCompoundSettings.
var dispatchPolicy = auth.Policy{dispatchv1.DispatchService_GetCompoundSettings_FullMethodName: {
	typesv1.Role_ROLE_DISPATCHER, typesv1.Role_ROLE_WORKER, typesv1.Role_ROLE_SYSTEM}}

// serveDispatch serves impl on a local port, verifying callers by now as the supplier service
// mints them, and returns its address.
func serveDispatch(t *testing.T, impl dispatchv1.DispatchServiceServer, now func() time.Time) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeys(testkit.AuthKey, now)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcx.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), keys.ServerOptions(dispatchPolicy)...)
	dispatchv1.RegisterDispatchServiceServer(srv, impl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatch server: %v", err)
		}
	})
	return lis.Addr().String()
}

func TestRoundTimesComeFromDispatch(t *testing.T) {
	t.Parallel()
	dispatch := &fakeDispatch{}
	dispatch.set(&dispatchv1.RoundSlot{Slot: "am", Cutoff: "08:00", Departs: "08:30"},
		&dispatchv1.RoundSlot{Slot: "noon", Cutoff: "12:00", Departs: "12:30"},
		&dispatchv1.RoundSlot{Slot: "eve", Cutoff: "17:00", Departs: "17:30"})
	clk := startClock()
	addr := serveDispatch(t, dispatch, clk.Now)
	e := startAt(t, clk, func(c *app.Config) { c.DispatchAddr = addr })
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 1000, 0)) // plenty: each try below reserves one

	wantDue(t, e.mustReserve("freshmart", "301", line("rice", 1)), "haixin-2026-03-01-noon", shanghai(t, "2026-03-01 12:00:00"))
	// Dispatch moves its rounds; for a minute the supplier keeps what it was told.
	dispatch.set(&dispatchv1.RoundSlot{Slot: "am", Cutoff: "08:00", Departs: "08:30"},
		&dispatchv1.RoundSlot{Slot: "late", Cutoff: "20:00", Departs: "20:15"})
	e.clock.Advance(59 * time.Second)
	wantDue(t, e.mustReserve("freshmart", "302", line("rice", 1)), "haixin-2026-03-01-noon", shanghai(t, "2026-03-01 12:00:00"))
	if n := dispatch.called(); n != 1 {
		t.Fatalf("dispatch asked %d times within a minute", n)
	}
	// After the minute dispatch is asked again, in the background: the reservation that finds
	// the schedule old still gets it, without waiting, and the next ones get dispatch's answer
	// once it has come.
	e.clock.Advance(time.Second)
	wantDue(t, e.mustReserve("freshmart", "303", line("rice", 1)), "haixin-2026-03-01-noon", shanghai(t, "2026-03-01 12:00:00"))
	testkit.Eventually(t, 5*time.Second, func() error {
		if p := e.mustReserve("freshmart", "304", line("rice", 1)); p.GetRoundId() != "haixin-2026-03-01-late" {
			return fmt.Errorf("reserved for round %s, want the late round", p.GetRoundId())
		}
		return nil
	})
	if n := dispatch.called(); n != 2 {
		t.Fatalf("dispatch asked %d times, want 2", n)
	}
	if n := e.logs.count("round settings unavailable"); n != 0 {
		t.Fatalf("%d fallback warnings while dispatch answers", n)
	}
	// The supplier service asks as itself, not as acting for the resident whose reservation
	// needed the answer (a resident may not read round settings).
	for _, id := range dispatch.askedBy() {
		if id.Role != typesv1.Role_ROLE_SYSTEM || id.Subject != "supplier" || id.OnBehalfOf != nil {
			t.Fatalf("dispatch asked by %+v, want the supplier service itself", id)
		}
	}
}

// Dispatch not offering GetCompoundSettings yet, or not there at all: the default rounds, and
// one warning however often it is asked.
func TestRoundTimesFallBackToTheDefault(t *testing.T) {
	t.Parallel()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := gone.Addr().String()
	gone.Close()
	for name, addr := range map[string]string{
		"unimplemented": serveDispatch(t, &dispatchv1.UnimplementedDispatchServiceServer{}, startClock().Now),
		"unreachable":   nowhere,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, func(c *app.Config) { c.DispatchAddr = addr })
			e.supplier("freshmart")
			e.item(counted("freshmart", "rice", 4500, 10, 0))
			for i, room := range []string{"301", "302", "303"} {
				wantDue(t, e.mustReserve("freshmart", room, line("rice", 1)), "haixin-2026-03-01-pm", shanghai(t, "2026-03-01 15:00:00"))
				if i > 0 {
					e.clock.Advance(2 * time.Minute) // past the cache: dispatch is asked again
				}
			}
			if n := e.logs.count("round settings unavailable"); n != 1 {
				t.Fatalf("%d fallback warnings, want 1", n)
			}
		})
	}
}

// At the cutoff an unconfirmed reservation expires: exactly its stock goes back, the transition
// is recorded and one parcel.expired is published.
func TestExpiryReleasesStockAndAnnouncesOnce(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	e.item(weighed("freshmart", "pork", 3000, 10000))
	late := e.mustReserve("freshmart", "301", line("rice", 2), line("pork", 750))
	kept := e.mustReserve("freshmart", "302", line("rice", 3))
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(kept, confirmLine("rice", 2))); err != nil {
		t.Fatal(err)
	}
	e.wantStock("rice", 10-2-2)
	e.wantStock("pork", 10000-750)

	job := newClock(shanghai(t, "2026-03-01 14:59:59.999999"))
	replica := e.replica(job)
	if n, err := replica.ExpireDue(e.ctx); err != nil || n != 0 {
		t.Fatalf("before the cutoff: expired %d, %v", n, err)
	}
	// At the cutoff the supplier can no longer confirm, even before the job has run.
	e.clock.Set(shanghai(t, "2026-03-01 15:00:00"))
	_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(late))
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "15:00 cutoff of round haixin-2026-03-01-pm") {
		t.Fatalf("message %q", status.Convert(err).Message())
	}
	if e.parcel("freshmart", late.GetParcelId()).GetState() != typesv1.ParcelState_PARCEL_STATE_PLACED {
		t.Fatal("a refused confirmation changed the parcel")
	}

	job.Set(shanghai(t, "2026-03-01 15:00:00"))
	// The service's own job may get there first; between them the parcel expires once.
	if _, err := replica.ExpireDue(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := replica.ExpireDue(e.ctx); err != nil || n != 0 {
		t.Fatalf("second run expired %d, %v", n, err)
	}
	p := e.parcel("freshmart", late.GetParcelId())
	if p.GetState() != typesv1.ParcelState_PARCEL_STATE_EXPIRED || p.GetReason() != "not confirmed by the 15:00 cutoff" {
		t.Fatalf("parcel %v", p)
	}
	e.wantStock("rice", 10-2)
	e.wantStock("pork", 10000)
	if got := e.transitions(late.GetParcelId()); len(got) != 2 ||
		got[1] != "placed>expired by system:supplier-service (not confirmed by the 15:00 cutoff)" {
		t.Fatalf("transitions %q", got)
	}
	ev := e.onlyEvent("doorstep.haixin.parcel.expired", late.GetParcelId())
	ch := ev.GetParcelStateChanged()
	if ch.GetState() != typesv1.ParcelState_PARCEL_STATE_EXPIRED || ch.GetReason() != "not confirmed by the 15:00 cutoff" ||
		ev.GetOrderId() != late.GetOrderId() || ch.GetHouseholdId() != late.GetHouseholdId() || ev.GetCompound() != compound ||
		ev.GetActor().GetRole() != typesv1.Role_ROLE_SYSTEM || !ev.GetOccurredAt().AsTime().Equal(shanghai(t, "2026-03-01 15:00:00")) {
		t.Fatalf("event %v", ev)
	}
	if n := len(e.published("doorstep.haixin.parcel.expired")); n != 1 {
		t.Fatalf("%d expired events, want 1", n)
	}

	// Expired is final for the supplier; the confirmed parcel went on untouched.
	_, err = e.client.RejectParcel(e.staff("freshmart"), &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: late.GetParcelId(), Reason: "late"})
	wantCode(t, err, codes.FailedPrecondition)
	if e.parcel("freshmart", kept.GetParcelId()).GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED {
		t.Fatal("the confirmed parcel changed")
	}
	// The expired parcel no longer holds the household's stock or rations.
	e.mustReserve("freshmart", "301", line("rice", 8))
	e.wantStock("rice", 0)
}

// Confirmations racing the expiry job (on another replica whose clock says the cutoff has come,
// while the confirming one's does not): each parcel ends either confirmed or expired, never both,
// and the stock adds up.
func TestExpiryRacingConfirmations(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 100, 0))
	const parcels = 30
	var placed []*supplierv1.SupplierParcel
	for i := range parcels {
		placed = append(placed, e.mustReserve("freshmart", string(rune('a'+i%26))+"1", line("rice", 2)))
	}
	replicas := 2
	job := newClock(shanghai(t, "2026-03-01 15:00:00"))

	confirmErrs := make([]error, parcels)
	var wg sync.WaitGroup
	for i, p := range placed {
		wg.Go(func() {
			_, confirmErrs[i] = e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("rice", 1)))
		})
	}
	jobErrs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() { _, jobErrs[i] = e.replica(job).ExpireDue(e.ctx) })
	}
	wg.Wait()
	for _, err := range jobErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A confirmation queued behind an expiry finds the parcel expired; a later job run mops up
	// nothing, since every parcel has been decided.
	if n, err := e.replica(job).ExpireDue(e.ctx); err != nil || n != 0 {
		t.Fatalf("mop-up expired %d, %v", n, err)
	}

	confirmed := 0
	expiredEvents := map[string]int{}
	for _, ev := range e.published("doorstep.haixin.parcel.expired") {
		expiredEvents[ev.event.GetParcelStateChanged().GetParcelId()]++
	}
	confirmedEvents := map[string]int{}
	for _, ev := range e.published("doorstep.haixin.parcel.confirmed") {
		confirmedEvents[ev.event.GetParcelStateChanged().GetParcelId()]++
	}
	for i, p := range placed {
		state := e.parcel("freshmart", p.GetParcelId()).GetState()
		switch {
		case confirmErrs[i] == nil:
			confirmed++
			if state != typesv1.ParcelState_PARCEL_STATE_CONFIRMED || confirmedEvents[p.GetParcelId()] != 1 || expiredEvents[p.GetParcelId()] != 0 {
				t.Fatalf("confirmed parcel %d is %v with %d confirmed and %d expired events", i, state,
					confirmedEvents[p.GetParcelId()], expiredEvents[p.GetParcelId()])
			}
		case status.Code(confirmErrs[i]) == codes.FailedPrecondition:
			if state != typesv1.ParcelState_PARCEL_STATE_EXPIRED || expiredEvents[p.GetParcelId()] != 1 || confirmedEvents[p.GetParcelId()] != 0 {
				t.Fatalf("refused parcel %d is %v with %d confirmed and %d expired events", i, state,
					confirmedEvents[p.GetParcelId()], expiredEvents[p.GetParcelId()])
			}
		default:
			t.Fatalf("confirmation %d: %v", i, confirmErrs[i])
		}
		if n := len(e.transitions(p.GetParcelId())); n != 2 {
			t.Fatalf("parcel %d has %d transitions", i, n)
		}
	}
	// Each confirmation keeps one unit of two; each expiry gives both back.
	e.wantStock("rice", 100-int64(confirmed))
	t.Logf("%d confirmed, %d expired", confirmed, parcels-confirmed)
}

// waiters waits until n of the database's sessions are waiting for a lock.
func (e *env) waiters(n int) {
	e.t.Helper()
	testkit.Eventually(e.t, 10*time.Second, func() error {
		var got int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got); err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d sessions waiting for a lock, want %d", got, n)
		}
		return nil
	})
}

// The same race, each way round, made deterministic: a test transaction holds the item's row so
// the first decision stops after locking the parcel, and the second must queue on the parcel's
// row. Whichever locked the parcel first wins; the other sees the decision and changes nothing.
func TestExpiryAndConfirmationQueueOnTheParcel(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	job := e.replica(newClock(shanghai(t, "2026-03-01 15:00:00")))

	holdItems := func() func() {
		tx, err := e.pool.Begin(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(e.ctx, `SELECT 1 FROM items WHERE item_id = 'rice' FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		return func() { _ = tx.Rollback(e.ctx) }
	}
	type result struct {
		n   int
		err error
	}

	t.Run("confirmation first", func(t *testing.T) {
		p := e.mustReserve("freshmart", "301", line("rice", 2))
		release := holdItems()
		confirmed := make(chan error, 1)
		go func() {
			_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("rice", 1)))
			confirmed <- err
		}()
		e.waiters(1) // the confirmation holds the parcel and waits for the item
		expired := make(chan result, 1)
		go func() { n, err := job.ExpireDue(e.ctx); expired <- result{n, err} }()
		e.waiters(2) // the expiry found the parcel placed and waits for its row
		release()
		if err := <-confirmed; err != nil {
			t.Fatal(err)
		}
		if r := <-expired; r.err != nil || r.n != 0 {
			t.Fatalf("expiry after the confirmation: %d, %v", r.n, r.err)
		}
		if s := e.parcel("freshmart", p.GetParcelId()).GetState(); s != typesv1.ParcelState_PARCEL_STATE_CONFIRMED {
			t.Fatalf("state %v", s)
		}
		e.wantStock("rice", 9)
		if n := len(e.published("doorstep.haixin.parcel.expired")); n != 0 {
			t.Fatalf("%d expired events", n)
		}
	})

	t.Run("expiry first", func(t *testing.T) {
		p := e.mustReserve("freshmart", "302", line("rice", 2))
		release := holdItems()
		expired := make(chan result, 1)
		go func() { n, err := job.ExpireDue(e.ctx); expired <- result{n, err} }()
		e.waiters(1)
		confirmed := make(chan error, 1)
		go func() {
			_, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p, confirmLine("rice", 1)))
			confirmed <- err
		}()
		e.waiters(2)
		release()
		if r := <-expired; r.err != nil || r.n != 1 {
			t.Fatalf("expiry: %d, %v", r.n, r.err)
		}
		err := <-confirmed
		wantCode(t, err, codes.FailedPrecondition)
		if !strings.Contains(err.Error(), "expired") {
			t.Fatalf("message %v", err)
		}
		if s := e.parcel("freshmart", p.GetParcelId()).GetState(); s != typesv1.ParcelState_PARCEL_STATE_EXPIRED {
			t.Fatalf("state %v", s)
		}
		e.wantStock("rice", 9)
		e.onlyEvent("doorstep.haixin.parcel.expired", p.GetParcelId())
		if n := len(e.published("doorstep.haixin.parcel.confirmed")); n != 1 {
			t.Fatalf("%d confirmed events, want the first subtest's one", n)
		}
	})
}
