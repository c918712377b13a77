package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/app"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// clock is the service's injected time; events must carry it.
var clock = time.Date(2026, 11, 28, 2, 30, 0, 0, time.UTC)

const (
	courierA = "haixin-courier-01"
	courierB = "haixin-courier-02"
	wait     = 10 * time.Second
)

// harness is a courier service on a fresh database and broker, driven through real gRPC. More
// instances (replicas) can join it on the same database and broker.
type harness struct {
	t   *testing.T
	ctx context.Context
	// client talks to the first instance.
	client courierv1.CourierServiceClient
	js     jetstream.JetStream
	// db looks at the courier schema directly, to count what was stored and what is unpublished.
	db *pgxpool.Pool

	dbURL, natsURL string
	opts           []func(*app.Config)
	mu             sync.Mutex
	now            time.Time // the services' clock; starts at clock
}

// instance is one running courier service.
type instance struct {
	client courierv1.CourierServiceClient
	// stop shuts the instance down and returns Run's error; it is safe to call twice.
	stop func() error
}

func start(t *testing.T, opts ...func(*app.Config)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, dbURL: testkit.Postgres(t), natsURL: testkit.NATS(t), opts: opts, now: clock}
	h.client = h.instance().client

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, js, err := natsx.Connect(h.natsURL, "courier-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	h.js = js
	h.db, err = pgkit.Open(ctx, h.dbURL, "courier")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.db.Close)
	return h
}

// instance starts one more courier service on the harness's database and broker.
func (h *harness) instance() *instance {
	t := h.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Config{DatabaseURL: h.dbURL, NATSURL: h.natsURL, Listener: lis, MetricsPort: 0, Now: h.clock,
		AuthKey: string(testkit.AuthKey)}
	for _, o := range h.opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, log) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})

	conn, err := grpcx.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := courierv1.NewCourierServiceClient(conn)
	// The service is up (migrations applied) once it answers.
	testkit.Eventually(t, wait, func() error {
		_, err := client.GetRoute(h.as(typesv1.Role_ROLE_SYSTEM, "courier-test"), &courierv1.GetRouteRequest{CourierId: "nobody"})
		if status.Code(err) != codes.NotFound {
			return fmt.Errorf("GetRoute: %v", err)
		}
		return nil
	})
	return &instance{client: client, stop: stop}
}

// clock is the services' injected clock.
func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

// setClock moves the services' clock.
func (h *harness) setClock(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = t
}

// as returns the harness's context carrying a signed identity, as testkit.As does, but minted by
// the services' clock: the services verify identities by the clock they are given, which the
// tests set far from the wall clock (and move by days).
func (h *harness) as(role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
	h.t.Helper()
	keys, err := auth.NewKeys(testkit.AuthKey, h.clock)
	if err != nil {
		h.t.Fatal(err)
	}
	id := auth.Identity{Role: role, Subject: subject}
	for _, o := range opts {
		o(&id)
	}
	ctx, err := keys.Outgoing(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return ctx
}

// by is a call made by a courier of haixin, as the gateway passes a signed-in courier's calls on.
func (h *harness) by(courierID string) context.Context {
	return h.as(typesv1.Role_ROLE_COURIER, courierID, testkit.InCompound("haixin"))
}

// stop is a stop of a planned route: household and its parcel ids (order id = "order-" + parcel id).
type stop struct {
	household string
	parcels   []string
}

// planned builds a route.planned event as dispatch publishes it.
func planned(routeID, roundID, courierID string, at time.Time, stops ...stop) *eventsv1.Event {
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_DISPATCHER, Id: "dispatcher-1"}, "", at)
	rp := &eventsv1.RoutePlanned{RouteId: routeID, RoundId: roundID, CourierId: courierID}
	for i, s := range stops {
		rs := &eventsv1.RouteStop{
			Sequence: int32(i + 1), Trip: int32(i/2 + 1), HouseholdId: s.household,
			Address:  &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: int32(6 - i), Room: fmt.Sprintf("%d02", 6-i)},
			Priority: i == 0, Contactless: i == 1,
		}
		for _, p := range s.parcels {
			rs.Parcels = append(rs.Parcels, &eventsv1.RouteParcel{ParcelId: p, OrderId: "order-" + p})
		}
		rp.Stops = append(rp.Stops, rs)
	}
	ev.Payload = &eventsv1.Event_RoutePlanned{RoutePlanned: rp}
	return ev
}

