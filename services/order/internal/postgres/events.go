package postgres

import (
	"strings"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// placedEvents announce a new order: order.placed with every parcel, then parcel.placed per
// parcel so that parcel subscribers see each parcel's life from its start.
func placedEvents(o order.Order) []*eventsv1.Event {
	actor := pbconv.ActorProto(o.PlacedBy)
	var addr *typesv1.Address
	parcels := make([]*eventsv1.EventParcel, len(o.Parcels))
	var total int64
	for i, p := range o.Parcels {
		addr = pbconv.AddressProto(p.Address)
		parcels[i] = &eventsv1.EventParcel{ParcelId: p.ID, SupplierId: p.SupplierID, Lines: pbconv.EventLines(p.Lines), TotalFen: p.TotalFen}
		total += p.TotalFen
	}
	placed := events.New(o.Compound, actor, o.ID, o.PlacedAt)
	placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{
		HouseholdId: o.HouseholdID, Address: addr, Parcels: parcels, TotalFen: total,
		Channel: strings.ToLower(string(o.Channel)), CampaignId: o.CampaignID,
	}}
	out := []*eventsv1.Event{placed}
	for _, p := range o.Parcels {
		ev := events.New(o.Compound, actor, o.ID, o.PlacedAt)
		ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
			ParcelId: p.ID, State: typesv1.ParcelState_PARCEL_STATE_PLACED, HouseholdId: p.HouseholdID,
		}}
		out = append(out, ev)
	}
	return out
}

// transitionEvent announces a transition the order service made itself (a cancellation).
func transitionEvent(o order.Order, p order.Parcel, t order.Transition) *eventsv1.Event {
	ev := events.New(o.Compound, pbconv.ActorProto(t.Actor), o.ID, t.At)
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
		ParcelId: p.ID, State: pbconv.StateProto(t.To), Reason: t.Reason, HouseholdId: p.HouseholdID,
	}}
	return ev
}
