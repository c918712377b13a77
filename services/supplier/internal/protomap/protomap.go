// Package protomap translates the supplier domain's values into the protobuf types shared by the
// API and the events (states, roles, addresses) and builds the parcel events. It exists so the
// transport and the repository, which both need these, translate the same way.
package protomap

import (
	"strings"

	"github.com/doorstep/doorstep/pkg/events"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
)

// The domain's names are the enums' names in lower case without their prefix, so the mapping is
// by name rather than a table that could drift from the proto.
const (
	statePrefix = "PARCEL_STATE_"
	rolePrefix  = "ROLE_"
)

// State is s as the API's enum; UNSPECIFIED for an unknown state.
func State(s supply.State) typesv1.ParcelState {
	return typesv1.ParcelState(typesv1.ParcelState_value[statePrefix+strings.ToUpper(string(s))])
}

// FromState is the domain state of s; "" for UNSPECIFIED, and an invalid state for an unknown
// number, which the domain refuses.
func FromState(s typesv1.ParcelState) supply.State {
	if s == typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED {
		return ""
	}
	return supply.State(events.StateName(s))
}

// Role is r as the API's enum.
func Role(r supply.Role) typesv1.Role {
	return typesv1.Role(typesv1.Role_value[rolePrefix+strings.ToUpper(string(r))])
}

// FromRole is the domain role of r; "" for UNSPECIFIED or unknown.
func FromRole(r typesv1.Role) supply.Role {
	if _, ok := typesv1.Role_name[int32(r)]; !ok || r == typesv1.Role_ROLE_UNSPECIFIED {
		return ""
	}
	return supply.Role(strings.ToLower(strings.TrimPrefix(r.String(), rolePrefix)))
}

// Actor is a as the API's actor.
func Actor(a supply.Actor) *typesv1.Actor {
	return &typesv1.Actor{Role: Role(a.Role), Id: a.ID}
}

// Address is a as the API's address.
func Address(a supply.Address) *typesv1.Address {
	return &typesv1.Address{Compound: a.Compound, Building: a.Building, Unit: a.Unit, Floor: a.Floor, Room: a.Room}
}

// FromAddress is the domain address of a (nil: empty).
func FromAddress(a *typesv1.Address) supply.Address {
	return supply.Address{Compound: a.GetCompound(), Building: a.GetBuilding(), Unit: a.GetUnit(),
		Floor: a.GetFloor(), Room: a.GetRoom()}
}

// ParcelEvent is the doorstep.<compound>.parcel.<state> event announcing t, which p has just made.
// A confirmation carries what was confirmed, since that is what the household will pay.
func ParcelEvent(p supply.Parcel, t supply.Transition) *eventsv1.Event {
	ev := events.New(p.Compound, Actor(t.Actor), p.OrderID, t.At)
	ch := &eventsv1.ParcelStateChanged{
		ParcelId:    p.ID,
		State:       State(t.To),
		Reason:      t.Reason,
		HouseholdId: p.HouseholdID,
	}
	if t.To == supply.StateConfirmed {
		for _, l := range p.Lines {
			ch.ConfirmedLines = append(ch.ConfirmedLines, &eventsv1.EventLine{
				ItemId: l.ItemID, Name: l.Name, Quantity: l.ConfirmedQuantity, AmountFen: l.ConfirmedAmountFen})
		}
		ch.ConfirmedTotalFen = p.TotalFen
	}
	ev.Payload = &eventsv1.Event_ParcelStateChanged{ParcelStateChanged: ch}
	return ev
}