// publish puts ev on the stream as the outbox relay would, with msgID as Nats-Msg-Id.
func (h *harness) publish(ev *eventsv1.Event, msgID string) {
	h.t.Helper()
	testkit.Publish(h.t, h.ctx, h.js, ev, msgID)
}

// plan publishes ev and waits until its courier sees the route in ev's version.
func (h *harness) plan(ev *eventsv1.Event) *courierv1.CourierRoute {
	h.t.Helper()
	h.publish(ev, ev.GetEventId())
	rp := ev.GetRoutePlanned()
	var got *courierv1.CourierRoute
	testkit.Eventually(h.t, wait, func() error {
		resp, err := h.client.GetRoute(h.by(rp.GetCourierId()), &courierv1.GetRouteRequest{CourierId: rp.GetCourierId(), RoundId: rp.GetRoundId()})
		if err != nil {
			return err
		}
		if resp.GetRoute().GetRouteId() != rp.GetRouteId() || resp.GetRoute().GetVersion() != rp.GetVersion() {
			return fmt.Errorf("route %s version %d, want %s version %d", resp.GetRoute().GetRouteId(),
				resp.GetRoute().GetVersion(), rp.GetRouteId(), rp.GetVersion())
		}
		got = resp.GetRoute()
		return nil
	})
	return got
}

type streamed struct {
	subject string
	msgID   string
	ev      *eventsv1.Event
}

// published waits until the outbox is drained and returns the parcel events in the stream.
func (h *harness) published() map[string][]streamed {
	h.t.Helper()
	testkit.Eventually(h.t, wait, func() error {
		var n int
		if err := h.db.QueryRow(h.ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d events unpublished", n)
		}
		return nil
	})
	stream, err := h.js.Stream(h.ctx, events.Stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := stream.Info(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]streamed{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(h.ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			h.t.Fatalf("message %d on %s: %v", seq, m.Subject, err)
		}
		out[m.Subject] = append(out[m.Subject], streamed{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), ev: ev})
	}
	return out
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.db.QueryRow(h.ctx, sql, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func statuses(r *courierv1.CourierRoute) map[string]courierv1.StopStatus {
	out := map[string]courierv1.StopStatus{}
	for _, s := range r.GetStops() {
		for _, p := range s.GetParcels() {
			out[p.GetParcelId()] = p.GetStatus()
		}
	}
	return out
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error = %v, want %s", err, code)
	}
}

const (
	pending   = courierv1.StopStatus_STOP_STATUS_PENDING
	out       = courierv1.StopStatus_STOP_STATUS_OUT_FOR_DELIVERY
	delivered = courierv1.StopStatus_STOP_STATUS_DELIVERED
	failed    = courierv1.StopStatus_STOP_STATUS_FAILED
)

func TestPlannedRouteIsShownStopByStop(t *testing.T) {
	h := start(t)
	ev := planned("route-am-1", "round-am", courierA, clock.Add(-time.Hour),
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}, stop{"haixin-3-2-402", nil})
	h.plan(ev)

	// Without round_id: the courier's newest route.
	resp, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetRoute()
	if r.GetRouteId() != "route-am-1" || r.GetRoundId() != "round-am" || r.GetCourierId() != courierA {
		t.Fatalf("route = %v", r)
	}
	if len(r.GetStops()) != 3 {
		t.Fatalf("%d stops, want 3", len(r.GetStops()))
	}
	first := r.GetStops()[0]
	if first.GetSequence() != 1 || first.GetTrip() != 1 || first.GetHouseholdId() != "haixin-3-2-602" ||
		!first.GetPriority() || first.GetContactless() || first.GetAddress().GetFloor() != 6 || first.GetAddress().GetRoom() != "602" ||
		first.GetAddress().GetCompound() != "haixin" || first.GetAddress().GetBuilding() != "3" || first.GetAddress().GetUnit() != "2" {
		t.Errorf("first stop = %v", first)
	}
	if got := first.GetParcels(); len(got) != 2 || got[0].GetParcelId() != "p1" || got[0].GetOrderId() != "order-p1" ||
		got[0].GetStatus() != pending || got[1].GetParcelId() != "p2" {
		t.Errorf("first stop parcels = %v", got)
	}
	if s := r.GetStops()[1]; s.GetSequence() != 2 || !s.GetContactless() || s.GetPriority() {
		t.Errorf("second stop = %v", s)
	}
	if s := r.GetStops()[2]; s.GetSequence() != 3 || s.GetTrip() != 2 || len(s.GetParcels()) != 0 {
		t.Errorf("third stop = %v", s)
	}

	// A later round's route becomes the newest; the earlier one stays reachable by round.
	h.plan(planned("route-pm-1", "round-pm", courierA, clock, stop{"haixin-3-2-602", []string{"p9"}}))
	resp, err = h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA})
	if err != nil || resp.GetRoute().GetRouteId() != "route-pm-1" {
		t.Fatalf("newest route = %v, %v; want route-pm-1", resp.GetRoute().GetRouteId(), err)
	}
	resp, err = h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA, RoundId: "round-am"})
	if err != nil || resp.GetRoute().GetRouteId() != "route-am-1" {
		t.Fatalf("round-am route = %v, %v; want route-am-1", resp.GetRoute().GetRouteId(), err)
	}

	_, err = h.client.GetRoute(h.by(courierB), &courierv1.GetRouteRequest{CourierId: courierB})
	wantCode(t, err, codes.NotFound)
	if msg := status.Convert(err).Message(); msg != "not found: courier "+courierB+" has no route yet" {
		t.Errorf("message = %q", msg)
	}
	_, err = h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA, RoundId: "round-next-week"})
	wantCode(t, err, codes.NotFound)
}

