package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/app"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type env struct {
	ctx    context.Context
	client trackingv1.TrackingServiceClient
	health healthpb.HealthClient
	js     jetstream.JetStream
	// worker calls as a community worker, who may read everything.
	worker context.Context
	// stop stops the service and waits for Run to return.
	stop func()
}

// stack is a database and a broker that service instances share.
type stack struct {
	ctx            context.Context
	dbURL, natsURL string
	js             jetstream.JetStream
	log            *slog.Logger
	cancelAll      context.CancelFunc
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st := &stack{ctx: ctx, dbURL: testkit.Postgres(t), natsURL: testkit.NATS(t),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), cancelAll: cancel}
	nc, js, err := natsx.Connect(st.natsURL, "tracking-test", st.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The service provisions the streams too; doing it here lets the test publish before it has.
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	st.js = js
	return st
}

// instance runs the real service on the stack and returns a client of its gRPC server.
func (st *stack) instance(t *testing.T, watchOnly bool) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(st.ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The periodic re-read is off (an hour), so what a watch sends was prompted by an announcement
	// made after the change committed.
	cfg := app.Config{DatabaseURL: st.dbURL, NATSURL: st.natsURL, Listener: lis, AuthKey: string(testkit.AuthKey),
		WatchOnly: watchOnly, WatchResync: time.Hour}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, st.log) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	conn, err := grpcx.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{ctx: st.ctx, client: trackingv1.NewTrackingServiceClient(conn), health: healthpb.NewHealthClient(conn),
		js: st.js, worker: testkit.As(t, st.ctx, typesv1.Role_ROLE_WORKER, "worker-li"), stop: stop}
}

// start runs one instance of the service against a fresh database and an in-process JetStream.
func start(t *testing.T) *env {
	t.Helper()
	return newStack(t).instance(t, false)
}

// publish sends ev as the outbox relay does, with msgID as Nats-Msg-Id (normally the event id).
func (e *env) publish(t *testing.T, ev *eventsv1.Event, msgID string) {
	t.Helper()
	testkit.Publish(t, e.ctx, e.js, ev, msgID)
}

// timelineLen waits until the order's timeline has want entries and returns them.
func (e *env) timeline(t *testing.T, orderID string, want int) []*trackingv1.TimelineEntry {
	t.Helper()
	var entries []*trackingv1.TimelineEntry
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := e.client.GetOrderTimeline(e.worker, &trackingv1.GetOrderTimelineRequest{OrderId: orderID})
		if err != nil {
			return err
		}
		entries = resp.GetEntries()
		if len(entries) != want {
			return fmt.Errorf("timeline has %d entries, want %d", len(entries), want)
		}
		return nil
	})
	return entries
}

var (
	t0       = time.Date(2022, 4, 10, 0, 30, 0, 0, time.UTC)
	resident = &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: "haixin-1-1-101"}
	supplier = &typesv1.Actor{Role: typesv1.Role_ROLE_SUPPLIER, Id: "haixin-freshmart"}
	courier  = &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: "haixin-courier-01"}
)

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func orderPlaced(orderID string, at time.Time, parcels ...string) *eventsv1.Event {
	ev := events.New("haixin", resident, orderID, at)
	p := &eventsv1.OrderPlaced{HouseholdId: "haixin-1-1-101", TotalFen: 4280, Channel: "app"}
	for _, id := range parcels {
		p.Parcels = append(p.Parcels, &eventsv1.EventParcel{ParcelId: id})
	}
	ev.Payload = &eventsv1.Event_OrderPlaced{OrderPlaced: p}
	return ev
}

func parcelChanged(orderID, parcelID string, at time.Time, actor *typesv1.Actor, p *eventsv1.ParcelStateChanged) *eventsv1.Event {
	ev := events.New("haixin", actor, orderID, at)
	p.ParcelId = parcelID
	p.HouseholdId = "haixin-1-1-101"
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: p}
	return ev
}

