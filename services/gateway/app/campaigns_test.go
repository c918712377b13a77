package app_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// noticeTitles lists the titles of a notices answer, in order.
func noticeTitles(r response) []string {
	var out []string
	list, _ := get(r.body, "notices").([]any)
	for _, n := range list {
		out = append(out, get(n, "title").(string))
	}
	return out
}

func TestResidentsReadTheNoticesOfTheirBuilding(t *testing.T) {
	g := start(t, nil)
	w := g.worker(t)
	post := func(id, title, buildings string) string {
		t.Helper()
		r := w.do(t, "POST", "/api/v1/worker/notices", `{"request_id":"`+id+`","title":"`+title+`","text":"第一行\nsecond line","buildings":`+buildings+`}`)
		if r.status != http.StatusCreated {
			t.Fatalf("post %s = %d %s", title, r.status, r.raw)
		}
		return get(r.body, "notice_id").(string)
	}
	post("n-1", "全体核酸 Testing for all", `[]`)
	post("n-2", "3号楼消杀 Building 3 disinfection", `["3"]`)
	toOne := post("n-3", "1号楼停水 Building 1 water off", `["1","4"]`)

	// Building 1's household reads the notices to everyone and to building 1, newest first.
	home := g.resident(t, "haixin-1-1-101")
	r := home.do(t, "GET", "/api/v1/notices", "")
	if r.status != 200 || strings.Join(noticeTitles(r), "|") != "1号楼停水 Building 1 water off|全体核酸 Testing for all" ||
		get(r.body, "building") != "1" || get(r.body, "compound") != "haixin" {
		t.Fatalf("resident's notices = %d %s", r.status, r.raw)
	}
	first := get(r.body, "notices", 0)
	if get(first, "text") != "第一行\nsecond line" || get(first, "posted_at") != "2022-04-10T01:32:00Z" || get(first, "buildings", 1) != "4" {
		t.Errorf("notice = %v", first)
	}
	if _, ok := first.(map[string]any)["posted_by"]; ok {
		t.Errorf("a resident is shown who posted: %v", first)
	}
	// The building comes from the roster, never from the request.
	if req := lastReq[*trackingv1.ListNoticesRequest](g.peers.calls, "TrackingListNotices"); req.GetCompound() != "haixin" || req.GetBuilding() != "1" {
		t.Errorf("tracking ListNotices %v", req)
	}
	if req := lastReq[*orderv1.GetHouseholdRequest](g.peers.calls, "GetHousehold"); req.GetHouseholdId() != "haixin-1-1-101" {
		t.Errorf("GetHousehold %v", req)
	}
	if r := home.do(t, "GET", "/api/v1/notices?building=3", ""); strings.Join(noticeTitles(r), "|") != "1号楼停水 Building 1 water off|全体核酸 Testing for all" {
		t.Errorf("?building= changed a resident's notices: %s", r.raw)
	}
	// Even a read model that forgot the building shows a household nothing meant for another.
	g.peers.tracking.mu.Lock()
	g.peers.tracking.leakBuildings = true
	g.peers.tracking.mu.Unlock()
	if r := home.do(t, "GET", "/api/v1/notices", ""); len(noticeTitles(r)) != 2 {
		t.Errorf("with the building ignored upstream: %s", r.raw)
	}
	g.peers.tracking.mu.Lock()
	g.peers.tracking.leakBuildings = false
	g.peers.tracking.mu.Unlock()

	// A withdrawn notice is no longer in force.
	if r := w.do(t, "POST", "/api/v1/worker/notices/"+toOne+"/withdraw", `{"request_id":"wd-1"}`); r.status != 200 || get(r.body, "withdrawn_at") == nil {
		t.Fatalf("withdraw = %d %s", r.status, r.raw)
	}
	if r := home.do(t, "GET", "/api/v1/notices", ""); strings.Join(noticeTitles(r), "|") != "全体核酸 Testing for all" {
		t.Errorf("after withdrawal: %s", r.raw)
	}

	// A worker reads what is in force in the compound, or in one building.
	if r := w.do(t, "GET", "/api/v1/notices", ""); len(noticeTitles(r)) != 2 {
		t.Errorf("worker's notices in force = %s", r.raw)
	}
	if r := w.do(t, "GET", "/api/v1/notices?building=3", ""); strings.Join(noticeTitles(r), "|") != "3号楼消杀 Building 3 disinfection|全体核酸 Testing for all" {
		t.Errorf("worker's notices for building 3 = %s", r.raw)
	}
	// And keeps every notice, withdrawn ones included, with who posted it.
	all := w.do(t, "GET", "/api/v1/worker/notices", "")
	if all.status != 200 || len(noticeTitles(all)) != 3 || get(all.body, "notices", 0, "notice_id") != toOne ||
		get(all.body, "notices", 0, "withdrawn_at") != "2022-04-10T02:30:00Z" || get(all.body, "notices", 1, "withdrawn_at") != nil ||
		get(all.body, "notices", 2, "posted_by", "role") != "WORKER" || get(all.body, "notices", 2, "posted_by", "id") != "wang.li" ||
		len(get(all.body, "notices", 2, "buildings").([]any)) != 0 {
		t.Fatalf("worker's notices = %d %s", all.status, all.raw)
	}
	if req := lastReq[*orderv1.ListNoticesRequest](g.peers.calls, "ListNotices"); req.GetCompound() != "haixin" {
		t.Errorf("order ListNotices %v", req)
	}
}

