package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// recvWithin is the next message of a stream, or the error that ended it, within a bounded wait.
func recvWithin[T any](t *testing.T, recv func() (*T, error)) (*T, error) {
	t.Helper()
	type result struct {
		msg *T
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := recv()
		got <- result{m, err}
	}()
	select {
	case r := <-got:
		return r.msg, r.err
	case <-time.After(15 * time.Second):
		t.Fatal("nothing received within 15s")
		return nil, nil
	}
}

func mustRecv[T any](t *testing.T, recv func() (*T, error)) *T {
	t.Helper()
	m, err := recvWithin(t, recv)
	if err != nil {
		t.Fatalf("watch ended: %v", err)
	}
	return m
}

func wantProgress(t *testing.T, got *trackingv1.WatchRoundResponse, want *trackingv1.RoundProgress) {
	t.Helper()
	if !proto.Equal(got.GetProgress(), want) {
		t.Fatalf("watched progress =\n%v\nwant\n%v", prototext.Format(got.GetProgress()), prototext.Format(want))
	}
}

func wantEntry(t *testing.T, got *trackingv1.WatchOrderResponse, ev *eventsv1.Event) {
	t.Helper()
	if got.GetEntry().GetEventId() != ev.GetEventId() {
		t.Fatalf("watched entry = %v, want event %s", got.GetEntry(), ev.GetEventId())
	}
}

// Watches run on instance A, which consumes nothing; every event is applied by instance B. A
// watch hears of B's commits only through the NATS announcements B makes after each commit (the
// periodic re-read is off), and each re-read they prompt already sees the change.
func TestWatchesHearChangesAppliedByAnotherInstance(t *testing.T) {
	st := newStack(t)
	b := st.instance(t, false)
	a := st.instance(t, true)
	const household = "haixin-3-2-302"
	orderID, p1, p2 := newID(), newID(), newID()

	placed := placeOrder(orderID, household, "haixin-freshmart", t0, p1, p2)
	b.publishAll(t, placed)
	a.timeline(t, orderID, 1)

	orderCtx, stopOrder := context.WithCancel(testkit.As(t, st.ctx, typesv1.Role_ROLE_RESIDENT, household))
	defer stopOrder()
	orders, err := a.client.WatchOrder(orderCtx, &trackingv1.WatchOrderRequest{OrderId: orderID})
	if err != nil {
		t.Fatal(err)
	}
	wantEntry(t, mustRecv(t, orders.Recv), placed)

	roundCtx, stopRound := context.WithCancel(testkit.As(t, st.ctx, typesv1.Role_ROLE_DISPATCHER, "wang", testkit.InCompound("haixin")))
	defer stopRound()
	rounds, err := a.client.WatchRound(roundCtx, &trackingv1.WatchRoundRequest{RoundId: am})
	if err != nil {
		t.Fatal(err)
	}
	wantProgress(t, mustRecv(t, rounds.Recv), &trackingv1.RoundProgress{RoundId: am, Total: prog(0, 0, 0, 0, 0)})

	// Each change is awaited before the next is made, so coalescing cannot merge two of them.
	confirmed := parcelState(orderID, p1, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, "", t0.Add(time.Minute))
	b.publishAll(t, confirmed)
	wantEntry(t, mustRecv(t, orders.Recv), confirmed)

	b.publishAll(t, routePlanned("route-1", am, "haixin-courier-01", 1, t0.Add(time.Hour), stop{"3", []string{p1, p2}}))
	wantProgress(t, mustRecv(t, rounds.Recv), &trackingv1.RoundProgress{RoundId: am, Total: prog(2, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("3", prog(2, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(2, 0, 0, 0, 0))}})

	assigned := parcelState(orderID, p1, typesv1.ParcelState_PARCEL_STATE_ASSIGNED, am, t0.Add(time.Hour))
	b.publishAll(t, assigned)
	wantEntry(t, mustRecv(t, orders.Recv), assigned)
	wantProgress(t, mustRecv(t, rounds.Recv), &trackingv1.RoundProgress{RoundId: am, Total: prog(2, 1, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("3", prog(2, 1, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(2, 1, 0, 0, 0))}})

	// A late event of the past is sent when it lands, after the ones already sent.
	late := parcelState(orderID, p2, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, "", t0.Add(30*time.Second))
	b.publishAll(t, late)
	wantEntry(t, mustRecv(t, orders.Recv), late)

	// The client leaving ends its watch; the service stopping ends the others, so that they
	// reconnect elsewhere instead of holding up the shutdown.
	stopOrder()
	if _, err := recvWithin(t, orders.Recv); status.Code(err) != codes.Canceled {
		t.Errorf("order watch after cancel: %v, want CANCELED", err)
	}
	a.stop()
	if _, err := recvWithin(t, rounds.Recv); status.Code(err) != codes.Unavailable {
		t.Errorf("round watch after the instance stopped: %v, want UNAVAILABLE", err)
	}
}

// A burst of changes reaches a watcher as a few re-reads (changes announced while it reads
// coalesce), each newer than the last, ending at the final state.
func TestWatchRoundFollowsABurstToItsEnd(t *testing.T) {
	e := start(t)
	orderID := newID()
	var parcels []string
	for range 40 {
		parcels = append(parcels, newID())
	}
	e.publishAll(t,
		placeOrder(orderID, "haixin-1-1-101", "haixin-freshmart", t0, parcels...),
		routePlanned("route-1", am, "haixin-courier-01", 1, t0.Add(time.Hour), stop{"1", parcels}))
	want := &trackingv1.RoundProgress{RoundId: am, Total: prog(40, 0, 0, 0, 0),
		Buildings: []*trackingv1.BuildingProgress{building("1", prog(40, 0, 0, 0, 0))},
		Couriers:  []*trackingv1.CourierProgress{courierShare("haixin-courier-01", prog(40, 0, 0, 0, 0))}}
	e.waitProgress(t, want)

	ctx, cancel := context.WithCancel(e.worker)
	defer cancel()
	rounds, err := e.client.WatchRound(ctx, &trackingv1.WatchRoundRequest{RoundId: am})
	if err != nil {
		t.Fatal(err)
	}
	wantProgress(t, mustRecv(t, rounds.Recv), want)
	var burst []*eventsv1.Event
	for _, p := range parcels {
		burst = append(burst, parcelState(orderID, p, typesv1.ParcelState_PARCEL_STATE_DELIVERED, am, t0.Add(2*time.Hour)))
	}
	e.publishAll(t, burst...)
	updates, delivered := 0, int32(0)
	for delivered < 40 {
		got := mustRecv(t, rounds.Recv).GetProgress().GetTotal()
		updates++
		if got.GetDelivered() <= delivered || got.GetParcels() != 40 {
			t.Fatalf("update %d = %v after %d delivered: not newer than the last", updates, got, delivered)
		}
		delivered = got.GetDelivered()
	}
	t.Logf("40 deliveries reached the watcher as %d updates", updates)
}
