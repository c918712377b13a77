package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"github.com/doorstep/doorstep/services/gateway/app"
	"github.com/doorstep/doorstep/services/gateway/internal/httpapi"
	"golang.org/x/crypto/bcrypt"
)

const callTimeout = 2 * time.Second

func TestMain(m *testing.M) { testkit.Main(m) }

// testLimits are high enough that ordinary tests never meet them; the rate-limit tests set their own.
var testLimits = httpapi.Limits{SignInPerIP: 1000, SignInBurst: 1000, SignInPerAccount: 1000, AccountBurst: 1000,
	APIPerClient: 1000, APIBurst: 1000}

// clock is the gateway's settable clock (sessions, rate limits), starting at the real time so
// that the identities it signs are valid at the fake peers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type gateway struct {
	url   string
	peers *peers
	store *accounts.Store
	clock *clock
}

// start runs the real gateway (app.Run) on 127.0.0.1:0 against fake peers and a fresh database.
func start(t *testing.T, edit func(*app.Config)) *gateway {
	t.Helper()
	p := startPeers(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	db := testkit.Postgres(t)
	cfg := app.Config{DatabaseURL: db, AuthKey: string(testkit.AuthKey),
		OrderAddr: p.orderAddr, SupplierAddr: p.supplierAddr, TrackingAddr: p.trackingAddr,
		DispatchAddr: p.dispatchAddr, CourierAddr: p.courierAddr,
		Compound: "haixin", CallTimeout: callTimeout, Listener: lis, Limits: testLimits, BcryptCost: bcrypt.MinCost, Now: clk.Now}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	g := &gateway{url: "http://" + lis.Addr().String(), peers: p, clock: clk}
	// Accounts are made the way the dev stack's seed makes them: straight in the database. The
	// gateway migrates the schema on start, so wait for it to answer first.
	testkit.Eventually(t, 10*time.Second, func() error {
		res, err := http.Get(g.url + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
	g.store, err = accounts.Open(ctx, db, accounts.Options{Now: clk.Now, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.store.Close)
	return g
}

// client is one browser: its own cookie jar, so each holds its own session.
type client struct {
	g    *gateway
	http *http.Client
	// header is sent with every request (e.g. a forged Origin).
	header http.Header
}

func (g *gateway) anon(t *testing.T) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{g: g, http: &http.Client{Jar: jar}, header: http.Header{}}
}

// resident signs a browser in as a household, with a freshly issued code.
func (g *gateway) resident(t *testing.T, householdID string) *client {
	t.Helper()
	code, err := g.store.IssueHouseholdCode(context.Background(), householdID, "test")
	if err != nil {
		t.Fatal(err)
	}
	c := g.anon(t)
	if r := c.do(t, "POST", "/api/v1/session/code", `{"code":"`+code.Formatted+`"}`); r.status != 200 {
		t.Fatalf("resident sign-in = %d %s", r.status, r.raw)
	}
	return c
}

// staff creates a staff account and signs a browser in with it.
func (g *gateway) staff(t *testing.T, st accounts.Staff) *client {
	t.Helper()
	if st.Compound == "" {
		st.Compound = "haixin"
	}
	st.Password = "correct horse battery"
	if _, err := g.store.CreateStaff(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	c := g.anon(t)
	if r := c.do(t, "POST", "/api/v1/session/password", `{"account_id":"`+st.ID+`","password":"correct horse battery"}`); r.status != 200 {
		t.Fatalf("staff sign-in = %d %s", r.status, r.raw)
	}
	return c
}

func (g *gateway) worker(t *testing.T) *client {
	return g.staff(t, accounts.Staff{ID: "wang.li", Role: typesv1.Role_ROLE_WORKER, Name: "王丽"})
}

func (g *gateway) supplier(t *testing.T) *client {
	return g.staff(t, accounts.Staff{ID: "fm-staff", Role: typesv1.Role_ROLE_SUPPLIER, SupplierID: "haixin-freshmart"})
}

func (g *gateway) dispatcher(t *testing.T) *client {
	return g.staff(t, accounts.Staff{ID: "gate", Role: typesv1.Role_ROLE_DISPATCHER})
}

func (g *gateway) courier(t *testing.T) *client {
	return g.staff(t, accounts.Staff{ID: "li.shifu", Role: typesv1.Role_ROLE_COURIER, CourierID: "haixin-courier-02"})
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (c *client) do(t *testing.T, method, path, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.g.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // so the tests see that money is a JSON integer, not a string or a float
		if err := dec.Decode(&out.body); err != nil {
			t.Fatalf("%s %s: body %s is not a JSON object: %v", method, path, raw, err)
		}
	}
	return out
}

// expectError checks an error response's status, code and (when given) the field it names.
func expectError(t *testing.T, r response, status int, code, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("body %s has no error object", r.raw)
	}
	if e["code"] != code {
		t.Errorf("code = %v, want %s; body %s", e["code"], code, r.raw)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error has no message: %s", r.raw)
	}
	if field != "" {
		fields, _ := e["fields"].(map[string]any)
		if why, _ := fields[field].(string); why == "" {
			t.Errorf("fields %v do not name %q; body %s", fields, field, r.raw)
		}
	}
}

// get walks a decoded JSON value: get(v, "orders", 0, "parcels", 0, "state").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func integer(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v is not an integer: %v", v, err)
	}
	return i
}

const placeBody = `{"request_id":"r-1","household_id":"haixin-1-1-101","lines":[{"item_id":"cabbage","quantity":500},{"item_id":"masks","quantity":2}]}`

func TestHealthz(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	r := c.do(t, "GET", "/healthz", "")
	if r.status != http.StatusOK || r.body["status"] != "ok" {
		t.Fatalf("healthz = %d %s", r.status, r.raw)
	}
}

func TestCatalogGroupsItemsBySupplier(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	for _, path := range []string{"/api/v1/catalog", "/api/v1/catalog?compound=haixin"} {
		r := c.do(t, "GET", path, "")
		if r.status != http.StatusOK {
			t.Fatalf("%s = %d %s", path, r.status, r.raw)
		}
		if get(r.body, "compound") != "haixin" {
			t.Errorf("compound = %v", get(r.body, "compound"))
		}
		if n := len(get(r.body, "suppliers").([]any)); n != 2 {
			t.Fatalf("%d suppliers, want 2: %s", n, r.raw)
		}
		fresh := get(r.body, "suppliers", 0)
		if get(fresh, "supplier_id") != "haixin-freshmart" || get(fresh, "kind") != "supermarket" || len(get(fresh, "items").([]any)) != 2 {
			t.Errorf("first supplier = %v", fresh)
		}
		cabbage := get(fresh, "items", 0)
		if get(cabbage, "weighed") != true || get(cabbage, "unit") != "kg" ||
			integer(t, get(cabbage, "current_price_fen")) != 350 || integer(t, get(cabbage, "reference_price_fen")) != 400 ||
			integer(t, get(cabbage, "stock")) != 200000 {
			t.Errorf("cabbage = %v", cabbage)
		}
		pack := get(fresh, "items", 1)
		if get(pack, "bundle") != true || get(pack, "bundle_contents") != "白菜 1 kg, 土豆 1 kg, 胡萝卜 500 g" {
			t.Errorf("bundle = %v", pack)
		}
		masks := get(r.body, "suppliers", 1, "items", 0)
		if integer(t, get(masks, "ration_per_day")) != 2 || get(masks, "weighed") != false {
			t.Errorf("masks = %v", masks)
		}
	}
	if r := c.do(t, "GET", "/api/v1/catalog?compound=elsewhere", ""); r.status != http.StatusOK || len(get(r.body, "suppliers").([]any)) != 0 {
		t.Errorf("other compound = %d %s", r.status, r.raw)
	}
	expectError(t, c.do(t, "GET", "/api/v1/catalog?compound=No%20Such!", ""), http.StatusBadRequest, "INVALID_ARGUMENT", "compound")
}

func TestPlaceOrder(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	r := c.do(t, "POST", "/api/v1/orders", placeBody)
	if r.status != http.StatusCreated {
		t.Fatalf("place = %d %s", r.status, r.raw)
	}
	id, _ := get(r.body, "order_id").(string)
	if id == "" || r.header.Get("Location") != "/api/v1/orders/"+id {
		t.Errorf("order_id %q, Location %q", id, r.header.Get("Location"))
	}
	if get(r.body, "status") != "PLACED" || get(r.body, "channel") != "APP" || get(r.body, "household_id") != "haixin-1-1-101" ||
		get(r.body, "placed_by", "role") != "RESIDENT" || get(r.body, "placed_by", "id") != "haixin-1-1-101" ||
		get(r.body, "placed_at") != "2022-04-10T01:30:00Z" {
		t.Errorf("order = %s", r.raw)
	}
	// 500 g of cabbage at 350 fen/kg is 175 fen; two boxes of masks 4000.
	if integer(t, get(r.body, "total_fen")) != 4175 || integer(t, get(r.body, "parcels", 0, "lines", 0, "amount_fen")) != 175 ||
		get(r.body, "parcels", 0, "state") != "PLACED" || get(r.body, "parcels", 0, "lines", 0, "weighed") != true {
		t.Errorf("amounts = %s", r.raw)
	}
	// Every field is present even when empty, with snake_case names.
	for _, f := range []string{"reason", "weight_grams", "contactless", "updated_at", "supplier_id", "parcel_id"} {
		if _, ok := get(r.body, "parcels", 0).(map[string]any)[f]; !ok {
			t.Errorf("parcel has no %q: %s", f, r.raw)
		}
	}

	// A retry with the same request id returns the first order; another basket under it is refused.
	again := c.do(t, "POST", "/api/v1/orders", placeBody)
	if again.status != http.StatusCreated || get(again.body, "order_id") != id {
		t.Errorf("retry = %d %s, want the same order %s", again.status, again.raw, id)
	}
	expectError(t, c.do(t, "POST", "/api/v1/orders",
		`{"request_id":"r-1","household_id":"haixin-1-1-101","lines":[{"item_id":"masks","quantity":1}]}`),
		http.StatusConflict, "ALREADY_EXISTS", "")

	g.peers.calls.mu.Lock()
	defer g.peers.calls.mu.Unlock()
	first := g.peers.calls.place[0]
	if first.GetChannel().String() != "CHANNEL_APP" || first.GetPlacedBy().GetRole().String() != "ROLE_RESIDENT" ||
		first.GetPlacedBy().GetId() != "haixin-1-1-101" || len(first.GetLines()) != 2 || first.GetLines()[1].GetQuantity() != 2 {
		t.Errorf("PlaceOrder request = %v", first)
	}
}

func TestPlaceOrderRefusals(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	big := `{"request_id":"r","lines":[],"x":"` + strings.Repeat("a", 1<<20) + `"}`
	for _, tc := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		// Found by the order service and passed through with its field names.
		{"zero quantity", `{"request_id":"r","household_id":"haixin-1-1-101","lines":[{"item_id":"cabbage","quantity":500},{"item_id":"masks","quantity":0}]}`,
			400, "INVALID_ARGUMENT", "lines[1].quantity"},
		{"missing request id", `{"household_id":"haixin-1-1-101","lines":[{"item_id":"masks","quantity":1}]}`, 400, "INVALID_ARGUMENT", "request_id"},
		{"no lines", `{"request_id":"r","household_id":"haixin-1-1-101"}`, 400, "INVALID_ARGUMENT", "lines"},
		{"out of stock", `{"request_id":"r","household_id":"haixin-1-1-101","lines":[{"item_id":"masks","quantity":3},{"item_id":"veg-pack","quantity":41}]}`,
			409, "FAILED_PRECONDITION", ""},
		{"unknown item", `{"request_id":"r","household_id":"haixin-1-1-101","lines":[{"item_id":"caviar","quantity":1}]}`, 404, "NOT_FOUND", ""},
		// Found by the gateway's own parsing.
		{"unknown field", `{"request_id":"r","lines":[],"colour":"red"}`, 400, "INVALID_ARGUMENT", "colour"},
		{"unknown line field", `{"request_id":"r","lines":[{"item_id":"masks","quantity":1},{"item_id":"masks","qty":1}]}`,
			400, "INVALID_ARGUMENT", "lines[1].qty"},
		{"quantity as string", `{"request_id":"r","lines":[{"item_id":"masks","quantity":"1"}]}`, 400, "INVALID_ARGUMENT", "lines[0].quantity"},
		{"fractional quantity", `{"request_id":"r","lines":[{"item_id":"cabbage","quantity":0.5}]}`, 400, "INVALID_ARGUMENT", "lines[0].quantity"},
		{"resident claiming a phone order", `{"request_id":"r","channel":"PHONE","lines":[{"item_id":"masks","quantity":1}]}`, 400, "INVALID_ARGUMENT", "channel"},
		{"request id as number", `{"request_id":7,"lines":[]}`, 400, "INVALID_ARGUMENT", "request_id"},
		{"lines not an array", `{"request_id":"r","lines":{"item_id":"masks"}}`, 400, "INVALID_ARGUMENT", "lines"},
		{"line not an object", `{"request_id":"r","lines":[3]}`, 400, "INVALID_ARGUMENT", "lines[0]"},
		{"malformed", `{"request_id":"r",`, 400, "INVALID_ARGUMENT", "body"},
		{"not an object", `[1,2]`, 400, "INVALID_ARGUMENT", "body"},
		{"two objects", `{} {}`, 400, "INVALID_ARGUMENT", "body"},
		{"empty", ``, 400, "INVALID_ARGUMENT", "body"},
		{"over 1 MiB", big, 413, "PAYLOAD_TOO_LARGE", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, c.do(t, "POST", "/api/v1/orders", tc.body), tc.status, tc.code, tc.field)
		})
	}
}

