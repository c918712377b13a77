package app_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// rosterHousehold is one household the campaign tests register.
type rosterHousehold struct {
	building, unit, room string
	floor                int
	occupancy            orderv1.Occupancy
	over80, alone        bool
}

// campaignRoster registers haixin households: seven occupied over three buildings (two of them
// priority), one empty and one nobody has checked. It returns the ids by room.
func (e *env) campaignRoster() map[string]string {
	e.t.Helper()
	occupied := orderv1.Occupancy_OCCUPANCY_OCCUPIED
	hs := []rosterHousehold{
		{"1", "1", "101", 1, occupied, false, false},
		{"1", "1", "102", 1, occupied, false, false},
		{"1", "2", "601", 6, occupied, true, false},
		{"2", "1", "201", 2, occupied, false, false},
		{"2", "2", "301", 3, occupied, false, true},
		{"3", "1", "101", 1, occupied, false, false},
		{"3", "2", "502", 5, occupied, false, false},
		{"3", "2", "602", 6, orderv1.Occupancy_OCCUPANCY_EMPTY, false, false},
		{"A", "1", "1801", 18, orderv1.Occupancy_OCCUPANCY_UNKNOWN, false, false},
	}
	ids := map[string]string{}
	for _, h := range hs {
		resp, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
			Address:   &typesv1.Address{Compound: "haixin", Building: h.building, Unit: h.unit, Floor: int32(h.floor), Room: h.room},
			Residents: 1, Occupancy: h.occupancy, Over_80: h.over80, LivesAlone: h.alone}})
		if err != nil {
			e.t.Fatal(err)
		}
		ids[h.building+"-"+h.room] = resp.Household.HouseholdId
	}
	return ids
}

func (e *env) createCampaign(requestID string, pack []*orderv1.PackLine, target *orderv1.CampaignTarget) *orderv1.Campaign {
	e.t.Helper()
	resp, err := e.client.CreateCampaign(e.worker, &orderv1.CreateCampaignRequest{RequestId: requestID, Compound: "haixin",
		Name: "84消毒液和告知书", Pack: pack, Target: target})
	if err != nil {
		e.t.Fatalf("CreateCampaign: %v", err)
	}
	return resp.Campaign
}

func (e *env) launch(id string) *orderv1.Campaign {
	e.t.Helper()
	resp, err := e.client.LaunchCampaign(e.worker, &orderv1.LaunchCampaignRequest{RequestId: "launch-" + id, CampaignId: id})
	if err != nil {
		e.t.Fatalf("LaunchCampaign: %v", err)
	}
	return resp.Campaign
}

// waitLaunched waits until the launcher has made or missed every pack of the campaign.
func (e *env) waitLaunched(id string) *orderv1.Campaign {
	e.t.Helper()
	var camp *orderv1.Campaign
	testkit.Eventually(e.t, 20*time.Second, func() error {
		resp, err := e.client.GetCampaign(e.worker, &orderv1.GetCampaignRequest{CampaignId: id})
		if err != nil {
			return err
		}
		camp = resp.Campaign
		if camp.State != orderv1.CampaignState_CAMPAIGN_STATE_LAUNCHED {
			return fmt.Errorf("campaign %s, counts %v", camp.State, camp.Counts)
		}
		return nil
	})
	return camp
}

func (e *env) roster(id string, filter ...orderv1.RosterStatus) *orderv1.GetCampaignRosterResponse {
	e.t.Helper()
	resp, err := e.client.GetCampaignRoster(e.worker, &orderv1.GetCampaignRosterRequest{CampaignId: id, Statuses: filter, PageSize: 1000})
	if err != nil {
		e.t.Fatalf("GetCampaignRoster: %v", err)
	}
	return resp
}

var donatedPack = []*orderv1.PackLine{{ItemId: "disinfectant-84", Quantity: 1}, {ItemId: "notice-print", Quantity: 1}}

