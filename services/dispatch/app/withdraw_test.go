package app_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// A parcel that failed at the door goes back to the next round unless its household cancels
// (SPEC.md). The order service withdraws it from dispatch's gate pool first: no later plan takes
// it, its round stops waiting for it, and a stray failure report does not put it back. A parcel
// whose failure dispatch has not heard of yet, or that a later plan has put on a route again,
// cannot be withdrawn.
func TestWithdrawFailedParcel(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	p := h.orders.ready("2", "1", 3)
	q := h.orders.ready("2", "2", 4)
	h.checkIn(t, "in", p, q)
	h.clock.Set(at("2026-03-02", "09:30"))
	h.plan(t, "plan-am", am)
	const pm = "haixin-2026-03-02-pm"

	// The order service, cancelling for p's household.
	resident := h.as(typesv1.Role_ROLE_SYSTEM, "order",
		onBehalfOf(typesv1.Role_ROLE_RESIDENT, p.GetHouseholdId(), testkit.InCompound("haixin")))
	withdraw := func(requestID string, parcel string, reason string) (*dispatchv1.WithdrawParcelResponse, error) {
		return h.client.WithdrawParcel(resident, &dispatchv1.WithdrawParcelRequest{RequestId: requestID, ParcelId: parcel,
			FailedRoundId: am, Reason: reason})
	}

	// The order service saw p fail, but the courier's report has not reached dispatch yet.
	if _, err := withdraw("w-early", p.GetParcelId(), "cancelled by the household"); status.Code(err) != codes.Aborted {
		t.Fatalf("withdraw before dispatch heard of the failure: %v, want ABORTED", err)
	}
	if _, st, _, _ := h.parcelRow(t, p.GetParcelId()); st != "assigned" {
		t.Fatalf("a refused withdrawal left the parcel %s", st)
	}

	h.outcome(t, p, typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home")
	h.outcome(t, q, typesv1.ParcelState_PARCEL_STATE_FAILED, "wrong address")
	for _, id := range []string{p.GetParcelId(), q.GetParcelId()} {
		testkit.Eventually(t, 10*time.Second, func() error {
			if round, st, _, _ := h.parcelRow(t, id); round != pm || st != "pooled" {
				return fmt.Errorf("parcel %s in %s, %s", id, round, st)
			}
			return nil
		})
	}
	if r := h.round(t, "2026-03-02", am); r.GetState() != dispatchv1.RoundState_ROUND_STATE_DONE {
		t.Fatalf("am round %v after both its parcels failed", r.GetState())
	}

	// A parcel waiting at the gate that never failed cannot be withdrawn.
	fresh := h.orders.ready("1", "1", 2)
	h.checkIn(t, "in-fresh", fresh)
	system := h.as(typesv1.Role_ROLE_SYSTEM, "order")
	_, err := h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{RequestId: "w-fresh", ParcelId: fresh.GetParcelId(),
		FailedRoundId: am, Reason: "cancelled"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("withdraw a parcel that never failed: %v, want FAILED_PRECONDITION", err)
	}
	if r := h.round(t, "2026-03-02", pm); r.GetParcels() != 3 {
		t.Fatalf("pm carries %d parcels, want 3", r.GetParcels())
	}

	// Now it can be withdrawn: from the pm round's gate pool, keeping the household's reason, and
	// announced as cancelled by the household.
	got, err := withdraw("w-1", p.GetParcelId(), "cancelled by the household")
	if err != nil || got.GetParcelId() != p.GetParcelId() || got.GetRoundId() != pm || got.GetEventId() == "" {
		t.Fatalf("withdraw = %v, %v", got, err)
	}
	cancelled := h.waitEvents(t, "doorstep.haixin.parcel.cancelled", 1)[0].event
	if sc := cancelled.GetParcelStateChanged(); cancelled.GetEventId() != got.GetEventId() || sc.GetParcelId() != p.GetParcelId() ||
		sc.GetState() != typesv1.ParcelState_PARCEL_STATE_CANCELLED || sc.GetReason() != "cancelled by the household" ||
		sc.GetRoundId() != pm || cancelled.GetOrderId() != p.GetOrderId() ||
		cancelled.GetActor().GetRole() != typesv1.Role_ROLE_RESIDENT || cancelled.GetActor().GetId() != p.GetHouseholdId() {
		t.Fatalf("parcel.cancelled %v, answer %v", cancelled, got)
	}
	// It no longer counts against the pm round's capacity.
	if r := h.round(t, "2026-03-02", pm); r.GetParcels() != 2 {
		t.Fatalf("pm carries %d parcels after the withdrawal, want 2", r.GetParcels())
	}
	// Scanned at the gate again, it is not reported as going out.
	if res := h.checkIn(t, "in-again", p); res[0].GetCheckedIn() || !strings.Contains(res[0].GetError(), "cancelled by its household") {
		t.Fatalf("check-in of a withdrawn parcel: %v", res[0])
	}
	var st, reason string
	var outcome *string
	if err := h.pool.QueryRow(h.ctx, `
		SELECT p.status, p.reason, rp.outcome FROM parcels p JOIN round_parcels rp ON rp.parcel_id = p.parcel_id AND rp.round_id = $2
		WHERE p.parcel_id = $1`, p.GetParcelId(), pm).Scan(&st, &reason, &outcome); err != nil {
		t.Fatal(err)
	}
	if st != "withdrawn" || reason != "cancelled by the household" || outcome == nil || *outcome != "withdrawn" {
		t.Fatalf("withdrawn parcel is %s (%q), outcome in pm %v", st, reason, outcome)
	}
	// A retry answers the same; another request for a withdrawn parcel is answered as withdrawn;
	// the retry's id with another reason is another request.
	for _, id := range []string{"w-1", "w-2"} {
		if again, err := withdraw(id, p.GetParcelId(), "cancelled by the household"); err != nil || !proto.Equal(again, got) {
			t.Errorf("withdraw %s again = %v, %v; want %v", id, again, err, got)
		}
	}
	if _, err := withdraw("w-1", p.GetParcelId(), "changed my mind"); status.Code(err) != codes.AlreadyExists {
		t.Errorf("request id reused with another reason: %v, want ALREADY_EXISTS", err)
	}
	if evs, err := h.events("doorstep.haixin.parcel.cancelled"); err != nil || len(evs) != 1 {
		t.Errorf("%d parcel.cancelled events after repeated withdrawals (%v), want 1", len(evs), err)
	}

	// A late failure report (another event, as from a courier's phone that was offline) does not
	// put it back in a round.
	h.outcome(t, p, typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home, again")
	h.outcome(t, q, typesv1.ParcelState_PARCEL_STATE_FAILED, "wrong address, again")
	testkit.Eventually(t, 10*time.Second, func() error {
		var reason string
		if err := h.pool.QueryRow(h.ctx, `SELECT reason FROM parcels WHERE parcel_id = $1`, q.GetParcelId()).Scan(&reason); err != nil {
			return err
		}
		if reason != "wrong address, again" {
			return fmt.Errorf("q's second report not applied yet (%q)", reason)
		}
		return nil
	})
	if round, st, _, _ := h.parcelRow(t, p.GetParcelId()); round != pm || st != "withdrawn" {
		t.Fatalf("after a late failure report the withdrawn parcel is in %s, %s", round, st)
	}

	// The pm plan takes q again and not p; q, on a route again, can no longer be withdrawn.
	plan := h.plan(t, "plan-pm", pm)
	var planned []string
	for _, r := range plan.GetRoutes() {
		for _, s := range r.GetStops() {
			planned = append(planned, s.GetParcelIds()...)
		}
	}
	if slices.Contains(planned, p.GetParcelId()) || !slices.Contains(planned, q.GetParcelId()) || len(planned) != 2 {
		t.Fatalf("pm plan carries %v, want %s and %s", planned, q.GetParcelId(), fresh.GetParcelId())
	}
	_, err = h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{RequestId: "w-q", ParcelId: q.GetParcelId(),
		FailedRoundId: am, Reason: "cancelled"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("withdraw a re-assigned parcel: %v, want FAILED_PRECONDITION", err)
	}
	if _, st, _, _ := h.parcelRow(t, q.GetParcelId()); st != "assigned" {
		t.Fatalf("a refused withdrawal left the parcel %s", st)
	}
	// The pm round waits for the parcels on its routes alone.
	h.outcome(t, q, typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home in the afternoon either")
	h.outcome(t, fresh, typesv1.ParcelState_PARCEL_STATE_DELIVERED, "")
	testkit.Eventually(t, 10*time.Second, func() error {
		if r := h.round(t, "2026-03-02", pm); r.GetState() != dispatchv1.RoundState_ROUND_STATE_DONE {
			return fmt.Errorf("pm round %v after its routed parcels were delivered or failed", r.GetState())
		}
		return nil
	})
	// q now waits for tomorrow morning. A withdrawal that knows only of its morning failure is
	// behind: refused. One naming its latest failure goes through.
	_, err = h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{RequestId: "w-q-am", ParcelId: q.GetParcelId(),
		FailedRoundId: am, Reason: "cancelled"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "last failed in round "+pm) {
		t.Fatalf("withdraw naming an earlier failure: %v, want FAILED_PRECONDITION naming %s", err, pm)
	}
	if got, err := h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{RequestId: "w-q-pm", ParcelId: q.GetParcelId(),
		FailedRoundId: pm, Reason: "cancelled"}); err != nil || got.GetRoundId() != "haixin-2026-03-03-am" {
		t.Fatalf("withdraw naming the latest failure = %v, %v", got, err)
	}

	// Another household's parcel is NOT_FOUND to a resident, as is a parcel dispatch never had.
	if _, err := withdraw("w-other", q.GetParcelId(), "not mine"); status.Code(err) != codes.NotFound {
		t.Errorf("withdraw another household's parcel: %v, want NOT_FOUND", err)
	}
	_, err = h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{RequestId: "w-unknown",
		ParcelId: "0190c5a4-0000-7000-8000-00000000dead", FailedRoundId: am})
	if status.Code(err) != codes.NotFound {
		t.Errorf("withdraw an unknown parcel: %v, want NOT_FOUND", err)
	}
}

// Every bad field of a withdrawal is named, and nothing changes.
func TestWithdrawParcelValidation(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	system := h.as(typesv1.Role_ROLE_SYSTEM, "order")
	long := make([]byte, 501)
	for i := range long {
		long[i] = 'x'
	}
	_, err := h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{ParcelId: "no spaces allowed",
		FailedRoundId: "yesterday", Reason: string(long)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad withdrawal: %v, want INVALID_ARGUMENT", err)
	}
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if want := []string{"request_id", "parcel_id", "failed_round_id", "reason"}; fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("violations name %v, want %v", fields, want)
	}
}

