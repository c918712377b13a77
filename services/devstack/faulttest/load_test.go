package faulttest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// compound is the test's own small compound, so nothing here depends on the demo seed's stock
// and rations.
const compound = "faultco"

// world is what seed created: households and one item per supplier.
type world struct {
	households []string
	items      []supplierItem
}

type supplierItem struct{ supplier, item string }

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcx.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// as returns ctx carrying a signed identity, as the gateway or a peer service would send it.
func as(ctx context.Context, keys *auth.Keys, id auth.Identity) context.Context {
	out, err := keys.Outgoing(ctx, id)
	if err != nil {
		panic(err) // only a key shorter than 32 bytes fails, and System makes its own
	}
	return out
}

// seed creates three suppliers with an unlimited, unrationed item each and 60 households, through
// the services' gRPC APIs, as a system identity.
func seed(t *testing.T, sys *System) world {
	t.Helper()
	ctx := as(context.Background(), sys.Keys, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "faulttest-seed"})
	sup := supplierv1.NewSupplierServiceClient(dial(t, sys.Replicas("supplier")[0].Addr))
	ord := orderv1.NewOrderServiceClient(dial(t, sys.Replicas("order")[0].Addr))
	var w world
	for i, kind := range []string{"supermarket", "supermarket", "pharmacy"} {
		id := fmt.Sprintf("%s-supplier-%d", compound, i+1)
		if _, err := sup.CreateSupplier(ctx, &supplierv1.CreateSupplierRequest{RequestId: "seed-" + id, SupplierId: id,
			Compound: compound, Name: "Supplier " + fmt.Sprint(i+1), Kind: kind}); err != nil {
			t.Fatalf("create supplier %s: %v", id, err)
		}
		permit := "food_permit"
		if kind == "pharmacy" {
			permit = "drug_permit"
		}
		if _, err := sup.UpdateCredentials(ctx, &supplierv1.UpdateCredentialsRequest{RequestId: "seed-papers-" + id, SupplierId: id,
			Credentials: []*supplierv1.Credential{
				{Kind: "business_licence", Number: "9131000" + fmt.Sprint(i), ExpiresOn: "2099-12-31"},
				{Kind: permit, Number: "JY131" + fmt.Sprint(i), ExpiresOn: "2099-12-31"},
			}}); err != nil && status.Code(err) != codes.Unimplemented {
			t.Fatalf("credentials of %s: %v", id, err)
		}
		item := fmt.Sprintf("%s-item-%d", compound, i+1)
		if _, err := sup.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: "seed-" + item, Item: &supplierv1.Item{
			ItemId: item, SupplierId: id, Name: "Item " + fmt.Sprint(i+1), Unit: "box", Category: "staples",
			ReferencePriceFen: 500, CurrentPriceFen: 450, Stock: 1_000_000_000, UnitWeightGrams: 200}}); err != nil {
			t.Fatalf("item %s: %v", item, err)
		}
		w.items = append(w.items, supplierItem{supplier: id, item: item})
	}
	for b := 1; b <= 3; b++ {
		for f := 1; f <= 10; f++ {
			for r := 1; r <= 2; r++ {
				resp, err := ord.UpsertHousehold(ctx, &orderv1.UpsertHouseholdRequest{
					RequestId: fmt.Sprintf("seed-hh-%d-%d-%d", b, f, r),
					Household: &orderv1.Household{
						Address: &typesv1.Address{Compound: compound, Building: fmt.Sprint(b), Unit: "1", Floor: int32(f),
							Room: fmt.Sprintf("%d%02d", f, r)},
						Residents: 2, Occupied: true, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED,
					}})
				if err != nil {
					t.Fatalf("household: %v", err)
				}
				w.households = append(w.households, resp.GetHousehold().GetHouseholdId())
			}
		}
	}
	return w
}

// placed is an order the order service acknowledged (PlaceOrder returned OK).
type placed struct {
	orderID, requestID string
	parcels            []placedParcel
}

type placedParcel struct {
	id, supplier string
	// confirmed: the supplier acknowledged ConfirmParcel.
	confirmed bool
}

// load places n orders from concurrent clients the way a careful client does: a failed call is
// retried with the same request id until it succeeds, and one the service refuses because an
// earlier failed attempt's reservation was released is placed again under a new request id. The
// supplier confirms the parcels of every fourth order.
type load struct {
	orders   []orderv1.OrderServiceClient // spread round robin
	supplier supplierv1.SupplierServiceClient
	keys     *auth.Keys
	world    world
	prefix   string
	n        int
	workers  int

	acked, retried, renewed, confirmRetried atomic.Int64

	mu     sync.Mutex
	placed []placed
}

