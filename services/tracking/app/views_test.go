package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

const (
	am = "haixin-2022-04-10-am"
	pm = "haixin-2022-04-10-pm"
)

// placeOrder is an order.placed of one household with every parcel from one supplier.
func placeOrder(orderID, household, supplierID string, at time.Time, parcels ...string) *eventsv1.Event {
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: household}, orderID, at)
	p := &eventsv1.OrderPlaced{HouseholdId: household, TotalFen: 1000, Channel: "app"}
	for _, id := range parcels {
		p.Parcels = append(p.Parcels, &eventsv1.EventParcel{ParcelId: id, SupplierId: supplierID, TotalFen: 1000})
	}
	ev.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: p}
	return ev
}

// parcelState is a parcel.<state> event; round is empty for states outside a round.
func parcelState(orderID, parcelID string, state typesv1.ParcelState, round string, at time.Time) *eventsv1.Event {
	return parcelChanged(orderID, parcelID, at, courier, &eventsv1.ParcelStateChanged{State: state, RoundId: round})
}

type stop struct {
	building string
	parcels  []string
}

func routePlanned(routeID, roundID, courierID string, version int32, at time.Time, stops ...stop) *eventsv1.Event {
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_DISPATCHER, Id: "wang"}, "", at)
	r := &eventsv1.RoutePlanned{RouteId: routeID, RoundId: roundID, CourierId: courierID, Version: version}
	for i, s := range stops {
		rs := &eventsv1.RouteStop{Sequence: int32(i + 1), Address: &typesv1.Address{Compound: "haixin", Building: s.building}}
		for _, p := range s.parcels {
			rs.Parcels = append(rs.Parcels, &eventsv1.RouteParcel{ParcelId: p})
		}
		r.Stops = append(r.Stops, rs)
	}
	ev.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: r}
	return ev
}

func (e *env) publishAll(t *testing.T, evs ...*eventsv1.Event) {
	t.Helper()
	for _, ev := range evs {
		e.publish(t, ev, ev.GetEventId())
	}
}

// prog is a Progress: parcels, assigned, out for delivery, delivered, failed.
func prog(parcels, assigned, out, delivered, failed int32) *trackingv1.Progress {
	return &trackingv1.Progress{Parcels: parcels, Assigned: assigned, OutForDelivery: out, Delivered: delivered, Failed: failed}
}

func building(b string, p *trackingv1.Progress) *trackingv1.BuildingProgress {
	return &trackingv1.BuildingProgress{Building: b, Progress: p}
}

func courierShare(c string, p *trackingv1.Progress) *trackingv1.CourierProgress {
	return &trackingv1.CourierProgress{CourierId: c, Progress: p}
}

// waitProgress waits until the round's progress is want.
func (e *env) waitProgress(t *testing.T, want *trackingv1.RoundProgress) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := e.client.GetRoundProgress(e.worker, &trackingv1.GetRoundProgressRequest{RoundId: want.GetRoundId()})
		if err != nil {
			return err
		}
		if !proto.Equal(resp.GetProgress(), want) {
			return fmt.Errorf("progress =\n%v\nwant\n%v", prototext.Format(resp.GetProgress()), prototext.Format(want))
		}
		return nil
	})
}

// waitQueue waits until the supplier's queue is want (state -> parcels).
func (e *env) waitQueue(t *testing.T, supplierID string, want map[typesv1.ParcelState]int32) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := e.client.GetSupplierQueue(e.worker, &trackingv1.GetSupplierQueueRequest{SupplierId: supplierID})
		if err != nil {
			return err
		}
		got := map[typesv1.ParcelState]int32{}
		last := typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED
		for _, s := range resp.GetStates() {
			if s.GetState() <= last {
				return fmt.Errorf("states out of order: %v", resp.GetStates())
			}
			last = s.GetState()
			got[s.GetState()] = s.GetParcels()
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("queue of %s = %v, want %v", supplierID, got, want)
		}
		return nil
	})
}

