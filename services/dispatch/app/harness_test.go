package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/dispatch/app"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// shanghai is Asia/Shanghai for building test times (no DST since 1991).
var shanghai = time.FixedZone("CST", 8*3600)

func at(day, hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", day+" "+hhmm, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

// clock is the injected time; tests move it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// fakeOrders is the order service's GetParcel, answering from a map the test fills. Like the
// real one it verifies its callers, and it remembers who they were.
type fakeOrders struct {
	orderv1.UnimplementedOrderServiceServer
	mu      sync.Mutex
	parcels map[string]*orderv1.Parcel
	calls   int
	callers []auth.Identity
	down    bool
}

func (f *fakeOrders) GetParcel(ctx context.Context, req *orderv1.GetParcelRequest) (*orderv1.GetParcelResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	id, _ := auth.FromContext(ctx)
	f.callers = append(f.callers, id)
	if f.down {
		return nil, status.Error(codes.Internal, "order database on fire")
	}
	p, ok := f.parcels[req.GetParcelId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "parcel %s not found", req.GetParcelId())
	}
	return &orderv1.GetParcelResponse{Parcel: proto.CloneOf(p)}, nil
}

func (f *fakeOrders) add(p *orderv1.Parcel) *orderv1.Parcel {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parcels[p.GetParcelId()] = p
	return p
}

// edit changes the fake's parcels while no call reads them.
func (f *fakeOrders) edit(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// lastCaller is the identity of the latest GetParcel.
func (f *fakeOrders) lastCaller() auth.Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.callers) == 0 {
		return auth.Identity{}
	}
	return f.callers[len(f.callers)-1]
}

func (f *fakeOrders) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// parcelOpt adjusts a fake parcel.
type parcelOpt func(*orderv1.Parcel)

func state(s typesv1.ParcelState) parcelOpt { return func(p *orderv1.Parcel) { p.State = s } }
func grams(g int64) parcelOpt               { return func(p *orderv1.Parcel) { p.WeightGrams = g } }
func priority() parcelOpt                   { return func(p *orderv1.Parcel) { p.Priority = true } }
func contactless() parcelOpt                { return func(p *orderv1.Parcel) { p.Contactless = true } }

// ready is a READY parcel of household haixin-<building>-<unit>-<room>, on the floor its room
// number starts with.
func (f *fakeOrders) ready(building, unit string, floor int, opts ...parcelOpt) *orderv1.Parcel {
	room := fmt.Sprintf("%d01", floor)
	p := &orderv1.Parcel{
		ParcelId:    uuid.Must(uuid.NewV7()).String(),
		OrderId:     uuid.Must(uuid.NewV7()).String(),
		SupplierId:  "fresh-mart",
		HouseholdId: fmt.Sprintf("haixin-%s-%s-%s", building, unit, room),
		State:       typesv1.ParcelState_PARCEL_STATE_READY,
		WeightGrams: 1500,
		Lines: []*orderv1.OrderLine{{ItemId: "fm-eggs-30", Quantity: 2, ConfirmedQuantity: 2},
			{ItemId: "fm-milk-1l", Quantity: 3, ConfirmedQuantity: 3}},
		Address: &typesv1.Address{Compound: "haixin", Building: building, Unit: unit, Floor: int32(floor), Room: room},
	}
	for _, o := range opts {
		o(p)
	}
	return f.add(p)
}

// The dispatcher of haixin the tests call as, unless a test says otherwise.
const dispatcherID = "dispatcher-wang"

type harness struct {
	// ctx carries the identity of haixin's dispatcher, as the gateway would send it.
	ctx context.Context
	// bg carries no identity.
	bg     context.Context
	t      *testing.T
	client dispatchv1.DispatchServiceClient
	orders *fakeOrders
	clock  *clock
	js     jetstream.JetStream
	pool   *pgxpool.Pool
}