// Withdrawals racing the plan of the round their parcels wait for: each parcel ends either
// withdrawn and on no route, or on a route with its withdrawal refused; never both, never neither.
func TestWithdrawRacingPlan(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	var parcels []*orderv1.Parcel
	for i := range 10 {
		parcels = append(parcels, h.orders.ready("2", fmt.Sprint(1+i%2), 1+i%6))
	}
	h.checkIn(t, "in", parcels...)
	h.clock.Set(at("2026-03-02", "09:30"))
	h.plan(t, "plan-am", am)
	const pm = "haixin-2026-03-02-pm"
	for _, p := range parcels {
		h.outcome(t, p, typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home")
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if r := h.round(t, "2026-03-02", pm); r.GetParcels() != int32(len(parcels)) {
			return fmt.Errorf("pm has %d parcels", r.GetParcels())
		}
		return nil
	})

	system := h.as(typesv1.Role_ROLE_SYSTEM, "order")
	withdrawn := make([]error, len(parcels))
	var plan *dispatchv1.PlanRoundResponse
	var planErr error
	var wg sync.WaitGroup
	for i, p := range parcels {
		wg.Go(func() {
			_, withdrawn[i] = h.client.WithdrawParcel(system, &dispatchv1.WithdrawParcelRequest{RequestId: "w-" + p.GetParcelId(),
				ParcelId: p.GetParcelId(), FailedRoundId: am, Reason: "cancelled"})
		})
		if i == len(parcels)/2 {
			wg.Go(func() {
				plan, planErr = h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: "plan-pm", RoundId: pm})
			})
		}
	}
	wg.Wait()
	if planErr != nil {
		t.Fatal(planErr)
	}
	planned := map[string]bool{}
	for _, r := range plan.GetRoutes() {
		for _, s := range r.GetStops() {
			for _, id := range s.GetParcelIds() {
				planned[id] = true
			}
		}
	}
	won := 0
	for i, p := range parcels {
		switch {
		case withdrawn[i] == nil && !planned[p.GetParcelId()]:
			won++
		case status.Code(withdrawn[i]) == codes.FailedPrecondition && planned[p.GetParcelId()]:
		default:
			t.Errorf("parcel %s: withdrawal %v, planned %v", p.GetParcelId(), withdrawn[i], planned[p.GetParcelId()])
		}
	}
	t.Logf("%d of %d withdrawals came before the plan", won, len(parcels))
}