func TestGetOrderAndTimeline(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	placed := c.do(t, "POST", "/api/v1/orders", placeBody)
	id := get(placed.body, "order_id").(string)

	r := c.do(t, "GET", "/api/v1/orders/"+id, "")
	if r.status != http.StatusOK || get(r.body, "order_id") != id || get(r.body, "parcels", 0, "state") != "PLACED" {
		t.Fatalf("get = %d %s", r.status, r.raw)
	}
	tl := c.do(t, "GET", "/api/v1/orders/"+id+"/timeline", "")
	if tl.status != http.StatusOK || get(tl.body, "order_id") != id {
		t.Fatalf("timeline = %d %s", tl.status, tl.raw)
	}
	first, second := get(tl.body, "entries", 0), get(tl.body, "entries", 1)
	if get(first, "kind") != "order.placed" || get(first, "state") != "" || get(first, "actor", "role") != "RESIDENT" ||
		get(first, "occurred_at") != "2022-04-10T01:30:00Z" || get(first, "detail") != "1 parcel, total ¥1.75, via app" {
		t.Errorf("first entry = %v", first)
	}
	if get(second, "kind") != "parcel.placed" || get(second, "state") != "PLACED" || get(second, "parcel_id") == "" {
		t.Errorf("second entry = %v", second)
	}

	unknown := "019a0000-0000-7000-8000-999999999999"
	expectError(t, c.do(t, "GET", "/api/v1/orders/"+unknown, ""), 404, "NOT_FOUND", "")
	expectError(t, c.do(t, "GET", "/api/v1/orders/"+unknown+"/timeline", ""), 404, "NOT_FOUND", "")
}