// start runs the real service (app.Run) on a fresh database and JetStream, with a fake order
// service, at the given time.
func start(t *testing.T, now time.Time) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, natsURL := testkit.Postgres(t), testkit.NATS(t)
	h := &harness{bg: ctx, t: t, orders: &fakeOrders{parcels: map[string]*orderv1.Parcel{}}, clock: &clock{t: now}}
	// Identities are minted by the wall clock (testkit.As), later than the service's clock in
	// March 2026, so they stay valid however far a test moves the service's clock.
	h.ctx = h.as(typesv1.Role_ROLE_DISPATCHER, dispatcherID, testkit.InCompound("haixin"))

	orderLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The service mints its own identities by its clock, so the fake verifies them by it too.
	orderKeys, err := auth.NewKeys(testkit.AuthKey, h.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	orderSrv := grpc.NewServer(orderKeys.ServerOptions(auth.Policy{
		orderv1.OrderService_GetParcel_FullMethodName: {typesv1.Role_ROLE_DISPATCHER, typesv1.Role_ROLE_WORKER, typesv1.Role_ROLE_SYSTEM}})...)
	orderv1.RegisterOrderServiceServer(orderSrv, h.orders)
	go orderSrv.Serve(orderLis)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Config{DatabaseURL: db, NATSURL: natsURL, OrderAddr: orderLis.Addr().String(),
			Listener: lis, Now: h.clock.Now, AuthKey: string(testkit.AuthKey)}, log)
	}()
	conn, err := grpcx.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := natsx.Connect(natsURL, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	h.js = js
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		conn.Close()
		nc.Close()
		orderSrv.Stop()
		if h.pool != nil {
			h.pool.Close()
		}
	})
	h.client = dispatchv1.NewDispatchServiceClient(conn)
	testkit.Eventually(t, 20*time.Second, func() error {
		_, err := h.client.ListBuildings(h.ctx, &dispatchv1.ListBuildingsRequest{Compound: "haixin"})
		return err
	})
	// The test's own view of the service's tables, for what the API does not show.
	h.pool, err = pgkit.Open(ctx, db, "dispatch")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// as is ctx carrying a signed identity.
func (h *harness) as(role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
	return testkit.As(h.t, h.bg, role, subject, opts...)
}

// onBehalfOf makes a SYSTEM identity act for a person.
func onBehalfOf(role typesv1.Role, subject string, opts ...func(*auth.Identity)) func(*auth.Identity) {
	return func(id *auth.Identity) {
		id.OnBehalfOf = &auth.Identity{Role: role, Subject: subject}
		for _, o := range opts {
			o(id.OnBehalfOf)
		}
	}
}

