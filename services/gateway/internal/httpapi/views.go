package httpapi

import (
	"strings"
	"time"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The API's JSON is written with these structs rather than protojson: protojson renders int64
// (every amount in fen) as a string, and the public shape should not move whenever a proto
// field is added. Names are snake_case, money is integer fen, enums are their SPEC.md names
// ("OUT_FOR_DELIVERY"), times RFC 3339 in UTC, and every field is always present.

type catalogView struct {
	Compound  string         `json:"compound"`
	Suppliers []supplierView `json:"suppliers"`
}

type supplierView struct {
	SupplierID string     `json:"supplier_id"`
	Name       string     `json:"name"`
	Kind       string     `json:"kind"`
	Items      []itemView `json:"items"`
}

type itemView struct {
	ItemID   string `json:"item_id"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Unit     string `json:"unit"`
	// Weighed items are ordered in grams and priced per kilogram.
	Weighed           bool   `json:"weighed"`
	CurrentPriceFen   int64  `json:"current_price_fen"`
	ReferencePriceFen int64  `json:"reference_price_fen"`
	Stock             int64  `json:"stock"`
	RationPerDay      int64  `json:"ration_per_day"`
	Bundle            bool   `json:"bundle"`
	BundleContents    string `json:"bundle_contents"`
	UnitWeightGrams   int64  `json:"unit_weight_grams"`
}

type actorView struct {
	Role string `json:"role"`
	ID   string `json:"id"`
}

type orderView struct {
	OrderID     string       `json:"order_id"`
	HouseholdID string       `json:"household_id"`
	Status      string       `json:"status"`
	TotalFen    int64        `json:"total_fen"`
	Channel     string       `json:"channel"`
	PlacedBy    actorView    `json:"placed_by"`
	PlacedAt    *time.Time   `json:"placed_at"`
	Parcels     []parcelView `json:"parcels"`
	// CampaignID names the campaign of a free pack (channel CAMPAIGN).
	CampaignID string `json:"campaign_id"`
}

type parcelView struct {
	ParcelID    string     `json:"parcel_id"`
	SupplierID  string     `json:"supplier_id"`
	State       string     `json:"state"`
	Lines       []lineView `json:"lines"`
	TotalFen    int64      `json:"total_fen"`
	WeightGrams int64      `json:"weight_grams"`
	Reason      string     `json:"reason"`
	Contactless bool       `json:"contactless"`
	UpdatedAt   *time.Time `json:"updated_at"`
}

type lineView struct {
	ItemID             string `json:"item_id"`
	Name               string `json:"name"`
	Unit               string `json:"unit"`
	Weighed            bool   `json:"weighed"`
	Quantity           int64  `json:"quantity"`
	UnitPriceFen       int64  `json:"unit_price_fen"`
	AmountFen          int64  `json:"amount_fen"`
	ConfirmedQuantity  int64  `json:"confirmed_quantity"`
	ConfirmedAmountFen int64  `json:"confirmed_amount_fen"`
}

type ordersView struct {
	HouseholdID string      `json:"household_id"`
	Orders      []orderView `json:"orders"`
}

type timelineView struct {
	OrderID string      `json:"order_id"`
	Entries []entryView `json:"entries"`
}

type entryView struct {
	EventID    string     `json:"event_id"`
	OccurredAt *time.Time `json:"occurred_at"`
	Kind       string     `json:"kind"`
	ParcelID   string     `json:"parcel_id"`
	State      string     `json:"state"`
	Actor      actorView  `json:"actor"`
	Detail     string     `json:"detail"`
}

// catalog groups items under their suppliers, in the suppliers' order. An item of a supplier the
// list does not name (created between the two calls) waits for the next refresh.
func catalog(compound string, suppliers []*supplierv1.Supplier, items []*supplierv1.Item) catalogView {
	out := catalogView{Compound: compound, Suppliers: []supplierView{}}
	index := map[string]int{}
	for _, s := range suppliers {
		index[s.GetSupplierId()] = len(out.Suppliers)
		out.Suppliers = append(out.Suppliers, supplierView{
			SupplierID: s.GetSupplierId(), Name: s.GetName(), Kind: s.GetKind(), Items: []itemView{},
		})
	}
	for _, it := range items {
		i, ok := index[it.GetSupplierId()]
		if !ok {
			continue
		}
		out.Suppliers[i].Items = append(out.Suppliers[i].Items, itemView{
			ItemID: it.GetItemId(), Name: it.GetName(), Category: it.GetCategory(), Unit: it.GetUnit(),
			Weighed: it.GetWeighed(), CurrentPriceFen: it.GetCurrentPriceFen(), ReferencePriceFen: it.GetReferencePriceFen(),
			Stock: it.GetStock(), RationPerDay: it.GetRationPerDay(), Bundle: it.GetBundle(),
			BundleContents: it.GetBundleContents(), UnitWeightGrams: it.GetUnitWeightGrams(),
		})
	}
	return out
}

func order(o *orderv1.Order) orderView {
	v := orderView{
		OrderID: o.GetOrderId(), HouseholdID: o.GetHouseholdId(),
		Status:   enumName(o.GetStatus().String(), "ORDER_STATUS_"),
		TotalFen: o.GetTotalFen(), Channel: enumName(o.GetChannel().String(), "CHANNEL_"),
		PlacedBy: actor(o.GetPlacedBy()), PlacedAt: timeOf(o.GetPlacedAt()),
		Parcels: make([]parcelView, 0, len(o.GetParcels())), CampaignID: o.GetCampaignId(),
	}
	for _, p := range o.GetParcels() {
		v.Parcels = append(v.Parcels, parcelView{
			ParcelID: p.GetParcelId(), SupplierID: p.GetSupplierId(), State: parcelState(p.GetState()),
			Lines: lineViews(p.GetLines()), TotalFen: p.GetTotalFen(), WeightGrams: p.GetWeightGrams(),
			Reason: p.GetReason(), Contactless: p.GetContactless(), UpdatedAt: timeOf(p.GetUpdatedAt()),
		})
	}
	return v
}

func orders(householdID string, os []*orderv1.Order) ordersView {
	v := ordersView{HouseholdID: householdID, Orders: make([]orderView, 0, len(os))}
	for _, o := range os {
		v.Orders = append(v.Orders, order(o))
	}
	return v
}

func timelineOf(resp *trackingv1.GetOrderTimelineResponse) timelineView {
	v := timelineView{OrderID: resp.GetOrderId(), Entries: make([]entryView, 0, len(resp.GetEntries()))}
	for _, e := range resp.GetEntries() {
		v.Entries = append(v.Entries, entry(e))
	}
	return v
}

func entry(e *trackingv1.TimelineEntry) entryView {
	return entryView{
		EventID: e.GetEventId(), OccurredAt: timeOf(e.GetOccurredAt()), Kind: e.GetKind(),
		ParcelID: e.GetParcelId(), State: parcelState(e.GetState()), Actor: actor(e.GetActor()), Detail: e.GetDetail(),
	}
}

func actor(a *typesv1.Actor) actorView {
	return actorView{Role: enumName(a.GetRole().String(), "ROLE_"), ID: a.GetId()}
}

func parcelState(s typesv1.ParcelState) string {
	return enumName(s.String(), "PARCEL_STATE_")
}

// enumName strips an enum's prefix; UNSPECIFIED becomes "" so clients need not know the
// protobuf convention.
func enumName(name, prefix string) string {
	name = strings.TrimPrefix(name, prefix)
	if name == "UNSPECIFIED" {
		return ""
	}
	return name
}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}

// pricedLine is what an order's parcel line and a supplier's say alike.
type pricedLine interface {
	GetItemId() string
	GetName() string
	GetUnit() string
	GetWeighed() bool
	GetQuantity() int64
	GetUnitPriceFen() int64
	GetAmountFen() int64
	GetConfirmedQuantity() int64
	GetConfirmedAmountFen() int64
}

// lineViews shows the lines of a parcel, the order's or the supplier's.
func lineViews[L pricedLine](ls []L) []lineView {
	out := make([]lineView, 0, len(ls))
	for _, l := range ls {
		out = append(out, lineView{ItemID: l.GetItemId(), Name: l.GetName(), Unit: l.GetUnit(), Weighed: l.GetWeighed(),
			Quantity: l.GetQuantity(), UnitPriceFen: l.GetUnitPriceFen(), AmountFen: l.GetAmountFen(),
			ConfirmedQuantity: l.GetConfirmedQuantity(), ConfirmedAmountFen: l.GetConfirmedAmountFen()})
	}
	return out
}
