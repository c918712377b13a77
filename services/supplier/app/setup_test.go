package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/supplier/app"
	"github.com/doorstep/doorstep/services/supplier/internal/postgres"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const compound = "haixin"

// clock is the service's injected time, so tests can cross an Asia/Shanghai midnight.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func newClock(t time.Time) *clock        { c := &clock{}; c.Set(t); return c }

// env is one supplier service running through app.Run on a fresh database and JetStream server,
// reached through a real gRPC connection.
type env struct {
	t      *testing.T
	ctx    context.Context
	client supplierv1.SupplierServiceClient
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	clock  *clock
	logs   *logBuffer
}

// logBuffer collects the service's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count is how many log lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// startClock is when tests start the service: 10:00 in Shanghai on 2026-03-01, with nanoseconds
// PostgreSQL cannot store.
func startClock() *clock { return newClock(time.Date(2026, 3, 1, 2, 0, 0, 123456789, time.UTC)) }

// start runs the service at startClock, with the default rounds unless an option says otherwise.
func start(t *testing.T, options ...func(*app.Config)) *env {
	t.Helper()
	return startAt(t, startClock(), options...)
}

// startAt runs the service on clk.
func startAt(t *testing.T, clk *clock, options ...func(*app.Config)) *env {
	t.Helper()
	dbURL, natsURL := testkit.Postgres(t), testkit.NATS(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	cfg := app.Config{DatabaseURL: dbURL, NATSURL: natsURL, Listener: lis, Now: clk.Now, AuthKey: string(testkit.AuthKey)}
	for _, o := range options {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, log)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})
	conn, err := grpcx.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	e := &env{t: t, ctx: context.Background(), client: supplierv1.NewSupplierServiceClient(conn), clock: clk, logs: logs}
	testkit.Eventually(t, 30*time.Second, func() error {
		_, err := e.client.ListSuppliers(e.worker(), &supplierv1.ListSuppliersRequest{Compound: compound})
		return err
	})
	// The service has migrated its schema by now.
	if e.pool, err = pgkit.Open(e.ctx, dbURL, "supplier"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pool.Close)
	nc, js, err := natsx.Connect(natsURL, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.js = js
	return e
}

// The callers of the tests, each with a signed identity as the gateway or a service would send.
// The service verifies identities by its own clock (startClock, March 2026); testkit.As mints them
// by the wall clock, which is later, so they stay valid however far a test moves the service's
// clock within its day or two.

func (e *env) as(role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
	return testkit.As(e.t, e.ctx, role, subject, opts...)
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

// worker is a worker of the compound: registers suppliers, keeps their papers, suspends them.
func (e *env) worker() context.Context {
	return e.as(typesv1.Role_ROLE_WORKER, "worker-li", testkit.InCompound(compound))
}

// staff is a member of a supplier's staff, who keeps its catalog and decides its parcels.
func (e *env) staff(supplierID string) context.Context {
	return e.as(typesv1.Role_ROLE_SUPPLIER, staffID(supplierID), testkit.Supplier(supplierID), testkit.InCompound(compound))
}

// staffID is the account of supplierID's staff member in the tests.
func staffID(supplierID string) string { return supplierID + "-staff" }

// order is the order service reserving and releasing stock for a household's resident.
func (e *env) order(householdID string) context.Context {
	return e.as(typesv1.Role_ROLE_SYSTEM, "order", onBehalfOf(typesv1.Role_ROLE_RESIDENT, householdID, testkit.InCompound(compound)))
}

// system is a service calling for nobody in particular.
func (e *env) system() context.Context { return e.as(typesv1.Role_ROLE_SYSTEM, "order") }

// replica is a second instance of the service on the same database with its own clock, as
// another replica running the background jobs would be. Tests call its jobs directly.
func (e *env) replica(clk *clock) *supply.Service {
	return &supply.Service{Repo: &postgres.Repo{Pool: e.pool}, Now: clk.Now}
}

// supplier registers a supermarket in good standing: a business licence and a food permit valid
// for years.
func (e *env) supplier(id string) *supplierv1.Supplier {
	e.t.Helper()
	e.newSupplier(id, "supermarket")
	return e.credentials(id, credential("business_licence", "2030-12-31"), credential("food_permit", "2030-12-31"))
}

// newSupplier registers a supplier without credentials.
func (e *env) newSupplier(id, kind string) *supplierv1.Supplier {
	e.t.Helper()
	res, err := e.client.CreateSupplier(e.worker(), &supplierv1.CreateSupplierRequest{RequestId: newID(),
		Compound: compound, SupplierId: id, Name: "Supplier " + id, Kind: kind})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetSupplier()
}

func credential(kind, expiresOn string) *supplierv1.Credential {
	return &supplierv1.Credential{Kind: kind, Number: "No. " + kind, ExpiresOn: expiresOn}
}

// credentials replaces a supplier's credentials.
func (e *env) credentials(id string, creds ...*supplierv1.Credential) *supplierv1.Supplier {
	e.t.Helper()
	res, err := e.client.UpdateCredentials(e.worker(), &supplierv1.UpdateCredentialsRequest{RequestId: newID(), SupplierId: id, Credentials: creds})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetSupplier()
}

func (e *env) item(it *supplierv1.Item) *supplierv1.Item {
	e.t.Helper()
	res, err := e.client.UpsertItem(e.staff(it.GetSupplierId()), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: it})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetItem()
}