func TestListHouseholdOrders(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	first := get(c.do(t, "POST", "/api/v1/orders", placeBody).body, "order_id")
	second := get(c.do(t, "POST", "/api/v1/orders", strings.Replace(placeBody, "r-1", "r-2", 1)).body, "order_id")
	neighbour := g.resident(t, "haixin-2-1-301")
	other := get(neighbour.do(t, "POST", "/api/v1/orders", `{"request_id":"r-3","lines":[{"item_id":"masks","quantity":1}]}`).body, "order_id")

	for _, path := range []string{"/api/v1/households/haixin-1-1-101/orders?page_size=10", "/api/v1/orders"} {
		r := c.do(t, "GET", path, "")
		if r.status != http.StatusOK || get(r.body, "household_id") != "haixin-1-1-101" {
			t.Fatalf("list = %d %s", r.status, r.raw)
		}
		if got := get(r.body, "orders").([]any); len(got) != 2 || get(got[0], "order_id") != second || get(got[1], "order_id") != first {
			t.Errorf("orders = %s, want %v then %v", r.raw, second, first)
		}
	}
	// Another household's orders are not found, whether it has any or not: nothing to enumerate.
	for _, h := range []string{"haixin-2-1-301", "haixin-9-9-909"} {
		expectError(t, c.do(t, "GET", "/api/v1/households/"+h+"/orders", ""), 404, "NOT_FOUND", "")
	}
	expectError(t, c.do(t, "GET", "/api/v1/orders/"+other.(string), ""), 404, "NOT_FOUND", "")
	expectError(t, c.do(t, "GET", "/api/v1/orders/"+other.(string)+"/timeline", ""), 404, "NOT_FOUND", "")
	expectError(t, c.do(t, "POST", "/api/v1/orders/"+other.(string)+"/cancel", `{"request_id":"c-x"}`), 404, "NOT_FOUND", "")
	expectError(t, c.do(t, "GET", "/api/v1/households/haixin-1-1-101/orders?page_size=many", ""), 400, "INVALID_ARGUMENT", "page_size")

	// A community worker sees any household of the compound.
	w := g.worker(t)
	if r := w.do(t, "GET", "/api/v1/households/haixin-2-1-301/orders", ""); r.status != 200 || len(get(r.body, "orders").([]any)) != 1 {
		t.Errorf("worker list = %d %s", r.status, r.raw)
	}
	if r := w.do(t, "GET", "/api/v1/orders/"+other.(string), ""); r.status != 200 {
		t.Errorf("worker get = %d %s", r.status, r.raw)
	}
	expectError(t, w.do(t, "GET", "/api/v1/households/elsewhere-1-1-101/orders", ""), 404, "NOT_FOUND", "")
}

