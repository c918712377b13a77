package app_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Fakes of campaigns and notices as the order, supplier and tracking services offer them: the
// contract's validation, idempotency by request id, compounds kept apart, and a small roster
// that a launch fills and a retry of missed households moves on.

// otherCompoundCampaign belongs to another compound: a haixin worker must find it "not found".
var otherCompoundCampaign = &orderv1.Campaign{CampaignId: "019a0000-0000-7000-c000-0000000e15e0", Compound: "elsewhere",
	Name: "别的小区 Elsewhere", SupplierId: "elsewhere-donations", State: orderv1.CampaignState_CAMPAIGN_STATE_LAUNCHED,
	Target: &orderv1.CampaignTarget{}, Counts: &orderv1.CampaignCounts{}}

// launchRoster is what every launch targets: two households in building 1, two in building 3.
func launchRoster() []*orderv1.RosterEntry {
	entry := func(id, building, unit string, floor int32, room string, st orderv1.RosterStatus, ps typesv1.ParcelState, reason string) *orderv1.RosterEntry {
		return &orderv1.RosterEntry{HouseholdId: id, Status: st, ParcelState: ps, Reason: reason, Attempt: 1,
			Address:  &typesv1.Address{Compound: "haixin", Building: building, Unit: unit, Floor: floor, Room: room},
			ParcelId: "pack-" + id, UpdatedAt: timestamppb.New(placedAt), Priority: id == "haixin-3-2-302"}
	}
	missed := entry("haixin-1-2-201", "1", "2", 2, "201", orderv1.RosterStatus_ROSTER_STATUS_MISSED, typesv1.ParcelState_PARCEL_STATE_REJECTED, "out of stock")
	missed.ParcelId = ""
	return []*orderv1.RosterEntry{
		entry("haixin-1-1-101", "1", "1", 1, "101", orderv1.RosterStatus_ROSTER_STATUS_DELIVERED, typesv1.ParcelState_PARCEL_STATE_DELIVERED, ""),
		missed,
		entry("haixin-3-2-302", "3", "2", 3, "302", orderv1.RosterStatus_ROSTER_STATUS_ON_THE_WAY, typesv1.ParcelState_PARCEL_STATE_AT_GATE, ""),
		entry("haixin-3-2-402", "3", "2", 4, "402", orderv1.RosterStatus_ROSTER_STATUS_FAILED, typesv1.ParcelState_PARCEL_STATE_FAILED, "NOT_HOME"),
	}
}

func countOf(entries []*orderv1.RosterEntry) *orderv1.CampaignCounts {
	c := &orderv1.CampaignCounts{}
	for _, e := range entries {
		c.Targeted++
		switch e.GetStatus() {
		case orderv1.RosterStatus_ROSTER_STATUS_PACKING:
			c.Packing++
		case orderv1.RosterStatus_ROSTER_STATUS_ON_THE_WAY:
			c.OnTheWay++
		case orderv1.RosterStatus_ROSTER_STATUS_DELIVERED:
			c.Delivered++
		case orderv1.RosterStatus_ROSTER_STATUS_FAILED:
			c.Failed++
		case orderv1.RosterStatus_ROSTER_STATUS_MISSED:
			c.Missed++
		}
	}
	return c
}

// idempotent answers a retry with the first answer and refuses a request id reused for another
// request; first is called with f.mu held only for a new request id.
func (f *fakeOrder) idempotent(method, requestID string, req proto.Message, first func() (proto.Message, error)) (proto.Message, error) {
	key := method + "/" + requestID
	if prev, ok := f.firstRequest[key]; ok {
		if !proto.Equal(prev, req) {
			return nil, status.Errorf(codes.AlreadyExists, "request_id %s was used for another request", requestID)
		}
		return f.answers[key], nil
	}
	resp, err := first()
	if err == nil {
		f.firstRequest[key], f.answers[key] = req, resp
	}
	return resp, err
}

// caller is who the gateway said is calling a method (the interceptor has recorded it).
func (c *calls) caller(method string) *typesv1.Actor {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.identities[method]
	return &typesv1.Actor{Role: id.Role, Id: id.Subject}
}

func (c *calls) compoundOf(method string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.identities[method].Compound
}

