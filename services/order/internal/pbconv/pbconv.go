// Package pbconv maps the order domain to and from the protobuf types the transport, the supplier
// client and the event adapters share, so each mapping is written once.
package pbconv

import (
	"strings"
	"time"

	"github.com/doorstep/doorstep/services/order/internal/order"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// State maps a proto parcel state; unspecified or unknown values give "".
func State(s typesv1.ParcelState) order.State {
	st := order.State(strings.TrimPrefix(s.String(), "PARCEL_STATE_"))
	if !st.Valid() {
		return ""
	}
	return st
}

// StateProto maps a domain state.
func StateProto(s order.State) typesv1.ParcelState {
	return typesv1.ParcelState(typesv1.ParcelState_value["PARCEL_STATE_"+string(s)])
}

// Role maps a proto role; unspecified gives "".
func Role(r typesv1.Role) order.Role {
	if r == typesv1.Role_ROLE_UNSPECIFIED {
		return ""
	}
	return order.Role(strings.TrimPrefix(r.String(), "ROLE_"))
}

// Actor maps a proto actor; nil gives the zero actor.
func Actor(a *typesv1.Actor) order.Actor {
	return order.Actor{Role: Role(a.GetRole()), ID: a.GetId()}
}

// ActorProto maps a domain actor.
func ActorProto(a order.Actor) *typesv1.Actor {
	return &typesv1.Actor{Role: typesv1.Role(typesv1.Role_value["ROLE_"+string(a.Role)]), Id: a.ID}
}

// Address maps a proto address.
func Address(a *typesv1.Address) order.Address {
	return order.Address{Compound: a.GetCompound(), Building: a.GetBuilding(), Unit: a.GetUnit(), Floor: int(a.GetFloor()), Room: a.GetRoom()}
}

// AddressProto maps a domain address.
func AddressProto(a order.Address) *typesv1.Address {
	return &typesv1.Address{Compound: a.Compound, Building: a.Building, Unit: a.Unit, Floor: int32(a.Floor), Room: a.Room}
}

// Channel maps a proto channel; unspecified gives "".
func Channel(c orderv1.Channel) order.Channel {
	if c == orderv1.Channel_CHANNEL_UNSPECIFIED {
		return ""
	}
	return order.Channel(strings.TrimPrefix(c.String(), "CHANNEL_"))
}

// ChannelProto maps a domain channel.
func ChannelProto(c order.Channel) orderv1.Channel {
	return orderv1.Channel(orderv1.Channel_value["CHANNEL_"+string(c)])
}

// HouseholdProto maps a household, with its priority and quarantine as they stand at now.
func HouseholdProto(h order.Household, now time.Time) *orderv1.Household {
	return &orderv1.Household{HouseholdId: h.ID, Address: AddressProto(h.Address), Residents: int32(h.Residents),
		Priority: h.Priority(now), Quarantined: h.Quarantined(now), Occupied: h.Occupied(), Occupancy: OccupancyProto(h.Occupancy),
		Phone: h.Phone, Over_80: h.Over80, LivesAlone: h.LivesAlone, ChronicallyIll: h.ChronicallyIll,
		QuarantinedUntil: h.QuarantinedUntil}
}

// Household maps a proto household. The output-only fields (priority, quarantined, occupied) are
// ignored: they are derived from the others.
func Household(h *orderv1.Household) order.Household {
	return order.Household{ID: h.GetHouseholdId(), Address: Address(h.GetAddress()), Residents: int(h.GetResidents()),
		Occupancy: Occupancy(h.GetOccupancy()), Phone: h.GetPhone(), Over80: h.GetOver_80(), LivesAlone: h.GetLivesAlone(),
		ChronicallyIll: h.GetChronicallyIll(), QuarantinedUntil: h.GetQuarantinedUntil()}
}

// Occupancy maps a proto occupancy; unspecified means unknown, and a value this build does not
// know gives "" (invalid).
func Occupancy(o orderv1.Occupancy) order.Occupancy {
	switch o {
	case orderv1.Occupancy_OCCUPANCY_UNSPECIFIED, orderv1.Occupancy_OCCUPANCY_UNKNOWN:
		return order.OccupancyUnknown
	case orderv1.Occupancy_OCCUPANCY_OCCUPIED:
		return order.OccupancyOccupied
	case orderv1.Occupancy_OCCUPANCY_EMPTY:
		return order.OccupancyEmpty
	}
	return ""
}

// OccupancyProto maps a domain occupancy.
func OccupancyProto(o order.Occupancy) orderv1.Occupancy {
	return orderv1.Occupancy(orderv1.Occupancy_value["OCCUPANCY_"+string(o)])
}

// ParcelProto maps a parcel.
func ParcelProto(p order.Parcel) *orderv1.Parcel {
	lines := make([]*orderv1.OrderLine, len(p.Lines))
	for i, l := range p.Lines {
		lines[i] = &orderv1.OrderLine{ItemId: l.ItemID, Name: l.Name, Unit: l.Unit, Weighed: l.Weighed, Quantity: l.Quantity,
			UnitPriceFen: l.UnitPriceFen, AmountFen: l.AmountFen, ConfirmedQuantity: l.ConfirmedQuantity,
			ConfirmedAmountFen: l.ConfirmedAmountFen, UnitWeightGrams: l.UnitWeightGrams}
	}
	return &orderv1.Parcel{ParcelId: p.ID, OrderId: p.OrderID, SupplierId: p.SupplierID, HouseholdId: p.HouseholdID,
		State: StateProto(p.State), Lines: lines, TotalFen: p.TotalFen, WeightGrams: p.WeightGrams, Reason: p.Reason,
		UpdatedAt: timestamppb.New(p.UpdatedAt), Address: AddressProto(p.Address), Priority: p.Priority, Contactless: p.Contactless}
}

var statusProto = map[order.Status]orderv1.OrderStatus{
	order.StatusPlaced:     orderv1.OrderStatus_ORDER_STATUS_PLACED,
	order.StatusInProgress: orderv1.OrderStatus_ORDER_STATUS_IN_PROGRESS,
	order.StatusDelivered:  orderv1.OrderStatus_ORDER_STATUS_DELIVERED,
	order.StatusClosed:     orderv1.OrderStatus_ORDER_STATUS_CLOSED,
}

// OrderProto maps an order with its derived status.
func OrderProto(o order.Order) *orderv1.Order {
	parcels := make([]*orderv1.Parcel, len(o.Parcels))
	for i, p := range o.Parcels {
		parcels[i] = ParcelProto(p)
	}
	return &orderv1.Order{OrderId: o.ID, HouseholdId: o.HouseholdID, Status: statusProto[o.Status()], Parcels: parcels,
		TotalFen: o.TotalFen(), Channel: ChannelProto(o.Channel), PlacedBy: ActorProto(o.PlacedBy), PlacedAt: timestamppb.New(o.PlacedAt),
		CampaignId: o.CampaignID}
}

// EventLines maps parcel lines as events carry them (as ordered).
func EventLines(lines []order.Line) []*eventsv1.EventLine {
	out := make([]*eventsv1.EventLine, len(lines))
	for i, l := range lines {
		out[i] = &eventsv1.EventLine{ItemId: l.ItemID, Name: l.Name, Quantity: l.Quantity, AmountFen: l.AmountFen}
	}
	return out
}
