package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestCompoundSettings(t *testing.T) {
	h := start(t, at("2026-03-02", "07:00"))
	got, err := h.client.GetCompoundSettings(h.ctx, &dispatchv1.GetCompoundSettingsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	defaults := &dispatchv1.CompoundSettings{Compound: "haixin", Slots: []*dispatchv1.RoundSlot{
		{Slot: "am", Cutoff: "09:00", Departs: "09:30"}, {Slot: "pm", Cutoff: "15:00", Departs: "15:30"}}}
	if !proto.Equal(got.GetSettings(), defaults) {
		t.Fatalf("settings never set = %v, want the defaults %v", got.GetSettings(), defaults)
	}

	// Today's rounds exist (listed at 07:00, one with a parcel) before the dispatcher changes the day.
	h.checkIn(t, "in", h.orders.ready("1", "1", 1))
	h.round(t, "", "haixin-2026-03-02-am")

	three := &dispatchv1.CompoundSettings{Compound: "haixin", RoundCapacity: 50, Slots: []*dispatchv1.RoundSlot{
		{Slot: "am", Cutoff: "08:00", Departs: "08:15"},
		{Slot: "noon", Cutoff: "12:00", Departs: "12:30"},
		{Slot: "eve", Cutoff: "17:00", Departs: "17:00"}}}
	upd, err := h.client.UpdateCompoundSettings(h.ctx, &dispatchv1.UpdateCompoundSettingsRequest{RequestId: "s1", Settings: three})
	if err != nil || !proto.Equal(upd.GetSettings(), three) {
		t.Fatalf("update = %v, %v", upd.GetSettings(), err)
	}
	got, _ = h.client.GetCompoundSettings(h.ctx, &dispatchv1.GetCompoundSettingsRequest{Compound: "haixin"})
	if !proto.Equal(got.GetSettings(), three) {
		t.Fatalf("settings = %v, want %v", got.GetSettings(), three)
	}
	// A retry answers the same; the id reused for other settings is refused; other compounds keep the defaults.
	again, err := h.client.UpdateCompoundSettings(h.ctx, &dispatchv1.UpdateCompoundSettingsRequest{RequestId: "s1", Settings: three})
	if err != nil || !proto.Equal(again.GetSettings(), three) {
		t.Fatalf("retry = %v, %v", again, err)
	}
	_, err = h.client.UpdateCompoundSettings(h.ctx, &dispatchv1.UpdateCompoundSettingsRequest{RequestId: "s1", Settings: defaults})
	wantCode(t, err, codes.AlreadyExists)
	other, _ := h.client.GetCompoundSettings(h.as(typesv1.Role_ROLE_SYSTEM, "supplier"), &dispatchv1.GetCompoundSettingsRequest{Compound: "yuyuan"})
	if len(other.GetSettings().GetSlots()) != 2 {
		t.Fatalf("yuyuan settings %v", other.GetSettings())
	}

	// Today: the am round keeps its parcel and takes the new 08:00 cutoff; the empty pm round is
	// gone with its slot; noon and eve open.
	rounds, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rounds.GetRounds() {
		ids = append(ids, fmt.Sprintf("%s@%s", r.GetRoundId(), r.GetCutoff().AsTime().In(shanghai).Format("15:04")))
	}
	if want := "haixin-2026-03-02-am@08:00 haixin-2026-03-02-noon@12:00 haixin-2026-03-02-eve@17:00"; strings.Join(ids, " ") != want {
		t.Fatalf("rounds %v, want %s", ids, want)
	}
	// A check-in after 08:00 goes to noon.
	h.clock.Set(at("2026-03-02", "08:30"))
	if res := h.checkIn(t, "in-2", h.orders.ready("1", "1", 2)); res[0].GetRoundId() != "haixin-2026-03-02-noon" {
		t.Fatalf("check-in at 08:30 went to %s", res[0].GetRoundId())
	}
}

func TestSettingsNameBadFields(t *testing.T) {
	h := start(t, at("2026-03-02", "07:00"))
	settings := func(edit func(s *dispatchv1.CompoundSettings)) *dispatchv1.UpdateCompoundSettingsRequest {
		s := &dispatchv1.CompoundSettings{Compound: "haixin", Slots: []*dispatchv1.RoundSlot{
			{Slot: "am", Cutoff: "09:00", Departs: "09:30"}, {Slot: "pm", Cutoff: "15:00", Departs: "15:30"}}}
		edit(s)
		return &dispatchv1.UpdateCompoundSettingsRequest{RequestId: "s", Settings: s}
	}
	for name, tc := range map[string]struct {
		req   *dispatchv1.UpdateCompoundSettingsRequest
		field string
	}{
		"no settings":      {&dispatchv1.UpdateCompoundSettingsRequest{RequestId: "s"}, "settings"},
		"compound":         {settings(func(s *dispatchv1.CompoundSettings) { s.Compound = "Hai Xin" }), "settings.compound"},
		"no slots":         {settings(func(s *dispatchv1.CompoundSettings) { s.Slots = nil }), "settings.slots"},
		"cutoff not clock": {settings(func(s *dispatchv1.CompoundSettings) { s.Slots[0].Cutoff = "9am" }), "settings.slots[0].cutoff"},
		"departs missing":  {settings(func(s *dispatchv1.CompoundSettings) { s.Slots[1].Departs = "" }), "settings.slots[1].departs"},
		"cutoffs out of order": {settings(func(s *dispatchv1.CompoundSettings) { s.Slots[1].Cutoff, s.Slots[1].Departs = "08:00", "08:30" }),
			"settings.slots[1].cutoff"},
		"departs before cutoff": {settings(func(s *dispatchv1.CompoundSettings) { s.Slots[0].Departs = "08:00" }), "settings.slots[0].departs"},
		"slot name":             {settings(func(s *dispatchv1.CompoundSettings) { s.Slots[0].Slot = "AM" }), "settings.slots[0].slot"},
		"slot twice":            {settings(func(s *dispatchv1.CompoundSettings) { s.Slots[1].Slot = "am" }), "settings.slots[1].slot"},
		"capacity":              {settings(func(s *dispatchv1.CompoundSettings) { s.RoundCapacity = -1 }), "settings.round_capacity"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.UpdateCompoundSettings(h.ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument)
			if v := grpcx.FieldViolations(err); v[tc.field] == "" {
				t.Fatalf("violations %v do not name %s", v, tc.field)
			}
		})
	}
	_, err := h.client.GetCompoundSettings(h.ctx, &dispatchv1.GetCompoundSettingsRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

// Rounds close at their cutoff (or by hand) and at capacity; parcels roll to the next round with room.
func TestRoundsCloseAndFill(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	if _, err := h.client.UpdateCompoundSettings(h.ctx, &dispatchv1.UpdateCompoundSettingsRequest{RequestId: "cap",
		Settings: &dispatchv1.CompoundSettings{Compound: "haixin", RoundCapacity: 2, Slots: []*dispatchv1.RoundSlot{
			{Slot: "am", Cutoff: "09:00", Departs: "09:30"}, {Slot: "pm", Cutoff: "15:00", Departs: "15:30"}}}}); err != nil {
		t.Fatal(err)
	}
	// One batch of three: two fill the am round, the third spills into pm; later ones go on to pm.
	p := []*orderv1.Parcel{h.orders.ready("1", "1", 1), h.orders.ready("1", "1", 2), h.orders.ready("1", "1", 3),
		h.orders.ready("2", "1", 1), h.orders.ready("2", "1", 2)}
	res := h.checkIn(t, "in-1", p[0], p[1], p[2])
	if res[0].GetRoundId() != "haixin-2026-03-02-am" || res[1].GetRoundId() != "haixin-2026-03-02-am" ||
		res[2].GetRoundId() != "haixin-2026-03-02-pm" {
		t.Fatalf("batch went to %v", res)
	}
	if res := h.checkIn(t, "in-2", p[3]); res[0].GetRoundId() != "haixin-2026-03-02-pm" {
		t.Fatalf("after am filled: %v", res)
	}
	// pm is now full too: the next goes to tomorrow's first round.
	if res := h.checkIn(t, "in-3", p[4]); res[0].GetRoundId() != "haixin-2026-03-03-am" {
		t.Fatalf("after pm filled: %v", res)
	}

	// At the cutoff the am round shows closed; a closed round can still be planned.
	h.clock.Set(at("2026-03-02", "09:00"))
	if r := h.round(t, "", "haixin-2026-03-02-am"); r.GetState() != dispatchv1.RoundState_ROUND_STATE_CLOSED || r.GetParcels() != 2 {
		t.Fatalf("am at its cutoff: %v", r)
	}
	if r := h.round(t, "", "haixin-2026-03-02-pm"); r.GetState() != dispatchv1.RoundState_ROUND_STATE_OPEN {
		t.Fatalf("pm at 09:00: %v", r)
	}
	if plan := h.plan(t, "plan-am", "haixin-2026-03-02-am"); plan.GetRound().GetState() != dispatchv1.RoundState_ROUND_STATE_PLANNED {
		t.Fatalf("planned am: %v", plan.GetRound())
	}

	// Closing tomorrow's am by hand: check-ins skip it; closing again changes nothing; a planned
	// round cannot be closed.
	closed, err := h.client.CloseRound(h.ctx, &dispatchv1.CloseRoundRequest{RequestId: "close-1", RoundId: "haixin-2026-03-03-am"})
	if err != nil || closed.GetRound().GetState() != dispatchv1.RoundState_ROUND_STATE_CLOSED || closed.GetRound().GetParcels() != 1 {
		t.Fatalf("close = %v, %v", closed, err)
	}
	if res := h.checkIn(t, "in-4", h.orders.ready("2", "1", 3)); res[0].GetRoundId() != "haixin-2026-03-03-pm" {
		t.Fatalf("after closing tomorrow's am: %v", res)
	}
	again, err := h.client.CloseRound(h.ctx, &dispatchv1.CloseRoundRequest{RequestId: "close-2", RoundId: "haixin-2026-03-03-am"})
	if err != nil || again.GetRound().GetState() != dispatchv1.RoundState_ROUND_STATE_CLOSED {
		t.Fatalf("closing again = %v, %v", again, err)
	}
	_, err = h.client.CloseRound(h.ctx, &dispatchv1.CloseRoundRequest{RequestId: "close-3", RoundId: "haixin-2026-03-02-am"})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.client.CloseRound(h.ctx, &dispatchv1.CloseRoundRequest{RequestId: "close-4", RoundId: "haixin-2026-03-09-am"})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.CloseRound(h.ctx, &dispatchv1.CloseRoundRequest{RequestId: "close-5", RoundId: "haixin-2026-03-02"})
	wantCode(t, err, codes.InvalidArgument)

	// A parcel that fails at the door rolls to the next open round with room: pm and tomorrow's
	// am are full or closed, so tomorrow's pm.
	h.outcome(t, p[0], typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home")
	testkit.Eventually(t, 10*time.Second, func() error {
		if round, status, _, _ := h.parcelRow(t, p[0].GetParcelId()); round != "haixin-2026-03-03-pm" || status != "pooled" {
			return fmt.Errorf("failed parcel in %s, %s", round, status)
		}
		return nil
	})
}

// A round is done when every parcel it had was delivered or failed.
func TestRoundDoneWhenEveryParcelDeliveredOrFailed(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	h.sitePlan(t)
	a, b, c := h.orders.ready("2", "1", 1), h.orders.ready("2", "1", 2), h.orders.ready("11", "1", 9)
	h.checkIn(t, "in", a, b, c)
	h.clock.Set(at("2026-03-02", "09:10"))
	h.plan(t, "plan", "haixin-2026-03-02-am")
	const am = "haixin-2026-03-02-am"

	h.outcome(t, a, typesv1.ParcelState_PARCEL_STATE_DELIVERED, "")
	dup := h.outcome(t, b, typesv1.ParcelState_PARCEL_STATE_FAILED, "nobody home")
	publish(t, h, dup) // redelivered: applied once
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, status, _, _ := h.parcelRow(t, b.GetParcelId()); status != "pooled" {
			return fmt.Errorf("failed parcel %s", status)
		}
		if _, status, _, _ := h.parcelRow(t, a.GetParcelId()); status != "delivered" {
			return fmt.Errorf("delivered parcel %s", status)
		}
		return nil
	})
	if r := h.round(t, "", am); r.GetState() != dispatchv1.RoundState_ROUND_STATE_PLANNED || r.GetParcels() != 3 {
		t.Fatalf("with one parcel out: %v", r)
	}
	// A failure report after the delivery changes nothing; the last delivery finishes the round.
	h.outcome(t, a, typesv1.ParcelState_PARCEL_STATE_FAILED, "late report")
	h.outcome(t, c, typesv1.ParcelState_PARCEL_STATE_DELIVERED, "")
	testkit.Eventually(t, 10*time.Second, func() error {
		if r := h.round(t, "", am); r.GetState() != dispatchv1.RoundState_ROUND_STATE_DONE {
			return fmt.Errorf("round %s", r.GetState())
		}
		return nil
	})
	if round, status, _, _ := h.parcelRow(t, a.GetParcelId()); round != am || status != "delivered" {
		t.Fatalf("delivered parcel now %s %s", round, status)
	}
	if round, _, _, _ := h.parcelRow(t, b.GetParcelId()); round != "haixin-2026-03-02-pm" {
		t.Fatalf("failed parcel in %s", round)
	}
	// A done round takes no overrides.
	_, err := h.client.ReplanRound(h.ctx, &dispatchv1.ReplanRoundRequest{RequestId: "replan", RoundId: am})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: "duty", RoundId: am,
		CourierId: "haixin-courier-02"})
	wantCode(t, err, codes.FailedPrecondition)
}

