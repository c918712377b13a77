package httpapi

import (
	"time"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
)

// JSON shapes of notices and campaigns, written by hand for the same reasons as the rest (see
// views.go): SPEC.md enum names without their protobuf prefix, every field present.

// noticeInForceView is a notice as residents read it (tracking's read model).
type noticeInForceView struct {
	NoticeID  string     `json:"notice_id"`
	Title     string     `json:"title"`
	Text      string     `json:"text"`
	Buildings []string   `json:"buildings"`
	PostedAt  *time.Time `json:"posted_at"`
}

func noticeInForce(n *trackingv1.Notice) noticeInForceView {
	return noticeInForceView{NoticeID: n.GetNoticeId(), Title: n.GetTitle(), Text: n.GetText(), Buildings: nonNil(n.GetBuildings()),
		PostedAt: timeOf(n.GetPostedAt())}
}

// noticeView is a notice as the workers keep it: who posted it, and whether it was withdrawn.
type noticeView struct {
	NoticeID    string     `json:"notice_id"`
	Compound    string     `json:"compound"`
	Title       string     `json:"title"`
	Text        string     `json:"text"`
	Buildings   []string   `json:"buildings"`
	PostedBy    actorView  `json:"posted_by"`
	PostedAt    *time.Time `json:"posted_at"`
	WithdrawnAt *time.Time `json:"withdrawn_at"`
}

func notice(n *orderv1.Notice) noticeView {
	return noticeView{NoticeID: n.GetNoticeId(), Compound: n.GetCompound(), Title: n.GetTitle(), Text: n.GetText(),
		Buildings: nonNil(n.GetBuildings()), PostedBy: actor(n.GetPostedBy()), PostedAt: timeOf(n.GetPostedAt()),
		WithdrawnAt: timeOf(n.GetWithdrawnAt())}
}

type countsView struct {
	Targeted  int32 `json:"targeted"`
	Packing   int32 `json:"packing"`
	OnTheWay  int32 `json:"on_the_way"`
	Delivered int32 `json:"delivered"`
	Failed    int32 `json:"failed"`
	Missed    int32 `json:"missed"`
}

func counts(c *orderv1.CampaignCounts) countsView {
	return countsView{Targeted: c.GetTargeted(), Packing: c.GetPacking(), OnTheWay: c.GetOnTheWay(), Delivered: c.GetDelivered(),
		Failed: c.GetFailed(), Missed: c.GetMissed()}
}

type packLineView struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
}

type targetView struct {
	Buildings               []string `json:"buildings"`
	Flags                   []string `json:"flags"`
	IncludeUnknownOccupancy bool     `json:"include_unknown_occupancy"`
}

type campaignView struct {
	CampaignID string         `json:"campaign_id"`
	Compound   string         `json:"compound"`
	Name       string         `json:"name"`
	SupplierID string         `json:"supplier_id"`
	Pack       []packLineView `json:"pack"`
	Target     targetView     `json:"target"`
	State      string         `json:"state"`
	CreatedBy  actorView      `json:"created_by"`
	CreatedAt  *time.Time     `json:"created_at"`
	LaunchedAt *time.Time     `json:"launched_at"`
	Counts     countsView     `json:"counts"`
}

func campaign(c *orderv1.Campaign) campaignView {
	v := campaignView{CampaignID: c.GetCampaignId(), Compound: c.GetCompound(), Name: c.GetName(), SupplierID: c.GetSupplierId(),
		Pack: make([]packLineView, 0, len(c.GetPack())),
		Target: targetView{Buildings: nonNil(c.GetTarget().GetBuildings()), Flags: []string{},
			IncludeUnknownOccupancy: c.GetTarget().GetIncludeUnknownOccupancy()},
		State: enumName(c.GetState().String(), "CAMPAIGN_STATE_"), CreatedBy: actor(c.GetCreatedBy()),
		CreatedAt: timeOf(c.GetCreatedAt()), LaunchedAt: timeOf(c.GetLaunchedAt()), Counts: counts(c.GetCounts())}
	for _, l := range c.GetPack() {
		v.Pack = append(v.Pack, packLineView{ItemID: l.GetItemId(), Quantity: l.GetQuantity()})
	}
	for _, f := range c.GetTarget().GetFlags() {
		v.Target.Flags = append(v.Target.Flags, enumName(f.String(), "HOUSEHOLD_FLAG_"))
	}
	return v
}

type rosterEntryView struct {
	HouseholdID string      `json:"household_id"`
	Address     addressView `json:"address"`
	Status      string      `json:"status"`
	Reason      string      `json:"reason"`
	ParcelID    string      `json:"parcel_id"`
	ParcelState string      `json:"parcel_state"`
	Attempt     int32       `json:"attempt"`
	Priority    bool        `json:"priority"`
	UpdatedAt   *time.Time  `json:"updated_at"`
}

type buildingCountsView struct {
	Building string     `json:"building"`
	Counts   countsView `json:"counts"`
}

type rosterView struct {
	CampaignID    string               `json:"campaign_id"`
	Entries       []rosterEntryView    `json:"entries"`
	NextPageToken string               `json:"next_page_token"`
	Buildings     []buildingCountsView `json:"buildings"`
	Totals        countsView           `json:"totals"`
}

func roster(campaignID string, resp *orderv1.GetCampaignRosterResponse) rosterView {
	v := rosterView{CampaignID: campaignID, Entries: make([]rosterEntryView, 0, len(resp.GetEntries())),
		NextPageToken: resp.GetNextPageToken(), Buildings: make([]buildingCountsView, 0, len(resp.GetBuildings())),
		Totals: counts(resp.GetTotals())}
	for _, e := range resp.GetEntries() {
		v.Entries = append(v.Entries, rosterEntryView{HouseholdID: e.GetHouseholdId(), Address: address(e.GetAddress()),
			Status: enumName(e.GetStatus().String(), "ROSTER_STATUS_"), Reason: e.GetReason(), ParcelID: e.GetParcelId(),
			ParcelState: parcelState(e.GetParcelState()), Attempt: e.GetAttempt(), Priority: e.GetPriority(),
			UpdatedAt: timeOf(e.GetUpdatedAt())})
	}
	for _, b := range resp.GetBuildings() {
		v.Buildings = append(v.Buildings, buildingCountsView{Building: b.GetBuilding(), Counts: counts(b.GetCounts())})
	}
	return v
}