func counted(supplierID, id string, price, stock, ration int64) *supplierv1.Item {
	return &supplierv1.Item{ItemId: id, SupplierId: supplierID, Name: "Item " + id, Unit: "box",
		ReferencePriceFen: price, CurrentPriceFen: price, Stock: stock, RationPerDay: ration, UnitWeightGrams: 250}
}

func weighed(supplierID, id string, pricePerKg, grams int64) *supplierv1.Item {
	return &supplierv1.Item{ItemId: id, SupplierId: supplierID, Name: "Item " + id, Unit: "kg", Weighed: true,
		ReferencePriceFen: pricePerKg, CurrentPriceFen: pricePerKg, Stock: grams}
}

// donations registers the compound's donated stock: a supplier of kind donations, which needs no
// credentials.
func (e *env) donations(id string) *supplierv1.Supplier {
	e.t.Helper()
	return e.newSupplier(id, "donations")
}

// donatedItem is an item of donated stock: free, unrationed.
func donatedItem(supplierID, id string, stock int64) *supplierv1.Item {
	return &supplierv1.Item{ItemId: id, SupplierId: supplierID, Name: "Donated " + id, Unit: "bottle", Stock: stock,
		UnitWeightGrams: 600, Category: "protection"}
}

// donated adds an item of donated stock, as the compound's worker who keeps it.
func (e *env) donated(supplierID, id string, stock int64) *supplierv1.Item {
	e.t.Helper()
	res, err := e.client.UpsertItem(e.worker(), &supplierv1.UpsertItemRequest{RequestId: newID(), Item: donatedItem(supplierID, id, stock)})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetItem()
}

// campaign is the order service making a campaign's packs for the worker running it.
func (e *env) campaign() context.Context {
	return e.as(typesv1.Role_ROLE_SYSTEM, "order", onBehalfOf(typesv1.Role_ROLE_WORKER, "worker-li", testkit.InCompound(compound)))
}

