package route

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parcels lists a route's parcels stop by stop as "seq:household:parcel=STATUS".
func parcels(r Route) []string {
	var out []string
	for _, s := range r.Stops {
		for _, p := range s.Parcels {
			out = append(out, strings.Join([]string{strconv.Itoa(s.Sequence), s.HouseholdID, p.ID + "=" + p.Status.String()}, ":"))
		}
		if len(s.Parcels) == 0 {
			out = append(out, strconv.Itoa(s.Sequence)+":"+s.HouseholdID+":-")
		}
	}
	return out
}

func plan(version int, stops ...Stop) Route {
	return Route{ID: "route-1", RoundID: "round-1", CourierID: "haixin-courier-01", Compound: "haixin",
		PlannedAt: time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC), Version: version, Stops: stops}
}

func door(seq int, household string, ids ...string) Stop {
	s := Stop{Sequence: seq, Trip: 1, HouseholdID: household}
	for _, id := range ids {
		s.Parcels = append(s.Parcels, Parcel{ID: id, OrderID: "o-" + id, Status: StatusPending})
	}
	return s
}

func TestReplan(t *testing.T) {
	first := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	done := time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	// current: p1 delivered and p2 failed at 302, p3 out at 201, p4 pending at 101.
	current := plan(1, door(1, "h302", "p1", "p2"), door(2, "h201", "p3"), door(3, "h101", "p4"))
	current.PlannedAt, current.Revision = first, 4
	set := func(id string, st Status) {
		_, p, _ := current.Parcel(id)
		p.Status, p.ChangedAt = st, done
		if st == StatusDelivered {
			p.Method, p.PhotoRef = HandedOver, "photo-"+id
		}
		if st == StatusFailed {
			p.Reason = "not_home"
		}
	}
	set("p1", StatusDelivered)
	set("p2", StatusFailed)
	set("p3", StatusOutForDelivery)

	tests := []struct {
		name    string
		current Route
		next    Route
		want    []string
	}{
		{"first version: all pending", Route{}, plan(1, door(1, "h302", "p1"), door(2, "h201")),
			[]string{"1:h302:p1=PENDING", "2:h201:-"}},
		{"parcels that stay keep their status; new ones are pending; dropped unfinished ones leave",
			current, plan(2, door(1, "h201", "p3"), door(2, "h302", "p1", "p2"), door(3, "h909", "p9")),
			[]string{"1:h201:p3=OUT_FOR_DELIVERY", "2:h302:p1=DELIVERED", "2:h302:p2=FAILED", "3:h909:p9=PENDING"}},
		{"dropped finished parcels stay as history under the household's new stop",
			current, plan(2, door(1, "h302", "p5")),
			[]string{"1:h302:p5=PENDING", "1:h302:p1=DELIVERED", "1:h302:p2=FAILED"}},
		{"dropped finished parcels of a household no longer visited keep their stop, after the new ones",
			current, plan(2, door(1, "h101", "p4"), door(2, "h201", "p3")),
			[]string{"1:h101:p4=PENDING", "2:h201:p3=OUT_FOR_DELIVERY", "3:h302:p1=DELIVERED", "3:h302:p2=FAILED"}},
		{"withdrawn: only history is left", current, plan(2),
			[]string{"1:h302:p1=DELIVERED", "1:h302:p2=FAILED"}},
		{"withdrawn with nothing done: empty", plan(1, door(1, "h302", "p1")), plan(2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Replan(tt.current, tt.next)
			if p := parcels(got); !reflect.DeepEqual(p, tt.want) {
				t.Errorf("parcels = %v\nwant      %v", p, tt.want)
			}
			if got.Version != tt.next.Version || got.ID != tt.next.ID || got.CourierID != tt.next.CourierID {
				t.Errorf("header = %+v", got)
			}
			if tt.current.ID != "" && (!got.PlannedAt.Equal(tt.current.PlannedAt) || got.Revision != tt.current.Revision) {
				t.Errorf("planned_at %v revision %d, want the first plan's time and the stored revision", got.PlannedAt, got.Revision)
			}
			if tt.current.ID == "" && !got.PlannedAt.Equal(tt.next.PlannedAt) {
				t.Errorf("planned_at %v of a new route, want the event's", got.PlannedAt)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("replanned route invalid: %v", err)
			}
		})
	}

	// What happened to a parcel travels with it.
	got := Replan(current, plan(2, door(1, "h302", "p1")))
	if _, p, _ := got.Parcel("p1"); p.Method != HandedOver || p.PhotoRef != "photo-p1" || !p.ChangedAt.Equal(done) {
		t.Errorf("p1 after re-plan = %+v", p)
	}
	if _, p, _ := got.Parcel("p2"); p.Reason != "not_home" || !p.ChangedAt.Equal(done) {
		t.Errorf("p2 after re-plan = %+v", p)
	}
	// The input is not modified.
	if _, p, _ := current.Parcel("p3"); p.Status != StatusOutForDelivery || len(current.Stops) != 3 {
		t.Errorf("current was modified: %+v", current)
	}
}

func TestCompleteRecordsOrRefusesEachOutcome(t *testing.T) {
	at := time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)
	r := sample()
	r.PickUp(at)
	routes := map[string]*Route{"p1": &r, "p2": &r, "p3": &r, "p4": &r}
	changes, results := Complete(routes, []Outcome{
		{ParcelID: "p1", Method: LeftAtDoor, PhotoRef: "ph-1"},
		{ParcelID: "p2", Failure: Failure{Reason: Refused}},
		{ParcelID: "p1", Method: HandedOver},                  // twice in one call
		{ParcelID: "p3", Method: LeftAtDoor},                  // failed before
		{ParcelID: "p4", Method: LeftAtDoor},                  // superseded
		{ParcelID: "nope", Failure: Failure{Reason: NotHome}}, // not the courier's
		{ParcelID: "p2", Failure: Failure{Reason: Other}},     // no note (and already failed)
	}, at)

	type res struct {
		recorded bool
		status   Status
		refusal  string
	}
	want := []res{
		{true, StatusDelivered, ""},
		{true, StatusFailed, ""},
		{false, StatusDelivered, "illegal transition"},
		{false, StatusFailed, "illegal transition"},
		{false, StatusPending, "newer route"},
		{false, 0, "not found"},
		{false, StatusFailed, "invalid"},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d", len(results), len(want))
	}
	for i, w := range want {
		got := results[i]
		var st Status
		if got.Parcel != nil {
			st = got.Parcel.Status
		}
		if got.Recorded != w.recorded || st != w.status || !strings.Contains(got.Refusal, w.refusal) || (w.recorded && got.Refusal != "") {
			t.Errorf("result %d = %+v (status %s), want %+v", i, got, st, w)
		}
	}
	if len(changes) != 2 || changes[0].ParcelID != "p1" || changes[0].PhotoRef != "ph-1" || changes[1].ParcelID != "p2" {
		t.Errorf("changes = %+v", changes)
	}
}
