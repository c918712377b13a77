package httpapi

import (
	"time"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// JSON shapes of the staff consoles, written by hand for the same reasons as the resident's
// (see views.go): integer fen, SPEC.md enum names, every field present.

type addressView struct {
	Compound string `json:"compound"`
	Building string `json:"building"`
	Unit     string `json:"unit"`
	Floor    int32  `json:"floor"`
	Room     string `json:"room"`
}

func address(a *typesv1.Address) addressView {
	return addressView{Compound: a.GetCompound(), Building: a.GetBuilding(), Unit: a.GetUnit(), Floor: a.GetFloor(), Room: a.GetRoom()}
}

type supplierParcelView struct {
	ParcelID    string      `json:"parcel_id"`
	OrderID     string      `json:"order_id"`
	SupplierID  string      `json:"supplier_id"`
	HouseholdID string      `json:"household_id"`
	Address     addressView `json:"address"`
	State       string      `json:"state"`
	Lines       []lineView  `json:"lines"`
	TotalFen    int64       `json:"total_fen"`
	Reason      string      `json:"reason"`
	UpdatedAt   *time.Time  `json:"updated_at"`
	RoundID     string      `json:"round_id"`
	ConfirmBy   *time.Time  `json:"confirm_by"`
}

// gateParcel is a parcel waiting at the gate as the order service has it, in the supplier's
// view's shape (no round or confirm-by: those are the supplier's).
func gateParcel(p *orderv1.Parcel) supplierParcelView {
	return supplierParcelView{ParcelID: p.GetParcelId(), OrderID: p.GetOrderId(), SupplierID: p.GetSupplierId(),
		HouseholdID: p.GetHouseholdId(), Address: address(p.GetAddress()), State: parcelState(p.GetState()),
		Lines: lineViews(p.GetLines()), TotalFen: p.GetTotalFen(), Reason: p.GetReason(), UpdatedAt: timeOf(p.GetUpdatedAt())}
}

func supplierParcel(p *supplierv1.SupplierParcel) supplierParcelView {
	return supplierParcelView{ParcelID: p.GetParcelId(), OrderID: p.GetOrderId(), SupplierID: p.GetSupplierId(),
		HouseholdID: p.GetHouseholdId(), Address: address(p.GetAddress()), State: parcelState(p.GetState()),
		Lines: lineViews(p.GetLines()), TotalFen: p.GetTotalFen(), Reason: p.GetReason(),
		UpdatedAt: timeOf(p.GetUpdatedAt()), RoundID: p.GetRoundId(), ConfirmBy: timeOf(p.GetConfirmBy())}
}

func supplierParcels(ps []*supplierv1.SupplierParcel) []supplierParcelView {
	out := make([]supplierParcelView, 0, len(ps))
	for _, p := range ps {
		out = append(out, supplierParcel(p))
	}
	return out
}

func itemOf(it *supplierv1.Item) itemView {
	return itemView{ItemID: it.GetItemId(), Name: it.GetName(), Category: it.GetCategory(), Unit: it.GetUnit(),
		Weighed: it.GetWeighed(), CurrentPriceFen: it.GetCurrentPriceFen(), ReferencePriceFen: it.GetReferencePriceFen(),
		Stock: it.GetStock(), RationPerDay: it.GetRationPerDay(), Bundle: it.GetBundle(),
		BundleContents: it.GetBundleContents(), UnitWeightGrams: it.GetUnitWeightGrams()}
}

type roundView struct {
	RoundID  string     `json:"round_id"`
	Compound string     `json:"compound"`
	Date     string     `json:"date"`
	Slot     string     `json:"slot"`
	Cutoff   *time.Time `json:"cutoff"`
	State    string     `json:"state"`
	Parcels  int32      `json:"parcels"`
}

func round(r *dispatchv1.Round) roundView {
	return roundView{RoundID: r.GetRoundId(), Compound: r.GetCompound(), Date: r.GetDate(), Slot: r.GetSlot(),
		Cutoff: timeOf(r.GetCutoff()), State: enumName(r.GetState().String(), "ROUND_STATE_"), Parcels: r.GetParcels()}
}

type costView struct {
	Metres int64 `json:"metres"`
	Floors int64 `json:"floors"`
	Trips  int32 `json:"trips"`
}

func cost(c *dispatchv1.PlanCost) costView {
	return costView{Metres: c.GetMetres(), Floors: c.GetFloors(), Trips: c.GetTrips()}
}

type stopView struct {
	Sequence    int32       `json:"sequence"`
	Trip        int32       `json:"trip"`
	HouseholdID string      `json:"household_id"`
	Address     addressView `json:"address"`
	ParcelIDs   []string    `json:"parcel_ids"`
	Priority    bool        `json:"priority"`
	Contactless bool        `json:"contactless"`
	WeightGrams int64       `json:"weight_grams"`
	Pinned      bool        `json:"pinned"`
}

type routeView struct {
	RouteID   string     `json:"route_id"`
	RoundID   string     `json:"round_id"`
	CourierID string     `json:"courier_id"`
	Stops     []stopView `json:"stops"`
	Cost      costView   `json:"cost"`
	Version   int32      `json:"version"`
}

func routes(rs []*dispatchv1.Route) []routeView {
	out := make([]routeView, 0, len(rs))
	for _, r := range rs {
		v := routeView{RouteID: r.GetRouteId(), RoundID: r.GetRoundId(), CourierID: r.GetCourierId(),
			Stops: make([]stopView, 0, len(r.GetStops())), Cost: cost(r.GetCost()), Version: r.GetVersion()}
		for _, s := range r.GetStops() {
			v.Stops = append(v.Stops, stopView{Sequence: s.GetSequence(), Trip: s.GetTrip(), HouseholdID: s.GetHouseholdId(),
				Address: address(s.GetAddress()), ParcelIDs: nonNil(s.GetParcelIds()), Priority: s.GetPriority(),
				Contactless: s.GetContactless(), WeightGrams: s.GetWeightGrams(), Pinned: s.GetPinned()})
		}
		out = append(out, v)
	}
	return out
}

type planView struct {
	Round      roundView   `json:"round"`
	Routes     []routeView `json:"routes"`
	Cost       costView    `json:"cost"`
	LowerBound costView    `json:"lower_bound"`
}

type courierView struct {
	CourierID  string   `json:"courier_id"`
	Name       string   `json:"name"`
	Buildings  []string `json:"buildings"`
	MaxParcels int32    `json:"max_parcels"`
	MaxGrams   int64    `json:"max_grams"`
	OnDuty     bool     `json:"on_duty"`
}

type shortageView struct {
	ParcelID        string `json:"parcel_id"`
	ItemID          string `json:"item_id"`
	MissingQuantity int64  `json:"missing_quantity"`
	DamagedQuantity int64  `json:"damaged_quantity"`
	Note            string `json:"note"`
}

type checkInView struct {
	ParcelID  string         `json:"parcel_id"`
	CheckedIn bool           `json:"checked_in"`
	RoundID   string         `json:"round_id"`
	Error     string         `json:"error"`
	Shortages []shortageView `json:"shortages"`
}

func checkIns(rs []*dispatchv1.CheckInResult) []checkInView {
	out := make([]checkInView, 0, len(rs))
	for _, r := range rs {
		v := checkInView{ParcelID: r.GetParcelId(), CheckedIn: r.GetCheckedIn(), RoundID: r.GetRoundId(), Error: r.GetError(),
			Shortages: []shortageView{}}
		for _, s := range r.GetShortages() {
			v.Shortages = append(v.Shortages, shortageView{ParcelID: s.GetParcelId(), ItemID: s.GetItemId(),
				MissingQuantity: s.GetMissingQuantity(), DamagedQuantity: s.GetDamagedQuantity(), Note: s.GetNote()})
		}
		out = append(out, v)
	}
	return out
}

type progressView struct {
	Parcels        int32 `json:"parcels"`
	Assigned       int32 `json:"assigned"`
	OutForDelivery int32 `json:"out_for_delivery"`
	Delivered      int32 `json:"delivered"`
	Failed         int32 `json:"failed"`
}

type buildingProgressView struct {
	Building string       `json:"building"`
	Progress progressView `json:"progress"`
}

type courierProgressView struct {
	CourierID string       `json:"courier_id"`
	Progress  progressView `json:"progress"`
}

type roundProgressView struct {
	RoundID   string                 `json:"round_id"`
	Total     progressView           `json:"total"`
	Buildings []buildingProgressView `json:"buildings"`
	Couriers  []courierProgressView  `json:"couriers"`
}

func progress(p *trackingv1.Progress) progressView {
	return progressView{Parcels: p.GetParcels(), Assigned: p.GetAssigned(), OutForDelivery: p.GetOutForDelivery(),
		Delivered: p.GetDelivered(), Failed: p.GetFailed()}
}

func progressOf(p *trackingv1.RoundProgress) roundProgressView {
	v := roundProgressView{RoundID: p.GetRoundId(), Total: progress(p.GetTotal()),
		Buildings: []buildingProgressView{}, Couriers: []courierProgressView{}}
	for _, b := range p.GetBuildings() {
		v.Buildings = append(v.Buildings, buildingProgressView{Building: b.GetBuilding(), Progress: progress(b.GetProgress())})
	}
	for _, c := range p.GetCouriers() {
		v.Couriers = append(v.Couriers, courierProgressView{CourierID: c.GetCourierId(), Progress: progress(c.GetProgress())})
	}
	return v
}

type courierParcelView struct {
	ParcelID string `json:"parcel_id"`
	OrderID  string `json:"order_id"`
	Status   string `json:"status"`
}

func courierParcel(p *courierv1.CourierParcel) courierParcelView {
	return courierParcelView{ParcelID: p.GetParcelId(), OrderID: p.GetOrderId(), Status: enumName(p.GetStatus().String(), "STOP_STATUS_")}
}

type courierStopView struct {
	Sequence    int32               `json:"sequence"`
	Trip        int32               `json:"trip"`
	HouseholdID string              `json:"household_id"`
	Address     addressView         `json:"address"`
	Parcels     []courierParcelView `json:"parcels"`
	Priority    bool                `json:"priority"`
	Contactless bool                `json:"contactless"`
}

type courierRouteView struct {
	RouteID   string            `json:"route_id"`
	RoundID   string            `json:"round_id"`
	CourierID string            `json:"courier_id"`
	Stops     []courierStopView `json:"stops"`
	Version   int32             `json:"version"`
}

func courierRoute(r *courierv1.CourierRoute) courierRouteView {
	v := courierRouteView{RouteID: r.GetRouteId(), RoundID: r.GetRoundId(), CourierID: r.GetCourierId(),
		Stops: make([]courierStopView, 0, len(r.GetStops())), Version: r.GetVersion()}
	for _, s := range r.GetStops() {
		sv := courierStopView{Sequence: s.GetSequence(), Trip: s.GetTrip(), HouseholdID: s.GetHouseholdId(),
			Address: address(s.GetAddress()), Parcels: make([]courierParcelView, 0, len(s.GetParcels())),
			Priority: s.GetPriority(), Contactless: s.GetContactless()}
		for _, p := range s.GetParcels() {
			sv.Parcels = append(sv.Parcels, courierParcel(p))
		}
		v.Stops = append(v.Stops, sv)
	}
	return v
}

type outcomeView struct {
	ParcelID string            `json:"parcel_id"`
	Recorded bool              `json:"recorded"`
	Error    string            `json:"error"`
	Parcel   courierParcelView `json:"parcel"`
}

type householdView struct {
	HouseholdID      string      `json:"household_id"`
	Address          addressView `json:"address"`
	Residents        int32       `json:"residents"`
	Occupancy        string      `json:"occupancy"`
	Occupied         bool        `json:"occupied"`
	Priority         bool        `json:"priority"`
	Quarantined      bool        `json:"quarantined"`
	QuarantinedUntil string      `json:"quarantined_until"`
	Over80           bool        `json:"over_80"`
	LivesAlone       bool        `json:"lives_alone"`
	ChronicallyIll   bool        `json:"chronically_ill"`
	Phone            string      `json:"phone"`
}

func household(h *orderv1.Household) householdView {
	return householdView{HouseholdID: h.GetHouseholdId(), Address: address(h.GetAddress()), Residents: h.GetResidents(),
		Occupancy: enumName(h.GetOccupancy().String(), "OCCUPANCY_"), Occupied: h.GetOccupied(), Priority: h.GetPriority(),
		Quarantined: h.GetQuarantined(), QuarantinedUntil: h.GetQuarantinedUntil(), Over80: h.GetOver_80(),
		LivesAlone: h.GetLivesAlone(), ChronicallyIll: h.GetChronicallyIll(), Phone: h.GetPhone()}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