func TestDuplicateRouteEventIsAppliedOnce(t *testing.T) {
	h := start(t)
	ev := planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}})
	h.plan(ev)
	h.publish(ev, ev.GetEventId())    // the broker drops this one (same Nats-Msg-Id)
	h.publish(ev, "republished-late") // past the duplicate window: only the inbox can tell
	// The consumer takes events in order, so once a later route shows, the duplicates were handled.
	h.plan(planned("route-2", "round-am", courierB, clock, stop{"haixin-3-1-101", []string{"p7"}}))

	if n := h.count(`SELECT count(*) FROM routes`); n != 2 {
		t.Errorf("%d routes, want 2", n)
	}
	if n := h.count(`SELECT count(*) FROM stops WHERE route_id = 'route-1'`); n != 2 {
		t.Errorf("%d stops, want 2", n)
	}
	if n := h.count(`SELECT count(*) FROM stop_parcels WHERE route_id = 'route-1'`); n != 3 {
		t.Errorf("%d stop parcels, want 3", n)
	}
	if n := h.count(`SELECT count(*) FROM inbox WHERE consumer = 'courier-routes' AND event_id = $1`, ev.GetEventId()); n != 1 {
		t.Errorf("%d inbox rows for the event, want 1", n)
	}
	// Prove the inbox, not only the broker, was exercised: the stream holds the event twice.
	stream, err := h.js.Stream(h.ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(h.ctx, jetstream.WithSubjectFilter("doorstep.haixin.route.planned"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects["doorstep.haixin.route.planned"]; got != 3 {
		t.Errorf("stream holds %d route.planned messages, want 3", got)
	}
}

func TestPickUpDeliverAndFailPublishOneEventEach(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock.Add(-time.Hour),
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}))

	_, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "d0", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR})
	wantCode(t, err, codes.FailedPrecondition) // not picked up yet

	pick := &courierv1.PickUpRequest{RequestId: "pick-1", CourierId: courierA, RouteId: "route-1"}
	resp, err := h.client.PickUp(h.by(courierA), pick)
	if err != nil {
		t.Fatal(err)
	}
	for id, st := range statuses(resp.GetRoute()) {
		if st != out {
			t.Errorf("after pick-up %s is %s", id, st)
		}
	}
	// A retry, and a second pick-up under a new id, change nothing.
	for _, req := range []*courierv1.PickUpRequest{pick, {RequestId: "pick-2", CourierId: courierA, RouteId: "route-1"}} {
		again, err := h.client.PickUp(h.by(courierA), req)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(again.GetRoute(), resp.GetRoute()) {
			t.Errorf("pick-up %s returned %v, want %v", req.GetRequestId(), again.GetRoute(), resp.GetRoute())
		}
	}
	_, err = h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick-1", CourierId: courierA, RouteId: "route-2"})
	wantCode(t, err, codes.AlreadyExists)

	deliver := &courierv1.MarkDeliveredRequest{RequestId: "d1", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, PhotoRef: "photos/p1.jpg"}
	d, err := h.client.MarkDelivered(h.by(courierA), deliver)
	if err != nil {
		t.Fatal(err)
	}
	if p := d.GetParcel(); p.GetParcelId() != "p1" || p.GetOrderId() != "order-p1" || p.GetStatus() != delivered {
		t.Fatalf("delivered parcel = %v", p)
	}
	again, err := h.client.MarkDelivered(h.by(courierA), deliver)
	if err != nil || !proto.Equal(again.GetParcel(), d.GetParcel()) {
		t.Fatalf("retry = %v, %v; want %v", again.GetParcel(), err, d.GetParcel())
	}
	changed := proto.Clone(deliver).(*courierv1.MarkDeliveredRequest)
	changed.Method = courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER
	_, err = h.client.MarkDelivered(h.by(courierA), changed)
	wantCode(t, err, codes.AlreadyExists)
	_, err = h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "d2", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	wantCode(t, err, codes.FailedPrecondition) // already delivered
	_, err = h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "f0", CourierId: courierA, ParcelId: "p1",
		Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME})
	wantCode(t, err, codes.FailedPrecondition)

	fail := &courierv1.MarkFailedRequest{RequestId: "f1", CourierId: courierA, ParcelId: "p2", Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME}
	f, err := h.client.MarkFailed(h.by(courierA), fail)
	if err != nil || f.GetParcel().GetStatus() != failed {
		t.Fatalf("MarkFailed = %v, %v", f.GetParcel(), err)
	}
	if again, err := h.client.MarkFailed(h.by(courierA), fail); err != nil || !proto.Equal(again.GetParcel(), f.GetParcel()) {
		t.Fatalf("retry = %v, %v", again.GetParcel(), err)
	}
	if _, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "f2", CourierId: courierA, ParcelId: "p3",
		Reason: courierv1.FailureReason_FAILURE_REASON_OTHER, Note: "gate of unit 2 locked"}); err != nil {
		t.Fatal(err)
	}
	// A request id already used by another operation is refused too.
	_, err = h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "d1", CourierId: courierA, ParcelId: "p1",
		Reason: courierv1.FailureReason_FAILURE_REASON_REFUSED})
	wantCode(t, err, codes.AlreadyExists)

	got, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA})
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(got.GetRoute()); st["p1"] != delivered || st["p2"] != failed || st["p3"] != failed {
		t.Errorf("statuses = %v", st)
	}

	pub := h.published()
	ofd := pub["doorstep.haixin.parcel.out_for_delivery"]
	if len(ofd) != 3 {
		t.Fatalf("%d out_for_delivery events, want 3", len(ofd))
	}
	sort.Slice(ofd, func(i, j int) bool {
		return ofd[i].ev.GetParcelStateChanged().GetParcelId() < ofd[j].ev.GetParcelStateChanged().GetParcelId()
	})
	households := map[string]string{"p1": "haixin-3-2-602", "p2": "haixin-3-2-602", "p3": "haixin-3-2-502"}
	for i, s := range ofd {
		checkParcelEvent(t, s, fmt.Sprintf("p%d", i+1), households[fmt.Sprintf("p%d", i+1)], typesv1.ParcelState_PARCEL_STATE_OUT_FOR_DELIVERY)
	}
	dl := pub["doorstep.haixin.parcel.delivered"]
	if len(dl) != 1 {
		t.Fatalf("%d delivered events, want 1", len(dl))
	}
	checkParcelEvent(t, dl[0], "p1", "haixin-3-2-602", typesv1.ParcelState_PARCEL_STATE_DELIVERED)
	if m := dl[0].ev.GetParcelStateChanged().GetDeliveryMethod(); m != "left_at_door" {
		t.Errorf("delivery_method = %q", m)
	}
	if ref := dl[0].ev.GetParcelStateChanged().GetPhotoRef(); ref != "photos/p1.jpg" {
		t.Errorf("photo_ref = %q, want photos/p1.jpg", ref)
	}
	fl := pub["doorstep.haixin.parcel.failed"]
	if len(fl) != 2 {
		t.Fatalf("%d failed events, want 2", len(fl))
	}
	reasons := map[string]string{}
	for _, s := range fl {
		p := s.ev.GetParcelStateChanged()
		checkParcelEvent(t, s, p.GetParcelId(), households[p.GetParcelId()], typesv1.ParcelState_PARCEL_STATE_FAILED)
		reasons[p.GetParcelId()] = p.GetReason()
	}
	if reasons["p2"] != "not_home" || reasons["p3"] != "other: gate of unit 2 locked" {
		t.Errorf("failure reasons = %v", reasons)
	}
}

