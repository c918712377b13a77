package ordering_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/doorstep/doorstep/pkg/testkit"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/devstack/stack"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callTimeout is every test call's deadline. Hundreds of calls queue on a few hot item rows under
// -race on a shared machine, so the clients' 5 s default is too tight to mean "something hangs".
const callTimeout = time.Minute

// clock is the services' clock. It stands still unless a test moves it, so a run near midnight
// in Shanghai cannot split a burst over two ration days.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// env is a running stack with clients of the two services under test and a pool on its database,
// to read what the services stored.
type env struct {
	stack    *stack.Stack
	order    orderv1.OrderServiceClient
	supplier supplierv1.SupplierServiceClient
	db       *pgxpool.Pool
	clock    *clock
}

// start runs the whole stack on free ports against a fresh database, with the clock at 10:00 in
// Shanghai (after the morning round's cutoff, well before the afternoon's).
func start(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	clk := &clock{}
	clk.Set(time.Date(2030, 3, 11, 10, 0, 0, 0, rounds.Shanghai))
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = &testWriter{t: t}
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	began := time.Now()
	s, err := stack.Start(ctx, stack.Options{DataDir: t.TempDir(), DatabaseURL: testkit.Postgres(t), Now: clk.Now, Log: log})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(s.Stop)
	t.Logf("stack up in %s", time.Since(began).Round(time.Millisecond))
	// The tests drive the services as a SYSTEM identity of their own (a service may name who placed
	// an order), signed by the stack's clock, which the services verify identities with.
	keys, err := auth.NewKeys([]byte(s.AuthKey), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpcx.Dial(addr, keys.DialOption("ordering-test"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	db, err := pgxpool.New(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &env{stack: s, order: orderv1.NewOrderServiceClient(dial(s.Order)),
		supplier: supplierv1.NewSupplierServiceClient(dial(s.Supplier)), db: db, clock: clk}
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// addSupplier registers a supplier with valid credentials (a business licence and the permit its
// kind needs, far from expiry), so that it accepts orders. A supplier service that does not check
// credentials yet answers UNIMPLEMENTED, which is fine: it accepts orders without them.
func (e *env) addSupplier(t *testing.T, compound, id, kind string) {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	if _, err := e.supplier.CreateSupplier(ctx, &supplierv1.CreateSupplierRequest{RequestId: "create-" + id,
		Compound: compound, Name: id, Kind: kind, SupplierId: id}); err != nil {
		t.Fatalf("create supplier %s: %v", id, err)
	}
	permit := "food_permit"
	if kind == "pharmacy" {
		permit = "drug_permit"
	}
	_, err := e.supplier.UpdateCredentials(ctx, &supplierv1.UpdateCredentialsRequest{RequestId: "credentials-" + id, SupplierId: id,
		Credentials: []*supplierv1.Credential{
			{Kind: "business_licence", Number: "91310000-" + id, ExpiresOn: "2099-12-31"},
			{Kind: permit, Number: "JY-" + id, ExpiresOn: "2099-12-31"},
		}})
	if err != nil && status.Code(err) != codes.Unimplemented {
		t.Fatalf("credentials of supplier %s: %v %v", id, err, grpcx.FieldViolations(err))
	}
}

// upsertItem stores an item and fails the test if the supplier refuses it.
func (e *env) upsertItem(t *testing.T, it *supplierv1.Item) {
	t.Helper()
	if it.GetUnitWeightGrams() == 0 {
		it.UnitWeightGrams = 1000
	}
	if it.GetUnit() == "" {
		it.Unit = "box"
		if it.GetWeighed() {
			it.Unit = "kg"
		}
	}
	if it.GetName() == "" {
		it.Name = it.GetItemId()
	}
	ctx, cancel := callCtx()
	defer cancel()
	if _, err := e.supplier.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: uuid.NewString(), Item: it}); err != nil {
		t.Fatalf("upsert item %s: %v %v", it.GetItemId(), err, grpcx.FieldViolations(err))
	}
}

// households registers n households of compound, building 1, and returns their ids.
func (e *env) households(t *testing.T, compound string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			floor := int32(1 + i/8)
			resp, err := e.order.UpsertHousehold(ctx, &orderv1.UpsertHouseholdRequest{
				RequestId: fmt.Sprintf("household-%s-%d", compound, i),
				Household: &orderv1.Household{
					Address:   &typesv1.Address{Compound: compound, Building: "1", Unit: "1", Floor: floor, Room: fmt.Sprintf("%d%02d", floor, i%8+1)},
					Residents: 2, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED,
				}})
			if err != nil {
				return fmt.Errorf("household %d: %w", i, err)
			}
			ids[i] = resp.GetHousehold().GetHouseholdId()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// outcome is one PlaceOrder call's answer.
type outcome struct {
	req  *orderv1.PlaceOrderRequest
	resp *orderv1.PlaceOrderResponse
	err  error
}

// placeAll fires every request at once: each goroutine waits at a gate that opens when all are
// ready, so the calls overlap as much as the machine allows.
func (e *env) placeAll(reqs []*orderv1.PlaceOrderRequest) []outcome {
	out := make([]outcome, len(reqs))
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			<-gate
			ctx, cancel := callCtx()
			defer cancel()
			resp, err := e.order.PlaceOrder(ctx, req)
			out[i] = outcome{req: req, resp: resp, err: err}
		})
	}
	close(gate)
	wg.Wait()
	return out
}

// codeCounts tallies answers by status code.
func codeCounts(outs []outcome) map[codes.Code]int {
	n := map[codes.Code]int{}
	for _, o := range outs {
		n[status.Code(o.err)]++
	}
	return n
}

func formatCounts(n map[codes.Code]int) string {
	var parts []string
	for c, k := range n {
		parts = append(parts, fmt.Sprintf("%s=%d", c, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// requireOnly fails the test for any answer whose code is not allowed, quoting the first few.
func requireOnly(t *testing.T, outs []outcome, allowed ...codes.Code) {
	t.Helper()
	bad := 0
	for _, o := range outs {
		if c := status.Code(o.err); !slices.Contains(allowed, c) {
			if bad < 5 {
				t.Errorf("request %s answered %s: %v", o.req.GetRequestId(), c, o.err)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d answers were not %v", bad, len(outs), allowed)
	}
}

// stock reads items' stock through the supplier's API.
func (e *env) stock(t *testing.T, ids ...string) map[string]int64 {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := e.supplier.BatchGetItems(ctx, &supplierv1.BatchGetItemsRequest{ItemIds: ids})
	if err != nil {
		t.Fatalf("stock of %v: %v", ids, err)
	}
	out := map[string]int64{}
	for _, it := range resp.GetItems() {
		out[it.GetItemId()] = it.GetStock()
	}
	return out
}

// watchStock polls the stored stock of items until stop is called and returns the lowest value
// seen of each; the polls run while the orders race.
func (e *env) watchStock(ids ...string) (stop func() map[string]int64) {
	lowest := map[string]int64{}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			rows, err := e.db.Query(context.Background(), `SELECT item_id, stock FROM supplier.items WHERE item_id = ANY($1)`, ids)
			if err == nil {
				var id string
				var n int64
				for rows.Next() {
					if rows.Scan(&id, &n) == nil {
						if low, ok := lowest[id]; !ok || n < low {
							lowest[id] = n
						}
					}
				}
				rows.Close()
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() map[string]int64 {
		close(done)
		<-finished
		return lowest
	}
}

// liveReserved is what the supplier's live parcels (placed or further on, not released) hold of
// each item, as stored.
func (e *env) liveReserved(t *testing.T, ids ...string) map[string]int64 {
	t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT l.item_id, sum(l.quantity)::bigint
		FROM supplier.parcel_lines l JOIN supplier.parcels p ON p.parcel_id = l.parcel_id
		WHERE l.item_id = ANY($1) AND p.state NOT IN ('rejected', 'cancelled', 'expired')
		GROUP BY l.item_id`, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// count runs a counting query on the stack's database.
func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// orderedQuantities sums the quantities of the successful orders' lines per item.
func orderedQuantities(outs []outcome) map[string]int64 {
	n := map[string]int64{}
	for _, o := range outs {
		if o.err != nil {
			continue
		}
		for _, p := range o.resp.GetOrder().GetParcels() {
			for _, l := range p.GetLines() {
				n[l.GetItemId()] += l.GetQuantity()
			}
		}
	}
	return n
}

func line(item string, q int64) *orderv1.BasketLine {
	return &orderv1.BasketLine{ItemId: item, Quantity: q}
}

// worker is the residents' committee member who orders on households' behalf.
var worker = &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