func newLoad(t *testing.T, sys *System, w world, prefix string, n int) *load {
	l := &load{world: w, prefix: prefix, n: n, workers: 8, keys: sys.Keys,
		supplier: supplierv1.NewSupplierServiceClient(dial(t, sys.Replicas("supplier")[0].Addr))}
	for _, o := range sys.Replicas("order") {
		l.orders = append(l.orders, orderv1.NewOrderServiceClient(dial(t, o.Addr)))
	}
	return l
}

func (l *load) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	next := atomic.Int64{}
	g, ctx := errgroup.WithContext(ctx)
	for range l.workers {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= l.n {
					return nil
				}
				p, err := l.place(ctx, i)
				if err != nil {
					return err
				}
				if i%4 == 0 {
					for k := range p.parcels {
						if err := l.confirm(ctx, &p.parcels[k]); err != nil {
							return err
						}
					}
				}
				l.mu.Lock()
				l.placed = append(l.placed, p)
				l.mu.Unlock()
				l.acked.Add(1)
			}
		})
	}
	return g.Wait()
}

// basket of order i: one, two or three suppliers, so orders have one to three parcels.
func (l *load) basket(i int) []*orderv1.BasketLine {
	var lines []*orderv1.BasketLine
	for k := 0; k <= i%len(l.world.items); k++ {
		lines = append(lines, &orderv1.BasketLine{ItemId: l.world.items[k].item, Quantity: int64(1 + i%2)})
	}
	return lines
}

func (l *load) place(ctx context.Context, i int) (placed, error) {
	household := l.world.households[i%len(l.world.households)]
	requestID := fmt.Sprintf("%s-%04d", l.prefix, i)
	client := l.orders[i%len(l.orders)]
	wait := newBackoff()
	for attempt := 1; ; attempt++ {
		resident := as(ctx, l.keys, auth.Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: household, Compound: compound})
		resp, err := client.PlaceOrder(resident, &orderv1.PlaceOrderRequest{RequestId: requestID, HouseholdId: household, Lines: l.basket(i)})
		if err == nil {
			o := resp.GetOrder()
			p := placed{orderID: o.GetOrderId(), requestID: requestID}
			for _, pc := range o.GetParcels() {
				p.parcels = append(p.parcels, placedParcel{id: pc.GetParcelId(), supplier: pc.GetSupplierId()})
			}
			return p, nil
		}
		switch {
		case transient(err):
			l.retried.Add(1)
		case status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "new request id"):
			l.renewed.Add(1)
			requestID = fmt.Sprintf("%s-%04d-r%d", l.prefix, i, attempt)
		default:
			return placed{}, fmt.Errorf("place order %d (%s): %w", i, requestID, err)
		}
		if err := wait(ctx); err != nil {
			return placed{}, fmt.Errorf("place order %d (%s): gave up: %w", i, requestID, err)
		}
	}
}

func (l *load) confirm(ctx context.Context, p *placedParcel) error {
	wait := newBackoff()
	for {
		staff := as(ctx, l.keys, auth.Identity{Role: typesv1.Role_ROLE_SUPPLIER, Subject: p.supplier + "-staff", SupplierID: p.supplier, Compound: compound})
		_, err := l.supplier.ConfirmParcel(staff, &supplierv1.ConfirmParcelRequest{RequestId: "confirm-" + p.id, SupplierId: p.supplier, ParcelId: p.id})
		if err == nil {
			p.confirmed = true
			return nil
		}
		if !transient(err) {
			return fmt.Errorf("confirm parcel %s: %w", p.id, err)
		}
		l.confirmRetried.Add(1)
		if err := wait(ctx); err != nil {
			return fmt.Errorf("confirm parcel %s: gave up: %w", p.id, err)
		}
	}
}

// acknowledged returns the orders acknowledged so far.
func (l *load) acknowledged() []placed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]placed(nil), l.placed...)
}

// transient errors are the ones a client retries with the same request id: the service was
// down, restarting or cut off from its database.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.Aborted, codes.Canceled, codes.ResourceExhausted:
		return true
	}
	return false
}

// newBackoff is a client's retry delay: 50 ms doubling to 1 s.
func newBackoff() func(context.Context) error {
	d := 25 * time.Millisecond
	return func(ctx context.Context) error {
		d = min(2*d, time.Second)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
}

// waitFor polls cond every few milliseconds until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
