package events

import (
	"testing"
	"time"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestSubject(t *testing.T) {
	for _, tc := range []struct {
		payload func(*eventsv1.Event)
		want    string
	}{
		{func(e *eventsv1.Event) { e.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: &eventsv1.OrderPlaced{}} }, "doorstep.haixin.order.placed"},
		{func(e *eventsv1.Event) {
			e.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
				State: typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY}}
		}, "doorstep.haixin.parcel.out_for_delivery"},
		{func(e *eventsv1.Event) {
			e.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: &eventsv1.RoutePlanned{}}
		}, "doorstep.haixin.route.planned"},
		{func(e *eventsv1.Event) {
			e.Payload = &eventsv1.Event_NoticePosted{NoticePosted: &eventsv1.NoticePosted{}}
		}, "doorstep.haixin.notice.posted"},
		{func(e *eventsv1.Event) {
			e.Payload = &eventsv1.Event_NoticeWithdrawn{NoticeWithdrawn: &eventsv1.NoticeWithdrawn{}}
		}, "doorstep.haixin.notice.withdrawn"},
	} {
		ev := New("haixin", nil, "", time.Now())
		tc.payload(ev)
		got, err := Subject(ev)
		if err != nil || got != tc.want {
			t.Errorf("Subject = %q, %v; want %q", got, err, tc.want)
		}
	}
	bad := []*eventsv1.Event{
		New("haixin", nil, "", time.Now()), // no payload
		{Compound: "Hai Xin", Payload: &eventsv1.Event_RoutePlanned{RoutePlanned: &eventsv1.RoutePlanned{}}},
		{Compound: "haixin", Payload: &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{}}},
	}
	for _, ev := range bad {
		if s, err := Subject(ev); err == nil {
			t.Errorf("Subject(%v) = %q, want an error", ev, s)
		}
	}
}