func TestCancelOrder(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	id := get(c.do(t, "POST", "/api/v1/orders", placeBody).body, "order_id").(string)
	r := c.do(t, "POST", "/api/v1/orders/"+id+"/cancel", `{"request_id":"c-1","reason":"ordered twice"}`)
	if r.status != http.StatusOK || get(r.body, "parcels", 0, "state") != "CANCELLED" || get(r.body, "parcels", 0, "reason") != "ordered twice" ||
		get(r.body, "status") != "CLOSED" {
		t.Fatalf("cancel = %d %s", r.status, r.raw)
	}
	g.peers.calls.mu.Lock()
	req := g.peers.calls.cancel[0]
	g.peers.calls.mu.Unlock()
	if req.GetRequestId() != "c-1" || req.GetActor().GetRole().String() != "ROLE_RESIDENT" || req.GetActor().GetId() != "haixin-1-1-101" {
		t.Errorf("CancelOrder request = %v", req)
	}

	confirmed := get(c.do(t, "POST", "/api/v1/orders", strings.Replace(placeBody, "r-1", "r-2", 1)).body, "order_id").(string)
	g.peers.order.confirm(confirmed)
	expectError(t, c.do(t, "POST", "/api/v1/orders/"+confirmed+"/cancel", `{"request_id":"c-2","reason":"late"}`), 409, "FAILED_PRECONDITION", "")
	expectError(t, c.do(t, "POST", "/api/v1/orders/019a0000-0000-7000-8000-999999999999/cancel", `{"request_id":"c-3"}`), 404, "NOT_FOUND", "")
	expectError(t, c.do(t, "POST", "/api/v1/orders/"+id+"/cancel", `{"request_id":"c-4","why":"x"}`), 400, "INVALID_ARGUMENT", "why")
	expectError(t, c.do(t, "POST", "/api/v1/orders/"+id+"/cancel", `{"reason":"x"}`), 400, "INVALID_ARGUMENT", "request_id")
}

