package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The gateway's peers are faked as real gRPC servers on 127.0.0.1:0: small, in memory, and
// behaving as the contract says (field violations, idempotency, NOT_FOUND, FAILED_PRECONDITION),
// so the gateway is tested through the same wire it uses in production.

// Order ids the fakes treat specially.
const (
	slowOrderID   = "019a0000-0000-7000-8000-00000000510w" // blocks until the caller's deadline
	brokenOrderID = "019a0000-0000-7000-8000-0000000b0c0e" // fails with an internal error
)

var placedAt = time.Date(2022, 4, 10, 1, 30, 0, 0, time.UTC)

// calls records what the gateway sent, for assertions about mapping and deadlines.
type calls struct {
	mu         sync.Mutex
	deadlines  map[string]time.Duration // method -> time left when the call arrived
	identities map[string]auth.Identity // method -> who the gateway said was calling
	last       map[string]proto.Message // method -> the last request
	place      []*orderv1.PlaceOrderRequest
	cancel     []*orderv1.CancelOrderRequest
}

func (c *calls) record(ctx context.Context, method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	c.deadlines[method] = left
}

type fakeOrder struct {
	orderv1.UnimplementedOrderServiceServer
	calls    *calls
	mu       sync.Mutex
	orders   map[string]*orderv1.Order
	requests map[string]*orderv1.PlaceOrderRequest // request id -> first request
	byReq    map[string]string                     // request id -> order id
	nextID   int

	// Campaigns and notices (fakes_campaigns_test.go), under mu.
	campaigns    map[string]*orderv1.Campaign
	rosters      map[string][]*orderv1.RosterEntry // campaign id -> roster, once launched
	notices      []*orderv1.Notice                 // oldest first
	firstRequest map[string]proto.Message          // method + request id -> the first request
	answers      map[string]proto.Message          // method + request id -> the first answer

	// supplier is where the campaign packs a worker handed over wait (ListParcelsToCheckIn).
	supplier *fakeSupplier
}

func (f *fakeOrder) PlaceOrder(ctx context.Context, req *orderv1.PlaceOrderRequest) (*orderv1.PlaceOrderResponse, error) {
	f.calls.record(ctx, "PlaceOrder")
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	v.Required(req.GetHouseholdId(), "household_id")
	v.Check(len(req.GetLines()) > 0, "lines", "must hold at least one line")
	for i, l := range req.GetLines() {
		v.Required(l.GetItemId(), fmt.Sprintf("lines[%d].item_id", i))
		v.Check(l.GetQuantity() > 0, fmt.Sprintf("lines[%d].quantity", i), "must be positive")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.mu.Lock()
	f.calls.place = append(f.calls.place, req)
	f.calls.mu.Unlock()
	if first, ok := f.requests[req.GetRequestId()]; ok {
		if !proto.Equal(first, req) {
			return nil, status.Error(codes.AlreadyExists, "request_id "+req.GetRequestId()+" was used for another order")
		}
		return &orderv1.PlaceOrderResponse{Order: f.orders[f.byReq[req.GetRequestId()]]}, nil
	}
	parcel := &orderv1.Parcel{SupplierId: "haixin-freshmart", HouseholdId: req.GetHouseholdId(),
		State: typesv1.ParcelState_PARCEL_STATE_PLACED, UpdatedAt: timestamppb.New(placedAt)}
	for _, l := range req.GetLines() {
		it, ok := catalogItems[l.GetItemId()]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "item %s not found", l.GetItemId())
		}
		if l.GetQuantity() > it.GetStock() {
			return nil, status.Errorf(codes.FailedPrecondition, "out of stock: %s (%d left)", it.GetName(), it.GetStock())
		}
		amount := it.GetCurrentPriceFen() * l.GetQuantity()
		if it.GetWeighed() {
			amount = (it.GetCurrentPriceFen()*l.GetQuantity() + 500) / 1000
		}
		parcel.Lines = append(parcel.Lines, &orderv1.OrderLine{ItemId: it.GetItemId(), Name: it.GetName(), Unit: it.GetUnit(),
			Weighed: it.GetWeighed(), Quantity: l.GetQuantity(), UnitPriceFen: it.GetCurrentPriceFen(), AmountFen: amount})
		parcel.TotalFen += amount
	}
	f.nextID++
	id := fmt.Sprintf("019a0000-0000-7000-8000-%012d", f.nextID)
	parcel.ParcelId = fmt.Sprintf("019a0000-0000-7000-9000-%012d", f.nextID)
	parcel.OrderId = id
	o := &orderv1.Order{OrderId: id, HouseholdId: req.GetHouseholdId(), Status: orderv1.OrderStatus_ORDER_STATUS_PLACED,
		Parcels: []*orderv1.Parcel{parcel}, TotalFen: parcel.GetTotalFen(), Channel: req.GetChannel(),
		PlacedBy: req.GetPlacedBy(), PlacedAt: timestamppb.New(placedAt)}
	f.orders[id] = o
	f.requests[req.GetRequestId()] = req
	f.byReq[req.GetRequestId()] = id
	return &orderv1.PlaceOrderResponse{Order: o}, nil
}

