package stack_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/devstack/seed"
	"google.golang.org/grpc"
)

// TestSeedRenewsSuppliersPapers: make run keeps its compound from one start to the next, and
// the seed then sends nothing but the suppliers' papers, renewed from the day of the start. A
// compound kept for more than a year would otherwise stop taking orders the day the papers
// the first start gave run out.
func TestSeedRenewsSuppliersPapers(t *testing.T) {
	var ahead atomic.Int64 // how far the clock runs ahead of the real one
	now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	s, c := startStackAt(t, now)

	// A start 400 days later: the first start's permits ran out 35 days ago.
	ahead.Store(int64(400 * 24 * time.Hour))
	sum, err := seed.Run(context.Background(), seed.Clients{Order: orderv1.NewOrderServiceClient(dialAsSeed(t, c, s.Order)),
		Supplier: supplierv1.NewSupplierServiceClient(dialAsSeed(t, c, s.Supplier)),
		Dispatch: dispatchv1.NewDispatchServiceClient(dialAsSeed(t, c, s.Dispatch)), Now: now})
	if err != nil || !sum.Skipped {
		t.Fatalf("second seed: %+v, %v; want it skipped (the compound is there)", sum, err)
	}
	_, err = c.order.PlaceOrder(c.as(t, typesv1.Role_ROLE_WORKER, "worker.haixin"), &orderv1.PlaceOrderRequest{RequestId: "after-a-year",
		HouseholdId: "haixin-3-2-502", Lines: []*orderv1.BasketLine{{ItemId: "fm-rice-5kg", Quantity: 1}, {ItemId: "ph-masks-n95", Quantity: 1}}})
	if err != nil {
		t.Fatalf("an order 400 days after the first start: %v", err)
	}
}

// forgetfulCatalog answers ListItems with an empty catalog, as after a seed interrupted before
// its catalog: the seed then sends every step again.
type forgetfulCatalog struct {
	supplierv1.SupplierServiceClient
}

func (forgetfulCatalog) ListItems(context.Context, *supplierv1.ListItemsRequest, ...grpc.CallOption) (*supplierv1.ListItemsResponse, error) {
	return &supplierv1.ListItemsResponse{}, nil
}

// TestSeedSentAgainOnAnotherDay: a seed interrupted and sent again two days later sends the
// quarantines, which run from its day, as new requests rather than ones that conflict with the
// first day's (ALREADY_EXISTS), and finishes.
func TestSeedSentAgainOnAnotherDay(t *testing.T) {
	var ahead atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	s, c := startStackAt(t, now)
	ahead.Store(int64(48 * time.Hour))
	sum, err := seed.Run(context.Background(), seed.Clients{Order: orderv1.NewOrderServiceClient(dialAsSeed(t, c, s.Order)),
		Supplier: forgetfulCatalog{supplierv1.NewSupplierServiceClient(dialAsSeed(t, c, s.Supplier))},
		Dispatch: dispatchv1.NewDispatchServiceClient(dialAsSeed(t, c, s.Dispatch)), Now: now})
	if err != nil || sum.Skipped || sum.Households < 1000 {
		t.Fatalf("the seed sent again two days later: %+v, %v", sum, err)
	}
}

// dialAsSeed connects to addr as the seed does, with a SYSTEM identity signed on c's clock.
func dialAsSeed(t *testing.T, c clients, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcx.Dial(addr, c.keys.DialOption("seed"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