func TestWorkerPostsNotices(t *testing.T) {
	g := start(t, nil)
	w := g.worker(t)
	body := `{"request_id":"n-1","title":"告知书","text":"请留在家中","buildings":["3"]}`
	first := w.do(t, "POST", "/api/v1/worker/notices", body)
	if first.status != 201 || get(first.body, "compound") != "haixin" || get(first.body, "buildings", 0) != "3" ||
		get(first.body, "posted_by", "id") != "wang.li" || get(first.body, "withdrawn_at") != nil {
		t.Fatalf("post = %d %s", first.status, first.raw)
	}
	req := lastReq[*orderv1.PostNoticeRequest](g.peers.calls, "PostNotice")
	if req.GetCompound() != "haixin" || req.GetRequestId() != "n-1" || req.GetTitle() != "告知书" {
		t.Errorf("PostNotice %v", req)
	}
	g.peers.calls.mu.Lock()
	id := g.peers.calls.identities["PostNotice"]
	g.peers.calls.mu.Unlock()
	if id.Role != typesv1.Role_ROLE_WORKER || id.Subject != "wang.li" || id.Compound != "haixin" {
		t.Errorf("PostNotice identity %+v", id)
	}
	// A retry posts nothing new; the same id for another notice is refused.
	if again := w.do(t, "POST", "/api/v1/worker/notices", body); again.status != 201 || get(again.body, "notice_id") != get(first.body, "notice_id") {
		t.Errorf("retry = %d %s", again.status, again.raw)
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/notices", `{"request_id":"n-1","title":"别的","text":"x"}`), 409, "ALREADY_EXISTS", "")

	for _, tc := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"no title", `{"request_id":"n-2","text":"x"}`, 400, "INVALID_ARGUMENT", "title"},
		{"no text", `{"request_id":"n-2","title":"x"}`, 400, "INVALID_ARGUMENT", "text"},
		{"long title", `{"request_id":"n-2","title":"` + strings.Repeat("长", 101) + `","text":"x"}`, 400, "INVALID_ARGUMENT", "title"},
		{"empty building", `{"request_id":"n-2","title":"x","text":"x","buildings":["3",""]}`, 400, "INVALID_ARGUMENT", "buildings[1]"},
		{"no request id", `{"title":"x","text":"x"}`, 400, "INVALID_ARGUMENT", "request_id"},
		{"buildings not a list", `{"request_id":"n-2","title":"x","text":"x","buildings":"3"}`, 400, "INVALID_ARGUMENT", "buildings"},
		{"building a number", `{"request_id":"n-2","title":"x","text":"x","buildings":[3]}`, 400, "INVALID_ARGUMENT", "buildings"},
		{"compound from the request", `{"request_id":"n-2","title":"x","text":"x","compound":"elsewhere"}`, 400, "INVALID_ARGUMENT", "compound"},
		{"malformed", `{"title":`, 400, "INVALID_ARGUMENT", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, w.do(t, "POST", "/api/v1/worker/notices", tc.body), tc.status, tc.code, tc.field)
		})
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/notices/no-such-notice/withdraw", `{"request_id":"wd-1"}`), 404, "NOT_FOUND", "")
	expectError(t, w.do(t, "POST", "/api/v1/worker/notices/"+get(first.body, "notice_id").(string)+"/withdraw", `{}`), 400, "INVALID_ARGUMENT", "request_id")
	expectError(t, w.do(t, "POST", "/api/v1/worker/notices/"+get(first.body, "notice_id").(string)+"/withdraw", `{"request_id":"wd-2","why":"x"}`),
		400, "INVALID_ARGUMENT", "why")
}