func (f *fakeOrder) CreateCampaign(ctx context.Context, req *orderv1.CreateCampaignRequest) (*orderv1.CreateCampaignResponse, error) {
	f.calls.keep(ctx, "CreateCampaign", req)
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	v.Required(req.GetName(), "name")
	v.Check(len(req.GetPack()) > 0, "pack", "must hold at least one item")
	v.Check(len(req.GetPack()) <= 20, "pack", "must hold at most 20 items")
	supplier := ""
	for i, l := range req.GetPack() {
		it, ok := catalogItems[l.GetItemId()]
		v.Check(ok, fmt.Sprintf("pack[%d].item_id", i), "must be an item of the catalog")
		v.Check(l.GetQuantity() > 0, fmt.Sprintf("pack[%d].quantity", i), "must be positive")
		if ok && supplier == "" {
			supplier = it.GetSupplierId()
		}
		v.Check(!ok || it.GetSupplierId() == supplier, fmt.Sprintf("pack[%d].item_id", i), "must be an item of "+supplier+", as the rest of the pack")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	createdBy := f.calls.caller("CreateCampaign")
	f.mu.Lock()
	defer f.mu.Unlock()
	resp, err := f.idempotent("CreateCampaign", req.GetRequestId(), req, func() (proto.Message, error) {
		c := &orderv1.Campaign{CampaignId: fmt.Sprintf("019a0000-0000-7000-c000-%012d", len(f.campaigns)), Compound: req.GetCompound(),
			Name: req.GetName(), SupplierId: supplier, Pack: req.GetPack(), Target: req.GetTarget(),
			State: orderv1.CampaignState_CAMPAIGN_STATE_DRAFT, CreatedBy: createdBy, CreatedAt: timestamppb.New(placedAt),
			Counts: &orderv1.CampaignCounts{}}
		f.campaigns[c.GetCampaignId()] = c
		return &orderv1.CreateCampaignResponse{Campaign: c}, nil
	})
	if err != nil {
		return nil, err
	}
	return resp.(*orderv1.CreateCampaignResponse), nil
}

// campaign finds a campaign of the caller's compound, as the real service narrows by it; f.mu held.
func (f *fakeOrder) campaign(id, compound string) (*orderv1.Campaign, error) {
	c, ok := f.campaigns[id]
	if !ok || c.GetCompound() != compound && id != otherCompoundCampaign.GetCampaignId() {
		// The other compound's campaign is answered anyway, to see the gateway check it too.
		return nil, status.Errorf(codes.NotFound, "campaign %s not found", id)
	}
	return c, nil
}

func (f *fakeOrder) GetCampaign(ctx context.Context, req *orderv1.GetCampaignRequest) (*orderv1.GetCampaignResponse, error) {
	f.calls.keep(ctx, "GetCampaign", req)
	compound := f.calls.compoundOf("GetCampaign")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.campaign(req.GetCampaignId(), compound)
	if err != nil {
		return nil, err
	}
	return &orderv1.GetCampaignResponse{Campaign: c}, nil
}

func (f *fakeOrder) ListCampaigns(ctx context.Context, req *orderv1.ListCampaignsRequest) (*orderv1.ListCampaignsResponse, error) {
	f.calls.keep(ctx, "ListCampaigns", req)
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &orderv1.ListCampaignsResponse{}
	for _, c := range f.campaigns {
		if c.GetCompound() == req.GetCompound() {
			resp.Campaigns = append(resp.Campaigns, c)
		}
	}
	slices.SortFunc(resp.Campaigns, func(a, b *orderv1.Campaign) int { return -cmpString(a.GetCampaignId(), b.GetCampaignId()) })
	return resp, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (f *fakeOrder) LaunchCampaign(ctx context.Context, req *orderv1.LaunchCampaignRequest) (*orderv1.LaunchCampaignResponse, error) {
	f.calls.keep(ctx, "LaunchCampaign", req)
	if req.GetRequestId() == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	compound := f.calls.compoundOf("LaunchCampaign")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.campaign(req.GetCampaignId(), compound)
	if err != nil {
		return nil, err
	}
	// Launching again changes nothing: no household gets a second pack.
	if c.GetState() == orderv1.CampaignState_CAMPAIGN_STATE_DRAFT {
		f.rosters[c.GetCampaignId()] = launchRoster()
		c.State, c.LaunchedAt = orderv1.CampaignState_CAMPAIGN_STATE_LAUNCHED, timestamppb.New(placedAt.Add(time.Hour))
		c.Counts = countOf(f.rosters[c.GetCampaignId()])
	}
	return &orderv1.LaunchCampaignResponse{Campaign: c}, nil
}

func (f *fakeOrder) RetryMissedHouseholds(ctx context.Context, req *orderv1.RetryMissedHouseholdsRequest) (*orderv1.RetryMissedHouseholdsResponse, error) {
	f.calls.keep(ctx, "RetryMissedHouseholds", req)
	if req.GetRequestId() == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	compound := f.calls.compoundOf("RetryMissedHouseholds")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.campaign(req.GetCampaignId(), compound)
	if err != nil {
		return nil, err
	}
	if c.GetState() == orderv1.CampaignState_CAMPAIGN_STATE_DRAFT {
		return nil, status.Errorf(codes.FailedPrecondition, "campaign %s is not launched", c.GetCampaignId())
	}
	resp, err := f.idempotent("RetryMissedHouseholds", req.GetRequestId(), req, func() (proto.Message, error) {
		var retried int32
		for _, e := range f.rosters[c.GetCampaignId()] {
			if e.GetStatus() == orderv1.RosterStatus_ROSTER_STATUS_MISSED {
				e.Status, e.ParcelState, e.Reason, e.Attempt = orderv1.RosterStatus_ROSTER_STATUS_PACKING, typesv1.ParcelState_PARCEL_STATE_PLACED, "", e.GetAttempt()+1
				e.ParcelId = fmt.Sprintf("pack-%s-%d", e.GetHouseholdId(), e.GetAttempt())
				retried++
			}
		}
		c.Counts = countOf(f.rosters[c.GetCampaignId()])
		return &orderv1.RetryMissedHouseholdsResponse{Campaign: proto.Clone(c).(*orderv1.Campaign), Retried: retried}, nil
	})
	if err != nil {
		return nil, err
	}
	return resp.(*orderv1.RetryMissedHouseholdsResponse), nil
}

func (f *fakeOrder) GetCampaignRoster(ctx context.Context, req *orderv1.GetCampaignRosterRequest) (*orderv1.GetCampaignRosterResponse, error) {
	f.calls.keep(ctx, "GetCampaignRoster", req)
	size := int(req.GetPageSize())
	if size > 1000 {
		return nil, grpcx.InvalidField("page_size", "must be at most 1000")
	}
	if size == 0 {
		size = 200
	}
	from := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, grpcx.InvalidField("page_token", "is not a token this service gave")
		}
		from = n
	}
	compound := f.calls.compoundOf("GetCampaignRoster")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.campaign(req.GetCampaignId(), compound); err != nil {
		return nil, err
	}
	all := f.rosters[req.GetCampaignId()]
	var shown []*orderv1.RosterEntry
	for _, e := range all {
		if (len(req.GetStatuses()) == 0 || slices.Contains(req.GetStatuses(), e.GetStatus())) &&
			(req.GetBuilding() == "" || e.GetAddress().GetBuilding() == req.GetBuilding()) {
			shown = append(shown, e)
		}
	}
	resp := &orderv1.GetCampaignRosterResponse{Totals: countOf(all)}
	if from < len(shown) {
		to := min(from+size, len(shown))
		resp.Entries = shown[from:to]
		if to < len(shown) {
			resp.NextPageToken = strconv.Itoa(to)
		}
	}
	byBuilding := map[string][]*orderv1.RosterEntry{}
	var buildings []string
	for _, e := range all {
		b := e.GetAddress().GetBuilding()
		if _, ok := byBuilding[b]; !ok {
			buildings = append(buildings, b)
		}
		byBuilding[b] = append(byBuilding[b], e)
	}
	for _, b := range buildings {
		resp.Buildings = append(resp.Buildings, &orderv1.BuildingCounts{Building: b, Counts: countOf(byBuilding[b])})
	}
	return resp, nil
}

