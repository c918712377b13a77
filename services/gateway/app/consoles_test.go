package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/internal/httpapi"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestEveryEndpointChecksTheRole calls every endpoint as every role. A role the endpoint is not
// for gets 403 (401 when not signed in) before any service is called; a role it is for gets
// past the check (whatever the fake peers then say about the empty request).
func TestEveryEndpointChecksTheRole(t *testing.T) {
	g := start(t, nil)
	clients := map[typesv1.Role]*client{
		typesv1.Role_ROLE_UNSPECIFIED: g.anon(t),
		typesv1.Role_ROLE_RESIDENT:    g.resident(t, "haixin-1-1-101"),
		typesv1.Role_ROLE_WORKER:      g.worker(t),
		typesv1.Role_ROLE_SUPPLIER:    g.supplier(t),
		typesv1.Role_ROLE_DISPATCHER:  g.dispatcher(t),
		typesv1.Role_ROLE_COURIER:     g.courier(t),
	}
	api := httpapi.New(httpapi.Options{})
	api.Handler(http.NotFoundHandler())
	routes := api.Routes()
	if len(routes) < 52 {
		t.Fatalf("only %d routes", len(routes))
	}
	fill := strings.NewReplacer("{order_id}", "019a0000-0000-7000-8000-999999999999", "{parcel_id}", "p-1", "{item_id}", "masks",
		"{round_id}", "no-such-round", "{household_id}", "haixin-9-9-909", "{campaign_id}", "no-such-campaign", "{notice_id}", "no-such-notice")
	for _, rt := range routes {
		if strings.Contains(rt.Pattern, "{") && strings.Contains(fill.Replace(rt.Pattern), "{") {
			t.Fatalf("%s: no value to fill its path with", rt.Pattern)
		}
		if rt.Roles == nil {
			continue // sign-in and the session itself are for everyone
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = fill.Replace(path)
		body := ""
		if method != "GET" {
			body = "{}"
		}
		for role, c := range clients {
			allowed := false
			for _, r := range rt.Roles {
				allowed = allowed || r == role
			}
			var r response
			if strings.HasSuffix(path, "/events") {
				// A stream that opens never ends by itself: look at its status, then leave.
				if s, got := c.events(t, path); s != nil {
					r = got
					s.res.Body.Close()
				} else {
					r = got
				}
			} else {
				r = c.do(t, method, path, body)
			}
			switch {
			case role == typesv1.Role_ROLE_UNSPECIFIED:
				if r.status != 401 {
					t.Errorf("%s anonymous = %d %s, want 401", rt.Pattern, r.status, r.raw)
				}
			case !allowed:
				if r.status != 403 || get(r.body, "error", "code") != "PERMISSION_DENIED" {
					t.Errorf("%s as %v = %d %s, want 403", rt.Pattern, role, r.status, r.raw)
				}
			default:
				if r.status == 401 || strings.Contains(string(r.raw), "may not use") {
					t.Errorf("%s as %v = %d %s, want past the role check", rt.Pattern, role, r.status, r.raw)
				}
			}
		}
	}
}

// TestServicesHearWhoIsCalling checks the signed identity that reaches the services: the
// household of the session, the supplier and courier the accounts are bound to.
func TestServicesHearWhoIsCalling(t *testing.T) {
	g := start(t, nil)
	g.resident(t, "haixin-1-1-101").do(t, "POST", "/api/v1/orders", `{"request_id":"r-1","lines":[{"item_id":"masks","quantity":1}]}`)
	g.supplier(t).do(t, "GET", "/api/v1/supplier/parcels", "")
	g.courier(t).do(t, "GET", "/api/v1/courier/route", "")
	g.dispatcher(t).do(t, "GET", "/api/v1/dispatch/rounds", "")
	g.peers.calls.mu.Lock()
	defer g.peers.calls.mu.Unlock()
	ids := g.peers.calls.identities
	if id := ids["PlaceOrder"]; id.Role != typesv1.Role_ROLE_RESIDENT || id.Subject != "haixin-1-1-101" || id.Compound != "haixin" {
		t.Errorf("PlaceOrder identity %+v", id)
	}
	if id := ids["ListParcels"]; id.Role != typesv1.Role_ROLE_SUPPLIER || id.Subject != "fm-staff" || id.SupplierID != "haixin-freshmart" {
		t.Errorf("ListParcels identity %+v", id)
	}
	if id := ids["GetRoute"]; id.Role != typesv1.Role_ROLE_COURIER || id.Subject != "haixin-courier-02" {
		t.Errorf("GetRoute identity %+v", id)
	}
	if id := ids["ListRounds"]; id.Role != typesv1.Role_ROLE_DISPATCHER || id.Subject != "gate" || id.Compound != "haixin" {
		t.Errorf("ListRounds identity %+v", id)
	}
}

func TestResidentOrdersOnlyForTheirHousehold(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	r := c.do(t, "POST", "/api/v1/orders", `{"request_id":"r-1","lines":[{"item_id":"masks","quantity":1}]}`)
	if r.status != 201 || get(r.body, "household_id") != "haixin-1-1-101" || get(r.body, "channel") != "APP" {
		t.Fatalf("place = %d %s", r.status, r.raw)
	}
	expectError(t, c.do(t, "POST", "/api/v1/orders", `{"request_id":"r-2","household_id":"haixin-2-1-301","lines":[{"item_id":"masks","quantity":1}]}`),
		403, "PERMISSION_DENIED", "household_id")
	if r := c.do(t, "GET", "/api/v1/notices", ""); r.status != 200 || len(get(r.body, "notices").([]any)) != 0 {
		t.Errorf("notices = %d %s", r.status, r.raw)
	}
}

func TestWorkerConsole(t *testing.T) {
	g := start(t, nil)
	w := g.worker(t)
	r := w.do(t, "GET", "/api/v1/worker/households?page_size=50&page_token=abc", "")
	if r.status != 200 || len(get(r.body, "households").([]any)) != 2 || get(r.body, "next_page_token") != "next" ||
		get(r.body, "households", 0, "priority") != true {
		t.Fatalf("households = %d %s", r.status, r.raw)
	}
	if req := lastReq[*orderv1.ListHouseholdsRequest](g.peers.calls, "ListHouseholds"); req.GetCompound() != "haixin" ||
		req.GetPageSize() != 50 || req.GetPageToken() != "abc" {
		t.Errorf("ListHouseholds %v", req)
	}
	expectError(t, w.do(t, "GET", "/api/v1/worker/households?page_size=-1", ""), 400, "INVALID_ARGUMENT", "page_size")

	// A proxy order records the worker who placed it.
	p := w.do(t, "POST", "/api/v1/orders", `{"request_id":"w-1","household_id":"haixin-3-2-302","lines":[{"item_id":"masks","quantity":1}]}`)
	if p.status != 201 || get(p.body, "channel") != "WORKER" || get(p.body, "placed_by", "role") != "WORKER" ||
		get(p.body, "placed_by", "id") != "wang.li" || get(p.body, "household_id") != "haixin-3-2-302" {
		t.Fatalf("proxy order = %d %s", p.status, p.raw)
	}
	// An order the household gave by phone is recorded as such.
	ph := w.do(t, "POST", "/api/v1/orders", `{"request_id":"w-4","household_id":"haixin-3-2-302","channel":"PHONE","lines":[{"item_id":"masks","quantity":1}]}`)
	if ph.status != 201 || get(ph.body, "channel") != "PHONE" || get(ph.body, "placed_by", "id") != "wang.li" {
		t.Fatalf("phone order = %d %s", ph.status, ph.raw)
	}
	for _, bad := range []string{"APP", "CAMPAIGN", "phone"} {
		expectError(t, w.do(t, "POST", "/api/v1/orders", `{"request_id":"w-5","household_id":"haixin-3-2-302","channel":"`+bad+`","lines":[{"item_id":"masks","quantity":1}]}`),
			400, "INVALID_ARGUMENT", "channel")
	}
	expectError(t, w.do(t, "POST", "/api/v1/orders", `{"request_id":"w-2","lines":[{"item_id":"masks","quantity":1}]}`), 400, "INVALID_ARGUMENT", "household_id")
	expectError(t, w.do(t, "POST", "/api/v1/orders", `{"request_id":"w-3","household_id":"elsewhere-1-1-101","lines":[{"item_id":"masks","quantity":1}]}`),
		403, "PERMISSION_DENIED", "household_id")
	// The worker cancels for the household, as themselves.
	id := get(p.body, "order_id").(string)
	if c := w.do(t, "POST", "/api/v1/orders/"+id+"/cancel", `{"request_id":"wc-1","reason":"asked by phone"}`); c.status != 200 {
		t.Fatalf("cancel = %d %s", c.status, c.raw)
	}
	g.peers.calls.mu.Lock()
	actor := g.peers.calls.cancel[0].GetActor()
	g.peers.calls.mu.Unlock()
	if actor.GetRole() != typesv1.Role_ROLE_WORKER || actor.GetId() != "wang.li" {
		t.Errorf("cancel actor %v", actor)
	}
}

func TestSupplierConsole(t *testing.T) {
	g := start(t, nil)
	s := g.supplier(t)
	r := s.do(t, "GET", "/api/v1/supplier/parcels?state=placed&round_id=haixin-2022-04-10-am", "")
	if r.status != 200 || get(r.body, "parcels", 0, "state") != "PLACED" || get(r.body, "parcels", 0, "address", "building") != "3" ||
		integer(t, get(r.body, "parcels", 0, "lines", 0, "quantity")) != 1500 {
		t.Fatalf("parcels = %d %s", r.status, r.raw)
	}
	if req := lastReq[*supplierv1.ListParcelsRequest](g.peers.calls, "ListParcels"); req.GetSupplierId() != "haixin-freshmart" ||
		req.GetState() != typesv1.ParcelState_PARCEL_STATE_PLACED || req.GetRoundId() != "haixin-2022-04-10-am" {
		t.Errorf("ListParcels %v", req)
	}
	expectError(t, s.do(t, "GET", "/api/v1/supplier/parcels?state=LOST", ""), 400, "INVALID_ARGUMENT", "state")
	if req := lastReq[*supplierv1.ListParcelsRequest](g.peers.calls, "ListParcels"); req.GetPageSize() != 100 {
		t.Errorf("the console asked for pages of %d; want 100", req.GetPageSize())
	}
	// A long list comes a page at a time: the token of one page asks for the next.
	first := s.do(t, "GET", "/api/v1/supplier/parcels?state=READY", "")
	if first.status != 200 || len(get(first.body, "parcels").([]any)) != 1 || get(first.body, "next_page_token") != "ready-2" {
		t.Fatalf("first page = %d %s", first.status, first.raw)
	}
	next := s.do(t, "GET", "/api/v1/supplier/parcels?state=READY&page_token=ready-2", "")
	if next.status != 200 || get(next.body, "parcels", 0, "parcel_id") != "019a0000-0000-7000-8000-0000000000e2" || get(next.body, "next_page_token") != "" {
		t.Fatalf("second page = %d %s", next.status, next.raw)
	}
	expectError(t, s.do(t, "GET", "/api/v1/supplier/parcels?state=PLACED&page_token=ready-2", ""), 400, "INVALID_ARGUMENT", "page_token")
	// The newest first is asked for, by name; the queue's own order is the oldest first.
	if req := lastReq[*supplierv1.ListParcelsRequest](g.peers.calls, "ListParcels"); req.GetNewestFirst() {
		t.Errorf("ListParcels %v asked for the newest first unasked", req)
	}
	if r := s.do(t, "GET", "/api/v1/supplier/parcels?state=READY&newest_first=true", ""); r.status != 200 ||
		!lastReq[*supplierv1.ListParcelsRequest](g.peers.calls, "ListParcels").GetNewestFirst() {
		t.Errorf("newest_first=true: %d %s, asked %v", r.status, r.raw, lastReq[*supplierv1.ListParcelsRequest](g.peers.calls, "ListParcels"))
	}
	expectError(t, s.do(t, "GET", "/api/v1/supplier/parcels?state=READY&newest_first=latest", ""), 400, "INVALID_ARGUMENT", "newest_first")

	// Confirm with the actual weight of a weighed line; lines not named keep their quantity.
	c := s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/confirm", `{"request_id":"c-1","lines":[{"item_id":"cabbage","quantity":1560}]}`)
	if c.status != 200 || get(c.body, "state") != "CONFIRMED" || integer(t, get(c.body, "lines", 0, "confirmed_quantity")) != 1560 {
		t.Fatalf("confirm = %d %s", c.status, c.raw)
	}
	req := lastReq[*supplierv1.ConfirmParcelRequest](g.peers.calls, "ConfirmParcel")
	if req.GetSupplierId() != "haixin-freshmart" || req.GetLines()[0].Quantity == nil || req.GetLines()[0].GetQuantity() != 1560 {
		t.Errorf("ConfirmParcel %v", req)
	}
	s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/confirm", `{"request_id":"c-2","lines":[{"item_id":"cabbage"}]}`)
	if req := lastReq[*supplierv1.ConfirmParcelRequest](g.peers.calls, "ConfirmParcel"); req.GetLines()[0].Quantity != nil {
		t.Errorf("a line without quantity must leave it unset: %v", req)
	}
	expectError(t, s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/confirm", `{"request_id":"c-3","lines":[{"item_id":"x"},{"item_id":"cabbage","quantity":-1}]}`),
		400, "INVALID_ARGUMENT", "lines[1].quantity")
	expectError(t, s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/confirm", `{"request_id":"c-4","supplier_id":"haixin-pharmacy"}`),
		400, "INVALID_ARGUMENT", "supplier_id")
	expectError(t, s.do(t, "POST", "/api/v1/supplier/parcels/other/confirm", `{"request_id":"c-5"}`), 404, "NOT_FOUND", "")

	if r := s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/reject", `{"request_id":"x-1","reason":"sold out"}`); r.status != 200 ||
		get(r.body, "state") != "REJECTED" || get(r.body, "reason") != "sold out" {
		t.Errorf("reject = %d %s", r.status, r.raw)
	}
	expectError(t, s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/reject", `{"request_id":"x-2"}`), 400, "INVALID_ARGUMENT", "reason")
	// Every change carries a request id (a retry without one would act twice): the supplier
	// service refuses one without, and the gateway passes its field error on.
	for _, action := range []string{"confirm", "reject", "ready"} {
		expectError(t, s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/"+action, `{}`), 400, "INVALID_ARGUMENT", "request_id")
	}
	if r := s.do(t, "POST", "/api/v1/supplier/parcels/"+parcelFM+"/ready", `{"request_id":"y-1"}`); r.status != 200 || get(r.body, "state") != "READY" {
		t.Errorf("ready = %d %s", r.status, r.raw)
	}

	// Stock and price: only the supplier's own items, never above the reference price.
	items := s.do(t, "GET", "/api/v1/supplier/items", "")
	if items.status != 200 || len(get(items.body, "items").([]any)) != 2 {
		t.Fatalf("items = %d %s", items.status, items.raw)
	}
	if req := lastReq[*supplierv1.ListItemsRequest](g.peers.calls, "ListItems"); req.GetSupplierId() != "haixin-freshmart" {
		t.Errorf("ListItems %v", req)
	}
	u := s.do(t, "PATCH", "/api/v1/supplier/items/cabbage", `{"request_id":"u-1","current_price_fen":380,"ration_per_day":3000}`)
	if u.status != 200 || integer(t, get(u.body, "current_price_fen")) != 380 || integer(t, get(u.body, "ration_per_day")) != 3000 ||
		integer(t, get(u.body, "reference_price_fen")) != 400 {
		t.Fatalf("update = %d %s", u.status, u.raw)
	}
	if req := lastReq[*supplierv1.UpsertItemRequest](g.peers.calls, "UpsertItem"); req.GetItem().GetName() != "大白菜 Napa cabbage" || req.GetItem().GetWeighed() != true {
		t.Errorf("an edit must keep the rest of the item: %v", req)
	} else if req.GetItem().GetStock() != 0 {
		t.Errorf("an edit sent the stock it read (%d): a retry after an order would be another request", req.GetItem().GetStock())
	}
	expectError(t, s.do(t, "PATCH", "/api/v1/supplier/items/cabbage", `{"request_id":"u-2","current_price_fen":401}`), 400, "INVALID_ARGUMENT", "item.current_price_fen")
	expectError(t, s.do(t, "PATCH", "/api/v1/supplier/items/masks", `{"request_id":"u-3","current_price_fen":1}`), 404, "NOT_FOUND", "")
	expectError(t, s.do(t, "PATCH", "/api/v1/supplier/items/cabbage", `{"request_id":"u-4"}`), 400, "INVALID_ARGUMENT", "body")
	expectError(t, s.do(t, "PATCH", "/api/v1/supplier/items/cabbage", `{"current_price_fen":1}`), 400, "INVALID_ARGUMENT", "request_id")
	// Stock is never set from a screen that may be stale, only added to or taken from.
	expectError(t, s.do(t, "PATCH", "/api/v1/supplier/items/cabbage", `{"request_id":"u-5","stock":1}`), 400, "INVALID_ARGUMENT", "stock")
	st := s.do(t, "POST", "/api/v1/supplier/items/cabbage/stock", `{"request_id":"a-1","delta":-500,"reason":"spoiled"}`)
	if st.status != 200 || integer(t, get(st.body, "stock")) != 199500 {
		t.Fatalf("adjust = %d %s", st.status, st.raw)
	}
	if req := lastReq[*supplierv1.AdjustStockRequest](g.peers.calls, "AdjustStock"); req.GetSupplierId() != "haixin-freshmart" || req.GetReason() != "spoiled" {
		t.Errorf("AdjustStock %v", req)
	}
	expectError(t, s.do(t, "POST", "/api/v1/supplier/items/masks/stock", `{"request_id":"a-2","delta":5}`), 404, "NOT_FOUND", "")
	expectError(t, s.do(t, "POST", "/api/v1/supplier/items/cabbage/stock", `{"request_id":"a-3","delta":-999999}`), 409, "FAILED_PRECONDITION", "")
	expectError(t, s.do(t, "POST", "/api/v1/supplier/items/cabbage/stock", `{"request_id":"a-4","delta":"lots"}`), 400, "INVALID_ARGUMENT", "delta")

	// A read model tracking does not serve yet is a clear 501, not a 500.
	expectError(t, s.do(t, "GET", "/api/v1/supplier/queue", ""), 501, "UNIMPLEMENTED", "")
}

func TestDispatcherConsole(t *testing.T) {
	g := start(t, nil)
	d := g.dispatcher(t)
	if r := d.do(t, "GET", "/api/v1/dispatch/rounds?date=2022-04-10", ""); r.status != 200 || get(r.body, "rounds", 0, "state") != "OPEN" ||
		get(r.body, "rounds", 0, "slot") != "am" {
		t.Fatalf("rounds = %d %s", r.status, r.raw)
	}
	if req := lastReq[*dispatchv1.ListRoundsRequest](g.peers.calls, "ListRounds"); req.GetCompound() != "haixin" || req.GetDate() != "2022-04-10" {
		t.Errorf("ListRounds %v", req)
	}
	// At the gate: what the suppliers handed over and nobody has checked in yet, as the order
	// service knows it (the pharmacy's parcel is READY at the supplier but AT_GATE already).
	if r := d.do(t, "GET", "/api/v1/dispatch/gate", ""); r.status != 200 || len(get(r.body, "parcels").([]any)) != 1 ||
		get(r.body, "parcels", 0, "parcel_id") != parcelFM || get(r.body, "parcels", 0, "state") != "READY" {
		t.Fatalf("gate = %d %s", r.status, r.raw)
	}
	if req := lastReq[*orderv1.ListParcelsToCheckInRequest](g.peers.calls, "ListParcelsToCheckIn"); req.GetCompound() != "haixin" {
		t.Errorf("ListParcelsToCheckIn %v", req)
	}

	in := d.do(t, "POST", "/api/v1/dispatch/checkin", `{"request_id":"in-1","parcel_ids":["`+parcelFM+`","p-late"],
		"shortages":[{"parcel_id":"`+parcelFM+`","item_id":"cabbage","missing_quantity":0,"damaged_quantity":1,"note":"bruised"}]}`)
	if in.status != 200 || get(in.body, "results", 0, "checked_in") != true || get(in.body, "results", 0, "round_id") != "haixin-2022-04-10-am" ||
		get(in.body, "results", 0, "shortages", 0, "note") != "bruised" || get(in.body, "results", 1, "checked_in") != false ||
		get(in.body, "results", 1, "error") == "" {
		t.Fatalf("check-in = %d %s", in.status, in.raw)
	}
	if req := lastReq[*dispatchv1.CheckInParcelsRequest](g.peers.calls, "CheckInParcels"); req.GetCompound() != "haixin" {
		t.Errorf("CheckInParcels %v", req)
	}
	// A campaign's packs for a whole compound: more than one CheckInParcels call takes, split into
	// parts with request ids of their own, each carrying its own parcels' shortages.
	many := make([]string, 1201)
	for i := range many {
		many[i] = fmt.Sprintf("p-%04d", i)
	}
	many[1000] = parcelFM
	ids, _ := json.Marshal(many)
	big := d.do(t, "POST", "/api/v1/dispatch/checkin", `{"request_id":"in-big","parcel_ids":`+string(ids)+`,
		"shortages":[{"parcel_id":"`+parcelFM+`","item_id":"cabbage","missing_quantity":1}]}`)
	if big.status != 200 || len(get(big.body, "results").([]any)) != 1201 || get(big.body, "results", 1000, "checked_in") != true ||
		integer(t, get(big.body, "results", 1000, "shortages", 0, "missing_quantity")) != 1 {
		t.Fatalf("check-in of 1,201 = %d %d %v", big.status, len(get(big.body, "results").([]any)), get(big.body, "results", 1000))
	}
	if req := lastReq[*dispatchv1.CheckInParcelsRequest](g.peers.calls, "CheckInParcels"); req.GetRequestId() != "in-big/2" ||
		len(req.GetParcelIds()) != 201 || len(req.GetShortages()) != 1 {
		t.Errorf("last part %s: %d parcels, %d shortages", req.GetRequestId(), len(req.GetParcelIds()), len(req.GetShortages()))
	}
	// What only the whole of a split check-in shows is refused before any part goes.
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/checkin", `{"parcel_ids":`+string(ids)+`}`), 400, "INVALID_ARGUMENT", "request_id")
	twice := slices.Clone(many)
	twice[700] = many[3]
	dup, _ := json.Marshal(twice)
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/checkin", `{"request_id":"in-dup","parcel_ids":`+string(dup)+`}`),
		400, "INVALID_ARGUMENT", "parcel_ids[700]")
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/checkin", `{"request_id":"in-stray","parcel_ids":`+string(ids)+`,
		"shortages":[{"parcel_id":"elsewhere","item_id":"cabbage","missing_quantity":1}]}`), 400, "INVALID_ARGUMENT", "shortages[0].parcel_id")
	if req := lastReq[*dispatchv1.CheckInParcelsRequest](g.peers.calls, "CheckInParcels"); req.GetRequestId() != "in-big/2" {
		t.Errorf("a refused check-in reached dispatch: %s", req.GetRequestId())
	}
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/checkin", `{"request_id":"in-2"}`), 400, "INVALID_ARGUMENT", "parcel_ids")
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/checkin", `{"request_id":"in-3","parcel_ids":["a"],"shortages":[{"parcel_id":"a","missing":1}]}`),
		400, "INVALID_ARGUMENT", "shortages[0].missing")

	plan := d.do(t, "POST", "/api/v1/dispatch/rounds/haixin-2022-04-10-am/plan", `{"request_id":"plan-1"}`)
	if plan.status != 200 || get(plan.body, "round", "state") != "PLANNED" || get(plan.body, "routes", 0, "courier_id") != "haixin-courier-02" ||
		integer(t, get(plan.body, "cost", "metres")) != 310 || integer(t, get(plan.body, "lower_bound", "metres")) != 300 ||
		get(plan.body, "routes", 0, "stops", 0, "parcel_ids", 0) != parcelFM {
		t.Fatalf("plan = %d %s", plan.status, plan.raw)
	}
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/rounds/haixin-2022-04-11-am/plan", `{"request_id":"plan-2"}`), 404, "NOT_FOUND", "")
	if r := d.do(t, "GET", "/api/v1/dispatch/rounds/haixin-2022-04-10-am/routes", ""); r.status != 200 || len(get(r.body, "routes").([]any)) != 1 {
		t.Errorf("routes = %d %s", r.status, r.raw)
	}
	if r := d.do(t, "GET", "/api/v1/dispatch/couriers", ""); r.status != 200 || get(r.body, "couriers", 0, "buildings", 1) != "4" {
		t.Errorf("couriers = %d %s", r.status, r.raw)
	}
	// Overrides and progress the services do not offer yet: 501 with the code named.
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/rounds/haixin-2022-04-10-am/reassign",
		`{"request_id":"re-1","from_courier_id":"haixin-courier-02","reason":"sick"}`), 501, "UNIMPLEMENTED", "")
	expectError(t, d.do(t, "POST", "/api/v1/dispatch/rounds/haixin-2022-04-10-am/move-stop",
		`{"request_id":"mv-1","household_id":"haixin-3-2-302","to_courier_id":"haixin-courier-01"}`), 501, "UNIMPLEMENTED", "")
	expectError(t, d.do(t, "GET", "/api/v1/dispatch/rounds/haixin-2022-04-10-am/progress", ""), 501, "UNIMPLEMENTED", "")
}

func TestCourierConsole(t *testing.T) {
	g := start(t, nil)
	c := g.courier(t)
	r := c.do(t, "GET", "/api/v1/courier/route", "")
	if r.status != 200 || get(r.body, "courier_id") != "haixin-courier-02" || get(r.body, "stops", 0, "parcels", 0, "status") != "PENDING" ||
		get(r.body, "stops", 0, "address", "floor") != json.Number("3") {
		t.Fatalf("route = %d %s", r.status, r.raw)
	}
	if req := lastReq[*courierv1.GetRouteRequest](g.peers.calls, "GetRoute"); req.GetCourierId() != "haixin-courier-02" {
		t.Errorf("GetRoute %v", req)
	}
	if p := c.do(t, "POST", "/api/v1/courier/pickup", `{"request_id":"pu-1","route_id":"route-1"}`); p.status != 200 ||
		get(p.body, "stops", 0, "parcels", 0, "status") != "OUT_FOR_DELIVERY" {
		t.Fatalf("pick up = %d %s", p.status, p.raw)
	}
	expectError(t, c.do(t, "POST", "/api/v1/courier/pickup", `{"request_id":"pu-2","route_id":"route-9"}`), 404, "NOT_FOUND", "")

	if d := c.do(t, "POST", "/api/v1/courier/parcels/"+parcelFM+"/delivered", `{"request_id":"d-1","method":"left_at_door"}`); d.status != 200 ||
		get(d.body, "status") != "DELIVERED" {
		t.Fatalf("delivered = %d %s", d.status, d.raw)
	}
	if req := lastReq[*courierv1.MarkDeliveredRequest](g.peers.calls, "MarkDelivered"); req.GetMethod() != courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR ||
		req.GetCourierId() != "haixin-courier-02" {
		t.Errorf("MarkDelivered %v", req)
	}
	expectError(t, c.do(t, "POST", "/api/v1/courier/parcels/"+parcelFM+"/delivered", `{"request_id":"d-2","method":"thrown"}`), 400, "INVALID_ARGUMENT", "method")
	if f := c.do(t, "POST", "/api/v1/courier/parcels/"+parcelFM+"/failed", `{"request_id":"f-1","reason":"NOT_HOME"}`); f.status != 200 ||
		get(f.body, "status") != "FAILED" {
		t.Fatalf("failed = %d %s", f.status, f.raw)
	}
	expectError(t, c.do(t, "POST", "/api/v1/courier/parcels/"+parcelFM+"/failed", `{"request_id":"f-2","reason":"OTHER"}`), 400, "INVALID_ARGUMENT", "note")
	expectError(t, c.do(t, "POST", "/api/v1/courier/parcels/"+parcelFM+"/failed", `{"request_id":"f-3","reason":"tired"}`), 400, "INVALID_ARGUMENT", "reason")

	// Several stops at once; each outcome stands on its own.
	all := c.do(t, "POST", "/api/v1/courier/complete", `{"request_id":"cs-1","outcomes":[
		{"parcel_id":"`+parcelFM+`","outcome":"DELIVERED","method":"HANDED_OVER"},
		{"parcel_id":"p-other","outcome":"FAILED","reason":"REFUSED"}]}`)
	if all.status != 200 || get(all.body, "results", 0, "recorded") != true || get(all.body, "results", 0, "parcel", "status") != "DELIVERED" ||
		get(all.body, "results", 1, "recorded") != false || get(all.body, "results", 1, "error") == "" {
		t.Fatalf("complete = %d %s", all.status, all.raw)
	}
	req := lastReq[*courierv1.CompleteStopsRequest](g.peers.calls, "CompleteStops")
	if req.GetOutcomes()[0].GetDelivered().GetMethod() != courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER ||
		req.GetOutcomes()[1].GetFailed().GetReason() != courierv1.FailureReason_FAILURE_REASON_REFUSED {
		t.Errorf("CompleteStops %v", req)
	}
	expectError(t, c.do(t, "POST", "/api/v1/courier/complete", `{"request_id":"cs-2","outcomes":[{"parcel_id":"a","outcome":"DELIVERED","method":"HANDED_OVER"},{"parcel_id":"b","outcome":"lost"}]}`),
		400, "INVALID_ARGUMENT", "outcomes[1].outcome")
	expectError(t, c.do(t, "POST", "/api/v1/courier/complete", `{"request_id":"cs-3","outcomes":[{"parcel_id":"a","outcome":"FAILED"}]}`),
		400, "INVALID_ARGUMENT", "outcomes[0].reason")
}

// sse reads Server-Sent Events from a response body.
type sse struct {
	res *http.Response
	sc  *bufio.Scanner
}

func (c *client) events(t *testing.T, path string) (*sse, response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", c.g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		var out response
		out.status, out.header = res.StatusCode, res.Header
		_ = json.NewDecoder(res.Body).Decode(&out.body)
		raw, _ := json.Marshal(out.body)
		out.raw = raw
		return nil, out
	}
	return &sse{res: res, sc: bufio.NewScanner(res.Body)}, response{status: 200, header: res.Header}
}

// next returns the next event's name and data.
func (s *sse) next(t *testing.T) (string, map[string]any) {
	t.Helper()
	var name string
	var data map[string]any
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		case line == "" && name != "":
			return name, data
		}
	}
	t.Fatalf("stream ended: %v", s.sc.Err())
	return "", nil
}

func TestOrderEventsRelayTrackingLive(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	id := get(c.do(t, "POST", "/api/v1/orders", placeBody).body, "order_id").(string)
	// Tracking has not heard of the order yet for its first few watches: the stream waits for it.
	g.peers.tracking.mu.Lock()
	g.peers.tracking.lag[id] = 3
	g.peers.tracking.mu.Unlock()
	stream, r := c.events(t, "/api/v1/orders/"+id+"/events")
	if stream == nil {
		t.Fatalf("events = %d %s", r.status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	// First what happened so far, then what happens next.
	if name, e := stream.next(t); name != "entry" || e["kind"] != "order.placed" {
		t.Fatalf("first event %s %v", name, e)
	}
	if _, e := stream.next(t); e["kind"] != "parcel.placed" || e["state"] != "PLACED" {
		t.Fatalf("second event %v", e)
	}
	delivered := &trackingv1.TimelineEntry{EventId: "019a0000-0000-7000-a000-0000000000d1", OccurredAt: timestamppb.Now(),
		Kind: "parcel.delivered", ParcelId: "p", State: typesv1.ParcelState_PARCEL_STATE_DELIVERED,
		Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: "haixin-courier-02"}}
	deadline := time.Now().Add(5 * time.Second)
	for g.peers.tracking.push(id, delivered) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the watch registers as the first entries go out
	}
	if name, e := stream.next(t); name != "entry" || e["state"] != "DELIVERED" || e["event_id"] != delivered.GetEventId() {
		t.Fatalf("live event %s %v", name, e)
	}

	// One person holds a bounded number of streams; closing one makes room again.
	var extra []*sse
	for range httpapi.MaxStreamsPerClient - 1 {
		s, r := c.events(t, "/api/v1/orders/"+id+"/events")
		if s == nil {
			t.Fatalf("stream within the limit = %d %s", r.status, r.raw)
		}
		extra = append(extra, s)
	}
	if s, r := c.events(t, "/api/v1/orders/"+id+"/events"); s != nil || r.status != 429 {
		t.Fatalf("stream over the limit = %d, want 429", r.status)
	}
	extra[0].res.Body.Close()
	testkit.Eventually(t, 5*time.Second, func() error {
		s, r := c.events(t, "/api/v1/orders/"+id+"/events")
		if s == nil {
			return fmt.Errorf("after closing one: %d", r.status)
		}
		return nil
	})

	// Another household's order streams nothing; it is not found.
	other := g.resident(t, "haixin-2-1-301")
	if s, r := other.events(t, "/api/v1/orders/"+id+"/events"); s != nil || r.status != 404 {
		t.Fatalf("neighbour's stream = %d", r.status)
	}
}

func TestCourierRouteEventsRelayChanges(t *testing.T) {
	g := start(t, nil)
	c := g.courier(t)
	stream, r := c.events(t, "/api/v1/courier/route/events")
	if stream == nil {
		t.Fatalf("events = %d %s", r.status, r.raw)
	}
	if name, rt := stream.next(t); name != "route" || rt["courier_id"] != "haixin-courier-02" || rt["version"] != float64(1) {
		t.Fatalf("first %s %v", name, rt)
	}
	if _, rt := stream.next(t); rt["version"] != float64(2) || len(rt["stops"].([]any)) != 2 {
		t.Fatalf("moved %v", rt)
	}
	if req := lastReq[*courierv1.WatchRouteRequest](g.peers.calls, "WatchRoute"); req.GetCourierId() != "haixin-courier-02" {
		t.Errorf("WatchRoute %v", req)
	}
}

func TestRoundEventsRelayProgress(t *testing.T) {
	g := start(t, nil)
	d := g.dispatcher(t)
	stream, r := d.events(t, "/api/v1/rounds/haixin-2022-04-10-am/events")
	if stream == nil {
		t.Fatalf("events = %d %s", r.status, r.raw)
	}
	name, p := stream.next(t)
	if name != "progress" || get(p, "total", "delivered") != float64(1) || get(p, "buildings", 0, "building") != "3" ||
		get(p, "couriers", 0, "courier_id") != "haixin-courier-02" {
		t.Fatalf("progress %s %v", name, p)
	}
	if s, r := d.events(t, "/api/v1/rounds/haixin-2022-04-11-am/events"); s != nil || r.status != 404 {
		t.Fatalf("unknown round stream = %d", r.status)
	}
}