func TestTimelineFollowsAnOrderOldestFirst(t *testing.T) {
	e := start(t)
	orderID, other := newID(), newID()
	p1, p2 := newID(), newID()

	placed := orderPlaced(orderID, t0, p1, p2)
	// Two events of one instant: the time-ordered event id keeps them in the order they were made.
	placed1 := parcelChanged(orderID, p1, t0, resident, &eventsv1.ParcelStateChanged{State: typesv1.ParcelState_PARCEL_STATE_PLACED})
	placed2 := parcelChanged(orderID, p2, t0, resident, &eventsv1.ParcelStateChanged{State: typesv1.ParcelState_PARCEL_STATE_PLACED})
	rejected := parcelChanged(orderID, p2, t0.Add(5*time.Minute), supplier, &eventsv1.ParcelStateChanged{
		State: typesv1.ParcelState_PARCEL_STATE_REJECTED, Reason: "no masks left"})
	confirmed := parcelChanged(orderID, p1, t0.Add(10*time.Minute), supplier, &eventsv1.ParcelStateChanged{
		State: typesv1.ParcelState_PARCEL_STATE_CONFIRMED, ConfirmedTotalFen: 2150})
	delivered := parcelChanged(orderID, p1, t0.Add(3*time.Hour), courier, &eventsv1.ParcelStateChanged{
		State: typesv1.ParcelState_PARCEL_STATE_DELIVERED, DeliveryMethod: "handed_over", CourierId: "haixin-courier-01"})
	route := events.New("haixin", courier, "", t0.Add(2*time.Hour))
	route.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: &eventsv1.RoutePlanned{RouteId: "route-1",
		Stops: []*eventsv1.RouteStop{{Parcels: []*eventsv1.RouteParcel{{ParcelId: p1, OrderId: orderID}}}}}}
	otherPlaced := orderPlaced(other, t0.Add(time.Minute), newID())

	// Published out of order, as events of different publishers arrive.
	for _, ev := range []*eventsv1.Event{delivered, confirmed, placed, route, placed2, otherPlaced, rejected, placed1} {
		e.publish(t, ev, ev.GetEventId())
	}

	entries := e.timeline(t, orderID, 6)
	want := []struct {
		ev                 *eventsv1.Event
		kind, parcel, role string
		state              typesv1.ParcelState
		detail             string
	}{
		{placed, "order.placed", "", "ROLE_RESIDENT", 0, "2 parcels, total ¥42.80, via app"},
		{placed1, "parcel.placed", p1, "ROLE_RESIDENT", typesv1.ParcelState_PARCEL_STATE_PLACED, ""},
		{placed2, "parcel.placed", p2, "ROLE_RESIDENT", typesv1.ParcelState_PARCEL_STATE_PLACED, ""},
		{rejected, "parcel.rejected", p2, "ROLE_SUPPLIER", typesv1.ParcelState_PARCEL_STATE_REJECTED, "reason: no masks left"},
		{confirmed, "parcel.confirmed", p1, "ROLE_SUPPLIER", typesv1.ParcelState_PARCEL_STATE_CONFIRMED, "confirmed total ¥21.50"},
		{delivered, "parcel.delivered", p1, "ROLE_COURIER", typesv1.ParcelState_PARCEL_STATE_DELIVERED, "handed over, courier haixin-courier-01"},
	}
	for i, w := range want {
		got := entries[i]
		if got.GetEventId() != w.ev.GetEventId() || got.GetKind() != w.kind || got.GetParcelId() != w.parcel ||
			got.GetState() != w.state || got.GetActor().GetRole().String() != w.role ||
			got.GetActor().GetId() != w.ev.GetActor().GetId() || got.GetDetail() != w.detail ||
			!got.GetOccurredAt().AsTime().Equal(w.ev.GetOccurredAt().AsTime()) {
			t.Errorf("entry %d = %v\nwant event %s kind %s parcel %s state %s actor %s/%s detail %q",
				i, got, w.ev.GetEventId(), w.kind, w.parcel, w.state, w.role, w.ev.GetActor().GetId(), w.detail)
		}
	}
	if others := e.timeline(t, other, 1); others[0].GetEventId() != otherPlaced.GetEventId() {
		t.Errorf("other order's timeline = %v", others)
	}
}

func TestDuplicateAndRedeliveredEventsAppearOnce(t *testing.T) {
	e := start(t)
	orderID, parcelID := newID(), newID()
	placed := orderPlaced(orderID, t0, parcelID)
	e.publish(t, placed, placed.GetEventId())
	// The relay republishing after a crash: the broker's duplicate window drops it.
	e.publish(t, placed, placed.GetEventId())
	// The same event outside the duplicate window (a replay) reaches the consumer again, under
	// another message id; the inbox and the event_id key keep it once.
	e.publish(t, placed, "replay-"+placed.GetEventId())
	// A later event proves the consumer has gone past the duplicates before we count.
	marker := parcelChanged(orderID, parcelID, t0.Add(time.Minute), supplier, &eventsv1.ParcelStateChanged{
		State: typesv1.ParcelState_PARCEL_STATE_CONFIRMED, ConfirmedTotalFen: 4280})
	e.publish(t, marker, marker.GetEventId())

	entries := e.timeline(t, orderID, 2)
	if entries[0].GetEventId() != placed.GetEventId() || entries[1].GetEventId() != marker.GetEventId() {
		t.Fatalf("timeline = %v", entries)
	}
}