func (f *fakeOrder) ExportCampaignRoster(ctx context.Context, req *orderv1.ExportCampaignRosterRequest) (*orderv1.ExportCampaignRosterResponse, error) {
	f.calls.keep(ctx, "ExportCampaignRoster", req)
	compound := f.calls.compoundOf("ExportCampaignRoster")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.campaign(req.GetCampaignId(), compound); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("\ufeffhousehold_id,building,status,reason\r\n")
	for _, e := range f.rosters[req.GetCampaignId()] {
		fmt.Fprintf(&b, "%s,%s,%s,%s\r\n", e.GetHouseholdId(), e.GetAddress().GetBuilding(), e.GetStatus(), e.GetReason())
	}
	return &orderv1.ExportCampaignRosterResponse{Csv: b.Bytes()}, nil
}

func (f *fakeOrder) PostNotice(ctx context.Context, req *orderv1.PostNoticeRequest) (*orderv1.PostNoticeResponse, error) {
	f.calls.keep(ctx, "PostNotice", req)
	var v grpcx.Violations
	v.Required(req.GetRequestId(), "request_id")
	v.Required(req.GetCompound(), "compound")
	v.Required(req.GetTitle(), "title")
	v.Check(len([]rune(req.GetTitle())) <= 100, "title", "must be at most 100 characters")
	v.Required(req.GetText(), "text")
	v.Check(len([]rune(req.GetText())) <= 4000, "text", "must be at most 4000 characters")
	for i, b := range req.GetBuildings() {
		v.Required(b, fmt.Sprintf("buildings[%d]", i))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	postedBy := f.calls.caller("PostNotice")
	f.mu.Lock()
	defer f.mu.Unlock()
	resp, err := f.idempotent("PostNotice", req.GetRequestId(), req, func() (proto.Message, error) {
		n := &orderv1.Notice{NoticeId: fmt.Sprintf("019a0000-0000-7000-d000-%012d", len(f.notices)+1), Compound: req.GetCompound(),
			Title: req.GetTitle(), Text: req.GetText(), Buildings: req.GetBuildings(), PostedBy: postedBy,
			PostedAt: timestamppb.New(placedAt.Add(time.Duration(len(f.notices)) * time.Minute))}
		f.notices = append(f.notices, n)
		return &orderv1.PostNoticeResponse{Notice: n}, nil
	})
	if err != nil {
		return nil, err
	}
	return resp.(*orderv1.PostNoticeResponse), nil
}

func (f *fakeOrder) WithdrawNotice(ctx context.Context, req *orderv1.WithdrawNoticeRequest) (*orderv1.WithdrawNoticeResponse, error) {
	f.calls.keep(ctx, "WithdrawNotice", req)
	if req.GetRequestId() == "" {
		return nil, grpcx.InvalidField("request_id", "is required")
	}
	compound := f.calls.compoundOf("WithdrawNotice")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.notices {
		if n.GetNoticeId() == req.GetNoticeId() && n.GetCompound() == compound {
			if n.GetWithdrawnAt() == nil {
				n.WithdrawnAt = timestamppb.New(placedAt.Add(time.Hour))
			}
			return &orderv1.WithdrawNoticeResponse{Notice: n}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "notice %s not found", req.GetNoticeId())
}

func (f *fakeOrder) ListNotices(ctx context.Context, req *orderv1.ListNoticesRequest) (*orderv1.ListNoticesResponse, error) {
	f.calls.keep(ctx, "ListNotices", req)
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &orderv1.ListNoticesResponse{}
	for _, n := range slices.Backward(f.notices) {
		if n.GetCompound() == req.GetCompound() {
			resp.Notices = append(resp.Notices, n)
		}
	}
	return resp, nil
}

// ListNotices is tracking's read model: the notices the order service holds that are not
// withdrawn, to every building or to the one asked for, newest first.
func (f *fakeTracking) ListNotices(ctx context.Context, req *trackingv1.ListNoticesRequest) (*trackingv1.ListNoticesResponse, error) {
	f.calls.keep(ctx, "TrackingListNotices", req)
	if req.GetCompound() == "" {
		return nil, grpcx.InvalidField("compound", "is required")
	}
	f.mu.Lock()
	building := req.GetBuilding()
	if f.leakBuildings {
		building = ""
	}
	f.mu.Unlock()
	f.orders.mu.Lock()
	defer f.orders.mu.Unlock()
	resp := &trackingv1.ListNoticesResponse{}
	for _, n := range slices.Backward(f.orders.notices) {
		if n.GetCompound() != req.GetCompound() || n.GetWithdrawnAt() != nil {
			continue
		}
		if building != "" && len(n.GetBuildings()) > 0 && !slices.Contains(n.GetBuildings(), building) {
			continue
		}
		resp.Notices = append(resp.Notices, &trackingv1.Notice{NoticeId: n.GetNoticeId(), Title: n.GetTitle(), Text: n.GetText(),
			Buildings: n.GetBuildings(), PostedAt: n.GetPostedAt(), PostedBy: n.GetPostedBy()})
	}
	return resp, nil
}

// addPacks puts n confirmed packs of a campaign at the supplier, as a launch leaves them; the
// pack of haixin-1-2-201 will be refused when handed over.
func (f *fakeSupplier) addPacks(supplierID, campaignID string, n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for i := range n {
		household := fmt.Sprintf("haixin-3-2-%d", 101+i)
		if i == 0 {
			household = "haixin-1-2-201"
		}
		p := &supplierv1.SupplierParcel{ParcelId: fmt.Sprintf("pack-%s-%03d", campaignID[len(campaignID)-4:], i), SupplierId: supplierID,
			CampaignId: campaignID, HouseholdId: household, State: typesv1.ParcelState_PARCEL_STATE_CONFIRMED,
			Lines: []*supplierv1.ParcelLine{{ItemId: "donated-84", Name: "84消毒液", Unit: "bottle", Quantity: 1}}}
		f.packs[p.GetParcelId()] = p
		ids = append(ids, p.GetParcelId())
	}
	return ids
}

// packsPage is how many packs the fake answers ListParcels with at most: fewer than the tests'
// campaigns have, so that a caller reading only the first page misses some.
const packsPage = 6

// listPacks answers ListParcels with campaign packs, of one campaign or of all, a page at a time.
func (f *fakeSupplier) listPacks(req *supplierv1.ListParcelsRequest) *supplierv1.ListParcelsResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*supplierv1.SupplierParcel
	for _, p := range f.packs {
		if p.GetSupplierId() == req.GetSupplierId() && (req.GetCampaignId() == "" || p.GetCampaignId() == req.GetCampaignId()) &&
			(req.GetState() == typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED || p.GetState() == req.GetState()) {
			all = append(all, proto.Clone(p).(*supplierv1.SupplierParcel))
		}
	}
	slices.SortFunc(all, func(a, b *supplierv1.SupplierParcel) int { return strings.Compare(a.GetParcelId(), b.GetParcelId()) })
	from, _ := strconv.Atoi(req.GetPageToken()) // the fake's token is the offset in parcel id order
	from = min(from, len(all))
	to := min(from+packsPage, len(all))
	resp := &supplierv1.ListParcelsResponse{Parcels: all[from:to]}
	if to < len(all) {
		resp.NextPageToken = strconv.Itoa(to)
	}
	return resp
}

// markPackReady hands one pack over: idempotent by request id, refused unless CONFIRMED. Each
// call holds a moment, so that calls overlap and the test sees how many run at once.
func (f *fakeSupplier) markPackReady(ctx context.Context, req *supplierv1.MarkParcelReadyRequest) (*supplierv1.MarkParcelReadyResponse, error) {
	f.mu.Lock()
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	select {
	case <-time.After(5 * time.Millisecond):
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuseReady {
		return nil, status.Error(codes.PermissionDenied, "a worker may hand over only donated packs")
	}
	if first, ok := f.readyByReq[req.GetRequestId()]; ok {
		if first != req.GetParcelId() {
			return nil, status.Errorf(codes.AlreadyExists, "request_id %s was used for another parcel", req.GetRequestId())
		}
		return &supplierv1.MarkParcelReadyResponse{Parcel: f.packs[first]}, nil
	}
	p := f.packs[req.GetParcelId()]
	switch {
	case p == nil || p.GetSupplierId() != req.GetSupplierId():
		return nil, status.Errorf(codes.NotFound, "parcel %s not found", req.GetParcelId())
	case p.GetHouseholdId() == "haixin-1-2-201":
		return nil, status.Errorf(codes.FailedPrecondition, "parcel %s was cancelled by the household", req.GetParcelId())
	case p.GetState() != typesv1.ParcelState_PARCEL_STATE_CONFIRMED:
		return nil, status.Errorf(codes.FailedPrecondition, "parcel %s is %s, not CONFIRMED", req.GetParcelId(), p.GetState())
	}
	p.State = typesv1.ParcelState_PARCEL_STATE_READY
	f.readyByReq[req.GetRequestId()] = p.GetParcelId()
	return &supplierv1.MarkParcelReadyResponse{Parcel: p}, nil
}
