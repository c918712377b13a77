package main

import (
	"context"
	"fmt"
	"sync/atomic"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const compound = "bench"

// Stock large enough that no run empties it: a refused order would measure something else.
const ample = 500_000_000_000

// benchItem is a catalog item as both the services and the floor see it.
type benchItem struct {
	id, supplier string
	weighed      bool
	price        int64
	unitGrams    int64
}

type household struct {
	id                   string
	building, unit, room string
	floor                int32
}

// workload is the compound the orders go to, and the basket of each order.
type workload struct {
	orders           orderv1.OrderServiceClient
	market, pharmacy string
	counted, weighed []benchItem // the supermarket's
	drugs            []benchItem // the pharmacy's
	households       []household
}

// line is one line of a basket.
type line struct {
	item     benchItem
	quantity int64
}

// basket is order n's: one counted and one weighed item of the supermarket and one item of the
// pharmacy, spread over the catalog so that concurrent orders share some item rows, as residents
// ordering from one shop do.
func (w *workload) basket(n int64) (household, []line) {
	i := int(n)
	h := w.households[i%len(w.households)]
	return h, []line{
		{item: w.counted[(i*7)%len(w.counted)], quantity: 1 + n%2},
		{item: w.weighed[(i*3)%len(w.weighed)], quantity: 250 + 50*(n%10)},
		{item: w.drugs[(i*5)%len(w.drugs)], quantity: 1},
	}
}

// setUp registers the compound through the services' APIs: two suppliers (with credentials, for a
// supplier service that checks them), their catalogs with ample stock, and the households.
func setUp(ctx context.Context, orderConn, supplierConn grpc.ClientConnInterface, cfg config) (*workload, error) {
	sup := supplierv1.NewSupplierServiceClient(supplierConn)
	w := &workload{orders: orderv1.NewOrderServiceClient(orderConn), market: "bench-market", pharmacy: "bench-pharmacy"}
	for _, s := range []struct{ id, kind, permit string }{{w.market, "supermarket", "food_permit"}, {w.pharmacy, "pharmacy", "drug_permit"}} {
		if _, err := sup.CreateSupplier(ctx, &supplierv1.CreateSupplierRequest{RequestId: "bench-" + s.id, Compound: compound,
			Name: s.id, Kind: s.kind, SupplierId: s.id}); err != nil {
			return nil, fmt.Errorf("supplier %s: %w", s.id, err)
		}
		_, err := sup.UpdateCredentials(ctx, &supplierv1.UpdateCredentialsRequest{RequestId: "bench-credentials-" + s.id, SupplierId: s.id,
			Credentials: []*supplierv1.Credential{{Kind: "business_licence", Number: "BL-" + s.id, ExpiresOn: "2099-12-31"},
				{Kind: s.permit, Number: "P-" + s.id, ExpiresOn: "2099-12-31"}}})
		if err != nil && status.Code(err) != codes.Unimplemented {
			return nil, fmt.Errorf("credentials of %s: %w", s.id, err)
		}
	}
	for i := range cfg.catalog {
		w.counted = append(w.counted, benchItem{id: fmt.Sprintf("bench-goods-%02d", i), supplier: w.market, price: 990 + int64(i)*100, unitGrams: 500})
		w.weighed = append(w.weighed, benchItem{id: fmt.Sprintf("bench-veg-%02d", i), supplier: w.market, weighed: true, price: 400 + int64(i)*30, unitGrams: 1000})
		w.drugs = append(w.drugs, benchItem{id: fmt.Sprintf("bench-drug-%02d", i), supplier: w.pharmacy, price: 1500 + int64(i)*50, unitGrams: 40})
	}
	for _, it := range append(append(append([]benchItem{}, w.counted...), w.weighed...), w.drugs...) {
		unit := "box"
		if it.weighed {
			unit = "kg"
		}
		if _, err := sup.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: "bench-item-" + it.id, Item: &supplierv1.Item{
			ItemId: it.id, SupplierId: it.supplier, Name: it.id, Unit: unit, Weighed: it.weighed,
			ReferencePriceFen: it.price, CurrentPriceFen: it.price, Stock: ample, UnitWeightGrams: it.unitGrams}}); err != nil {
			return nil, fmt.Errorf("item %s: %w", it.id, err)
		}
	}
	w.households = make([]household, cfg.households)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range w.households {
		g.Go(func() error {
			floor := int32(1 + i/8%30)
			a := &typesv1.Address{Compound: compound, Building: fmt.Sprint(1 + i/240), Unit: "1", Floor: floor, Room: fmt.Sprintf("%d%02d", floor, i%8+1)}
			resp, err := w.orders.UpsertHousehold(gctx, &orderv1.UpsertHouseholdRequest{RequestId: fmt.Sprint("bench-household-", i),
				Household: &orderv1.Household{Address: a, Residents: 2, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED}})
			if err != nil {
				return fmt.Errorf("household %d: %w", i, err)
			}
			w.households[i] = household{id: resp.GetHousehold().GetHouseholdId(), building: a.Building, unit: a.Unit, room: a.Room, floor: a.Floor}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return w, nil
}

// system is what is measured: something that places order n.
type system interface {
	place(ctx context.Context, n int64) error
	next() int64
}

// grpcSystem places orders through the order service.
type grpcSystem struct {
	client orderv1.OrderServiceClient
	w      *workload
	tag    string
	seq    atomic.Int64
	placed atomic.Int64
}

func (g *grpcSystem) next() int64 { return g.seq.Add(1) }

func (g *grpcSystem) place(ctx context.Context, n int64) error {
	h, lines := g.w.basket(n)
	req := &orderv1.PlaceOrderRequest{RequestId: fmt.Sprintf("%s-%d", g.tag, n), HouseholdId: h.id}
	for _, l := range lines {
		req.Lines = append(req.Lines, &orderv1.BasketLine{ItemId: l.item.id, Quantity: l.quantity})
	}
	if _, err := g.client.PlaceOrder(ctx, req); err != nil {
		return fmt.Errorf("PlaceOrder %s: %w", req.GetRequestId(), err)
	}
	g.placed.Add(1)
	return nil
}