func TestEveryCallHasTheGatewaysDeadline(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	id := get(c.do(t, "POST", "/api/v1/orders", placeBody).body, "order_id").(string)
	c.do(t, "GET", "/api/v1/catalog", "")
	c.do(t, "GET", "/api/v1/orders/"+id+"/timeline", "")
	c.do(t, "GET", "/api/v1/households/haixin-1-1-101/orders", "")
	c.do(t, "POST", "/api/v1/orders/"+id+"/cancel", `{"request_id":"c-1"}`)
	g.peers.calls.mu.Lock()
	defer g.peers.calls.mu.Unlock()
	for _, m := range []string{"PlaceOrder", "GetOrder", "ListOrders", "CancelOrder", "ListSuppliers", "ListItems", "GetOrderTimeline"} {
		left, ok := g.peers.calls.deadlines[m]
		if !ok {
			t.Errorf("%s was not called", m)
			continue
		}
		// The gRPC client's own default is 5 s; the gateway's tighter bound must be what arrives.
		if left <= 0 || left > callTimeout {
			t.Errorf("%s arrived with %v left, want (0, %v]", m, left, callTimeout)
		}
	}
}

func TestPeerFailuresMapToStatuses(t *testing.T) {
	t.Run("deadline exceeded is 504", func(t *testing.T) {
		g := start(t, func(c *app.Config) { c.CallTimeout = 200 * time.Millisecond })
		c := g.resident(t, "haixin-1-1-101")
		expectError(t, c.do(t, "GET", "/api/v1/orders/"+slowOrderID, ""), http.StatusGatewayTimeout, "DEADLINE_EXCEEDED", "")
	})
	t.Run("unavailable is 503", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := lis.Addr().String()
		lis.Close() // nothing listens there now
		g := start(t, func(c *app.Config) { c.TrackingAddr = down })
		c := g.resident(t, "haixin-1-1-101")
		id := get(c.do(t, "POST", "/api/v1/orders", placeBody).body, "order_id").(string)
		expectError(t, c.do(t, "GET", "/api/v1/orders/"+id+"/timeline", ""),
			http.StatusServiceUnavailable, "UNAVAILABLE", "")
	})
	t.Run("internal errors are hidden", func(t *testing.T) {
		g := start(t, nil)
		c := g.resident(t, "haixin-1-1-101")
		r := c.do(t, "GET", "/api/v1/orders/"+brokenOrderID, "")
		expectError(t, r, http.StatusInternalServerError, "INTERNAL", "")
		if bytes.Contains(r.raw, []byte("secret")) {
			t.Errorf("internal detail leaked: %s", r.raw)
		}
	})
}