func (f *fakeOrder) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	f.calls.record(ctx, "GetOrder")
	switch req.GetOrderId() {
	case slowOrderID:
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case brokenOrderID:
		return nil, status.Error(codes.Internal, "pq: connection to 10.0.0.7 refused (secret detail)")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orders[req.GetOrderId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "order %s not found", req.GetOrderId())
	}
	return &orderv1.GetOrderResponse{Order: o}, nil
}

func (f *fakeOrder) ListOrders(ctx context.Context, req *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	f.calls.record(ctx, "ListOrders")
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &orderv1.ListOrdersResponse{}
	for i := f.nextID; i > 0; i-- { // newest first
		if o := f.orders[fmt.Sprintf("019a0000-0000-7000-8000-%012d", i)]; o != nil && o.GetHouseholdId() == req.GetHouseholdId() {
			resp.Orders = append(resp.Orders, o)
		}
	}
	return resp, nil
}

func (f *fakeOrder) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.CancelOrderResponse, error) {
	f.calls.record(ctx, "CancelOrder")
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls.mu.Lock()
	f.calls.cancel = append(f.calls.cancel, req)
	f.calls.mu.Unlock()
	o, ok := f.orders[req.GetOrderId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "order %s not found", req.GetOrderId())
	}
	for _, p := range o.GetParcels() {
		if p.GetState() != typesv1.ParcelState_PARCEL_STATE_PLACED && p.GetState() != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
			return nil, status.Errorf(codes.FailedPrecondition, "parcel %s is %s: the supplier has confirmed it", p.GetParcelId(), p.GetState())
		}
	}
	for _, p := range o.GetParcels() {
		p.State, p.Reason = typesv1.ParcelState_PARCEL_STATE_CANCELLED, req.GetReason()
	}
	o.Status = orderv1.OrderStatus_ORDER_STATUS_CLOSED
	return &orderv1.CancelOrderResponse{Order: o}, nil
}

// confirm moves an order's parcels on, as the supplier would.
func (f *fakeOrder) confirm(orderID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.orders[orderID].GetParcels() {
		p.State = typesv1.ParcelState_PARCEL_STATE_CONFIRMED
	}
	f.orders[orderID].Status = orderv1.OrderStatus_ORDER_STATUS_IN_PROGRESS
}

var (
	catalogSuppliers = []*supplierv1.Supplier{
		{SupplierId: "haixin-freshmart", Compound: "haixin", Name: "鲜丰超市 FreshMart", Kind: "supermarket"},
		{SupplierId: "haixin-pharmacy", Compound: "haixin", Name: "益民药房 Yimin Pharmacy", Kind: "pharmacy"},
		// The community's donated stock: only workers see it, for campaign packs.
		{SupplierId: "haixin-donations", Compound: "haixin", Name: "社区捐赠 Donations", Kind: "donations"},
	}
	catalogItems = map[string]*supplierv1.Item{
		"cabbage": {ItemId: "cabbage", SupplierId: "haixin-freshmart", Name: "大白菜 Napa cabbage", Unit: "kg", Weighed: true,
			ReferencePriceFen: 400, CurrentPriceFen: 350, Stock: 200000, UnitWeightGrams: 1000, Category: "vegetables"},
		"veg-pack": {ItemId: "veg-pack", SupplierId: "haixin-freshmart", Name: "蔬菜套餐 Vegetable pack", Unit: "bag",
			ReferencePriceFen: 5000, CurrentPriceFen: 4800, Stock: 40, Bundle: true, BundleContents: "白菜 1 kg, 土豆 1 kg, 胡萝卜 500 g",
			UnitWeightGrams: 2500},
		"masks": {ItemId: "masks", SupplierId: "haixin-pharmacy", Name: "口罩 Masks (10)", Unit: "box",
			ReferencePriceFen: 2000, CurrentPriceFen: 2000, Stock: 3, RationPerDay: 2, UnitWeightGrams: 100},
		"donated-84": {ItemId: "donated-84", SupplierId: "haixin-donations", Name: "84消毒液 84 disinfectant (donated)", Unit: "bottle",
			Stock: 900, UnitWeightGrams: 1100},
	}
	catalogOrder = []string{"cabbage", "veg-pack", "masks", "donated-84"}
)