// A launch gives each occupied household one free pack, a parcel of the pack's supplier at zero
// price placed by the worker who launched it; empty flats, and unchecked ones unless asked, get
// none. Launching again gives nobody a second.
func TestCampaignLaunchGivesEachTargetOnePack(t *testing.T) {
	t.Parallel()
	e := start(t)
	ids := e.campaignRoster()
	camp := e.createCampaign("packs-1", donatedPack, nil)
	if camp.State != orderv1.CampaignState_CAMPAIGN_STATE_DRAFT || camp.SupplierId != "donations" || camp.Counts.Targeted != 0 {
		t.Fatalf("created %v", camp)
	}
	// A retry of the request is the same campaign.
	if again := e.createCampaign("packs-1", donatedPack, nil); again.CampaignId != camp.CampaignId {
		t.Errorf("retry created %s, first %s", again.CampaignId, camp.CampaignId)
	}
	// Two workers press launch at once, twice each.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { e.launch(camp.CampaignId) })
	}
	wg.Wait()
	camp = e.waitLaunched(camp.CampaignId)
	e.launch(camp.CampaignId)

	if camp.Counts.Targeted != 7 || camp.Counts.Missed != 0 {
		t.Errorf("counts %v, want 7 targeted, none missed", camp.Counts)
	}
	if got := e.count(`SELECT count(*) FROM orders WHERE campaign_id = $1`, camp.CampaignId); got != 7 {
		t.Errorf("%d packs stored, want 7", got)
	}
	if got := e.sup.reservations(); got != 7 {
		t.Errorf("%d reservations at the supplier, want 7", got)
	}
	roster := e.roster(camp.CampaignId)
	var got []string
	for _, r := range roster.Entries {
		got = append(got, r.HouseholdId)
		o, err := e.client.ListOrders(e.worker, &orderv1.ListOrdersRequest{HouseholdId: r.HouseholdId})
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Orders) != 1 {
			t.Fatalf("%s has %d orders", r.HouseholdId, len(o.Orders))
		}
		pack := o.Orders[0]
		if pack.CampaignId != camp.CampaignId || pack.Channel != orderv1.Channel_CHANNEL_CAMPAIGN || pack.TotalFen != 0 ||
			pack.PlacedBy.GetRole() != typesv1.Role_ROLE_WORKER || len(pack.Parcels) != 1 || pack.Parcels[0].SupplierId != "donations" {
			t.Errorf("pack of %s: %v", r.HouseholdId, pack)
		}
		if r.ParcelId != pack.Parcels[0].ParcelId || r.Attempt != 1 || r.Status != orderv1.RosterStatus_ROSTER_STATUS_PACKING {
			t.Errorf("roster entry %v", r)
		}
	}
	for _, skipped := range []string{ids["3-602"], ids["A-1801"]} {
		if slices.Contains(got, skipped) {
			t.Errorf("%s got a pack", skipped)
		}
	}
	// Counts by building: 3 in 1, 2 in 2, 2 in 3.
	want := map[string]int32{"1": 3, "2": 2, "3": 2}
	if len(roster.Buildings) != 3 {
		t.Errorf("buildings %v", roster.Buildings)
	}
	for _, b := range roster.Buildings {
		if b.Counts.Targeted != want[b.Building] {
			t.Errorf("building %s: %v, want %d", b.Building, b.Counts, want[b.Building])
		}
	}
	// order.placed carries the campaign.
	for _, ev := range e.waitStream("doorstep.haixin.order.placed", 7) {
		if ev.event.GetOrderPlaced().GetCampaignId() != camp.CampaignId || ev.event.GetOrderPlaced().GetChannel() != "campaign" {
			t.Errorf("order.placed %v", ev.event)
		}
	}
}

