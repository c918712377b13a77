package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/devstack/demo"
	"github.com/doorstep/doorstep/services/devstack/seed"
	"github.com/doorstep/doorstep/services/devstack/stack"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type clients struct {
	order    orderv1.OrderServiceClient
	supplier supplierv1.SupplierServiceClient
	dispatch dispatchv1.DispatchServiceClient
	courier  courierv1.CourierServiceClient
	tracking trackingv1.TrackingServiceClient
	keys     *auth.Keys
}

// as is ctx carrying the signed identity of a person of the demo compound.
func (c clients) as(t *testing.T, role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
	t.Helper()
	id := auth.Identity{Role: role, Subject: subject, Compound: "haixin"}
	for _, o := range opts {
		o(&id)
	}
	ctx, err := c.keys.Outgoing(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func (c clients) supplierStaff(t *testing.T, supplierID string) context.Context {
	return c.as(t, typesv1.Role_ROLE_SUPPLIER, supplierID+".staff", func(i *auth.Identity) { i.SupplierID = supplierID; i.Compound = "" })
}

func startStack(t *testing.T) (*stack.Stack, clients) {
	t.Helper()
	return startStackAt(t, nil)
}

// startStackAt starts and seeds the stack on the clock now (nil is the real clock), which the
// seed and the identities the clients mint keep too.
func startStackAt(t *testing.T, now func() time.Time) (*stack.Stack, clients) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := stack.Start(ctx, stack.Options{DataDir: t.TempDir(), DatabaseURL: testkit.Postgres(t), Log: log, Now: now})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(s.Stop)
	keys, err := auth.NewKeys([]byte(s.AuthKey), now)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr string, opts ...grpc.DialOption) *grpc.ClientConn {
		conn, err := grpcx.Dial(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	c := clients{
		order:    orderv1.NewOrderServiceClient(dial(s.Order)),
		supplier: supplierv1.NewSupplierServiceClient(dial(s.Supplier)),
		dispatch: dispatchv1.NewDispatchServiceClient(dial(s.Dispatch)),
		courier:  courierv1.NewCourierServiceClient(dial(s.Courier)),
		tracking: trackingv1.NewTrackingServiceClient(dial(s.Tracking)),
		keys:     keys,
	}
	seedAs := keys.DialOption("seed")
	sum, err := seed.Run(ctx, seed.Clients{Order: orderv1.NewOrderServiceClient(dial(s.Order, seedAs)),
		Supplier: supplierv1.NewSupplierServiceClient(dial(s.Supplier, seedAs)), Dispatch: dispatchv1.NewDispatchServiceClient(dial(s.Dispatch, seedAs)),
		Now: now})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if sum.Households < 1000 || sum.Items < 30 || sum.Buildings < 10 {
		t.Fatalf("seed too small: %+v", sum)
	}
	return s, c
}

// TestBasketToDoor carries one two-supplier basket from the gateway's HTTP API to DELIVERED.
func TestBasketToDoor(t *testing.T) {
	s, c := startStack(t)
	ctx := context.Background()

	// The household signs in with the code a worker printed for it.
	store, err := accounts.Open(ctx, s.DatabaseURL, accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, err := seed.Accounts(ctx, store)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second} // the resident's phone
	if st := call(t, hc, http.MethodPost, "http://"+s.Gateway+"/api/v1/session/code", `{"code":"`+code.Code+`"}`, nil); st != http.StatusOK {
		t.Fatalf("sign in with the household's code: HTTP %d", st)
	}

	stockBefore := stock(t, c)
	// Rice and weighed cabbage from FreshMart, N95 masks from the pharmacy.
	body := `{"request_id":"e2e-1","lines":[` +
		`{"item_id":"fm-rice-5kg","quantity":2},{"item_id":"fm-cabbage","quantity":1000},{"item_id":"ph-masks-n95","quantity":1}]}`
	var placed apiOrder
	if code := call(t, hc, http.MethodPost, "http://"+s.Gateway+"/api/v1/orders", body, &placed); code != http.StatusCreated {
		t.Fatalf("place order: HTTP %d", code)
	}
	if len(placed.Parcels) != 2 {
		t.Fatalf("want one parcel per supplier (2), got %d", len(placed.Parcels))
	}
	// A retry of the same request returns the same order.
	var again apiOrder
	call(t, hc, http.MethodPost, "http://"+s.Gateway+"/api/v1/orders", body, &again)
	if again.OrderID != placed.OrderID {
		t.Fatalf("retry created another order: %s then %s", placed.OrderID, again.OrderID)
	}

	bySupplier := map[string]string{}
	for _, p := range placed.Parcels {
		bySupplier[p.SupplierID] = p.ParcelID
	}
	fm, ph := bySupplier["haixin-freshmart"], bySupplier["haixin-pharmacy"]
	if fm == "" || ph == "" {
		t.Fatalf("parcels by supplier: %v", bySupplier)
	}

	// Suppliers confirm (FreshMart weighs 1,040 g of cabbage) and hand over at the gate.
	mustOK(t)(c.supplier.ConfirmParcel(c.supplierStaff(t, "haixin-freshmart"), &supplierv1.ConfirmParcelRequest{RequestId: "e2e-c1", SupplierId: "haixin-freshmart", ParcelId: fm,
		Lines: []*supplierv1.ConfirmLine{{ItemId: "fm-cabbage", Quantity: proto.Int64(1040)}}}))
	mustOK(t)(c.supplier.ConfirmParcel(c.supplierStaff(t, "haixin-pharmacy"), &supplierv1.ConfirmParcelRequest{RequestId: "e2e-c2", SupplierId: "haixin-pharmacy", ParcelId: ph}))
	mustOK(t)(c.supplier.MarkParcelReady(c.supplierStaff(t, "haixin-freshmart"), &supplierv1.MarkParcelReadyRequest{RequestId: "e2e-r1", SupplierId: "haixin-freshmart", ParcelId: fm}))
	mustOK(t)(c.supplier.MarkParcelReady(c.supplierStaff(t, "haixin-pharmacy"), &supplierv1.MarkParcelReadyRequest{RequestId: "e2e-r2", SupplierId: "haixin-pharmacy", ParcelId: ph}))
	waitOrder(t, hc, s, placed.OrderID, "READY")

	// The dispatcher checks both in and plans the round.
	dispatcher := c.as(t, typesv1.Role_ROLE_DISPATCHER, "dispatcher.haixin")
	in, err := c.dispatch.CheckInParcels(dispatcher, &dispatchv1.CheckInParcelsRequest{RequestId: "e2e-in", Compound: "haixin", ParcelIds: []string{fm, ph}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range in.GetResults() {
		if !r.GetCheckedIn() {
			t.Fatalf("check-in %s: %s", r.GetParcelId(), r.GetError())
		}
	}
	plan, err := c.dispatch.PlanRound(dispatcher, &dispatchv1.PlanRoundRequest{RequestId: "e2e-plan", RoundId: in.GetResults()[0].GetRoundId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.GetRoutes()) != 1 {
		t.Fatalf("two parcels for one door should make one route, got %d", len(plan.GetRoutes()))
	}
	route := plan.GetRoutes()[0]
	if route.GetCourierId() != "haixin-courier-02" { // buildings 3 and 4
		t.Fatalf("building 3 is served by haixin-courier-02, planned for %s", route.GetCourierId())
	}

	// The courier sees the route, picks up at the gate and delivers.
	testkit.Eventually(t, 15*time.Second, func() error {
		_, err := c.courier.GetRoute(c.as(t, typesv1.Role_ROLE_COURIER, route.GetCourierId()), &courierv1.GetRouteRequest{CourierId: route.GetCourierId(), RoundId: route.GetRoundId()})
		return err
	})
	mustOK(t)(c.courier.PickUp(c.as(t, typesv1.Role_ROLE_COURIER, route.GetCourierId()), &courierv1.PickUpRequest{RequestId: "e2e-pick", CourierId: route.GetCourierId(), RouteId: route.GetRouteId()}))
	for i, p := range []string{fm, ph} {
		mustOK(t)(c.courier.MarkDelivered(c.as(t, typesv1.Role_ROLE_COURIER, route.GetCourierId()), &courierv1.MarkDeliveredRequest{RequestId: fmt.Sprint("e2e-d", i), CourierId: route.GetCourierId(),
			ParcelId: p, Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER}))
	}
	final := waitOrder(t, hc, s, placed.OrderID, "DELIVERED")
	if !strings.HasSuffix(final.Status, "DELIVERED") {
		t.Errorf("order status %s, want DELIVERED", final.Status)
	}

	// Stock left at the suppliers: exactly what was delivered, the cabbage by its actual weight.
	after := stock(t, c)
	for item, want := range map[string]int64{"fm-rice-5kg": 2, "fm-cabbage": 1040, "ph-masks-n95": 1} {
		if got := stockBefore[item] - after[item]; got != want {
			t.Errorf("%s: stock went down by %d, want %d", item, got, want)
		}
	}

	// The timeline lists every step in order, for each parcel.
	var tl struct {
		Entries []struct {
			Kind     string `json:"kind"`
			ParcelID string `json:"parcel_id"`
		} `json:"entries"`
	}
	wantSteps := []string{"parcel.placed", "parcel.confirmed", "parcel.ready", "parcel.at_gate", "parcel.assigned", "parcel.out_for_delivery", "parcel.delivered"}
	testkit.Eventually(t, 15*time.Second, func() error {
		if code := call(t, hc, http.MethodGet, "http://"+s.Gateway+"/api/v1/orders/"+placed.OrderID+"/timeline", "", &tl); code != http.StatusOK {
			return fmt.Errorf("timeline: HTTP %d", code)
		}
		if len(tl.Entries) == 0 || tl.Entries[0].Kind != "order.placed" {
			return fmt.Errorf("timeline should start with order.placed: %+v", tl.Entries)
		}
		for _, p := range []string{fm, ph} {
			var steps []string
			for _, e := range tl.Entries {
				if e.ParcelID == p {
					steps = append(steps, e.Kind)
				}
			}
			if !slices.Equal(steps, wantSteps) {
				return fmt.Errorf("parcel %s timeline %v, want %v", p, steps, wantSteps)
			}
		}
		return nil
	})

	// Every event is on the stream once, with its id as Nats-Msg-Id.
	assertStreamEvents(t, s, placed.OrderID, 1+2*len(wantSteps))
}

// TestDemoDay runs `make demo`'s simulation on a smaller day.
func TestDemoDay(t *testing.T) {
	_, c := startStack(t)
	rep, err := demo.Run(context.Background(), demo.Clients{Order: c.order, Supplier: c.supplier, Dispatch: c.dispatch, Courier: c.courier, Keys: c.keys},
		demo.Config{Compound: "haixin", Households: 60, FailPercent: 10, RejectPercent: 5, Seed: 7})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, rep)
	}
	t.Logf("\n%s", rep)
	if rep.Orders == 0 || len(rep.Rounds) != 2 {
		t.Fatalf("demo placed %d orders over %d rounds", rep.Orders, len(rep.Rounds))
	}
	if rep.Delivered+rep.Failed != rep.Confirmed {
		t.Fatalf("delivered %d + failed %d != confirmed %d", rep.Delivered, rep.Failed, rep.Confirmed)
	}
}

type apiOrder struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Parcels []struct {
		ParcelID   string `json:"parcel_id"`
		SupplierID string `json:"supplier_id"`
		State      string `json:"state"`
	} `json:"parcels"`
}

func waitOrder(t *testing.T, hc *http.Client, s *stack.Stack, orderID, state string) apiOrder {
	t.Helper()
	var o apiOrder
	testkit.Eventually(t, 15*time.Second, func() error {
		o = apiOrder{}
		if code := call(t, hc, http.MethodGet, "http://"+s.Gateway+"/api/v1/orders/"+orderID, "", &o); code != http.StatusOK {
			return fmt.Errorf("get order: HTTP %d", code)
		}
		for _, p := range o.Parcels {
			if !strings.HasSuffix(p.State, state) {
				return fmt.Errorf("parcel %s is %s, waiting for %s", p.ParcelID, p.State, state)
			}
		}
		return nil
	})
	return o
}

func stock(t *testing.T, c clients) map[string]int64 {
	t.Helper()
	resp, err := c.supplier.ListItems(c.as(t, typesv1.Role_ROLE_WORKER, "worker.haixin"), &supplierv1.ListItemsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, it := range resp.GetItems() {
		out[it.GetItemId()] = it.GetStock()
	}
	return out
}

// assertStreamEvents reads the order's events back from JetStream and checks each carries its
// event id as Nats-Msg-Id, with no duplicates.
func assertStreamEvents(t *testing.T, s *stack.Stack, orderID string, want int) {
	t.Helper()
	ctx := context.Background()
	nc, js, err := natsx.Connect(s.NATS, "e2e", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"doorstep.haixin.>"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.NumPending)
	seen := map[string]bool{}
	count := 0
	for range total {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		id := msg.Headers().Get(jetstream.MsgIDHeader)
		if id == "" {
			t.Fatalf("message on %s without Nats-Msg-Id", msg.Subject())
		}
		if seen[id] {
			t.Fatalf("event %s on the stream twice", id)
		}
		seen[id] = true
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(msg.Data(), ev); err != nil {
			t.Fatalf("undecodable event on %s: %v", msg.Subject(), err)
		}
		if ev.GetEventId() != id {
			t.Fatalf("Nats-Msg-Id %s differs from event id %s", id, ev.GetEventId())
		}
		if ev.GetOrderId() == orderID {
			count++
		}
	}
	if count != want {
		t.Fatalf("order %s has %d events on the stream, want %d", orderID, count, want)
	}
}

func call(t *testing.T, hc *http.Client, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: HTTP %d %s", method, url, resp.StatusCode, raw)
		return resp.StatusCode
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

// mustOK(t)(client.Call(...)) fails the test when the call fails.
func mustOK(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