type fakeSupplier struct {
	supplierv1.UnimplementedSupplierServiceServer
	calls *calls

	// Campaign packs at the supplier (fakes_campaigns_test.go), under mu.
	mu          sync.Mutex
	packs       map[string]*supplierv1.SupplierParcel // parcel id -> pack
	readyByReq  map[string]string                     // MarkParcelReady request id -> parcel id
	inFlight    int                                   // MarkParcelReady calls of packs running now
	maxInFlight int
	refuseReady bool // MarkParcelReady refuses the caller, as for a worker at a supermarket
}

func (f *fakeSupplier) ListSuppliers(ctx context.Context, req *supplierv1.ListSuppliersRequest) (*supplierv1.ListSuppliersResponse, error) {
	f.calls.record(ctx, "ListSuppliers")
	if req.GetCompound() != "haixin" {
		return &supplierv1.ListSuppliersResponse{}, nil
	}
	return &supplierv1.ListSuppliersResponse{Suppliers: catalogSuppliers}, nil
}

func (f *fakeSupplier) ListItems(ctx context.Context, req *supplierv1.ListItemsRequest) (*supplierv1.ListItemsResponse, error) {
	f.calls.keep(ctx, "ListItems", req)
	if req.GetCompound() != "haixin" {
		return &supplierv1.ListItemsResponse{}, nil
	}
	resp := &supplierv1.ListItemsResponse{}
	for _, id := range catalogOrder {
		resp.Items = append(resp.Items, catalogItems[id])
	}
	return resp, nil
}

type fakeTracking struct {
	trackingv1.UnimplementedTrackingServiceServer
	calls  *calls
	orders *fakeOrder

	mu       sync.Mutex
	watchers map[string][]chan *trackingv1.TimelineEntry // order id -> open watches
	lag      map[string]int                              // order id -> watches to answer NOT_FOUND, as tracking catching up
	// leakBuildings makes ListNotices ignore the building asked for, as a faulty read model might.
	leakBuildings bool
}