// Targets narrow by building and by flag; unchecked flats are included when asked.
func TestCampaignTargets(t *testing.T) {
	t.Parallel()
	e := start(t)
	ids := e.campaignRoster()
	for _, tc := range []struct {
		target *orderv1.CampaignTarget
		want   []string
	}{
		{&orderv1.CampaignTarget{Buildings: []string{"3"}}, []string{ids["3-101"], ids["3-502"]}},
		{&orderv1.CampaignTarget{Flags: []orderv1.HouseholdFlag{orderv1.HouseholdFlag_HOUSEHOLD_FLAG_OVER_80,
			orderv1.HouseholdFlag_HOUSEHOLD_FLAG_LIVES_ALONE}}, []string{ids["1-601"], ids["2-301"]}},
		{&orderv1.CampaignTarget{Buildings: []string{"2"}, Flags: []orderv1.HouseholdFlag{orderv1.HouseholdFlag_HOUSEHOLD_FLAG_OVER_80}}, nil},
		{&orderv1.CampaignTarget{Buildings: []string{"A", "3"}, IncludeUnknownOccupancy: true},
			[]string{ids["3-101"], ids["3-502"], ids["A-1801"]}},
	} {
		camp := e.createCampaign(fmt.Sprint(tc.target), donatedPack, tc.target)
		if tc.want == nil {
			// A target that reaches nobody is refused rather than launched to no one.
			_, err := e.client.LaunchCampaign(e.worker, &orderv1.LaunchCampaignRequest{RequestId: "l", CampaignId: camp.CampaignId})
			wantCode(t, err, codes.FailedPrecondition)
			if got, _ := e.client.GetCampaign(e.worker, &orderv1.GetCampaignRequest{CampaignId: camp.CampaignId}); got.GetCampaign().GetState() != orderv1.CampaignState_CAMPAIGN_STATE_DRAFT {
				t.Errorf("an empty launch left %v", got.GetCampaign())
			}
			continue
		}
		e.launch(camp.CampaignId)
		camp = e.waitLaunched(camp.CampaignId)
		var got []string
		for _, r := range e.roster(camp.CampaignId).Entries {
			got = append(got, r.HouseholdId)
		}
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("target %v: %v, want %v", tc.target, got, tc.want)
		}
	}
}