// packReq reserves a campaign's free pack for a household.
func packReq(supplierID, household, campaignID string, lines ...*supplierv1.ReservationLine) *supplierv1.ReserveStockRequest {
	r := reserveReq(supplierID, household, lines...)
	r.CampaignId = campaignID
	return r
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func address(household string) *typesv1.Address {
	return &typesv1.Address{Compound: compound, Building: "3", Unit: "2", Floor: 3, Room: household}
}

func line(item string, q int64) *supplierv1.ReservationLine {
	return &supplierv1.ReservationLine{ItemId: item, Quantity: q}
}

// householdID is the household of room in building 3, unit 2.
func householdID(room string) string { return compound + "-3-2-" + room }

func reserveReq(supplierID, household string, lines ...*supplierv1.ReservationLine) *supplierv1.ReserveStockRequest {
	return &supplierv1.ReserveStockRequest{ParcelId: newID(), OrderId: newID(), SupplierId: supplierID,
		HouseholdId: householdID(household), Address: address(household), Lines: lines}
}

// reserve reserves as the order service placing the household's order.
func (e *env) reserve(supplierID, household string, lines ...*supplierv1.ReservationLine) (*supplierv1.SupplierParcel, error) {
	res, err := e.client.ReserveStock(e.order(householdID(household)), reserveReq(supplierID, household, lines...))
	return res.GetParcel(), err
}

func (e *env) mustReserve(supplierID, household string, lines ...*supplierv1.ReservationLine) *supplierv1.SupplierParcel {
	e.t.Helper()
	p, err := e.reserve(supplierID, household, lines...)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) stock(itemID string) int64 {
	e.t.Helper()
	res, err := e.client.BatchGetItems(e.worker(), &supplierv1.BatchGetItemsRequest{ItemIds: []string{itemID}})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.GetItems()[0].GetStock()
}

func (e *env) wantStock(itemID string, want int64) {
	e.t.Helper()
	if got := e.stock(itemID); got != want {
		e.t.Fatalf("stock of %s is %d, want %d", itemID, got, want)
	}
}

// wantCode fails unless err has code c.
func wantCode(t *testing.T, err error, c codes.Code) {
	t.Helper()
	if got := status.Code(err); got != c {
		t.Fatalf("got %v (%v), want %v", got, err, c)
	}
}

// wantField fails unless err is INVALID_ARGUMENT naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument)
	if _, ok := grpcx.FieldViolations(err)[field]; !ok {
		t.Fatalf("violations %v do not name %s", grpcx.FieldViolations(err), field)
	}
}

// wantItemRefused fails unless err is FAILED_PRECONDITION whose message and details name the items.
func wantItemRefused(t *testing.T, err error, kind string, items ...string) {
	t.Helper()
	wantCode(t, err, codes.FailedPrecondition)
	st := status.Convert(err)
	var subjects []string
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				if v.GetType() != kind {
					t.Fatalf("violation type %s, want %s", v.GetType(), kind)
				}
				subjects = append(subjects, v.GetSubject())
			}
		}
	}
	if !slices.Equal(subjects, items) {
		t.Fatalf("refused items %v, want %v (%v)", subjects, items, err)
	}
	for _, it := range items {
		if !strings.Contains(st.Message(), it) {
			t.Fatalf("message %q does not name item %s", st.Message(), it)
		}
	}
}

// published is one message of the event stream.
type published struct {
	subject string
	msgID   string
	event   *eventsv1.Event
}

// published waits until the outbox has handed every event to JetStream, then returns the stream's
// messages on subjects matching filter.
func (e *env) published(filter string) []published {
	e.t.Helper()
	testkit.Eventually(e.t, 10*time.Second, func() error {
		var left int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return fmt.Errorf("%d events not yet published", left)
		}
		return nil
	})
	s, err := e.js.Stream(e.ctx, events.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []published
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		if !subjectMatches(filter, m.Subject) {
			continue
		}
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, published{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), event: ev})
	}
	return out
}

// subjectMatches supports the one wildcard the tests use: a trailing ">".
func subjectMatches(filter, subject string) bool {
	if prefix, ok := strings.CutSuffix(filter, ">"); ok {
		return strings.HasPrefix(subject, prefix) && len(subject) > len(prefix)
	}
	return filter == subject
}

// onlyEvent fails unless exactly one event was published on subject, with its event id as
// Nats-Msg-Id, and returns its payload.
func (e *env) onlyEvent(subject, parcelID string) *eventsv1.Event {
	e.t.Helper()
	var mine []published
	for _, p := range e.published("doorstep.>") {
		if p.event.GetParcelStateChanged().GetParcelId() == parcelID {
			mine = append(mine, p)
		}
	}
	var on []published
	for _, p := range mine {
		if p.subject == subject {
			on = append(on, p)
		}
	}
	if len(on) != 1 {
		e.t.Fatalf("%d events on %s for parcel %s, want 1 (all: %d)", len(on), subject, parcelID, len(mine))
	}
	if on[0].msgID != on[0].event.GetEventId() || on[0].msgID == "" {
		e.t.Fatalf("Nats-Msg-Id %q, event id %q", on[0].msgID, on[0].event.GetEventId())
	}
	return on[0].event
}