const campaignBody = `{"request_id":"c-1","name":"84消毒液 Disinfectant for all","pack":[{"item_id":"donated-84","quantity":2}],
	"target":{"buildings":["1","3"],"flags":["over_80","LIVES_ALONE"],"include_unknown_occupancy":true}}`

// newCampaign creates and launches a campaign of the donated stock.
func newCampaign(t *testing.T, w *client, requestID string, launch bool) string {
	t.Helper()
	r := w.do(t, "POST", "/api/v1/worker/campaigns", strings.Replace(campaignBody, `"c-1"`, `"`+requestID+`"`, 1))
	if r.status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.status, r.raw)
	}
	id := get(r.body, "campaign_id").(string)
	if launch {
		if l := w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/launch", `{"request_id":"launch-`+requestID+`"}`); l.status != 200 {
			t.Fatalf("launch = %d %s", l.status, l.raw)
		}
	}
	return id
}

func TestWorkerRunsACampaign(t *testing.T) {
	g := start(t, nil)
	w := g.worker(t)

	// The worker's catalog has the donated stock to make packs of; a resident's has not.
	if r := w.do(t, "GET", "/api/v1/catalog", ""); len(get(r.body, "suppliers").([]any)) != 3 || get(r.body, "suppliers", 2, "kind") != "donations" ||
		get(r.body, "suppliers", 2, "items", 0, "item_id") != "donated-84" {
		t.Errorf("worker's catalog = %s", r.raw)
	}
	if r := g.resident(t, "haixin-1-1-101").do(t, "GET", "/api/v1/catalog", ""); bytes.Contains(r.raw, []byte("donat")) {
		t.Errorf("resident's catalog shows donated stock: %s", r.raw)
	}

	c := w.do(t, "POST", "/api/v1/worker/campaigns", campaignBody)
	id, _ := get(c.body, "campaign_id").(string)
	if c.status != 201 || id == "" || c.header.Get("Location") != "/api/v1/worker/campaigns/"+id || get(c.body, "state") != "DRAFT" ||
		get(c.body, "supplier_id") != "haixin-donations" || get(c.body, "compound") != "haixin" ||
		get(c.body, "target", "flags", 0) != "OVER_80" || get(c.body, "target", "flags", 1) != "LIVES_ALONE" ||
		get(c.body, "target", "buildings", 1) != "3" || get(c.body, "target", "include_unknown_occupancy") != true ||
		integer(t, get(c.body, "pack", 0, "quantity")) != 2 || get(c.body, "created_by", "id") != "wang.li" ||
		integer(t, get(c.body, "counts", "targeted")) != 0 || get(c.body, "launched_at") != nil {
		t.Fatalf("create = %d %s", c.status, c.raw)
	}
	req := lastReq[*orderv1.CreateCampaignRequest](g.peers.calls, "CreateCampaign")
	if req.GetCompound() != "haixin" || req.GetTarget().GetFlags()[0] != orderv1.HouseholdFlag_HOUSEHOLD_FLAG_OVER_80 ||
		req.GetPack()[0].GetItemId() != "donated-84" || !req.GetTarget().GetIncludeUnknownOccupancy() {
		t.Errorf("CreateCampaign %v", req)
	}
	if again := w.do(t, "POST", "/api/v1/worker/campaigns", campaignBody); again.status != 201 || get(again.body, "campaign_id") != id {
		t.Errorf("retry = %d %s", again.status, again.raw)
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns", `{"request_id":"c-1","name":"other","pack":[{"item_id":"masks","quantity":1}]}`),
		409, "ALREADY_EXISTS", "")
	// No target is every occupied household.
	if r := w.do(t, "POST", "/api/v1/worker/campaigns", `{"request_id":"c-2","name":"口罩 Masks","pack":[{"item_id":"masks","quantity":1}]}`); r.status != 201 ||
		len(get(r.body, "target", "buildings").([]any)) != 0 || len(get(r.body, "target", "flags").([]any)) != 0 ||
		get(r.body, "supplier_id") != "haixin-pharmacy" {
		t.Errorf("untargeted = %d %s", r.status, r.raw)
	}

	for _, tc := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"no pack", `{"request_id":"x","name":"n"}`, 400, "INVALID_ARGUMENT", "pack"},
		{"no name", `{"request_id":"x","pack":[{"item_id":"masks","quantity":1}]}`, 400, "INVALID_ARGUMENT", "name"},
		{"zero quantity", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","quantity":1},{"item_id":"masks","quantity":0}]}`, 400, "INVALID_ARGUMENT", "pack[1].quantity"},
		{"two suppliers", `{"request_id":"x","name":"n","pack":[{"item_id":"donated-84","quantity":1},{"item_id":"masks","quantity":1}]}`, 400, "INVALID_ARGUMENT", "pack[1].item_id"},
		{"unknown line field", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","qty":1}]}`, 400, "INVALID_ARGUMENT", "pack[0].qty"},
		{"quantity as text", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","quantity":"1"}]}`, 400, "INVALID_ARGUMENT", "pack[0].quantity"},
		{"line not an object", `{"request_id":"x","name":"n","pack":["masks"]}`, 400, "INVALID_ARGUMENT", "pack[0]"},
		{"unknown flag", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","quantity":1}],"target":{"flags":["OVER_80","tall"]}}`, 400, "INVALID_ARGUMENT", "target.flags[1]"},
		{"unknown target field", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","quantity":1}],"target":{"floors":[3]}}`, 400, "INVALID_ARGUMENT", "target.floors"},
		{"target not an object", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","quantity":1}],"target":"all"}`, 400, "INVALID_ARGUMENT", "target"},
		{"unknown-occupancy not a bool", `{"request_id":"x","name":"n","pack":[{"item_id":"masks","quantity":1}],"target":{"include_unknown_occupancy":"yes"}}`,
			400, "INVALID_ARGUMENT", "target.include_unknown_occupancy"},
		{"compound from the request", `{"request_id":"x","name":"n","compound":"elsewhere","pack":[{"item_id":"masks","quantity":1}]}`, 400, "INVALID_ARGUMENT", "compound"},
		{"no request id", `{"name":"n","pack":[{"item_id":"masks","quantity":1}]}`, 400, "INVALID_ARGUMENT", "request_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns", tc.body), tc.status, tc.code, tc.field)
		})
	}

	// The compound's campaigns, newest first; another compound's is never listed nor found.
	list := w.do(t, "GET", "/api/v1/worker/campaigns", "")
	if list.status != 200 || len(get(list.body, "campaigns").([]any)) != 2 || get(list.body, "campaigns", 1, "campaign_id") != id {
		t.Fatalf("list = %d %s", list.status, list.raw)
	}
	if req := lastReq[*orderv1.ListCampaignsRequest](g.peers.calls, "ListCampaigns"); req.GetCompound() != "haixin" {
		t.Errorf("ListCampaigns %v", req)
	}
	if r := w.do(t, "GET", "/api/v1/worker/campaigns/"+id, ""); r.status != 200 || get(r.body, "name") != "84消毒液 Disinfectant for all" {
		t.Errorf("get = %d %s", r.status, r.raw)
	}
	expectError(t, w.do(t, "GET", "/api/v1/worker/campaigns/no-such-campaign", ""), 404, "NOT_FOUND", "")
	other := otherCompoundCampaign.GetCampaignId()
	expectError(t, w.do(t, "GET", "/api/v1/worker/campaigns/"+other, ""), 404, "NOT_FOUND", "")
	for _, path := range []string{"/launch", "/retry-missed"} {
		expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+other+path, `{"request_id":"o-1"}`), 404, "NOT_FOUND", "")
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+other+"/hand-over", ``), 404, "NOT_FOUND", "")
	for _, path := range []string{"/roster", "/roster.csv"} {
		expectError(t, w.do(t, "GET", "/api/v1/worker/campaigns/"+other+path, ""), 404, "NOT_FOUND", "")
	}
	g.peers.calls.mu.Lock()
	for _, m := range []string{"LaunchCampaign", "RetryMissedHouseholds", "GetCampaignRoster", "ExportCampaignRoster"} {
		if _, called := g.peers.calls.last[m]; called {
			t.Errorf("%s was called for another compound's campaign", m)
		}
	}
	g.peers.calls.mu.Unlock()

	// A draft has nobody on its roster yet, and nothing to retry.
	if r := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster", ""); r.status != 200 || len(get(r.body, "entries").([]any)) != 0 ||
		integer(t, get(r.body, "totals", "targeted")) != 0 {
		t.Errorf("draft roster = %d %s", r.status, r.raw)
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/retry-missed", `{"request_id":"rm-0"}`), 409, "FAILED_PRECONDITION", "")

	// Launch: every targeted household is on the roster, with counts.
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/launch", `{}`), 400, "INVALID_ARGUMENT", "request_id")
	l := w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/launch", `{"request_id":"launch-1"}`)
	if l.status != 200 || get(l.body, "state") != "LAUNCHED" || get(l.body, "launched_at") != "2022-04-10T02:30:00Z" ||
		integer(t, get(l.body, "counts", "targeted")) != 4 || integer(t, get(l.body, "counts", "missed")) != 1 ||
		integer(t, get(l.body, "counts", "on_the_way")) != 1 {
		t.Fatalf("launch = %d %s", l.status, l.raw)
	}
	if req := lastReq[*orderv1.LaunchCampaignRequest](g.peers.calls, "LaunchCampaign"); req.GetCampaignId() != id || req.GetRequestId() != "launch-1" {
		t.Errorf("LaunchCampaign %v", req)
	}

	ro := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster", "")
	if ro.status != 200 || get(ro.body, "campaign_id") != id || len(get(ro.body, "entries").([]any)) != 4 || get(ro.body, "next_page_token") != "" ||
		get(ro.body, "entries", 1, "status") != "MISSED" || get(ro.body, "entries", 1, "reason") != "out of stock" ||
		get(ro.body, "entries", 1, "parcel_state") != "REJECTED" || get(ro.body, "entries", 2, "priority") != true ||
		get(ro.body, "entries", 2, "address", "room") != "302" || integer(t, get(ro.body, "entries", 2, "attempt")) != 1 ||
		get(ro.body, "buildings", 0, "building") != "1" || integer(t, get(ro.body, "buildings", 0, "counts", "delivered")) != 1 ||
		integer(t, get(ro.body, "buildings", 1, "counts", "failed")) != 1 || integer(t, get(ro.body, "totals", "targeted")) != 4 {
		t.Fatalf("roster = %d %s", ro.status, ro.raw)
	}
	for query, want := range map[string]int{
		"?status=MISSED,failed":        2,
		"?status=MISSED&status=FAILED": 2,
		"?status=missed&building=3":    0,
		"?building=3":                  2,
		"?status=":                     4,
	} {
		r := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster"+query, "")
		if r.status != 200 || len(get(r.body, "entries").([]any)) != want || integer(t, get(r.body, "totals", "targeted")) != 4 {
			t.Errorf("roster%s = %d %s, want %d entries and the whole campaign's counts", query, r.status, r.raw, want)
		}
	}
	w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?status=MISSED,FAILED&building=1", "")
	if req := lastReq[*orderv1.GetCampaignRosterRequest](g.peers.calls, "GetCampaignRoster"); req.GetBuilding() != "1" || len(req.GetStatuses()) != 2 ||
		req.GetStatuses()[1] != orderv1.RosterStatus_ROSTER_STATUS_FAILED {
		t.Errorf("GetCampaignRoster %v", req)
	}
	// Pages.
	p1 := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?page_size=3", "")
	if len(get(p1.body, "entries").([]any)) != 3 || get(p1.body, "next_page_token") == "" {
		t.Fatalf("page 1 = %s", p1.raw)
	}
	p2 := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?page_size=3&page_token="+get(p1.body, "next_page_token").(string), "")
	if len(get(p2.body, "entries").([]any)) != 1 || get(p2.body, "entries", 0, "household_id") != "haixin-3-2-402" || get(p2.body, "next_page_token") != "" {
		t.Fatalf("page 2 = %s", p2.raw)
	}
	expectError(t, w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?status=LOST", ""), 400, "INVALID_ARGUMENT", "status")
	expectError(t, w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?page_size=-1", ""), 400, "INVALID_ARGUMENT", "page_size")
	expectError(t, w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?page_size=5000", ""), 400, "INVALID_ARGUMENT", "page_size")

	// Missed households get a fresh pack.
	rm := w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/retry-missed", `{"request_id":"rm-1"}`)
	if rm.status != 200 || integer(t, get(rm.body, "retried")) != 1 || integer(t, get(rm.body, "campaign", "counts", "missed")) != 0 ||
		integer(t, get(rm.body, "campaign", "counts", "packing")) != 1 {
		t.Fatalf("retry missed = %d %s", rm.status, rm.raw)
	}
	if again := w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/retry-missed", `{"request_id":"rm-1"}`); integer(t, get(again.body, "retried")) != 1 {
		t.Errorf("a retried request answers as the first time: %s", again.raw)
	}
	if r := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster?status=PACKING", ""); get(r.body, "entries", 0, "household_id") != "haixin-1-2-201" ||
		integer(t, get(r.body, "entries", 0, "attempt")) != 2 {
		t.Errorf("retried household = %s", r.raw)
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/retry-missed", `{"request_id":7}`), 400, "INVALID_ARGUMENT", "request_id")

	// The roster as a spreadsheet.
	csv := w.do(t, "GET", "/api/v1/worker/campaigns/"+id+"/roster.csv", "")
	if csv.status != 200 || csv.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		csv.header.Get("Content-Disposition") != `attachment; filename="campaign-`+id+`-roster.csv"` ||
		!bytes.HasPrefix(csv.raw, []byte("\ufeffhousehold_id,")) || bytes.Count(csv.raw, []byte("\r\n")) != 5 {
		t.Fatalf("export = %d %v %q", csv.status, csv.header, csv.raw)
	}

	// Every call carried the gateway's deadline.
	g.peers.calls.mu.Lock()
	defer g.peers.calls.mu.Unlock()
	for _, m := range []string{"CreateCampaign", "ListCampaigns", "GetCampaign", "LaunchCampaign", "RetryMissedHouseholds", "GetCampaignRoster", "ExportCampaignRoster"} {
		if left, ok := g.peers.calls.deadlines[m]; !ok || left <= 0 || left > callTimeout {
			t.Errorf("%s arrived with %v left (called: %v), want (0, %v]", m, left, ok, callTimeout)
		}
	}
}

func TestWorkerHandsOverDonatedPacks(t *testing.T) {
	g := start(t, nil)
	w := g.worker(t)
	id := newCampaign(t, w, "c-1", true)
	packs := g.peers.supplier.addPacks("haixin-donations", id, 20)

	r := w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/hand-over", "")
	if r.status != 200 || get(r.body, "campaign_id") != id || get(r.body, "supplier_id") != "haixin-donations" ||
		integer(t, get(r.body, "waiting")) != 20 || integer(t, get(r.body, "handed_over")) != 19 ||
		integer(t, get(r.body, "failed")) != 1 || integer(t, get(r.body, "remaining")) != 0 ||
		get(r.body, "failures", 0, "parcel_id") != packs[0] || get(r.body, "failures", 0, "household_id") != "haixin-1-2-201" ||
		get(r.body, "failures", 0, "code") != "FAILED_PRECONDITION" || get(r.body, "failures", 0, "message") == "" {
		t.Fatalf("hand over = %d %s", r.status, r.raw)
	}
	if req := lastReq[*supplierv1.ListParcelsRequest](g.peers.calls, "ListParcels"); req.GetSupplierId() != "haixin-donations" ||
		req.GetCampaignId() != id || req.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED {
		t.Errorf("ListParcels %v", req)
	}
	g.peers.supplier.mu.Lock()
	most := g.peers.supplier.maxInFlight
	for reqID, parcelID := range g.peers.supplier.readyByReq {
		// Derived from the parcel: asked again, the supplier recognises the same hand-over.
		if reqID != "campaign-hand-over-"+parcelID {
			t.Errorf("request id %q for parcel %s", reqID, parcelID)
		}
	}
	ready := len(g.peers.supplier.readyByReq)
	g.peers.supplier.mu.Unlock()
	if most > 8 || most < 2 {
		t.Errorf("%d hand-overs ran at once, want between 2 and 8", most)
	}
	if ready != 19 {
		t.Errorf("%d packs READY at the supplier, want 19", ready)
	}
	g.peers.calls.mu.Lock()
	id1 := g.peers.calls.identities["MarkParcelReady"]
	left := g.peers.calls.deadlines["MarkParcelReady"]
	g.peers.calls.mu.Unlock()
	if id1.Role != typesv1.Role_ROLE_WORKER || id1.Subject != "wang.li" || id1.Compound != "haixin" {
		t.Errorf("MarkParcelReady identity %+v", id1)
	}
	if left <= 0 || left > callTimeout {
		t.Errorf("MarkParcelReady arrived with %v left, want (0, %v]", left, callTimeout)
	}

	// At the gate, the dispatcher finds them among what the suppliers handed over.
	gate := g.dispatcher(t).do(t, "GET", "/api/v1/dispatch/gate", "")
	if gate.status != 200 || len(get(gate.body, "parcels").([]any)) != 1+19 {
		t.Errorf("gate = %d, %d parcels, want FreshMart's and the 19 packs: %s", gate.status, len(get(gate.body, "parcels").([]any)), gate.raw)
	}

	// Asked again (a double tap, a retry after a lost answer), only what is still waiting is tried.
	again := w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/hand-over", `{}`)
	if again.status != 200 || integer(t, get(again.body, "waiting")) != 1 || integer(t, get(again.body, "handed_over")) != 0 ||
		integer(t, get(again.body, "failed")) != 1 {
		t.Fatalf("again = %d %s", again.status, again.raw)
	}
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/hand-over", `{"parcel_ids":["x"]}`), 400, "INVALID_ARGUMENT", "parcel_ids")
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+id+"/hand-over", `{"x":`), 400, "INVALID_ARGUMENT", "body")

	// A pharmacy's packs are handed over by the pharmacy's staff.
	pharmacy := w.do(t, "POST", "/api/v1/worker/campaigns", `{"request_id":"c-ph","name":"口罩 Masks","pack":[{"item_id":"masks","quantity":1}]}`)
	phID := get(pharmacy.body, "campaign_id").(string)
	g.peers.supplier.addPacks("haixin-pharmacy", phID, 2)
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+phID+"/hand-over", ``), 409, "FAILED_PRECONDITION", "")

	// A supplier that refuses the worker refuses every pack: the answer says so, and the rest
	// are not asked for one by one.
	other := newCampaign(t, w, "c-2", true)
	g.peers.supplier.addPacks("haixin-donations", other, 40)
	g.peers.supplier.mu.Lock()
	g.peers.supplier.refuseReady = true
	before := len(g.peers.supplier.readyByReq)
	g.peers.supplier.mu.Unlock()
	expectError(t, w.do(t, "POST", "/api/v1/worker/campaigns/"+other+"/hand-over", ``), 403, "PERMISSION_DENIED", "")
	g.peers.supplier.mu.Lock()
	after := len(g.peers.supplier.readyByReq)
	g.peers.supplier.mu.Unlock()
	if after != before {
		t.Errorf("packs were handed over by a refused worker: %d -> %d", before, after)
	}
}
