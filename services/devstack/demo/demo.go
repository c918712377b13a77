// Package demo simulates one lockdown day against a running Doorstep: households order, suppliers
// confirm (weighing the vegetables and meat) and hand parcels over, the dispatcher checks them in
// and plans two rounds, and couriers deliver, a few doors failing. Everything goes through the
// public gRPC APIs, as the people in SPEC.md would drive it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Clients are the services the day is driven through, and the key to sign each person's identity
// with: every call is made as the person who would make it (a resident ordering, a supplier's
// staff confirming, the dispatcher planning, a courier delivering).
type Clients struct {
	Order    orderv1.OrderServiceClient
	Supplier supplierv1.SupplierServiceClient
	Dispatch dispatchv1.DispatchServiceClient
	Courier  courierv1.CourierServiceClient
	Keys     *auth.Keys
}

// as is ctx carrying a signed identity (auth.Outgoing: a two-minute token, reused while it has a
// minute left).
func (c Clients) as(ctx context.Context, role typesv1.Role, subject, compound string, opts ...func(*auth.Identity)) context.Context {
	id := auth.Identity{Role: role, Subject: subject, Compound: compound}
	for _, o := range opts {
		o(&id)
	}
	out, err := c.Keys.Outgoing(ctx, id)
	if err != nil {
		return ctx // the call then fails UNAUTHENTICATED, naming the problem
	}
	return out
}

func (c Clients) worker(ctx context.Context, compound string) context.Context {
	return c.as(ctx, typesv1.Role_ROLE_WORKER, "worker."+compound, compound)
}

func (c Clients) dispatcher(ctx context.Context, compound string) context.Context {
	return c.as(ctx, typesv1.Role_ROLE_DISPATCHER, "dispatcher."+compound, compound)
}

func (c Clients) supplierStaff(ctx context.Context, supplierID string) context.Context {
	return c.as(ctx, typesv1.Role_ROLE_SUPPLIER, supplierID+".staff", "", func(i *auth.Identity) { i.SupplierID = supplierID })
}

func (c Clients) courier(ctx context.Context, courierID string) context.Context {
	return c.as(ctx, typesv1.Role_ROLE_COURIER, courierID, "")
}

// Config shapes the day.
type Config struct {
	Compound   string
	Households int
	// FailPercent of deliveries fail (nobody home); RejectPercent of parcels the suppliers reject.
	FailPercent, RejectPercent int
	Seed                       uint64
	Log                        *slog.Logger
}

// Report is what happened.
type Report struct {
	Orders, OrdersRefused        int
	Parcels, Confirmed, Rejected int
	Rounds                       []RoundReport
	Delivered, Failed            int
	Took                         time.Duration
	SampleOrderID                string
}

// RoundReport is one planned round.
type RoundReport struct {
	RoundID          string
	Parcels, Routes  int
	Cost, LowerBound *dispatchv1.PlanCost
}

func (r Report) String() string {
	s := fmt.Sprintf("orders placed:      %d (%d refused: out of stock or over a ration)\n", r.Orders, r.OrdersRefused)
	s += fmt.Sprintf("parcels:            %d (%d confirmed, %d rejected by suppliers)\n", r.Parcels, r.Confirmed, r.Rejected)
	for _, rd := range r.Rounds {
		s += fmt.Sprintf("round %s: %d parcels, %d routes, cost %dm/%d floors/%d trips (lower bound %dm/%d floors/%d trips)\n",
			rd.RoundID, rd.Parcels, rd.Routes, rd.Cost.GetMetres(), rd.Cost.GetFloors(), rd.Cost.GetTrips(),
			rd.LowerBound.GetMetres(), rd.LowerBound.GetFloors(), rd.LowerBound.GetTrips())
	}
	s += fmt.Sprintf("delivered:          %d parcels\n", r.Delivered)
	s += fmt.Sprintf("failed, waiting for the next round: %d parcels\n", r.Failed)
	s += fmt.Sprintf("time taken:         %s\n", r.Took.Round(time.Millisecond))
	if r.SampleOrderID != "" {
		s += fmt.Sprintf("sample order:       %s\n", r.SampleOrderID)
	}
	return s
}