func TestRoundProgressFollowsParcelsThroughTheirLives(t *testing.T) {
	e := start(t)
	o1, o2 := newID(), newID()
	p1, p2, p3 := newID(), newID(), newID()
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
	const (
		placed    = typesv1.ParcelState_PARCEL_STATE_PLACED
		confirmed = typesv1.ParcelState_PARCEL_STATE_CONFIRMED
		atGate    = typesv1.ParcelState_PARCEL_STATE_AT_GATE
		assigned  = typesv1.ParcelState_PARCEL_STATE_ASSIGNED
		out       = typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY
		delivered = typesv1.ParcelState_PARCEL_STATE_DELIVERED
		failed    = typesv1.ParcelState_PARCEL_STATE_FAILED
	)

	e.publishAll(t,
		placeOrder(o1, "haixin-3-2-302", "haixin-freshmart", at(0), p1, p2),
		placeOrder(o2, "haixin-12-1-101", "haixin-pharmacy", at(1), p3))
	e.waitQueue(t, "haixin-freshmart", map[typesv1.ParcelState]int32{placed: 2})
	e.waitQueue(t, "haixin-pharmacy", map[typesv1.ParcelState]int32{placed: 1})

	e.publishAll(t,
		parcelState(o1, p1, confirmed, "", at(10)), parcelState(o1, p2, confirmed, "", at(10)),
		parcelState(o2, p3, confirmed, "", at(11)),
		parcelState(o1, p1, atGate, am, at(60)), parcelState(o1, p2, atGate, am, at(60)), parcelState(o2, p3, atGate, am, at(61)))
	e.waitQueue(t, "haixin-freshmart", map[typesv1.ParcelState]int32{atGate: 2})
	// Nothing is planned yet: the round has no parcels (and is no error).
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(0, 0, 0, 0, 0)})

	e.publishAll(t,
		routePlanned("route-c1", am, "haixin-courier-01", 1, at(90), stop{"3", []string{p1, p2}}),
		routePlanned("route-c2", am, "haixin-courier-02", 1, at(90), stop{"12", []string{p3}}))
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(3, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("3", prog(2, 0, 0, 0, 0)), building("12", prog(1, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(2, 0, 0, 0, 0)), courierShare("haixin-courier-02", prog(1, 0, 0, 0, 0))}})

	e.publishAll(t,
		parcelState(o1, p1, assigned, am, at(90)), parcelState(o1, p2, assigned, am, at(90)), parcelState(o2, p3, assigned, am, at(90)))
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(3, 3, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("3", prog(2, 2, 0, 0, 0)), building("12", prog(1, 1, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(2, 2, 0, 0, 0)), courierShare("haixin-courier-02", prog(1, 1, 0, 0, 0))}})

	// p2's delivery arrives before its pick-up (different publishers, a retried delivery): the
	// older state must not undo the newer one. p3's failure, published last, shows the consumer
	// has gone past the stale event.
	e.publishAll(t,
		parcelState(o1, p1, out, am, at(100)), parcelState(o2, p3, out, am, at(100)),
		parcelState(o1, p2, delivered, am, at(130)),
		parcelState(o1, p2, out, am, at(100)),
		parcelState(o1, p1, delivered, am, at(120)),
		parcelState(o2, p3, failed, am, at(125)))
	amDone := &trackingv1.RoundProgress{RoundId: am, Total: prog(3, 0, 0, 2, 1),
		Buildings: []*trackingv1.BuildingProgress{building("3", prog(2, 0, 0, 2, 0)), building("12", prog(1, 0, 0, 0, 1))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(2, 0, 0, 2, 0)), courierShare("haixin-courier-02", prog(1, 0, 0, 0, 1))}}
	e.waitProgress(t, amDone)
	e.waitQueue(t, "haixin-freshmart", map[typesv1.ParcelState]int32{delivered: 2})
	e.waitQueue(t, "haixin-pharmacy", map[typesv1.ParcelState]int32{failed: 1})

	// The failed parcel goes out again in the afternoon: it counts there as assigned and stays
	// failed in the morning round.
	e.publishAll(t,
		routePlanned("route-pm-c1", pm, "haixin-courier-01", 1, at(400), stop{"12", []string{p3}}),
		parcelState(o2, p3, assigned, pm, at(400)))
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: pm, Total: prog(1, 1, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("12", prog(1, 1, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(1, 1, 0, 0, 0))}})
	e.waitProgress(t, amDone)
	e.waitQueue(t, "haixin-pharmacy", map[typesv1.ParcelState]int32{assigned: 1})
}

