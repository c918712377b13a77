package protomap

import (
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
)

// The mapping is by name, so a state or role added to the proto without the domain (or the
// other way round) must show up here.
func TestEveryStateAndRoleMapsBothWays(t *testing.T) {
	for n := range typesv1.ParcelState_name {
		s := typesv1.ParcelState(n)
		if s == typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED {
			if FromState(s) != "" {
				t.Errorf("UNSPECIFIED maps to %q", FromState(s))
			}
			continue
		}
		d := FromState(s)
		if !d.Valid() || State(d) != s {
			t.Errorf("%v -> %q -> %v", s, d, State(d))
		}
	}
	if FromState(typesv1.ParcelState(99)).Valid() {
		t.Error("an unknown state number maps to a valid state")
	}
	for n := range typesv1.Role_name {
		r := typesv1.Role(n)
		if r == typesv1.Role_ROLE_UNSPECIFIED {
			continue
		}
		if d := FromRole(r); d == "" || Role(d) != r {
			t.Errorf("%v -> %q -> %v", r, d, Role(d))
		}
	}
	for _, r := range []supply.Role{supply.RoleResident, supply.RoleWorker, supply.RoleSupplier,
		supply.RoleDispatcher, supply.RoleCourier, supply.RoleSystem} {
		if Role(r) == typesv1.Role_ROLE_UNSPECIFIED {
			t.Errorf("domain role %q has no proto role", r)
		}
	}
}

// Ids and compounds become keys and subject tokens: the domain's slug rule must be the events'.
func TestSlugRuleMatchesEvents(t *testing.T) {
	for _, s := range []string{"haixin", "haixin-3", "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f01", "", "Haixin", "-x",
		"hai xin", "hai.xin", "hai_xin", "a234567890123456789012345678901234567890123456789012345678901234"} {
		if supply.ValidSlug(s) != events.ValidCompound(s) {
			t.Errorf("%q: domain %v, events %v", s, supply.ValidSlug(s), events.ValidCompound(s))
		}
	}
}

func TestParcelEvent(t *testing.T) {
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	p := supply.Parcel{ID: "p1", OrderID: "o1", Compound: "haixin", HouseholdID: "haixin-3-2-302", TotalFen: 700,
		Lines: []supply.Line{{ItemID: "rice", Name: "Rice", ConfirmedQuantity: 2, ConfirmedAmountFen: 700}}}
	ev := ParcelEvent(p, supply.Transition{To: supply.StateConfirmed, Actor: supply.Actor{Role: supply.RoleSupplier, ID: "freshmart"}, At: at})
	subject, err := events.Subject(ev)
	if err != nil || subject != "doorstep.haixin.parcel.confirmed" {
		t.Fatalf("subject %q, %v", subject, err)
	}
	ch := ev.GetParcelStateChanged()
	if ev.GetOrderId() != "o1" || ch.GetConfirmedTotalFen() != 700 || ch.GetConfirmedLines()[0].GetQuantity() != 2 ||
		ch.GetHouseholdId() != "haixin-3-2-302" || !ev.GetOccurredAt().AsTime().Equal(at) {
		t.Fatalf("event %v", ev)
	}
	ev = ParcelEvent(p, supply.Transition{To: supply.StateReady, At: at})
	if len(ev.GetParcelStateChanged().GetConfirmedLines()) != 0 {
		t.Fatal("ready event carries confirmed lines")
	}
}
