// Package consumer applies the events the courier service listens to: dispatch's route.planned,
// which becomes the courier's route or, as a higher version, replaces or withdraws it. It is the
// inbound twin of grpcapi: event payloads are mapped to the domain here and nowhere else.
package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/doorstep/doorstep/services/courier/internal/postgres"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"github.com/jackc/pgx/v5"
)

// Purpose names the routes consumer; servicekit makes the durable "courier-routes" of it.
const Purpose = "routes"

// Subjects are the route.planned events of every compound.
var Subjects = []string{"doorstep.*.route.planned"}

// Routes stores each planned route, inside the inbox transaction that records the event, so a
// redelivered event changes nothing, and announces the change to the courier's watchers once
// that transaction has committed: a watcher re-reading on the announcement sees the new version.
// Nothing is announced for a stale version, a rolled-back transaction or a redelivery. now
// stamps a route whose event carries no time.
func Routes(store *postgres.Store, notifier route.Notifier, now func() time.Time) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		rp := ev.GetRoutePlanned()
		if rp == nil {
			return fmt.Errorf("%w: event %s is not a route.planned", inbox.ErrPermanent, ev.GetEventId())
		}
		if !events.ValidCompound(ev.GetCompound()) {
			return fmt.Errorf("%w: event %s: invalid compound %q", inbox.ErrPermanent, ev.GetEventId(), ev.GetCompound())
		}
		r := toRoute(ev, rp, now)
		if err := r.Validate(); err != nil {
			// A malformed plan will not heal on retry; park it for a human.
			return fmt.Errorf("%w: event %s: %w", inbox.ErrPermanent, ev.GetEventId(), err)
		}
		revs, err := store.SavePlanned(ctx, tx, r)
		if err != nil {
			return err
		}
		if notifier != nil && len(revs) > 0 {
			inbox.AfterCommit(ctx, func() { notifier.Announce(ctx, revs...) })
		}
		return nil
	}
}

func toRoute(ev *eventsv1.Event, rp *eventsv1.RoutePlanned, now func() time.Time) route.Route {
	r := route.Route{
		ID:        rp.GetRouteId(),
		RoundID:   rp.GetRoundId(),
		CourierID: rp.GetCourierId(),
		Compound:  ev.GetCompound(),
		Version:   int(rp.GetVersion()),
		PlannedAt: now().UTC(),
	}
	if ev.GetOccurredAt() != nil {
		r.PlannedAt = ev.GetOccurredAt().AsTime().UTC()
	}
	for _, s := range rp.GetStops() {
		a := s.GetAddress()
		stop := route.Stop{
			Sequence:    int(s.GetSequence()),
			Trip:        int(s.GetTrip()),
			HouseholdID: s.GetHouseholdId(),
			Address: route.Address{Compound: a.GetCompound(), Building: a.GetBuilding(), Unit: a.GetUnit(),
				Floor: int(a.GetFloor()), Room: a.GetRoom()},
			Priority:    s.GetPriority(),
			Contactless: s.GetContactless(),
		}
		if stop.Address.Compound == "" {
			stop.Address.Compound = r.Compound
		}
		for _, p := range s.GetParcels() {
			stop.Parcels = append(stop.Parcels, route.Parcel{ID: p.GetParcelId(), OrderID: p.GetOrderId(), Status: route.StatusPending})
		}
		r.Stops = append(r.Stops, stop)
	}
	return r
}
