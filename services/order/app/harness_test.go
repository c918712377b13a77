package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/app"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// env is one running order service on a fresh database and broker, with fake supplier and
// dispatch peers.
type env struct {
	t *testing.T
	// ctx carries no identity: for the database, the broker, and calls that must be refused.
	ctx context.Context
	// worker is a community worker of haixin, the compound of every household the tests register.
	worker context.Context
	// dispatcher is haixin's dispatcher.
	dispatcher context.Context
	client     orderv1.OrderServiceClient
	sup        *fakeSupplier
	disp       *fakeDispatch
	clock      *clock
	pool       *pgxpool.Pool // for looking at what the service stored
	js         jetstream.JetStream
}

// clock is the service's clock: each reading is a second after the previous one, so "newest
// first" does not depend on timing, and a test can move it on by days.
type clock struct {
	base   time.Time
	tick   atomic.Int64
	offset atomic.Int64
}

func (c *clock) now() time.Time {
	return c.base.Add(time.Duration(c.tick.Add(1))*time.Second + time.Duration(c.offset.Load()))
}

func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func start(t *testing.T) *env { return startWith(t, nil) }

// startWith starts the service with configure's changes to its configuration.
func startWith(t *testing.T, configure func(*app.Config)) *env {
	t.Helper()
	dbURL, natsURL := testkit.Postgres(t), testkit.NATS(t)
	// 2022-04-10 08:00 in Shanghai.
	clk := &clock{base: time.Date(2022, 4, 10, 0, 0, 0, 0, time.UTC)}
	sup, supAddr := newFakeSupplier(t, clk)
	sup.seed()
	disp, dispAddr := newFakeDispatch(t, clk)
	disp.seed()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out io.Writer = io.Discard
	if os.Getenv("ORDER_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := app.Config{DatabaseURL: dbURL, NATSURL: natsURL, SupplierAddr: supAddr, DispatchAddr: dispAddr,
		Listener: lis, Now: clk.now, MetricsPort: 0, AuthKey: string(testkit.AuthKey)}
	if configure != nil {
		configure(&cfg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	health := healthpb.NewHealthClient(conn)
	testkit.Eventually(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("app.Run ended early: %v", err)
		default:
		}
		cctx, cc := context.WithTimeout(ctx, time.Second)
		defer cc()
		resp, err := health.Check(cctx, &healthpb.HealthCheckRequest{Service: orderv1.OrderService_ServiceDesc.ServiceName})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %v", resp.Status)
		}
		return nil
	})

	pool, err := pgkit.Open(ctx, dbURL, "orders")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	nc, js, err := natsx.Connect(natsURL, "order-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := &env{t: t, ctx: ctx, client: orderv1.NewOrderServiceClient(conn), sup: sup, disp: disp, clock: clk, pool: pool, js: js}
	e.worker = e.as(typesv1.Role_ROLE_WORKER, "worker-li", testkit.InCompound("haixin"))
	e.dispatcher = e.as(typesv1.Role_ROLE_DISPATCHER, "gate-wang", testkit.InCompound("haixin"))
	return e
}

// as is e.ctx carrying a signed identity. testkit.As signs by the wall clock, which is years after
// the service's clock: to the service such an identity is never expired.
func (e *env) as(role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
	return testkit.As(e.t, e.ctx, role, subject, opts...)
}

// resident is household hh signed in (every test household is haixin's).
func (e *env) resident(hh string) context.Context {
	return e.as(typesv1.Role_ROLE_RESIDENT, hh, testkit.InCompound("haixin"))
}

// system is a service acting on its own (the seed, an operator's tool).
func (e *env) system() context.Context { return e.as(typesv1.Role_ROLE_SYSTEM, "seed") }

// onBehalfOf makes a SYSTEM identity act for a person.
func onBehalfOf(role typesv1.Role, subject string, opts ...func(*auth.Identity)) func(*auth.Identity) {
	return func(id *auth.Identity) {
		obo := auth.Identity{Role: role, Subject: subject}
		for _, o := range opts {
			o(&obo)
		}
		id.OnBehalfOf = &obo
	}
}

// peerAuth makes a fake peer check calls as the real peers do: each must carry the order
// service's own SYSTEM identity, signed with the shared key; anything else is refused. It records
// whom each call was made for, by method.
type peerAuth struct {
	keys *auth.Keys
	mu   sync.Mutex
	obo  map[string][]*auth.Identity
}

// newPeerAuth verifies by the start of the service's clock: the service signs by its own
// ticking clock, and a fake peer checks who calls, not how long identities live (pkg/auth does).
func newPeerAuth(t *testing.T, clk *clock) *peerAuth {
	keys, err := auth.NewKeys(testkit.AuthKey, func() time.Time { return clk.base })
	if err != nil {
		t.Fatal(err)
	}
	return &peerAuth{keys: keys, obo: map[string][]*auth.Identity{}}
}

func (p *peerAuth) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tokens := md.Get(auth.MetadataKey)
	if len(tokens) != 1 {
		return nil, status.Error(codes.Unauthenticated, "no identity")
	}
	id, err := p.keys.Verify(tokens[0])
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "identity not accepted: %v", err)
	}
	if id.Role != typesv1.Role_ROLE_SYSTEM || id.Subject != "order" {
		return nil, status.Errorf(codes.PermissionDenied, "%v %s is not the order service", id.Role, id.Subject)
	}
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	p.mu.Lock()
	p.obo[method] = append(p.obo[method], id.OnBehalfOf)
	p.mu.Unlock()
	return handler(ctx, req)
}

