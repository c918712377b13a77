package route

import (
	"errors"
	"testing"
	"time"
)

func TestStatusTransitions(t *testing.T) {
	all := []Status{StatusPending, StatusOutForDelivery, StatusDelivered, StatusFailed}
	legal := map[[2]Status]bool{
		{StatusPending, StatusOutForDelivery}:   true,
		{StatusOutForDelivery, StatusDelivered}: true,
		{StatusOutForDelivery, StatusFailed}:    true,
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := from.CanBecome(to), legal[[2]Status{from, to}]; got != want {
				t.Errorf("%s -> %s: CanBecome = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestStatusNamesRoundTrip(t *testing.T) {
	for _, s := range []Status{StatusPending, StatusOutForDelivery, StatusDelivered, StatusFailed} {
		got, err := ParseStatus(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStatus(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseStatus("LOST"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseStatus(LOST) error = %v, want ErrInvalid", err)
	}
	for _, m := range []Method{LeftAtDoor, HandedOver} {
		got, err := ParseMethod(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMethod(%q) = %v, %v", m.String(), got, err)
		}
	}
}

func TestFailure(t *testing.T) {
	tests := []struct {
		name    string
		f       Failure
		text    string
		invalid bool
	}{
		{"not home", Failure{Reason: NotHome}, "not_home", false},
		{"refused", Failure{Reason: Refused}, "refused", false},
		{"wrong address", Failure{Reason: WrongAddress}, "wrong_address", false},
		{"other with note", Failure{Reason: Other, Note: "gate locked"}, "other: gate locked", false},
		{"named reason keeps its note", Failure{Reason: NotHome, Note: "called twice"}, "not_home: called twice", false},
		{"other without note", Failure{Reason: Other}, "", true},
		{"no reason", Failure{}, "", true},
		{"unknown reason", Failure{Reason: 99}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.invalid {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Validate() = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if got := tt.f.Text(); got != tt.text {
				t.Errorf("Text() = %q, want %q", got, tt.text)
			}
		})
	}
}

func sample() Route {
	return Route{
		ID: "route-1", RoundID: "round-1", CourierID: "haixin-courier-01", Compound: "haixin",
		Stops: []Stop{
			{Sequence: 1, Trip: 1, HouseholdID: "haixin-3-2-302", Parcels: []Parcel{
				{ID: "p1", OrderID: "o1", Status: StatusPending},
				{ID: "p2", OrderID: "o1", Status: StatusPending},
			}},
			{Sequence: 2, Trip: 1, HouseholdID: "haixin-3-2-201", Parcels: []Parcel{
				{ID: "p3", OrderID: "o2", Status: StatusFailed},
				{ID: "p4", OrderID: "o3", Status: StatusPending, Superseded: true},
			}},
		},
	}
}

func TestPickUpTakesOnlyPendingParcelsOfThisRoute(t *testing.T) {
	r := sample()
	at := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	changes := r.PickUp(at)
	var ids []string
	for _, c := range changes {
		ids = append(ids, c.ParcelID)
		if c.To != StatusOutForDelivery || c.At != at || c.RouteID != "route-1" || c.RoundID != "round-1" ||
			c.CourierID != "haixin-courier-01" || c.Compound != "haixin" || c.HouseholdID != "haixin-3-2-302" || c.OrderID != "o1" {
			t.Errorf("change %+v does not carry the route's context", c)
		}
	}
	if len(ids) != 2 || ids[0] != "p1" || ids[1] != "p2" {
		t.Fatalf("picked up %v, want [p1 p2]", ids)
	}
	if _, p, _ := r.Parcel("p3"); p.Status != StatusFailed {
		t.Errorf("failed parcel became %s", p.Status)
	}
	if _, p, _ := r.Parcel("p4"); p.Status != StatusPending {
		t.Errorf("superseded parcel became %s", p.Status)
	}
	if again := r.PickUp(at); len(again) != 0 {
		t.Errorf("second pick-up changed %d parcels", len(again))
	}
}

func TestDeliverAndFail(t *testing.T) {
	at := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		prep   func(r *Route)
		act    func(r *Route) (Change, error)
		want   error
		status Status
	}{
		{"deliver before pick-up", nil,
			func(r *Route) (Change, error) { return r.Deliver("p1", LeftAtDoor, "", at) }, ErrIllegalTransition, 0},
		{"deliver", pickUp,
			func(r *Route) (Change, error) { return r.Deliver("p1", HandedOver, "photo-1", at) }, nil, StatusDelivered},
		{"deliver twice", func(r *Route) { pickUp(r); _, _ = r.Deliver("p1", LeftAtDoor, "", at) },
			func(r *Route) (Change, error) { return r.Deliver("p1", LeftAtDoor, "", at) }, ErrIllegalTransition, 0},
		{"fail after delivered", func(r *Route) { pickUp(r); _, _ = r.Deliver("p1", LeftAtDoor, "", at) },
			func(r *Route) (Change, error) { return r.Fail("p1", Failure{Reason: NotHome}, at) }, ErrIllegalTransition, 0},
		{"fail", pickUp,
			func(r *Route) (Change, error) { return r.Fail("p2", Failure{Reason: Other, Note: "dog"}, at) }, nil, StatusFailed},
		{"fail needs a note for other", pickUp,
			func(r *Route) (Change, error) { return r.Fail("p2", Failure{Reason: Other}, at) }, ErrInvalid, 0},
		{"deliver failed parcel", nil,
			func(r *Route) (Change, error) { return r.Deliver("p3", LeftAtDoor, "", at) }, ErrIllegalTransition, 0},
		{"deliver superseded parcel", func(r *Route) { _, p, _ := r.Parcel("p4"); p.Status = StatusOutForDelivery },
			func(r *Route) (Change, error) { return r.Deliver("p4", LeftAtDoor, "", at) }, ErrIllegalTransition, 0},
		{"deliver without method", pickUp,
			func(r *Route) (Change, error) { return r.Deliver("p1", 0, "", at) }, ErrInvalid, 0},
		{"unknown parcel", pickUp,
			func(r *Route) (Change, error) { return r.Deliver("nope", LeftAtDoor, "", at) }, ErrNotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sample()
			if tt.prep != nil {
				tt.prep(&r)
			}
			c, err := tt.act(&r)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("error = %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.To != tt.status {
				t.Errorf("change to %s, want %s", c.To, tt.status)
			}
			if _, p, _ := r.Parcel(c.ParcelID); p.Status != tt.status {
				t.Errorf("parcel is %s, want %s", p.Status, tt.status)
			}
			if tt.status == StatusDelivered && (c.Method != HandedOver || c.Method.String() != "handed_over" || c.PhotoRef != "photo-1") {
				t.Errorf("delivery change %+v lost its method or photo", c)
			}
			if tt.status == StatusFailed && c.Reason != "other: dog" {
				t.Errorf("failure reason %q, want %q", c.Reason, "other: dog")
			}
		})
	}
}

func pickUp(r *Route) { r.PickUp(time.Now()) }

func TestValidateRoute(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *Route)
		ok   bool
	}{
		{"valid", func(*Route) {}, true},
		{"no route id", func(r *Route) { r.ID = "" }, false},
		{"no round", func(r *Route) { r.RoundID = "" }, false},
		{"no courier", func(r *Route) { r.CourierID = "" }, false},
		{"no compound", func(r *Route) { r.Compound = "" }, false},
		{"repeated sequence", func(r *Route) { r.Stops[1].Sequence = 1 }, false},
		{"no household", func(r *Route) { r.Stops[0].HouseholdID = "" }, false},
		{"empty parcel id", func(r *Route) { r.Stops[0].Parcels[0].ID = "" }, false},
		{"parcel twice", func(r *Route) { r.Stops[1].Parcels[0].ID = "p1" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sample()
			tt.edit(&r)
			err := r.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestKeyFingerprintsDistinguishRequests(t *testing.T) {
	base := newKey("r1", "deliver", "c1", "p1", "left_at_door", "")
	if same := newKey("r1", "deliver", "c1", "p1", "left_at_door", ""); same != base {
		t.Errorf("equal requests got different keys")
	}
	for _, other := range []Key{
		newKey("r1", "deliver", "c1", "p1", "handed_over", ""),
		newKey("r1", "deliver", "c2", "p1", "left_at_door", ""),
		newKey("r1", "deliver", "c1p1", "", "left_at_door", ""),
		newKey("r1", "deliver", "c1", "p1", "left_at_door", "photo"),
	} {
		if other.Fingerprint == base.Fingerprint {
			t.Errorf("different request %+v has the same fingerprint", other)
		}
	}
}