func checkParcelEvent(t *testing.T, s streamed, parcelID, household string, state typesv1.ParcelState) {
	t.Helper()
	ev, p := s.ev, s.ev.GetParcelStateChanged()
	if s.msgID != ev.GetEventId() || ev.GetEventId() == "" {
		t.Errorf("%s: Nats-Msg-Id %q, event id %q", s.subject, s.msgID, ev.GetEventId())
	}
	if p.GetParcelId() != parcelID || p.GetState() != state || p.GetRouteId() != "route-1" || p.GetRoundId() != "round-am" ||
		p.GetCourierId() != courierA || p.GetHouseholdId() != household {
		t.Errorf("%s: payload = %v", s.subject, p)
	}
	if ev.GetOrderId() != "order-"+parcelID || ev.GetCompound() != "haixin" || !ev.GetOccurredAt().AsTime().Equal(clock) {
		t.Errorf("%s: envelope order=%q compound=%q at=%v", s.subject, ev.GetOrderId(), ev.GetCompound(), ev.GetOccurredAt().AsTime())
	}
	if a := ev.GetActor(); a.GetRole() != typesv1.Role_ROLE_COURIER || a.GetId() != courierA {
		t.Errorf("%s: actor = %v", s.subject, a)
	}
}

func TestFailedParcelReplannedIntoNextRoundIsDeliveredThere(t *testing.T) {
	for _, tc := range []struct {
		name  string
		later string // courier of the next round's route
	}{{"same courier", courierA}, {"another courier", courierB}} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.plan(planned("route-am", "round-am", courierA, clock.Add(-4*time.Hour), stop{"haixin-3-2-602", []string{"p1", "p2"}}))
			if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick-am", CourierId: courierA, RouteId: "route-am"}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "fail-am", CourierId: courierA, ParcelId: "p1",
				Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME}); err != nil {
				t.Fatal(err)
			}
			h.plan(planned("route-pm", "round-pm", tc.later, clock, stop{"haixin-3-2-602", []string{"p1"}}))

			deliver := func(courier, req string) (*courierv1.MarkDeliveredResponse, error) {
				return h.client.MarkDelivered(h.by(courier), &courierv1.MarkDeliveredRequest{RequestId: req, CourierId: courier, ParcelId: "p1",
					Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
			}
			_, err := deliver(tc.later, "d-early")
			wantCode(t, err, codes.FailedPrecondition) // the pm route is not picked up yet

			// The pm pick-up takes p1 out again; the am route's pick-up must not touch it.
			if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick-am-2", CourierId: courierA, RouteId: "route-am"}); err != nil {
				t.Fatal(err)
			}
			pm, err := h.client.PickUp(h.by(tc.later), &courierv1.PickUpRequest{RequestId: "pick-pm", CourierId: tc.later, RouteId: "route-pm"})
			if err != nil || statuses(pm.GetRoute())["p1"] != out {
				t.Fatalf("pm pick-up = %v, %v", pm.GetRoute(), err)
			}
			d, err := deliver(tc.later, "d-pm")
			if err != nil || d.GetParcel().GetStatus() != delivered {
				t.Fatalf("deliver in pm route = %v, %v", d.GetParcel(), err)
			}

			am, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA, RoundId: "round-am"})
			if err != nil {
				t.Fatal(err)
			}
			if st := statuses(am.GetRoute()); st["p1"] != failed || st["p2"] != out {
				t.Errorf("am route statuses = %v, want p1 FAILED (its own history), p2 OUT_FOR_DELIVERY", st)
			}
			pub := h.published()
			dl := pub["doorstep.haixin.parcel.delivered"]
			if len(dl) != 1 || dl[0].ev.GetParcelStateChanged().GetRouteId() != "route-pm" ||
				dl[0].ev.GetParcelStateChanged().GetRoundId() != "round-pm" || dl[0].ev.GetActor().GetId() != tc.later {
				t.Errorf("delivered events = %v", dl)
			}
			if n := len(pub["doorstep.haixin.parcel.out_for_delivery"]); n != 3 {
				t.Errorf("%d out_for_delivery events, want 3 (p1 and p2 in am, p1 in pm)", n)
			}
		})
	}
}