// When stock runs short the priority households get their packs first, the others are missed
// with the supplier's reason; "retry missed" makes them fresh packs once stock is back, and a
// retry of that request moves nobody again.
func TestCampaignMissedAndRetried(t *testing.T) {
	t.Parallel()
	e := start(t)
	ids := e.campaignRoster()
	e.sup.setStock("disinfectant-84", 2)
	camp := e.createCampaign("short", donatedPack, nil)
	e.launch(camp.CampaignId)
	camp = e.waitLaunched(camp.CampaignId)
	if camp.Counts.Packing != 2 || camp.Counts.Missed != 5 {
		t.Fatalf("counts %v, want 2 packed, 5 missed", camp.Counts)
	}
	var packed []string
	for _, r := range e.roster(camp.CampaignId, orderv1.RosterStatus_ROSTER_STATUS_PACKING).Entries {
		packed = append(packed, r.HouseholdId)
	}
	if want := []string{ids["1-601"], ids["2-301"]}; !slices.Equal(packed, want) {
		t.Errorf("packed %v, want the priority households %v", packed, want)
	}
	missed := e.roster(camp.CampaignId, orderv1.RosterStatus_ROSTER_STATUS_MISSED).Entries
	if len(missed) != 5 || !bytes.Contains([]byte(missed[0].Reason), []byte("out of stock")) || missed[0].ParcelId != "" {
		t.Errorf("missed %v", missed)
	}

	// A pack the supplier rejects after all is missed too.
	rejected := e.roster(camp.CampaignId, orderv1.RosterStatus_ROSTER_STATUS_PACKING).Entries[0]
	o := e.getOrder(e.orderOfParcel(rejected.ParcelId))
	rejection := parcelEvent(o, o.Parcels[0], typesv1.ParcelState_PARCEL_STATE_REJECTED, typesv1.Role_ROLE_SUPPLIER,
		"staff-1", func(sc *eventsv1.ParcelStateChanged) { sc.Reason = "bottles broken" })
	seq := e.publish(rejection, rejection.EventId)
	e.waitConsumed(seq)

	e.sup.setStock("disinfectant-84", 100)
	retry := func() *orderv1.RetryMissedHouseholdsResponse {
		resp, err := e.client.RetryMissedHouseholds(e.worker, &orderv1.RetryMissedHouseholdsRequest{RequestId: "retry-1", CampaignId: camp.CampaignId})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := retry(); r.Retried != 6 {
		t.Errorf("retried %d, want 6 (5 out of stock, 1 rejected)", r.Retried)
	}
	camp = e.waitLaunched(camp.CampaignId)
	if r := retry(); r.Retried != 6 {
		t.Errorf("a retry of the request says %d, want the first answer 6", r.Retried)
	}
	if camp.Counts.Packing != 7 || camp.Counts.Missed != 0 {
		t.Errorf("after the retry: %v, want all 7 packed", camp.Counts)
	}
	for _, r := range e.roster(camp.CampaignId).Entries {
		wantAttempt := int32(2)
		if r.HouseholdId != rejected.HouseholdId && slices.Contains(packed, r.HouseholdId) {
			wantAttempt = 1
		}
		if r.Attempt != wantAttempt {
			t.Errorf("%s attempt %d, want %d", r.HouseholdId, r.Attempt, wantAttempt)
		}
	}
	// The rejected household has its first (rejected) pack and its fresh one: two orders, one live.
	if got := e.count(`SELECT count(*) FROM orders WHERE household_id = $1 AND campaign_id = $2`, rejected.HouseholdId, camp.CampaignId); got != 2 {
		t.Errorf("%d packs for the rejected household, want the rejected one and a fresh one", got)
	}
	if got := e.count(`SELECT count(*) FROM parcels p JOIN orders o USING (order_id) WHERE o.campaign_id = $1
		AND p.state NOT IN ('REJECTED', 'CANCELLED', 'EXPIRED')`, camp.CampaignId); got != 7 {
		t.Errorf("%d live packs, want 7", got)
	}
}

func (e *env) orderOfParcel(parcelID string) string {
	e.t.Helper()
	var id string
	if err := e.pool.QueryRow(e.ctx, `SELECT order_id::text FROM parcels WHERE parcel_id = $1`, parcelID).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// Answers lost after the supplier reserved (a crash or a timeout mid-launch): the launcher tries
// again under the same parcel ids, so the supplier holds one reservation per household and every
// household ends with exactly one pack.
func TestCampaignLaunchSurvivesLostAnswers(t *testing.T) {
	t.Parallel()
	e := startWith(t, nil)
	e.campaignRoster()
	var calls atomic.Int64
	e.sup.chaos = func(string) (before, after error) {
		switch calls.Add(1) % 3 {
		case 0:
			return nil, status.Error(codes.Unavailable, "answer lost after reserving")
		case 1:
			return status.Error(codes.Unavailable, "supplier down"), nil
		}
		return nil, nil
	}
	camp := e.createCampaign("flaky", donatedPack, nil)
	e.launch(camp.CampaignId)
	camp = e.waitLaunched(camp.CampaignId)
	if camp.Counts.Packing != 7 {
		t.Errorf("counts %v, want 7 packs", camp.Counts)
	}
	if got := e.sup.reservations(); got != 7 {
		t.Errorf("%d reservations at the supplier, want 7", got)
	}
	if got := e.count(`SELECT count(DISTINCT household_id) FROM orders WHERE campaign_id = $1`, camp.CampaignId); got != 7 {
		t.Errorf("%d households with packs, want 7", got)
	}
	if got := e.count(`SELECT count(*) FROM orders WHERE campaign_id = $1`, camp.CampaignId); got != 7 {
		t.Errorf("%d packs, want 7", got)
	}
	if calls.Load() <= 7 {
		t.Errorf("only %d reservation calls: the faults were not exercised", calls.Load())
	}
}

// A campaign is checked before anything is stored: one supplier's counted items, sane quantities,
// known flags; each refusal names the field.
func TestCampaignRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.sup.addItem(&supplierv1.Item{Compound: "yuyuan", ItemId: "yuyuan-masks", SupplierId: "yuyuan-donations", Name: "Masks",
		Unit: "box", Stock: 100, UnitWeightGrams: 40})
	for _, tc := range []struct {
		name  string
		req   *orderv1.CreateCampaignRequest
		field string
	}{
		{"no name", &orderv1.CreateCampaignRequest{Pack: donatedPack}, "name"},
		{"another compound's item", &orderv1.CreateCampaignRequest{Name: "x", Pack: []*orderv1.PackLine{{ItemId: "yuyuan-masks", Quantity: 1}}}, "pack[0].item_id"},
		{"no pack", &orderv1.CreateCampaignRequest{Name: "x"}, "pack"},
		{"two suppliers", &orderv1.CreateCampaignRequest{Name: "x", Pack: []*orderv1.PackLine{{ItemId: "disinfectant-84", Quantity: 1},
			{ItemId: "masks-10", Quantity: 1}}}, "pack[1].item_id"},
		{"weighed", &orderv1.CreateCampaignRequest{Name: "x", Pack: []*orderv1.PackLine{{ItemId: "pork", Quantity: 1}}}, "pack[0].item_id"},
		{"unknown item", &orderv1.CreateCampaignRequest{Name: "x", Pack: []*orderv1.PackLine{{ItemId: "disinfectant-84", Quantity: 1},
			{ItemId: "gold", Quantity: 1}}}, "pack[1].item_id"},
		{"zero", &orderv1.CreateCampaignRequest{Name: "x", Pack: []*orderv1.PackLine{{ItemId: "disinfectant-84"}}}, "pack[0].quantity"},
		{"twice", &orderv1.CreateCampaignRequest{Name: "x", Pack: []*orderv1.PackLine{{ItemId: "notice-print", Quantity: 1},
			{ItemId: "notice-print", Quantity: 1}}}, "pack[1].item_id"},
		{"flag", &orderv1.CreateCampaignRequest{Name: "x", Pack: donatedPack, Target: &orderv1.CampaignTarget{
			Flags: []orderv1.HouseholdFlag{orderv1.HouseholdFlag(42)}}}, "target.flags[0]"},
		{"building", &orderv1.CreateCampaignRequest{Name: "x", Pack: donatedPack, Target: &orderv1.CampaignTarget{
			Buildings: []string{"3", "3"}}}, "target.buildings[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := proto.Clone(tc.req).(*orderv1.CreateCampaignRequest)
			req.RequestId, req.Compound = tc.name, "haixin"
			_, err := e.client.CreateCampaign(e.worker, req)
			wantField(t, err, tc.field)
		})
	}
	if got := e.count(`SELECT count(*) FROM campaigns`); got != 0 {
		t.Errorf("%d campaigns stored", got)
	}
	// A draft has nothing to retry.
	camp := e.createCampaign("draft", donatedPack, nil)
	_, err := e.client.RetryMissedHouseholds(e.worker, &orderv1.RetryMissedHouseholdsRequest{RequestId: "r", CampaignId: camp.CampaignId})
	wantCode(t, err, codes.FailedPrecondition)
}

