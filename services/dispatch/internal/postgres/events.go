package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/outbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/dispatch/internal/dispatch"
)

// Publish writes the domain's events to the outbox as doorstep.events.v1 envelopes.
func (t txn) Publish(ctx context.Context, evs ...dispatch.Event) error {
	out := make([]*eventsv1.Event, 0, len(evs))
	for _, e := range evs {
		ev, err := envelope(e)
		if err != nil {
			return err
		}
		out = append(out, ev)
	}
	return outbox.Add(ctx, t.tx, out...)
}

func envelope(e dispatch.Event) (*eventsv1.Event, error) {
	switch e := e.(type) {
	case dispatch.ParcelAtGate:
		ev, err := parcelEvent(e.Parcel, typesv1.ParcelState_PARCEL_STATE_AT_GATE, e.Reason, e.By, e.At)
		if err != nil {
			return nil, err
		}
		psc := ev.GetParcelStateChanged()
		for _, s := range e.Shortages {
			psc.Shortages = append(psc.Shortages, &eventsv1.EventShortage{ItemId: s.ItemID, MissingQuantity: s.Missing,
				DamagedQuantity: s.Damaged, Note: s.Note})
		}
		return ev, nil
	case dispatch.ParcelAssigned:
		return parcelEvent(e.Parcel, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, e.Reason, e.By, e.At)
	case dispatch.ParcelCancelled:
		ev, err := parcelEvent(e.Parcel, typesv1.ParcelState_PARCEL_STATE_CANCELLED, e.Reason, e.By, e.At)
		if err != nil {
			return nil, err
		}
		ev.EventId = e.EventID
		return ev, nil
	case dispatch.RoutePlanned:
		// A route spans many orders, so the envelope names none; each parcel carries its own.
		by, err := actor(e.By)
		if err != nil {
			return nil, err
		}
		ev := events.New(e.Compound, by, "", e.At)
		ev.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: routePlanned(e.Route)}
		return ev, nil
	default:
		return nil, fmt.Errorf("no envelope for event %T", e)
	}
}

func parcelEvent(p dispatch.Parcel, state typesv1.ParcelState, reason string, by dispatch.Actor, at time.Time) (*eventsv1.Event, error) {
	who, err := actor(by)
	if err != nil {
		return nil, err
	}
	ev := events.New(p.Address.Compound, who, p.OrderID, at)
	psc := &eventsv1.ParcelStateChanged{ParcelId: p.ID, State: state, Reason: reason, RoundId: p.RoundID,
		HouseholdId: p.HouseholdID}
	if state == typesv1.ParcelState_PARCEL_STATE_ASSIGNED {
		psc.RouteId, psc.CourierId = p.RouteID, p.CourierID
	}
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: psc}
	return ev, nil
}

func routePlanned(r dispatch.Route) *eventsv1.RoutePlanned {
	out := &eventsv1.RoutePlanned{RouteId: r.ID, RoundId: r.RoundID, CourierId: r.CourierID, Version: int32(r.Version)}
	for _, s := range r.Stops {
		rs := &eventsv1.RouteStop{Sequence: int32(s.Sequence), Trip: int32(s.Trip), HouseholdId: s.HouseholdID,
			Address: address(s.Address), Priority: s.Priority, Contactless: s.Contactless}
		for _, p := range s.Parcels {
			rs.Parcels = append(rs.Parcels, &eventsv1.RouteParcel{ParcelId: p.ParcelID, OrderId: p.OrderID})
		}
		out.Stops = append(out.Stops, rs)
	}
	return out
}

func address(a dispatch.Address) *typesv1.Address {
	return &typesv1.Address{Compound: a.Compound, Building: a.Building, Unit: a.Unit, Floor: int32(a.Floor), Room: a.Room}
}

var roles = map[dispatch.Role]typesv1.Role{
	dispatch.RoleResident:   typesv1.Role_ROLE_RESIDENT,
	dispatch.RoleWorker:     typesv1.Role_ROLE_WORKER,
	dispatch.RoleSupplier:   typesv1.Role_ROLE_SUPPLIER,
	dispatch.RoleDispatcher: typesv1.Role_ROLE_DISPATCHER,
	dispatch.RoleCourier:    typesv1.Role_ROLE_COURIER,
	dispatch.RoleSystem:     typesv1.Role_ROLE_SYSTEM,
}

// actor is who made a change as events record it. An event without a verified actor is a bug in
// the caller's wiring, not something to publish.
func actor(a dispatch.Actor) (*typesv1.Actor, error) {
	role, ok := roles[a.Role]
	if !ok || a.ID == "" {
		return nil, fmt.Errorf("event without an actor (%q, %q)", a.Role, a.ID)
	}
	return &typesv1.Actor{Role: role, Id: a.ID}, nil
}
