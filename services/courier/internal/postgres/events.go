package postgres

import (
	"fmt"

	"github.com/doorstep/doorstep/pkg/events"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/internal/route"
)

var parcelStates = map[route.Status]typesv1.ParcelState{
	route.StatusOutForDelivery: typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY,
	route.StatusDelivered:      typesv1.ParcelState_PARCEL_STATE_DELIVERED,
	route.StatusFailed:         typesv1.ParcelState_PARCEL_STATE_FAILED,
}

var actorRoles = map[route.Role]typesv1.Role{
	route.RoleCourier: typesv1.Role_ROLE_COURIER,
	route.RoleSystem:  typesv1.Role_ROLE_SYSTEM,
}

// parcelEvents turns transitions into parcel.<state> events. The actor is whoever the verified
// caller was: the courier at the door, or a service acting on its own.
func parcelEvents(changes []route.Change) ([]*eventsv1.Event, error) {
	out := make([]*eventsv1.Event, 0, len(changes))
	for _, c := range changes {
		state, ok := parcelStates[c.To]
		if !ok {
			return nil, fmt.Errorf("parcel %s: no event for status %s", c.ParcelID, c.To)
		}
		role, ok := actorRoles[c.Actor.Role]
		if !ok || c.Actor.ID == "" {
			// A change without a verified actor is a bug in the caller's wiring, not a request to record.
			return nil, fmt.Errorf("parcel %s: change without an actor", c.ParcelID)
		}
		ev := events.New(c.Compound, &typesv1.Actor{Role: role, Id: c.Actor.ID}, c.OrderID, c.At)
		ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
			ParcelId:       c.ParcelID,
			State:          state,
			Reason:         c.Reason,
			RoundId:        c.RoundID,
			RouteId:        c.RouteID,
			CourierId:      c.CourierID,
			DeliveryMethod: c.Method.String(),
			HouseholdId:    c.HouseholdID,
			PhotoRef:       c.PhotoRef,
		}}
		out = append(out, ev)
	}
	return out, nil
}
