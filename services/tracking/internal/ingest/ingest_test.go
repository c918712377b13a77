package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
)

const (
	orderID = "019a0000-0000-7000-8000-000000000001"
)

var at = time.Date(2022, 4, 10, 1, 2, 3, 0, time.UTC)

func parcelEvent(state typesv1.ParcelState, actor *typesv1.Actor, fill func(*eventsv1.ParcelStateChanged)) *eventsv1.Event {
	ev := events.New("haixin", actor, orderID, at)
	p := &eventsv1.ParcelStateChanged{ParcelId: "019a0000-0000-7000-8000-0000000000a1", State: state, HouseholdId: "haixin-1-1-101"}
	if fill != nil {
		fill(p)
	}
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: p}
	return ev
}

func TestEntry(t *testing.T) {
	resident := &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: "haixin-1-1-101"}
	supplier := &typesv1.Actor{Role: typesv1.Role_ROLE_SUPPLIER, Id: "haixin-freshmart"}
	courier := &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: "haixin-courier-01"}
	dispatcher := &typesv1.Actor{Role: typesv1.Role_ROLE_DISPATCHER, Id: "wang"}

	placed := events.New("haixin", resident, orderID, at)
	placed.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{
		HouseholdId: "haixin-1-1-101", TotalFen: 3560, Channel: "app",
		Parcels: []*eventsv1.EventParcel{{ParcelId: "a"}, {ParcelId: "b"}}}}
	placedOne := events.New("haixin", resident, orderID, at)
	placedOne.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{
		TotalFen: 5, Parcels: []*eventsv1.EventParcel{{ParcelId: "a"}}}}

	for _, tc := range []struct {
		name                      string
		ev                        *eventsv1.Event
		kind, state, role, detail string
	}{
		{"order placed", placed, "order.placed", "", "resident", "2 parcels, total ¥35.60, via app"},
		{"order placed, one parcel", placedOne, "order.placed", "", "resident", "1 parcel, total ¥0.05"},
		{"parcel placed", parcelEvent(typesv1.ParcelState_PARCEL_STATE_PLACED, resident, nil), "parcel.placed", "placed", "resident", ""},
		{"confirmed", parcelEvent(typesv1.ParcelState_PARCEL_STATE_CONFIRMED, supplier, func(p *eventsv1.ParcelStateChanged) {
			p.ConfirmedTotalFen = 1234
		}), "parcel.confirmed", "confirmed", "supplier", "confirmed total ¥12.34"},
		{"rejected", parcelEvent(typesv1.ParcelState_PARCEL_STATE_REJECTED, supplier, func(p *eventsv1.ParcelStateChanged) {
			p.Reason = "out of eggs"
		}), "parcel.rejected", "rejected", "supplier", "reason: out of eggs"},
		{"cancelled", parcelEvent(typesv1.ParcelState_PARCEL_STATE_CANCELLED, resident, func(p *eventsv1.ParcelStateChanged) {
			p.Reason = "ordered twice"
		}), "parcel.cancelled", "cancelled", "resident", "reason: ordered twice"},
		{"cancelled after a failure", parcelEvent(typesv1.ParcelState_PARCEL_STATE_CANCELLED, resident, func(p *eventsv1.ParcelStateChanged) {
			p.Reason, p.RoundId = "bought it ourselves", "2022-04-10-pm"
		}), "parcel.cancelled", "cancelled", "resident", "reason: bought it ourselves"},
		{"at gate", parcelEvent(typesv1.ParcelState_PARCEL_STATE_AT_GATE, dispatcher, func(p *eventsv1.ParcelStateChanged) {
			p.RoundId = "2022-04-10-am"
		}), "parcel.at_gate", "at_gate", "dispatcher", "round 2022-04-10-am"},
		{"assigned", parcelEvent(typesv1.ParcelState_PARCEL_STATE_ASSIGNED, dispatcher, func(p *eventsv1.ParcelStateChanged) {
			p.RoundId, p.RouteId, p.CourierId = "2022-04-10-am", "route-1", "haixin-courier-01"
		}), "parcel.assigned", "assigned", "dispatcher", "round 2022-04-10-am, courier haixin-courier-01"},
		{"out for delivery", parcelEvent(typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY, courier, func(p *eventsv1.ParcelStateChanged) {
			p.CourierId = "haixin-courier-01"
		}), "parcel.out_for_delivery", "out_for_delivery", "courier", "courier haixin-courier-01"},
		{"delivered", parcelEvent(typesv1.ParcelState_PARCEL_STATE_DELIVERED, courier, func(p *eventsv1.ParcelStateChanged) {
			p.DeliveryMethod, p.CourierId = "left_at_door", "haixin-courier-01"
		}), "parcel.delivered", "delivered", "courier", "left at door, courier haixin-courier-01"},
		{"failed", parcelEvent(typesv1.ParcelState_PARCEL_STATE_FAILED, courier, func(p *eventsv1.ParcelStateChanged) {
			p.Reason, p.CourierId = "nobody home", "haixin-courier-01"
		}), "parcel.failed", "failed", "courier", "reason: nobody home, courier haixin-courier-01"},
		{"no actor", parcelEvent(typesv1.ParcelState_PARCEL_STATE_EXPIRED, nil, nil), "parcel.expired", "expired", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ok, err := Entry(tc.ev)
			if err != nil || !ok {
				t.Fatalf("Entry: ok=%v err=%v", ok, err)
			}
			want := timeline.Entry{
				EventID: tc.ev.GetEventId(), Compound: "haixin", OrderID: orderID, OccurredAt: at,
				Kind: tc.kind, State: tc.state, Detail: tc.detail,
				Actor: timeline.Actor{Role: tc.role, ID: tc.ev.GetActor().GetId()},
			}
			if pc := tc.ev.GetParcelStateChanged(); pc != nil {
				want.ParcelID = pc.GetParcelId()
			}
			if e != want {
				t.Errorf("Entry =\n %+v\nwant\n %+v", e, want)
			}
		})
	}
}

func TestEntrySkipsEventsWithoutOrder(t *testing.T) {
	route := events.New("haixin", nil, "", at)
	route.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: &eventsv1.RoutePlanned{RouteId: "r1"}}
	parcel := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)
	parcel.OrderId = ""
	for name, ev := range map[string]*eventsv1.Event{"route.planned": route, "parcel without order": parcel} {
		if _, ok, err := Entry(ev); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want skipped", name, ok, err)
		}
	}
}

func TestEntryRefusesMalformedEventsPermanently(t *testing.T) {
	badOrder := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)
	badOrder.OrderId = "order-1"
	badParcel := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, func(p *eventsv1.ParcelStateChanged) { p.ParcelId = "p-1" })
	noPayload := events.New("haixin", nil, orderID, at)
	noState := parcelEvent(typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED, nil, nil)
	noTime := parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)
	noTime.OccurredAt = nil
	for name, ev := range map[string]*eventsv1.Event{
		"order id": badOrder, "parcel id": badParcel, "no payload": noPayload, "no state": noState, "no time": noTime,
	} {
		if _, _, err := Entry(ev); !errors.Is(err, inbox.ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}