func TestMalformedEventIsDeadLetteredAndConsumingGoesOn(t *testing.T) {
	e := start(t)
	bad := orderPlaced("not-a-uuid", t0)
	e.publish(t, bad, bad.GetEventId())
	orderID := newID()
	good := orderPlaced(orderID, t0.Add(time.Second), newID())
	e.publish(t, good, good.GetEventId())

	e.timeline(t, orderID, 1)
	// The deliveries consumer gives up on the bad event once, and says so; the notices consumer
	// never sees it.
	testkit.Eventually(t, 10*time.Second, func() error {
		s, err := e.js.Stream(e.ctx, events.DeadLetterStream)
		if err != nil {
			return err
		}
		info, err := s.Info(e.ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 1 {
			return fmt.Errorf("dead-letter stream has %d messages, want 1", info.State.Msgs)
		}
		m, err := s.GetMsg(e.ctx, info.State.FirstSeq)
		if err != nil {
			return err
		}
		if got := m.Header.Get("Doorstep-Consumer"); got != "tracking-deliveries" {
			return fmt.Errorf("dead-lettered by %s, want tracking-deliveries", got)
		}
		return nil
	})
}

func TestGetOrderTimelineErrors(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name, orderID string
		code          codes.Code
		field         string
	}{
		{"missing", "", codes.InvalidArgument, "order_id"},
		{"blank", "   ", codes.InvalidArgument, "order_id"},
		{"not a uuid", "order-1", codes.InvalidArgument, "order_id"},
		{"unknown", newID(), codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.GetOrderTimeline(e.worker, &trackingv1.GetOrderTimelineRequest{OrderId: tc.orderID})
			if status.Code(err) != tc.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if tc.field != "" {
				if _, ok := grpcx.FieldViolations(err)[tc.field]; !ok {
					t.Errorf("violations %v do not name %s", grpcx.FieldViolations(err), tc.field)
				}
			}
		})
	}
}

func TestHealthServed(t *testing.T) {
	e := start(t)
	testkit.Eventually(t, 5*time.Second, func() error {
		resp, err := e.health.Check(e.ctx, &healthpb.HealthCheckRequest{Service: trackingv1.TrackingService_ServiceDesc.ServiceName})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %v", resp.GetStatus())
		}
		return nil
	})
}

func TestRunNeedsAnAuthKeyOfAtLeast32Bytes(t *testing.T) {
	for _, key := range []string{"", "only-31-bytes-long-0123456789ab"} {
		err := app.Run(context.Background(), app.Config{AuthKey: key, DatabaseURL: "postgres://unused", NATSURL: "nats://unused"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "DOORSTEP_AUTH_KEY") {
			t.Errorf("Run with a %d-byte key: %v, want an error naming DOORSTEP_AUTH_KEY", len(key), err)
		}
	}
	t.Setenv("DOORSTEP_AUTH_KEY", string(testkit.AuthKey))
	t.Setenv("TRACKING_WATCH_ONLY", "true")
	cfg, err := app.ConfigFromEnv()
	if err != nil || cfg.AuthKey != string(testkit.AuthKey) || !cfg.WatchOnly || cfg.WatchResync != 30*time.Second {
		t.Errorf("ConfigFromEnv = %+v, %v", cfg, err)
	}
}

// Upgraded from the release whose timeline and views had durables of their own, the service takes
// over where the slower of them stood: what both had applied is not read again, what one had not
// is, and the retired durables are deleted.
func TestUpgradeTakesOverFromTheRetiredDurables(t *testing.T) {
	st := newStack(t)
	before, behind := newID(), newID()
	publisher := &env{ctx: st.ctx, js: st.js}
	published := func(orderID string, at time.Time) {
		ev := orderPlaced(orderID, at, newID())
		publisher.publish(t, ev, ev.GetEventId())
	}
	published(before, t0)
	published(behind, t0.Add(time.Second))
	// The old timeline consumer acknowledged both events, the old views consumer only the first.
	testkit.DurableThatAcked(t, st.ctx, st.js, "tracking-timeline", 2)
	testkit.DurableThatAcked(t, st.ctx, st.js, "tracking-views", 1)

	e := st.instance(t, false)
	after := newID()
	published(after, t0.Add(2*time.Second))
	e.timeline(t, behind, 1)
	e.timeline(t, after, 1)
	// The first event was applied by both before the upgrade (here, only acknowledged): not again.
	if _, err := e.client.GetOrderTimeline(e.worker, &trackingv1.GetOrderTimelineRequest{OrderId: before}); status.Code(err) != codes.NotFound {
		t.Errorf("order placed before both retired durables' ack floor: err = %v, want NotFound (not replayed)", err)
	}
	for _, old := range []string{"tracking-timeline", "tracking-views"} {
		if _, err := st.js.Consumer(st.ctx, events.Stream, old); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("retired durable %s: err = %v, want it deleted", old, err)
		}
	}
}