func TestConcurrentRetriesApplyOnce(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "same", CourierId: courierA, ParcelId: "p1",
				Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
			if err == nil && resp.GetParcel().GetStatus() != delivered {
				err = fmt.Errorf("parcel %v", resp.GetParcel())
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := len(h.published()["doorstep.haixin.parcel.delivered"]); got != 1 {
		t.Errorf("%d delivered events, want 1", got)
	}
}

func TestInvalidRequestsNameTheirFields(t *testing.T) {
	h := start(t)
	long := string(make([]byte, 200))
	tests := []struct {
		name   string
		call   func() error
		fields []string
	}{
		{"GetRoute without courier", func() error {
			_, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{})
			return err
		}, []string{"courier_id"}},
		{"GetRoute with a huge round id", func() error {
			_, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA, RoundId: long})
			return err
		}, []string{"round_id"}},
		{"PickUp empty", func() error {
			_, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{})
			return err
		}, []string{"request_id", "courier_id", "route_id"}},
		{"MarkDelivered empty", func() error {
			_, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{})
			return err
		}, []string{"request_id", "courier_id", "parcel_id", "method"}},
		{"MarkDelivered unknown method", func() error {
			_, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "r", CourierId: courierA, ParcelId: "p1",
				Method: courierv1.DeliveryMethod(42), PhotoRef: string(make([]byte, 600))})
			return err
		}, []string{"method", "photo_ref"}},
		{"MarkFailed empty", func() error {
			_, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{})
			return err
		}, []string{"request_id", "courier_id", "parcel_id", "reason"}},
		{"MarkFailed other without note", func() error {
			_, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "r", CourierId: courierA, ParcelId: "p1",
				Reason: courierv1.FailureReason_FAILURE_REASON_OTHER, Note: "  "})
			return err
		}, []string{"note"}},
		{"CompleteStops empty", func() error {
			_, err := h.client.CompleteStops(h.by(courierA), &courierv1.CompleteStopsRequest{})
			return err
		}, []string{"request_id", "courier_id", "outcomes"}},
		{"CompleteStops bad outcomes", func() error {
			_, err := h.client.CompleteStops(h.by(courierA), &courierv1.CompleteStopsRequest{RequestId: "r", CourierId: courierA,
				Outcomes: []*courierv1.StopOutcome{
					{ParcelId: "p1"},
					deliveredOutcome("", courierv1.DeliveryMethod_DELIVERY_METHOD_UNSPECIFIED, string(make([]byte, 600))),
					failedOutcome("p3", courierv1.FailureReason_FAILURE_REASON_OTHER, ""),
					failedOutcome("p4", courierv1.FailureReason(9), ""),
					deliveredOutcome("p5", courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER, "photos/fine.jpg"),
				}})
			return err
		}, []string{"outcomes[0]", "outcomes[1].parcel_id", "outcomes[1].delivered.method", "outcomes[1].delivered.photo_ref",
			"outcomes[2].failed.note", "outcomes[3].failed.reason"}},
		{"CompleteStops too many outcomes", func() error {
			req := &courierv1.CompleteStopsRequest{RequestId: "r", CourierId: courierA}
			for i := range 201 {
				req.Outcomes = append(req.Outcomes, deliveredOutcome(fmt.Sprintf("p%d", i), courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER, ""))
			}
			_, err := h.client.CompleteStops(h.by(courierA), req)
			return err
		}, []string{"outcomes"}},
		{"WatchRoute without courier", func() error {
			stream, err := h.client.WatchRoute(h.by(courierA), &courierv1.WatchRouteRequest{RoundId: long})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, []string{"courier_id", "round_id"}},
		{"MarkFailed unknown reason", func() error {
			_, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "r", CourierId: courierA, ParcelId: "p1",
				Reason: courierv1.FailureReason(9)})
			return err
		}, []string{"reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, codes.InvalidArgument)
			got := grpcx.FieldViolations(err)
			for _, f := range tt.fields {
				if _, ok := got[f]; !ok {
					t.Errorf("violations %v do not name %s", got, f)
				}
			}
			if len(got) != len(tt.fields) {
				t.Errorf("violations %v, want exactly %v", got, tt.fields)
			}
		})
	}
}