func TestUnknownAPIPathsAnswerJSON(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	expectError(t, c.do(t, "GET", "/api/v1/nothing", ""), 404, "NOT_FOUND", "")
	expectError(t, c.do(t, "DELETE", "/api/v1/catalog", ""), 404, "NOT_FOUND", "")
}

func TestPagesAndAssetsAreServed(t *testing.T) {
	g := start(t, nil)
	c := g.anon(t)
	pages := map[string][]string{
		"/":         {`src="/resident.js"`, `src="/shop.js"`, `id="place-order"`, `id="orders"`, `id="notices"`},
		"/signin":   {`src="/signin.js"`, `id="code-form"`, `id="staff-form"`},
		"/supplier": {`src="/supplier.js"`, `id="parcels"`, `id="items"`},
		"/dispatch": {`src="/dispatch.js"`, `id="gate"`, `id="plan"`, `id="progress"`, `id="reassign-form"`},
		"/courier":  {`src="/courier.js"`, `id="pickup"`, `id="stops"`},
		"/worker": {`src="/worker.js"`, `src="/campaigns.js"`, `id="roster"`, `id="code-card"`, `id="proxy-card"`,
			`id="campaign-form"`, `id="campaign-detail"`, `id="campaign-roster"`, `id="notice-form"`, `id="worker-notices"`},
	}
	var assets []string
	for path, wants := range pages {
		page := c.do(t, "GET", path, "")
		if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s = %d %s", path, page.status, page.header.Get("Content-Type"))
		}
		html := string(page.raw)
		for _, want := range append(wants, `href="/app.css"`, `src="/common.js"`, `name="viewport"`, `id="bar"`, `<html lang="zh-CN">`) {
			if !strings.Contains(html, want) {
				t.Errorf("%s lacks %s", path, want)
			}
		}
		// Scripts find elements by id: an id used twice would send them to the wrong one.
		seen := map[string]bool{}
		for _, m := range regexp.MustCompile(` id="([^"]+)"`).FindAllStringSubmatch(html, -1) {
			if seen[m[1]] {
				t.Errorf("%s has id %q twice", path, m[1])
			}
			seen[m[1]] = true
		}
		// The policy allows no inline script: every script is a file, no handler is an attribute.
		if strings.Contains(html, "<script>") || strings.Contains(html, " onclick=") || strings.Contains(html, " onload=") {
			t.Errorf("%s has inline script", path)
		}
		assets = append(assets, html)
	}
	// The language follows Accept-Language.
	en := c.withHeader("Accept-Language", "en-GB,en;q=0.9,zh;q=0.5").do(t, "GET", "/courier", "")
	if !strings.Contains(string(en.raw), `<html lang="en">`) || en.header.Get("Vary") != "Accept-Language" {
		t.Errorf("English page: %.80s, Vary %q", en.raw, en.header.Get("Vary"))
	}
	for path, ctype := range map[string]string{"/common.js": "text/javascript", "/shop.js": "text/javascript", "/resident.js": "text/javascript",
		"/signin.js": "text/javascript", "/supplier.js": "text/javascript", "/dispatch.js": "text/javascript", "/courier.js": "text/javascript",
		"/worker.js": "text/javascript", "/campaigns.js": "text/javascript", "/app.css": "text/css", "/favicon.svg": "image/svg+xml"} {
		r := c.do(t, "GET", path, "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), ctype) || len(r.raw) == 0 {
			t.Errorf("%s = %d %q (%d bytes)", path, r.status, r.header.Get("Content-Type"), len(r.raw))
		}
		if path != "/favicon.svg" { // its xmlns names a namespace, it fetches nothing
			assets = append(assets, string(r.raw))
		}
	}
	// Every asset is local: nothing is fetched from another origin.
	for _, asset := range assets {
		if strings.Contains(asset, "http://") || strings.Contains(asset, "https://") || strings.Contains(asset, `src="//`) {
			t.Errorf("an asset refers to another origin")
		}
	}
	js := string(c.do(t, "GET", "/resident.js", "").raw) + string(c.do(t, "GET", "/common.js", "").raw)
	for _, want := range []string{"EventSource", "/events", "crypto.randomUUID", "doorstep.lang"} {
		if !strings.Contains(js, want) {
			t.Errorf("the resident's scripts lack %q", want)
		}
	}
	if r := c.do(t, "GET", "/missing.js", ""); r.status != 404 {
		t.Errorf("missing asset = %d", r.status)
	}
	if r := c.do(t, "GET", "/index.html", ""); r.status != 404 {
		t.Errorf("/index.html = %d; pages have one path each", r.status)
	}
	if r := c.do(t, "POST", "/", "x"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d", r.status)
	}
}
