package route

import (
	"context"
	"errors"
	"testing"
	"time"
)

// nilRepo panics on every call: a test using it proves nothing was read or written.
type nilRepo struct{ Repository }

// A scope that does not reach the courier named is answered as if that courier had nothing, in
// the words used for ids that do not exist, before the repository is touched.
func TestScopeOfAnotherCourierReachesNothing(t *testing.T) {
	svc := &Service{Repo: nilRepo{}, Feed: &memFeed{}}
	scope := Scope{Courier: "c2", Compound: "haixin", Actor: Actor{Role: RoleCourier, ID: "c2"}}
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"Route", func() error { _, err := svc.Route(ctx, scope, "c1", ""); return err }, NoRoute("c1", "")},
		{"Route of a round", func() error { _, err := svc.Route(ctx, scope, "c1", "am"); return err }, NoRoute("c1", "am")},
		{"Watch", func() error { return svc.Watch(ctx, scope, "c1", "am", func(Route) error { return nil }) }, NoRoute("c1", "am")},
		{"PickUp", func() error { _, err := svc.PickUp(ctx, scope, "r", "c1", "route-1"); return err }, NoSuchRoute("c1", "route-1")},
		{"Deliver", func() error { _, err := svc.Deliver(ctx, scope, "r", "c1", "p1", LeftAtDoor, ""); return err }, ParcelNotOnRoutes("c1", "p1")},
		{"Fail", func() error { _, err := svc.Fail(ctx, scope, "r", "c1", "p1", Failure{Reason: NotHome}); return err }, ParcelNotOnRoutes("c1", "p1")},
		{"CompleteStops", func() error {
			_, err := svc.CompleteStops(ctx, scope, "r", "c1", []Outcome{{ParcelID: "p1", Method: LeftAtDoor}})
			return err
		}, NoRoute("c1", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrNotFound) || err.Error() != tt.want.Error() {
				t.Errorf("= %v, want %v", err, tt.want)
			}
		})
	}
}

// captureRepo runs an update on a copy of route and keeps what it was asked and what came of it.
type captureRepo struct {
	Repository
	route   Route
	target  Target
	changes []Change
}

func (c *captureRepo) Update(_ context.Context, _ Key, t Target, fn func(*Route) ([]Change, error)) (Route, []Revision, error) {
	c.target = t
	r := c.route
	r.Stops = append([]Stop(nil), c.route.Stops...)
	for i := range r.Stops {
		r.Stops[i].Parcels = append([]Parcel(nil), c.route.Stops[i].Parcels...)
	}
	var err error
	c.changes, err = fn(&r)
	return r, nil, err
}

// Changes name the scope's actor, and the repository is told the scope's compound.
func TestChangesAreMadeByTheScopesActor(t *testing.T) {
	repo := &captureRepo{route: Route{ID: "route-1", CourierID: "c1", Compound: "haixin", Stops: []Stop{
		{Sequence: 1, HouseholdID: "h1", Parcels: []Parcel{{ID: "p1", Status: StatusPending}, {ID: "p2", Status: StatusPending}}}}}}
	at := time.Date(2026, 11, 28, 2, 30, 0, 0, time.UTC)
	svc := &Service{Repo: repo, Now: func() time.Time { return at }}
	ops := Scope{Actor: Actor{Role: RoleSystem, ID: "ops-console"}}
	if _, err := svc.PickUp(context.Background(), ops, "r1", "c1", "route-1"); err != nil {
		t.Fatal(err)
	}
	if len(repo.changes) != 2 || repo.changes[0].Actor != ops.Actor || repo.changes[1].Actor != ops.Actor {
		t.Errorf("pick-up changes = %+v, want both by %v", repo.changes, ops.Actor)
	}
	if repo.target != (Target{CourierID: "c1", RouteID: "route-1"}) {
		t.Errorf("target = %+v", repo.target)
	}

	repo.route.Stops[0].Parcels[0].Status = StatusOutForDelivery
	courier := Scope{Courier: "c1", Compound: "haixin", Actor: Actor{Role: RoleCourier, ID: "c1"}}
	if _, err := svc.Deliver(context.Background(), courier, "r2", "c1", "p1", HandedOver, ""); err != nil {
		t.Fatal(err)
	}
	if len(repo.changes) != 1 || repo.changes[0].Actor != courier.Actor {
		t.Errorf("delivery changes = %+v, want one by %v", repo.changes, courier.Actor)
	}
	if repo.target != (Target{CourierID: "c1", Compound: "haixin", ParcelID: "p1"}) {
		t.Errorf("target = %+v", repo.target)
	}
}