// Shortages found at the gate are stored, returned, and carried on parcel.at_gate with a reason
// in words, so the household sees why.
func TestCheckInRecordsShortages(t *testing.T) {
	h := start(t, at("2026-03-02", "08:00"))
	p1, p2 := h.orders.ready("1", "1", 3), h.orders.ready("1", "1", 4)
	req := &dispatchv1.CheckInParcelsRequest{RequestId: "in", Compound: "haixin", ParcelIds: []string{p1.GetParcelId(), p2.GetParcelId()},
		Shortages: []*dispatchv1.Shortage{
			{ParcelId: p1.GetParcelId(), ItemId: "fm-eggs-30", MissingQuantity: 1},
			{ParcelId: p1.GetParcelId(), ItemId: "fm-milk-1l", DamagedQuantity: 2, Note: "carton crushed"}}}
	resp, err := h.client.CheckInParcels(h.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults()[0]; !r.GetCheckedIn() || len(r.GetShortages()) != 2 || !proto.Equal(r.GetShortages()[1], req.GetShortages()[1]) {
		t.Fatalf("result %v", r)
	}
	if r := resp.GetResults()[1]; !r.GetCheckedIn() || len(r.GetShortages()) != 0 {
		t.Fatalf("result %v", r)
	}
	got := h.waitEvents(t, "doorstep.haixin.parcel.at_gate", 2)
	psc := got[0].event.GetParcelStateChanged()
	if psc.GetParcelId() != p1.GetParcelId() {
		psc = got[1].event.GetParcelStateChanged()
	}
	if psc.GetReason() != "missing 1 × fm-eggs-30; damaged 2 × fm-milk-1l (carton crushed)" || len(psc.GetShortages()) != 2 ||
		psc.GetShortages()[0].GetItemId() != "fm-eggs-30" || psc.GetShortages()[0].GetMissingQuantity() != 1 ||
		psc.GetShortages()[1].GetDamagedQuantity() != 2 || psc.GetShortages()[1].GetNote() != "carton crushed" {
		t.Fatalf("at_gate = %v", psc)
	}

	// A retry answers the same; checking the parcel in again reports what was recorded.
	again, err := h.client.CheckInParcels(h.ctx, req)
	if err != nil || !proto.Equal(again, resp) {
		t.Fatalf("retry = %v, %v", again, err)
	}
	later := h.checkIn(t, "in-again", p1)
	if len(later[0].GetShortages()) != 2 {
		t.Fatalf("second check-in = %v", later)
	}

	// Shortages the parcel cannot have are refused, naming the field, and nothing is checked in.
	p3 := h.orders.ready("1", "1", 5)
	for name, tc := range map[string]struct {
		s     *dispatchv1.Shortage
		field string
	}{
		"parcel not in batch": {&dispatchv1.Shortage{ParcelId: "other", ItemId: "fm-eggs-30", MissingQuantity: 1}, "shortages[0].parcel_id"},
		"no item":             {&dispatchv1.Shortage{ParcelId: p3.GetParcelId(), MissingQuantity: 1}, "shortages[0].item_id"},
		"nothing short":       {&dispatchv1.Shortage{ParcelId: p3.GetParcelId(), ItemId: "fm-eggs-30"}, "shortages[0].missing_quantity"},
		"negative":            {&dispatchv1.Shortage{ParcelId: p3.GetParcelId(), ItemId: "fm-eggs-30", DamagedQuantity: -1, MissingQuantity: 1}, "shortages[0].damaged_quantity"},
		"long note":           {&dispatchv1.Shortage{ParcelId: p3.GetParcelId(), ItemId: "fm-eggs-30", MissingQuantity: 1, Note: strings.Repeat("x", 201)}, "shortages[0].note"},
		"item not in parcel":  {&dispatchv1.Shortage{ParcelId: p3.GetParcelId(), ItemId: "fm-rice-5kg", MissingQuantity: 1}, "shortages[0].item_id"},
		"more than packed":    {&dispatchv1.Shortage{ParcelId: p3.GetParcelId(), ItemId: "fm-eggs-30", MissingQuantity: 2, DamagedQuantity: 1}, "shortages[0].missing_quantity"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "bad-" + name, Compound: "haixin",
				ParcelIds: []string{p3.GetParcelId()}, Shortages: []*dispatchv1.Shortage{tc.s}})
			wantCode(t, err, codes.InvalidArgument)
			if v := grpcx.FieldViolations(err); v[tc.field] == "" {
				t.Fatalf("violations %v do not name %s", v, tc.field)
			}
		})
	}
	_, err = h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: "twice", Compound: "haixin",
		ParcelIds: []string{p3.GetParcelId()}, Shortages: []*dispatchv1.Shortage{
			{ParcelId: p3.GetParcelId(), ItemId: "fm-eggs-30", MissingQuantity: 1},
			{ParcelId: p3.GetParcelId(), ItemId: "fm-eggs-30", DamagedQuantity: 1}}})
	if v := grpcx.FieldViolations(err); v["shortages[1].item_id"] == "" {
		t.Fatalf("duplicate shortage: %v", err)
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM parcels WHERE parcel_id = $1`, p3.GetParcelId()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused parcel stored: %d, %v", n, err)
	}
}
