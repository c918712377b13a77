package ingest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/doorstep/doorstep/services/tracking/internal/views"
)

const (
	parcelA = "019a0000-0000-7000-8000-0000000000a1"
	parcelB = "019a0000-0000-7000-8000-0000000000b2"
)

func routeEvent(r *eventsv1.RoutePlanned) *eventsv1.Event {
	ev := events.New("haixin", nil, "", at)
	ev.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: r}
	return ev
}

func TestPlacement(t *testing.T) {
	ev := events.New("haixin", nil, orderID, at)
	ev.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{HouseholdId: "haixin-1-1-101",
		Parcels: []*eventsv1.EventParcel{{ParcelId: parcelA, SupplierId: "haixin-freshmart"}, {ParcelId: parcelB, SupplierId: "haixin-pharmacy"}}}}
	got, err := Placement(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := views.Placement{Compound: "haixin", OrderID: orderID, HouseholdID: "haixin-1-1-101", At: at, EventID: ev.GetEventId(),
		Parcels: []views.PlacedParcel{{ParcelID: parcelA, SupplierID: "haixin-freshmart"}, {ParcelID: parcelB, SupplierID: "haixin-pharmacy"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Placement =\n %+v\nwant\n %+v", got, want)
	}
}

func TestStateChange(t *testing.T) {
	ev := parcelEvent(typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, nil, func(p *eventsv1.ParcelStateChanged) {
		p.RoundId, p.CourierId = "haixin-2022-04-10-am", "haixin-courier-01"
	})
	got, err := StateChange(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := views.StateChange{Compound: "haixin", ParcelID: parcelA, OrderID: orderID, HouseholdID: "haixin-1-1-101",
		RoundID: "haixin-2022-04-10-am", State: "out_for_delivery", At: at, EventID: ev.GetEventId()}
	if got != want {
		t.Errorf("StateChange =\n %+v\nwant\n %+v", got, want)
	}
}

func TestRoute(t *testing.T) {
	ev := routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1", RoundId: "haixin-2022-04-10-am", CourierId: "c1", Version: 3,
		Stops: []*eventsv1.RouteStop{
			{Address: &typesv1.Address{Building: "3"}, Parcels: []*eventsv1.RouteParcel{{ParcelId: parcelA}}},
			{Parcels: []*eventsv1.RouteParcel{{ParcelId: parcelB}}}, // no address: building unknown
		}})
	got, err := Route(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := views.Route{Compound: "haixin", RouteID: "route-1", RoundID: "haixin-2022-04-10-am", CourierID: "c1", Version: 3,
		At: at, EventID: ev.GetEventId(), Parcels: []views.RouteParcel{{ParcelID: parcelA, Building: "3"}, {ParcelID: parcelB}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Route =\n %+v\nwant\n %+v", got, want)
	}
	// An empty route withdraws the route, and needs no round.
	if r, err := Route(routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1", Version: 4})); err != nil || len(r.Parcels) != 0 {
		t.Errorf("empty route: %+v, %v", r, err)
	}
}

func TestViewMappingsRefuseMalformedEventsPermanently(t *testing.T) {
	badOrder := events.New("haixin", nil, "order-1", at)
	badOrder.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{}}
	badPlacedParcel := events.New("haixin", nil, orderID, at)
	badPlacedParcel.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{Parcels: []*eventsv1.EventParcel{{ParcelId: "p-1"}}}}
	noParcel := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, func(p *eventsv1.ParcelStateChanged) { p.ParcelId = "" })
	badParcelOrder := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)
	badParcelOrder.OrderId = "order-1"
	noTime := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)
	noTime.OccurredAt = nil
	for name, tc := range map[string]struct {
		ev *eventsv1.Event
		fn func(*eventsv1.Event) error
	}{
		"placement order id":      {badOrder, func(ev *eventsv1.Event) error { _, err := Placement(ev); return err }},
		"placement parcel id":     {badPlacedParcel, func(ev *eventsv1.Event) error { _, err := Placement(ev); return err }},
		"state without parcel":    {noParcel, func(ev *eventsv1.Event) error { _, err := StateChange(ev); return err }},
		"state with bad order id": {badParcelOrder, func(ev *eventsv1.Event) error { _, err := StateChange(ev); return err }},
		"state without time":      {noTime, func(ev *eventsv1.Event) error { _, err := StateChange(ev); return err }},
		"route without id": {routeEvent(&eventsv1.RoutePlanned{RoundId: "r"}), func(ev *eventsv1.Event) error {
			_, err := Route(ev)
			return err
		}},
		"route parcels without round": {routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1",
			Stops: []*eventsv1.RouteStop{{Parcels: []*eventsv1.RouteParcel{{ParcelId: parcelA}}}}}), func(ev *eventsv1.Event) error {
			_, err := Route(ev)
			return err
		}},
		"route parcel id": {routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1", RoundId: "r",
			Stops: []*eventsv1.RouteStop{{Parcels: []*eventsv1.RouteParcel{{ParcelId: "p-1"}}}}}), func(ev *eventsv1.Event) error {
			_, err := Route(ev)
			return err
		}},
	} {
		if err := tc.fn(tc.ev); !errors.Is(err, inbox.ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}

// An order's or a parcel's event records its timeline entry, when it names an order, with what
// it says of the parcels; an event one half cannot use is refused whole, never half-applied.
func TestDelivery(t *testing.T) {
	placed := events.New("haixin", nil, orderID, at)
	placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{HouseholdId: "haixin-1-1-101",
		Parcels: []*eventsv1.EventParcel{{ParcelId: parcelA, SupplierId: "haixin-freshmart"}}}}
	d, err := Delivery(placed)
	if err != nil {
		t.Fatal(err)
	}
	if d.Entry == nil || d.Entry.Kind != "order.placed" || d.Order != (timeline.Order{ID: orderID, Compound: "haixin", HouseholdID: "haixin-1-1-101"}) {
		t.Errorf("order.placed: entry %+v of order %+v", d.Entry, d.Order)
	}
	if d.Placement == nil || len(d.Placement.Parcels) != 1 || d.Change != nil {
		t.Errorf("order.placed: placement %+v, change %+v", d.Placement, d.Change)
	}

	ready := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)
	if d, err := Delivery(ready); err != nil || d.Entry == nil || d.Order.HouseholdID != "haixin-1-1-101" || d.Change == nil || d.Change.State != "ready" {
		t.Errorf("parcel.ready: %+v, %v", d, err)
	}
	ready.OrderId = ""
	if d, err := Delivery(ready); err != nil || d.Entry != nil || d.Change == nil {
		t.Errorf("parcel.ready without an order: %+v, %v; want the state change alone", d, err)
	}

	badParcel := events.New("haixin", nil, orderID, at)
	badParcel.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{Parcels: []*eventsv1.EventParcel{{ParcelId: "p-1"}}}}
	route := routeEvent(&eventsv1.RoutePlanned{RouteId: "route-1"})
	for name, ev := range map[string]*eventsv1.Event{"placed parcel id": badParcel, "route": route, "no payload": events.New("haixin", nil, orderID, at)} {
		if _, err := Delivery(ev); !errors.Is(err, inbox.ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}