// onBehalfOf is whom each call of method was made for, in call order (nil: for nobody).
func (p *peerAuth) onBehalfOf(method string) []*auth.Identity {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.obo[method])
}

// wantOnBehalfOf checks that every call of method the peer has had was made for the person
// with role and subject.
func wantOnBehalfOf(t *testing.T, p *peerAuth, method string, role typesv1.Role, subject string) {
	t.Helper()
	calls := p.onBehalfOf(method)
	if len(calls) == 0 {
		t.Errorf("no %s call", method)
	}
	for i, obo := range calls {
		if obo == nil || obo.Role != role || obo.Subject != subject {
			t.Errorf("%s call %d made for %+v, want %v %s", method, i, obo, role, subject)
		}
	}
}

// household registers haixin 3-2-302 (over 80, quarantined until 2022-04-20) and returns its id.
func (e *env) household() string {
	e.t.Helper()
	resp, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: "hh-1", Household: &orderv1.Household{
		Address:   &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
		Residents: 1, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED, Over_80: true, QuarantinedUntil: "2022-04-20",
		Phone: "+86 138-0013-8000",
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Household.HouseholdId
}

// basket is two suppliers' goods: rice and pork from freshmart, masks from the pharmacy.
func basket() []*orderv1.BasketLine {
	return []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 2}, {ItemId: "masks-10", Quantity: 3}, {ItemId: "pork", Quantity: 500}}
}

// place orders lines as the household itself.
func (e *env) place(requestID, household string, lines []*orderv1.BasketLine) *orderv1.Order {
	e.t.Helper()
	resp, err := e.client.PlaceOrder(e.resident(household), &orderv1.PlaceOrderRequest{RequestId: requestID, HouseholdId: household, Lines: lines})
	if err != nil {
		e.t.Fatalf("PlaceOrder: %v", err)
	}
	return resp.Order
}

func (e *env) getOrder(id string) *orderv1.Order {
	e.t.Helper()
	resp, err := e.client.GetOrder(e.worker, &orderv1.GetOrderRequest{OrderId: id})
	if err != nil {
		e.t.Fatalf("GetOrder: %v", err)
	}
	return resp.Order
}

func parcelOf(o *orderv1.Order, supplier string) *orderv1.Parcel {
	for _, p := range o.Parcels {
		if p.SupplierId == supplier {
			return p
		}
	}
	return nil
}

func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// streamEvent is a message of the event stream.
type streamEvent struct {
	subject string
	msgID   string
	event   *eventsv1.Event
}

// stream reads every message of the event stream.
func (e *env) stream() []streamEvent {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, events.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []streamEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, streamEvent{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), event: ev})
	}
	return out
}

// waitStream waits until the stream holds want messages on subject.
func (e *env) waitStream(subject string, want int) []streamEvent {
	e.t.Helper()
	var got []streamEvent
	testkit.Eventually(e.t, 10*time.Second, func() error {
		got = got[:0]
		for _, m := range e.stream() {
			if m.subject == subject {
				got = append(got, m)
			}
		}
		if len(got) != want {
			return fmt.Errorf("%d messages on %s, want %d", len(got), subject, want)
		}
		return nil
	})
	return got
}

// parcelEvent is a transition as another service publishes it.
func parcelEvent(o *orderv1.Order, p *orderv1.Parcel, state typesv1.ParcelState, role typesv1.Role, actorID string,
	fill func(*eventsv1.ParcelStateChanged)) *eventsv1.Event {
	ev := events.New("haixin", &typesv1.Actor{Role: role, Id: actorID}, o.OrderId, time.Now())
	sc := &eventsv1.ParcelStateChanged{ParcelId: p.ParcelId, State: state, HouseholdId: o.HouseholdId}
	if fill != nil {
		fill(sc)
	}
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: sc}
	return ev
}

// publish puts ev on the stream under msgID (normally its event id) and returns its sequence.
func (e *env) publish(ev *eventsv1.Event, msgID string) uint64 {
	e.t.Helper()
	return testkit.Publish(e.t, e.ctx, e.js, ev, msgID)
}

// waitParcel waits until the parcel is in state.
func (e *env) waitParcel(id string, state typesv1.ParcelState) *orderv1.Parcel {
	e.t.Helper()
	var p *orderv1.Parcel
	testkit.Eventually(e.t, 20*time.Second, func() error {
		resp, err := e.client.GetParcel(e.dispatcher, &orderv1.GetParcelRequest{ParcelId: id})
		if err != nil {
			return err
		}
		p = resp.Parcel
		if p.State != state {
			return fmt.Errorf("parcel %s is %v, want %v", id, p.State, state)
		}
		return nil
	})
	return p
}

// waitConsumed waits until the order service's consumer has acknowledged every message up to seq.
func (e *env) waitConsumed(seq uint64) {
	e.t.Helper()
	testkit.Eventually(e.t, 20*time.Second, func() error {
		c, err := e.js.Consumer(e.ctx, events.Stream, "order-parcels")
		if err != nil {
			return err
		}
		info, err := c.Info(e.ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream < seq {
			return fmt.Errorf("consumer acknowledged up to %d, want %d", info.AckFloor.Stream, seq)
		}
		return nil
	})
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
}

// newID is a fresh request id, for a change that is not a retry.
func newID() string { return uuid.Must(uuid.NewV7()).String() }