// sitePlan is a small compound: two walk-ups near the gate, a lift tower further in, and two
// couriers, one for building 1 and one who goes anywhere.
func (h *harness) sitePlan(t *testing.T) {
	t.Helper()
	for _, b := range []*dispatchv1.Building{
		{Compound: "haixin", Building: "1", Units: []string{"1", "2"}, Floors: 6, DistanceM: 80},
		{Compound: "haixin", Building: "2", Units: []string{"1"}, Floors: 6, DistanceM: 120},
		{Compound: "haixin", Building: "11", Units: []string{"1"}, Floors: 18, HasLift: true, DistanceM: 300},
	} {
		if _, err := h.client.UpsertBuilding(h.ctx, &dispatchv1.UpsertBuildingRequest{RequestId: "b-" + b.Building, Building: b}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*dispatchv1.Courier{
		{CourierId: "haixin-courier-01", Compound: "haixin", Name: "Lao Wang", Buildings: []string{"1"}, MaxParcels: 4, MaxGrams: 20000, OnDuty: true},
		{CourierId: "haixin-courier-02", Compound: "haixin", Name: "Xiao Li", MaxParcels: 6, MaxGrams: 25000, OnDuty: true},
		{CourierId: "haixin-courier-03", Compound: "haixin", Name: "Off Today", MaxParcels: 6, MaxGrams: 25000, OnDuty: false},
	} {
		if _, err := h.client.UpsertCourier(h.ctx, &dispatchv1.UpsertCourierRequest{RequestId: "c-" + c.CourierId, Courier: c}); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) checkIn(t *testing.T, requestID string, parcels ...*orderv1.Parcel) []*dispatchv1.CheckInResult {
	t.Helper()
	ids := make([]string, len(parcels))
	for i, p := range parcels {
		ids[i] = p.GetParcelId()
	}
	resp, err := h.client.CheckInParcels(h.ctx, &dispatchv1.CheckInParcelsRequest{RequestId: requestID, Compound: "haixin", ParcelIds: ids})
	if err != nil {
		t.Fatalf("check in: %v", err)
	}
	return resp.GetResults()
}

// published is one message on the event stream.
type published struct {
	subject string
	msgID   string
	event   *eventsv1.Event
}

// events returns every message on the stream whose subject matches filter.
func (h *harness) events(filter string) ([]published, error) {
	s, err := h.js.Stream(h.ctx, events.Stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(h.ctx)
	if err != nil {
		return nil, err
	}
	var out []published
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(h.ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !subjectMatches(filter, m.Subject) {
			continue
		}
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			return nil, err
		}
		out = append(out, published{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), event: ev})
	}
	return out, nil
}

// waitEvents waits until exactly n messages match filter and returns them.
func (h *harness) waitEvents(t *testing.T, filter string, n int) []published {
	t.Helper()
	var got []published
	testkit.Eventually(t, 10*time.Second, func() error {
		var err error
		got, err = h.events(filter)
		if err != nil {
			return err
		}
		if len(got) != n {
			return fmt.Errorf("%d events on %s, want %d", len(got), filter, n)
		}
		return nil
	})
	return got
}

func subjectMatches(filter, subject string) bool {
	if filter == subject {
		return true
	}
	fi, si := splitDots(filter), splitDots(subject)
	for i, tok := range fi {
		if tok == ">" {
			return len(si) > i
		}
		if i >= len(si) || tok != "*" && tok != si[i] {
			return false
		}
	}
	return len(fi) == len(si)
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

// plan plans a round and fails the test if it cannot.
func (h *harness) plan(t *testing.T, requestID, roundID string) *dispatchv1.PlanRoundResponse {
	t.Helper()
	resp, err := h.client.PlanRound(h.ctx, &dispatchv1.PlanRoundRequest{RequestId: requestID, RoundId: roundID})
	if err != nil {
		t.Fatalf("plan %s: %v", roundID, err)
	}
	return resp
}

// round is one round of a day's listing.
func (h *harness) round(t *testing.T, date, id string) *dispatchv1.Round {
	t.Helper()
	resp, err := h.client.ListRounds(h.ctx, &dispatchv1.ListRoundsRequest{Compound: "haixin", Date: date})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.GetRounds() {
		if r.GetRoundId() == id {
			return r
		}
	}
	t.Fatalf("no round %s among %v", id, resp.GetRounds())
	return nil
}

// routes are a round's routes by courier id.
func (h *harness) routes(t *testing.T, roundID string) map[string]*dispatchv1.Route {
	t.Helper()
	resp, err := h.client.ListRoutes(h.ctx, &dispatchv1.ListRoutesRequest{RoundId: roundID})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dispatchv1.Route{}
	for _, r := range resp.GetRoutes() {
		out[r.GetCourierId()] = r
	}
	return out
}

// duty puts a courier on or off duty for a round.
func (h *harness) duty(t *testing.T, roundID, courierID string, on bool) {
	t.Helper()
	if _, err := h.client.SetCourierDuty(h.ctx, &dispatchv1.SetCourierDutyRequest{RequestId: fmt.Sprint("duty-", roundID, courierID, on),
		RoundId: roundID, CourierId: courierID, OnDuty: on}); err != nil {
		t.Fatal(err)
	}
}

// outcome publishes what the courier service would on a delivery or a failure at the door.
func (h *harness) outcome(t *testing.T, p *orderv1.Parcel, state typesv1.ParcelState, reason string) *eventsv1.Event {
	t.Helper()
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: "haixin-courier-02"}, p.GetOrderId(), h.clock.Now())
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: &eventsv1.ParcelStateChanged{
		ParcelId: p.GetParcelId(), State: state, Reason: reason, HouseholdId: p.GetHouseholdId()}}
	publish(t, h, ev)
	return ev
}

// parcelRow is what dispatch's table says of a parcel.
func (h *harness) parcelRow(t *testing.T, id string) (round, status, courier string, pinned bool) {
	t.Helper()
	if err := h.pool.QueryRow(h.ctx, `SELECT round_id, status, coalesce(courier_id, ''), pinned FROM parcels WHERE parcel_id = $1`, id).
		Scan(&round, &status, &courier, &pinned); err != nil {
		t.Fatal(err)
	}
	return round, status, courier, pinned
}

// stopOf finds the route and stop carrying parcel id.
func stopOf(routes map[string]*dispatchv1.Route, id string) (*dispatchv1.Route, *dispatchv1.Stop) {
	for _, r := range routes {
		for _, s := range r.GetStops() {
			if slices.Contains(s.GetParcelIds(), id) {
				return r, s
			}
		}
	}
	return nil, nil
}