func TestParcelMovedToANewerRouteIsActedOnThere(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock.Add(-time.Hour), stop{"haixin-3-2-602", []string{"p1", "p2"}}))
	// Before courier A set off, dispatch moved p2 to courier B's new route.
	h.plan(planned("route-2", "round-am", courierB, clock, stop{"haixin-3-2-602", []string{"p2"}}))

	a, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick-a", CourierId: courierA, RouteId: "route-1"})
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(a.GetRoute()); st["p1"] != out || st["p2"] != pending {
		t.Fatalf("A's pick-up = %v, want p1 out and p2 left for route-2", st)
	}
	if _, err := h.client.PickUp(h.by(courierB), &courierv1.PickUpRequest{RequestId: "pick-b", CourierId: courierB, RouteId: "route-2"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "a-d", CourierId: courierA, ParcelId: "p2",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := h.client.MarkDelivered(h.by(courierB), &courierv1.MarkDeliveredRequest{RequestId: "b-d", CourierId: courierB, ParcelId: "p2",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER}); err != nil {
		t.Fatal(err)
	}
	ofd := h.published()["doorstep.haixin.parcel.out_for_delivery"]
	routes := map[string]string{}
	for _, s := range ofd {
		p := s.ev.GetParcelStateChanged()
		routes[p.GetParcelId()] += p.GetRouteId() + " "
	}
	if len(ofd) != 2 || routes["p1"] != "route-1 " || routes["p2"] != "route-2 " {
		t.Errorf("out_for_delivery events by parcel = %v", routes)
	}
}

func TestMalformedRouteEventIsDeadLetteredAndConsumingGoesOn(t *testing.T) {
	h := start(t)
	bad := planned("route-bad", "round-am", "", clock, stop{"haixin-3-2-602", []string{"p1"}})
	h.publish(bad, bad.GetEventId())
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}))

	testkit.Eventually(t, wait, func() error {
		s, err := h.js.Stream(h.ctx, events.DeadLetterStream)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(h.ctx, events.DeadLetterSubject+"doorstep.haixin.route.planned")
		if err != nil {
			return err
		}
		if got := m.Header.Get("Doorstep-Original-Msg-Id"); got != bad.GetEventId() {
			return fmt.Errorf("dead letter of %s, want %s", got, bad.GetEventId())
		}
		return nil
	})
	if n := h.count(`SELECT count(*) FROM routes WHERE route_id = 'route-bad'`); n != 0 {
		t.Errorf("malformed route stored")
	}
}