// The campaign roster exports as a spreadsheet: a header and one row per targeted household.
func TestCampaignRosterExport(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.campaignRoster()
	camp := e.createCampaign("export", donatedPack, nil)
	e.launch(camp.CampaignId)
	e.waitLaunched(camp.CampaignId)
	resp, err := e.client.ExportCampaignRoster(e.worker, &orderv1.ExportCampaignRosterRequest{CampaignId: camp.CampaignId})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(resp.Csv, []byte("\xEF\xBB\xBF")) {
		t.Error("no byte-order mark")
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(resp.Csv, []byte("\xEF\xBB\xBF")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 || rows[1][0] != "1" || rows[1][3] != "101" || rows[1][5] != "备货中 packing" {
		t.Errorf("rows %q", rows)
	}
	// Pages of the roster cover it once.
	var seen []string
	token := ""
	for {
		page, err := e.client.GetCampaignRoster(e.worker, &orderv1.GetCampaignRosterRequest{CampaignId: camp.CampaignId, PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Entries {
			seen = append(seen, r.HouseholdId)
		}
		if page.Totals.Targeted != 7 {
			t.Errorf("totals %v", page.Totals)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	var whole []string
	for _, r := range e.roster(camp.CampaignId).Entries {
		whole = append(whole, r.HouseholdId)
	}
	if len(whole) != 7 || !slices.Equal(seen, whole) {
		t.Errorf("pages gave %v, the whole roster is %v", seen, whole)
	}
}

// A notice is posted once per request, announced on the stream, and withdrawn once.
func TestNotices(t *testing.T) {
	t.Parallel()
	e := start(t)
	post := func(requestID string, buildings ...string) (*orderv1.Notice, error) {
		resp, err := e.client.PostNotice(e.worker, &orderv1.PostNoticeRequest{RequestId: requestID, Compound: "haixin",
			Title: "核酸检测", Text: "明早7点在楼下做核酸。", Buildings: buildings})
		return resp.GetNotice(), err
	}
	n, err := post("n-1", "3", "A")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := post("n-1", "3", "A"); err != nil || again.NoticeId != n.NoticeId {
		t.Errorf("retry: %v %v", again, err)
	}
	_, err = post("n-1", "1")
	wantCode(t, err, codes.AlreadyExists)
	_, err = post("n-2", "33")
	wantField(t, err, "buildings[0]")
	_, err = e.client.PostNotice(e.worker, &orderv1.PostNoticeRequest{RequestId: "n-3", Compound: "haixin", Text: "x"})
	wantField(t, err, "title")
	all, err := post("n-4")
	if err != nil {
		t.Fatal(err)
	}

	evs := e.waitStream("doorstep.haixin.notice.posted", 2)
	if p := evs[0].event.GetNoticePosted(); p.NoticeId != n.NoticeId || !slices.Equal(p.Buildings, []string{"3", "A"}) ||
		p.Title != "核酸检测" || evs[0].event.Actor.GetRole() != typesv1.Role_ROLE_WORKER {
		t.Errorf("notice.posted %v", evs[0].event)
	}
	for range 2 {
		resp, err := e.client.WithdrawNotice(e.worker, &orderv1.WithdrawNoticeRequest{RequestId: "w", NoticeId: n.NoticeId})
		if err != nil || resp.Notice.WithdrawnAt == nil {
			t.Fatalf("withdraw: %v %v", resp, err)
		}
	}
	if w := e.waitStream("doorstep.haixin.notice.withdrawn", 1); w[0].event.GetNoticeWithdrawn().GetNoticeId() != n.NoticeId {
		t.Errorf("notice.withdrawn %v", w[0].event)
	}
	list, err := e.client.ListNotices(e.worker, &orderv1.ListNoticesRequest{Compound: "haixin"})
	if err != nil || len(list.Notices) != 2 || list.Notices[0].NoticeId != all.NoticeId || list.Notices[1].WithdrawnAt == nil {
		t.Errorf("list %v %v", list, err)
	}
	time.Sleep(200 * time.Millisecond) // a second withdrawn event would have been relayed by now
	if got := len(e.waitStream("doorstep.haixin.notice.withdrawn", 1)); got != 1 {
		t.Errorf("%d notice.withdrawn events, want 1", got)
	}
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err %v, want INVALID_ARGUMENT naming %s", err, field)
	}
	if _, ok := grpcx.FieldViolations(err)[field]; !ok {
		t.Errorf("violations %v do not name %s", grpcx.FieldViolations(err), field)
	}
}