// Run simulates the day.
func Run(ctx context.Context, c Clients, cfg Config) (Report, error) {
	start := time.Now()
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(start.UnixNano())))
	run := uuid.NewString()[:8] // request ids unique to this run, so a second demo places new orders
	var rep Report

	households, err := occupiedHouseholds(ctx, c, cfg.Compound)
	if err != nil {
		return rep, err
	}
	if len(households) < cfg.Households {
		return rep, fmt.Errorf("only %d occupied households in %s; is the compound seeded?", len(households), cfg.Compound)
	}
	rng.Shuffle(len(households), func(i, j int) { households[i], households[j] = households[j], households[i] })
	// The catalog as residents see it: donated stock is handed out by campaigns, not ordered.
	shopper := c.as(ctx, typesv1.Role_ROLE_RESIDENT, households[0].GetHouseholdId(), cfg.Compound)
	items, err := c.Supplier.ListItems(shopper, &supplierv1.ListItemsRequest{Compound: cfg.Compound})
	if err != nil {
		return rep, fmt.Errorf("catalog: %w", err)
	}
	if len(items.GetItems()) == 0 {
		return rep, errors.New("empty catalog; is the compound seeded?")
	}

	cfg.Log.Info("households ordering", "households", cfg.Households)
	baskets := make([][]*orderv1.BasketLine, cfg.Households)
	for i := range baskets {
		baskets[i] = basket(rng, items.GetItems())
	}
	var placed, refused atomic.Int64
	var mu sync.Mutex
	var parcelIDs []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, h := range households[:cfg.Households] {
		g.Go(func() error {
			resident := c.as(gctx, typesv1.Role_ROLE_RESIDENT, h.GetHouseholdId(), cfg.Compound)
			resp, err := c.Order.PlaceOrder(resident, &orderv1.PlaceOrderRequest{
				RequestId: fmt.Sprintf("demo-%s-%d", run, i), HouseholdId: h.GetHouseholdId(), Lines: baskets[i],
				Channel: orderv1.Channel_CHANNEL_APP})
			if status.Code(err) == codes.FailedPrecondition {
				refused.Add(1)
				return nil
			}
			if err != nil {
				return fmt.Errorf("order for %s: %w", h.GetHouseholdId(), err)
			}
			placed.Add(1)
			mu.Lock()
			defer mu.Unlock()
			if rep.SampleOrderID == "" {
				rep.SampleOrderID = resp.GetOrder().GetOrderId()
			}
			for _, p := range resp.GetOrder().GetParcels() {
				parcelIDs = append(parcelIDs, p.GetParcelId())
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	rep.Orders, rep.OrdersRefused, rep.Parcels = int(placed.Load()), int(refused.Load()), len(parcelIDs)

	cfg.Log.Info("suppliers confirming and packing", "parcels", len(parcelIDs))
	ready, err := supplierDecisions(ctx, c, cfg, rng, parcelIDs, &rep)
	if err != nil {
		return rep, err
	}
	if err := waitParcels(ctx, c, ready, typesv1.ParcelState_PARCEL_STATE_READY); err != nil {
		return rep, err
	}

	// Half the parcels reach the gate for the first round; the rest arrive after it is planned
	// and go into the next round, together with the first round's failures.
	half := len(ready) / 2
	outcome := map[string]bool{} // parcel -> delivered; a later round's outcome overrides an earlier failure
	for _, batch := range [][]string{ready[:half], ready[half:]} {
		if len(batch) == 0 {
			continue
		}
		rd, d, f, err := round(ctx, c, cfg, rng, batch, run)
		if err != nil {
			return rep, err
		}
		rep.Rounds = append(rep.Rounds, rd)
		for _, id := range f {
			outcome[id] = false
		}
		for _, id := range d {
			outcome[id] = true
		}
	}
	var delivered, failed []string
	for id, ok := range outcome {
		if ok {
			delivered = append(delivered, id)
		} else {
			failed = append(failed, id)
		}
	}
	if err := waitParcels(ctx, c, delivered, typesv1.ParcelState_PARCEL_STATE_DELIVERED); err != nil {
		return rep, err
	}
	// A failed parcel waits at the gate for the next round (or is already on its next route).
	if err := waitParcels(ctx, c, failed, typesv1.ParcelState_PARCEL_STATE_FAILED, typesv1.ParcelState_PARCEL_STATE_ASSIGNED); err != nil {
		return rep, err
	}
	rep.Delivered, rep.Failed = len(delivered), len(failed)
	rep.Took = time.Since(start)
	return rep, nil
}

func occupiedHouseholds(ctx context.Context, c Clients, compound string) ([]*orderv1.Household, error) {
	var out []*orderv1.Household
	token := ""
	for {
		resp, err := c.Order.ListHouseholds(c.worker(ctx, compound), &orderv1.ListHouseholdsRequest{Compound: compound, PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("roster: %w", err)
		}
		for _, h := range resp.GetHouseholds() {
			if h.GetOccupied() {
				out = append(out, h)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// basket picks one to four distinct items; weighed goods by the half kilogram, rationed goods
// within the ration.
func basket(rng *rand.Rand, items []*supplierv1.Item) []*orderv1.BasketLine {
	n := 1 + rng.IntN(4)
	picked := map[string]bool{}
	var lines []*orderv1.BasketLine
	for len(lines) < n {
		it := items[rng.IntN(len(items))]
		if picked[it.GetItemId()] {
			continue
		}
		picked[it.GetItemId()] = true
		q := int64(1 + rng.IntN(2))
		if it.GetWeighed() {
			q = int64(500 * (1 + rng.IntN(3)))
		}
		if r := it.GetRationPerDay(); r > 0 && q > r {
			q = r
		}
		lines = append(lines, &orderv1.BasketLine{ItemId: it.GetItemId(), Quantity: q})
	}
	return lines
}

// supplierDecisions confirms (weighing weighed lines within ±5 %) or rejects every parcel, then
// marks the confirmed ones ready at the gate. It returns the ready parcel ids.
func supplierDecisions(ctx context.Context, c Clients, cfg Config, rng *rand.Rand, parcelIDs []string, rep *Report) ([]string, error) {
	mine := map[string]bool{}
	for _, id := range parcelIDs {
		mine[id] = true
	}
	suppliers, err := c.Supplier.ListSuppliers(c.worker(ctx, cfg.Compound), &supplierv1.ListSuppliersRequest{Compound: cfg.Compound})
	if err != nil {
		return nil, err
	}
	var ready []string
	for _, s := range suppliers.GetSuppliers() {
		staff := func() context.Context { return c.supplierStaff(ctx, s.GetSupplierId()) }
		req := &supplierv1.ListParcelsRequest{SupplierId: s.GetSupplierId(), State: typesv1.ParcelState_PARCEL_STATE_PLACED}
		queue, err := grpcx.Pages(func(token string) ([]*supplierv1.SupplierParcel, string, error) {
			req.PageToken = token
			resp, err := c.Supplier.ListParcels(staff(), req)
			return resp.GetParcels(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range queue {
			if !mine[p.GetParcelId()] {
				continue
			}
			if rng.IntN(100) < cfg.RejectPercent {
				if _, err := c.Supplier.RejectParcel(staff(), &supplierv1.RejectParcelRequest{RequestId: "reject-" + p.GetParcelId(),
					SupplierId: s.GetSupplierId(), ParcelId: p.GetParcelId(), Reason: "缺货 sold out before packing"}); err != nil {
					return nil, fmt.Errorf("reject %s: %w", p.GetParcelId(), err)
				}
				rep.Rejected++
				continue
			}
			var lines []*supplierv1.ConfirmLine
			for _, l := range p.GetLines() {
				if l.GetWeighed() {
					actual := l.GetQuantity() * int64(95+rng.IntN(11)) / 100
					lines = append(lines, &supplierv1.ConfirmLine{ItemId: l.GetItemId(), Quantity: proto.Int64(actual)})
				}
			}
			if _, err := c.Supplier.ConfirmParcel(staff(), &supplierv1.ConfirmParcelRequest{RequestId: "confirm-" + p.GetParcelId(),
				SupplierId: s.GetSupplierId(), ParcelId: p.GetParcelId(), Lines: lines}); err != nil {
				return nil, fmt.Errorf("confirm %s: %w", p.GetParcelId(), err)
			}
			if _, err := c.Supplier.MarkParcelReady(staff(), &supplierv1.MarkParcelReadyRequest{RequestId: "ready-" + p.GetParcelId(),
				SupplierId: s.GetSupplierId(), ParcelId: p.GetParcelId()}); err != nil {
				return nil, fmt.Errorf("ready %s: %w", p.GetParcelId(), err)
			}
			rep.Confirmed++
			ready = append(ready, p.GetParcelId())
		}
	}
	slices.Sort(ready)
	return ready, nil
}

// round checks a batch in, plans the round it lands in and has every courier deliver their route.
func round(ctx context.Context, c Clients, cfg Config, rng *rand.Rand, batch []string, run string) (RoundReport, []string, []string, error) {
	var rd RoundReport
	in, err := c.Dispatch.CheckInParcels(c.dispatcher(ctx, cfg.Compound), &dispatchv1.CheckInParcelsRequest{RequestId: "checkin-" + run + "-" + batch[0],
		Compound: cfg.Compound, ParcelIds: batch})
	if err != nil {
		return rd, nil, nil, fmt.Errorf("check-in: %w", err)
	}
	for _, r := range in.GetResults() {
		if !r.GetCheckedIn() {
			return rd, nil, nil, fmt.Errorf("check-in of %s refused: %s", r.GetParcelId(), r.GetError())
		}
		rd.RoundID = r.GetRoundId()
	}
	cfg.Log.Info("dispatcher planning", "round", rd.RoundID, "parcels", len(batch))
	plan, err := c.Dispatch.PlanRound(c.dispatcher(ctx, cfg.Compound), &dispatchv1.PlanRoundRequest{RequestId: "plan-" + rd.RoundID, RoundId: rd.RoundID})
	if err != nil {
		return rd, nil, nil, fmt.Errorf("plan %s: %w", rd.RoundID, err)
	}
	rd.Routes, rd.Cost, rd.LowerBound = len(plan.GetRoutes()), plan.GetCost(), plan.GetLowerBound()

	var mu sync.Mutex
	var delivered, failed []string
	failures := map[string]bool{}
	for _, r := range plan.GetRoutes() {
		for _, s := range r.GetStops() {
			for _, p := range s.GetParcelIds() {
				rd.Parcels++
				failures[p] = rng.IntN(100) < cfg.FailPercent
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range plan.GetRoutes() {
		g.Go(func() error {
			d, f, err := deliverRoute(gctx, c, r, failures)
			mu.Lock()
			defer mu.Unlock()
			delivered, failed = append(delivered, d...), append(failed, f...)
			return err
		})
	}
	return rd, delivered, failed, g.Wait()
}

func deliverRoute(ctx context.Context, c Clients, r *dispatchv1.Route, failures map[string]bool) (delivered, failed []string, err error) {
	var route *courierv1.CourierRoute
	// The courier service learns the route from the route.planned event.
	err = poll(ctx, func() (bool, error) {
		resp, err := c.Courier.GetRoute(c.courier(ctx, r.GetCourierId()), &courierv1.GetRouteRequest{CourierId: r.GetCourierId(), RoundId: r.GetRoundId()})
		if status.Code(err) == codes.NotFound {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		route = resp.GetRoute()
		return route.GetRouteId() == r.GetRouteId(), nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("route %s never reached courier %s: %w", r.GetRouteId(), r.GetCourierId(), err)
	}
	if _, err := c.Courier.PickUp(c.courier(ctx, r.GetCourierId()), &courierv1.PickUpRequest{RequestId: "pickup-" + r.GetRouteId(),
		CourierId: r.GetCourierId(), RouteId: r.GetRouteId()}); err != nil {
		return nil, nil, fmt.Errorf("pick-up %s: %w", r.GetRouteId(), err)
	}
	for _, s := range route.GetStops() {
		for _, p := range s.GetParcels() {
			id := p.GetParcelId()
			if failures[id] {
				if _, err := c.Courier.MarkFailed(c.courier(ctx, r.GetCourierId()), &courierv1.MarkFailedRequest{RequestId: "fail-" + r.GetRouteId() + id,
					CourierId: r.GetCourierId(), ParcelId: id, Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME}); err != nil {
					return delivered, failed, fmt.Errorf("fail %s: %w", id, err)
				}
				failed = append(failed, id)
				continue
			}
			method := courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER
			if s.GetContactless() {
				method = courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR
			}
			if _, err := c.Courier.MarkDelivered(c.courier(ctx, r.GetCourierId()), &courierv1.MarkDeliveredRequest{RequestId: "deliver-" + r.GetRouteId() + id,
				CourierId: r.GetCourierId(), ParcelId: id, Method: method}); err != nil {
				return delivered, failed, fmt.Errorf("deliver %s: %w", id, err)
			}
			delivered = append(delivered, id)
		}
	}
	return delivered, failed, nil
}

// waitParcels waits until the order service shows every parcel in one of the states.
func waitParcels(ctx context.Context, c Clients, ids []string, states ...typesv1.ParcelState) error {
	pending := slices.Clone(ids)
	return poll(ctx, func() (bool, error) {
		var still []string
		for _, id := range pending {
			resp, err := c.Order.GetParcel(c.as(ctx, typesv1.Role_ROLE_DISPATCHER, "demo", ""), &orderv1.GetParcelRequest{ParcelId: id})
			if err != nil {
				return false, err
			}
			if !slices.Contains(states, resp.GetParcel().GetState()) {
				still = append(still, id)
			}
		}
		pending = still
		return len(pending) == 0, nil
	})
}

// poll retries cond every 50ms for up to a minute.
func poll(ctx context.Context, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