func TestANewerRouteVersionReplacesTheOlder(t *testing.T) {
	e := start(t)
	orderID := newID()
	p1, p2, p3, p4, p5 := newID(), newID(), newID(), newID(), newID()
	e.publishAll(t,
		placeOrder(orderID, "haixin-1-1-101", "haixin-freshmart", t0, p1, p2, p3, p4, p5),
		routePlanned("route-a", am, "courier-1", 1, t0.Add(time.Hour), stop{"1", []string{p1, p2}}, stop{"2", []string{p3}}),
		routePlanned("route-b", am, "courier-2", 1, t0.Add(time.Hour), stop{"5", []string{p4}}))
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(4, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("1", prog(2, 0, 0, 0, 0)), building("2", prog(1, 0, 0, 0, 0)), building("5", prog(1, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("courier-1", prog(3, 0, 0, 0, 0)), courierShare("courier-2", prog(1, 0, 0, 0, 0))}})

	// Courier 1 is ill: route a goes to courier 3 without p3, and p2 moves to route b. Route b's
	// new version arrives first, so for a moment p2 is on both routes' latest versions; the one
	// planned last (b) holds it.
	e.publishAll(t,
		routePlanned("route-b", am, "courier-2", 2, t0.Add(2*time.Hour), stop{"5", []string{p4}}, stop{"1", []string{p2}}),
		routePlanned("route-a", am, "courier-3", 2, t0.Add(2*time.Hour), stop{"1", []string{p1}}))
	reassigned := &trackingv1.RoundProgress{RoundId: am, Total: prog(3, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("1", prog(2, 0, 0, 0, 0)), building("5", prog(1, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("courier-2", prog(2, 0, 0, 0, 0)), courierShare("courier-3", prog(1, 0, 0, 0, 0))}}
	e.waitProgress(t, reassigned)

	// Version 1 of route a delivered again late (a replay) changes nothing, and brings back no
	// parcel version 2 withdrew; route c, published after it, shows the consumer went past it.
	e.publishAll(t,
		routePlanned("route-a", am, "courier-1", 1, t0.Add(time.Hour), stop{"1", []string{p1, p2}}, stop{"2", []string{p3}}),
		routePlanned("route-c", am, "courier-4", 1, t0.Add(3*time.Hour), stop{"2", []string{p5}}))
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(4, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("1", prog(2, 0, 0, 0, 0)), building("2", prog(1, 0, 0, 0, 0)), building("5", prog(1, 0, 0, 0, 0))},
		Couriers: []*trackingv1.CourierProgress{courierShare("courier-2", prog(2, 0, 0, 0, 0)), courierShare("courier-3", prog(1, 0, 0, 0, 0)),
			courierShare("courier-4", prog(1, 0, 0, 0, 0))}})

	// An empty version withdraws route b altogether.
	e.publishAll(t, routePlanned("route-b", am, "courier-2", 3, t0.Add(4*time.Hour)))
	e.waitProgress(t, &trackingv1.RoundProgress{RoundId: am, Total: prog(2, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("1", prog(1, 0, 0, 0, 0)), building("2", prog(1, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("courier-3", prog(1, 0, 0, 0, 0)), courierShare("courier-4", prog(1, 0, 0, 0, 0))}})
}

func TestRoundAndQueueErrors(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name  string
		call  func(ctx context.Context) error
		field string
	}{
		{"round missing", func(ctx context.Context) error {
			_, err := e.client.GetRoundProgress(ctx, &trackingv1.GetRoundProgressRequest{})
			return err
		}, "round_id"},
		{"round padded", func(ctx context.Context) error {
			_, err := e.client.GetRoundProgress(ctx, &trackingv1.GetRoundProgressRequest{RoundId: " " + am})
			return err
		}, "round_id"},
		{"watched round missing", func(ctx context.Context) error {
			s, err := e.client.WatchRound(ctx, &trackingv1.WatchRoundRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "round_id"},
		{"watched order not a uuid", func(ctx context.Context) error {
			s, err := e.client.WatchOrder(ctx, &trackingv1.WatchOrderRequest{OrderId: "order-1"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "order_id"},
		{"supplier missing", func(ctx context.Context) error {
			_, err := e.client.GetSupplierQueue(ctx, &trackingv1.GetSupplierQueueRequest{SupplierId: "  "})
			return err
		}, "supplier_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(e.worker)
			if _, ok := grpcx.FieldViolations(err)[tc.field]; status.Code(err) != codes.InvalidArgument || !ok {
				t.Errorf("err = %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
		})
	}
	t.Run("unknown supplier has an empty queue", func(t *testing.T) {
		resp, err := e.client.GetSupplierQueue(e.worker, &trackingv1.GetSupplierQueueRequest{SupplierId: "nobody"})
		if err != nil || len(resp.GetStates()) != 0 {
			t.Errorf("queue = %v, %v; want empty", resp, err)
		}
	})
}