// WatchOrder sends the timeline so far, then whatever push sends for the order.
func (f *fakeTracking) WatchOrder(req *trackingv1.WatchOrderRequest, stream trackingv1.TrackingService_WatchOrderServer) error {
	f.calls.record(stream.Context(), "WatchOrder")
	f.mu.Lock()
	if f.lag[req.GetOrderId()] > 0 {
		f.lag[req.GetOrderId()]--
		f.mu.Unlock()
		return status.Errorf(codes.NotFound, "order %s not found", req.GetOrderId())
	}
	f.mu.Unlock()
	tl, err := f.GetOrderTimeline(stream.Context(), &trackingv1.GetOrderTimelineRequest{OrderId: req.GetOrderId()})
	if err != nil {
		return err
	}
	ch := make(chan *trackingv1.TimelineEntry, 16)
	f.mu.Lock()
	f.watchers[req.GetOrderId()] = append(f.watchers[req.GetOrderId()], ch)
	f.mu.Unlock()
	for _, e := range tl.GetEntries() {
		if err := stream.Send(&trackingv1.WatchOrderResponse{Entry: e}); err != nil {
			return err
		}
	}
	for {
		select {
		case e := <-ch:
			if err := stream.Send(&trackingv1.WatchOrderResponse{Entry: e}); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

// push sends an entry to the order's open watches and reports how many there were.
func (f *fakeTracking) push(orderID string, e *trackingv1.TimelineEntry) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.watchers[orderID] {
		ch <- e
	}
	return len(f.watchers[orderID])
}

// WatchRound sends one progress report and ends: enough to see the relay work.
func (f *fakeTracking) WatchRound(req *trackingv1.WatchRoundRequest, stream trackingv1.TrackingService_WatchRoundServer) error {
	f.calls.record(stream.Context(), "WatchRound")
	if req.GetRoundId() != "haixin-2022-04-10-am" {
		return status.Errorf(codes.NotFound, "round %s not found", req.GetRoundId())
	}
	return stream.Send(&trackingv1.WatchRoundResponse{Progress: &trackingv1.RoundProgress{RoundId: req.GetRoundId(),
		Total:     &trackingv1.Progress{Parcels: 3, Delivered: 1, OutForDelivery: 2},
		Buildings: []*trackingv1.BuildingProgress{{Building: "3", Progress: &trackingv1.Progress{Parcels: 3, Delivered: 1, OutForDelivery: 2}}},
		Couriers:  []*trackingv1.CourierProgress{{CourierId: "haixin-courier-02", Progress: &trackingv1.Progress{Parcels: 3, Delivered: 1}}}}})
}

// GetOrderTimeline answers for every order the fake order service knows: placed, then each
// parcel's current state.
func (f *fakeTracking) GetOrderTimeline(ctx context.Context, req *trackingv1.GetOrderTimelineRequest) (*trackingv1.GetOrderTimelineResponse, error) {
	f.calls.record(ctx, "GetOrderTimeline")
	if req.GetOrderId() == "" {
		return nil, grpcx.InvalidField("order_id", "is required")
	}
	f.orders.mu.Lock()
	defer f.orders.mu.Unlock()
	o, ok := f.orders.orders[req.GetOrderId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no timeline for order %s", req.GetOrderId())
	}
	resp := &trackingv1.GetOrderTimelineResponse{OrderId: o.GetOrderId(), Entries: []*trackingv1.TimelineEntry{{
		EventId: "019a0000-0000-7000-a000-000000000001", OccurredAt: timestamppb.New(placedAt), Kind: "order.placed",
		Actor: o.GetPlacedBy(), Detail: "1 parcel, total ¥1.75, via app",
	}}}
	for _, p := range o.GetParcels() {
		resp.Entries = append(resp.Entries, &trackingv1.TimelineEntry{
			EventId: "019a0000-0000-7000-a000-000000000002", OccurredAt: timestamppb.New(placedAt.Add(time.Minute)),
			Kind: "parcel.placed", ParcelId: p.GetParcelId(), State: typesv1.ParcelState_PARCEL_STATE_PLACED,
			Actor: o.GetPlacedBy(),
		})
	}
	return resp, nil
}

type peers struct {
	calls                                                            *calls
	order                                                            *fakeOrder
	supplier                                                         *fakeSupplier
	tracking                                                         *fakeTracking
	orderAddr, supplierAddr, trackingAddr, dispatchAddr, courierAddr string
}

// identity is what the real services do first: verify the signed identity of every call. The
// fakes refuse calls without one and record who called, so tests can see what was passed on.
func (c *calls) identity(keys *auth.Keys) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context, method string) error {
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get(auth.MetadataKey)
		if len(vals) != 1 {
			return status.Error(codes.Unauthenticated, "no identity")
		}
		id, err := keys.Verify(vals[0])
		if err != nil {
			return status.Error(codes.Unauthenticated, err.Error())
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.identities[method[strings.LastIndex(method, "/")+1:]] = id
		return nil
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}, func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}
}

// startPeers serves the fakes on their own 127.0.0.1:0 listeners.
func startPeers(t *testing.T) *peers {
	t.Helper()
	c := &calls{deadlines: map[string]time.Duration{}, identities: map[string]auth.Identity{}, last: map[string]proto.Message{}}
	keys, err := auth.NewKeys(testkit.AuthKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	unary, stream := c.identity(keys)
	order := &fakeOrder{calls: c, orders: map[string]*orderv1.Order{}, requests: map[string]*orderv1.PlaceOrderRequest{}, byReq: map[string]string{},
		campaigns: map[string]*orderv1.Campaign{otherCompoundCampaign.GetCampaignId(): otherCompoundCampaign},
		rosters:   map[string][]*orderv1.RosterEntry{}, firstRequest: map[string]proto.Message{}, answers: map[string]proto.Message{}}
	supplier := &fakeSupplier{calls: c, packs: map[string]*supplierv1.SupplierParcel{}, readyByReq: map[string]string{}}
	order.supplier = supplier
	serve := func(register func(*grpc.Server)) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer(grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
		register(s)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		return lis.Addr().String()
	}
	tracking := &fakeTracking{calls: c, orders: order, watchers: map[string][]chan *trackingv1.TimelineEntry{}, lag: map[string]int{}}
	return &peers{
		calls:     c,
		order:     order,
		supplier:  supplier,
		tracking:  tracking,
		orderAddr: serve(func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, order) }),
		supplierAddr: serve(func(s *grpc.Server) {
			supplierv1.RegisterSupplierServiceServer(s, supplier)
		}),
		trackingAddr: serve(func(s *grpc.Server) {
			trackingv1.RegisterTrackingServiceServer(s, tracking)
		}),
		dispatchAddr: serve(func(s *grpc.Server) { dispatchv1.RegisterDispatchServiceServer(s, &fakeDispatch{calls: c}) }),
		courierAddr:  serve(func(s *grpc.Server) { courierv1.RegisterCourierServiceServer(s, &fakeCourier{calls: c}) }),
	}
}
