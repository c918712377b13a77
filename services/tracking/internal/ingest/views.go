package ingest

import (
	"fmt"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/views"
	"github.com/google/uuid"
)

// Placement maps an order.placed event. Like every mapping here, it refuses an event that can
// never be applied (ids that are not UUIDs, no time) with inbox.ErrPermanent.
func Placement(ev *eventsv1.Event) (views.Placement, error) {
	if err := checkEnvelope(ev); err != nil {
		return views.Placement{}, err
	}
	if err := checkUUID(ev, "order_id", ev.GetOrderId()); err != nil {
		return views.Placement{}, err
	}
	op := ev.GetOrderPlaced()
	p := views.Placement{Compound: ev.GetCompound(), OrderID: ev.GetOrderId(), HouseholdID: op.GetHouseholdId(),
		At: ev.GetOccurredAt().AsTime().UTC(), EventID: ev.GetEventId()}
	for i, pp := range op.GetParcels() {
		if err := checkUUID(ev, fmt.Sprintf("parcels[%d].parcel_id", i), pp.GetParcelId()); err != nil {
			return views.Placement{}, err
		}
		p.Parcels = append(p.Parcels, views.PlacedParcel{ParcelID: pp.GetParcelId(), SupplierID: pp.GetSupplierId()})
	}
	return p, nil
}

// StateChange maps a parcel.<state> event.
func StateChange(ev *eventsv1.Event) (views.StateChange, error) {
	if err := checkEnvelope(ev); err != nil {
		return views.StateChange{}, err
	}
	pc := ev.GetParcelStateChanged()
	if err := checkUUID(ev, "parcel_id", pc.GetParcelId()); err != nil {
		return views.StateChange{}, err
	}
	if ev.GetOrderId() != "" {
		if err := checkUUID(ev, "order_id", ev.GetOrderId()); err != nil {
			return views.StateChange{}, err
		}
	}
	return views.StateChange{Compound: ev.GetCompound(), ParcelID: pc.GetParcelId(), OrderID: ev.GetOrderId(),
		HouseholdID: pc.GetHouseholdId(), RoundID: pc.GetRoundId(), State: events.StateName(pc.GetState()),
		At: ev.GetOccurredAt().AsTime().UTC(), EventID: ev.GetEventId()}, nil
}

// Route maps a route.planned event; a route without stops withdraws the route.
func Route(ev *eventsv1.Event) (views.Route, error) {
	if err := checkEnvelope(ev); err != nil {
		return views.Route{}, err
	}
	rp := ev.GetRoutePlanned()
	if rp.GetRouteId() == "" {
		return views.Route{}, fmt.Errorf("event %s: route_id missing: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	r := views.Route{Compound: ev.GetCompound(), RouteID: rp.GetRouteId(), RoundID: rp.GetRoundId(),
		CourierID: rp.GetCourierId(), Version: int(rp.GetVersion()), At: ev.GetOccurredAt().AsTime().UTC(), EventID: ev.GetEventId()}
	for i, s := range rp.GetStops() {
		for j, p := range s.GetParcels() {
			if err := checkUUID(ev, fmt.Sprintf("stops[%d].parcels[%d].parcel_id", i, j), p.GetParcelId()); err != nil {
				return views.Route{}, err
			}
			r.Parcels = append(r.Parcels, views.RouteParcel{ParcelID: p.GetParcelId(), Building: s.GetAddress().GetBuilding()})
		}
	}
	if len(r.Parcels) > 0 && r.RoundID == "" {
		return views.Route{}, fmt.Errorf("event %s: route %s has parcels but no round_id: %w", ev.GetEventId(), r.RouteID, inbox.ErrPermanent)
	}
	return r, nil
}

func checkEnvelope(ev *eventsv1.Event) error {
	if _, err := events.Name(ev); err != nil {
		return fmt.Errorf("%w: %w", err, inbox.ErrPermanent)
	}
	if !ev.GetOccurredAt().IsValid() {
		return fmt.Errorf("event %s: occurred_at missing or invalid: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	return nil
}

func checkUUID(ev *eventsv1.Event, field, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return fmt.Errorf("event %s: %s %q is not a UUID: %w", ev.GetEventId(), field, id, inbox.ErrPermanent)
	}
	return nil
}
