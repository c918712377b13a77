package order

import (
	"fmt"
	"slices"
	"time"
)

// State is a parcel's place in SPEC.md's life cycle.
type State string

// The parcel states, as stored and as named in SPEC.md.
const (
	Placed         State = "PLACED"
	Confirmed      State = "CONFIRMED"
	Rejected       State = "REJECTED"
	Cancelled      State = "CANCELLED"
	Expired        State = "EXPIRED"
	Ready          State = "READY"
	AtGate         State = "AT_GATE"
	Assigned       State = "ASSIGNED"
	OutForDelivery State = "OUT_FOR_DELIVERY"
	Delivered      State = "DELIVERED"
	Failed         State = "FAILED"
)

// States lists every state, in life-cycle order.
var States = []State{Placed, Confirmed, Rejected, Cancelled, Expired, Ready, AtGate, Assigned, OutForDelivery, Delivered, Failed}

// transitions is SPEC.md's state machine: the only legal moves. A FAILED parcel goes back into
// the next round (ASSIGNED again) unless the household cancels it.
var transitions = map[State][]State{
	Placed:         {Confirmed, Rejected, Cancelled, Expired},
	Confirmed:      {Ready},
	Ready:          {AtGate},
	AtGate:         {Assigned},
	Assigned:       {OutForDelivery},
	OutForDelivery: {Delivered, Failed},
	Failed:         {Assigned, Cancelled},
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return slices.Contains(States, s) }

// CanMove reports whether a parcel in from may move to to.
func CanMove(from, to State) bool { return slices.Contains(transitions[from], to) }

// Ended reports whether a parcel in s will never move again.
func (s State) Ended() bool {
	return s.Valid() && len(transitions[s]) == 0
}

// Address is a household's structured place in its compound.
type Address struct {
	Compound string
	Building string
	Unit     string
	Floor    int
	Room     string
}

// Line is one priced line of a parcel. Quantities are units, or grams for weighed items whose
// prices are per kilogram.
type Line struct {
	ItemID             string
	Name               string
	Unit               string
	Weighed            bool
	Quantity           int64
	UnitPriceFen       int64
	AmountFen          int64
	ConfirmedQuantity  int64
	ConfirmedAmountFen int64
	UnitWeightGrams    int64
}

// weight is the line's shipping weight in grams for quantity q.
func (l Line) weight(q int64) int64 {
	if l.Weighed {
		return q
	}
	return q * l.UnitWeightGrams
}

// Parcel is the part of an order one supplier fills.
type Parcel struct {
	ID          string
	OrderID     string
	SupplierID  string
	HouseholdID string
	State       State
	Lines       []Line
	// TotalFen is the estimated total, the confirmed total once confirmed.
	TotalFen    int64
	WeightGrams int64
	// Reason says why it was rejected, cancelled or failed.
	Reason      string
	UpdatedAt   time.Time
	Address     Address
	Priority    bool
	Contactless bool
	// Assignment is the round, route and courier the parcel was last assigned to (zero before its
	// first assignment); it stays after the parcel moves on, saying who took it out.
	Assignment Assignment
}

// Assignment is where dispatch put a parcel: a courier's route on a round.
type Assignment struct {
	RoundID   string
	RouteID   string
	CourierID string
}

// Totals recomputes the parcel's total and weight from its lines as ordered.
func (p *Parcel) Totals() {
	p.TotalFen, p.WeightGrams = 0, 0
	for _, l := range p.Lines {
		p.TotalFen += l.AmountFen
		p.WeightGrams += l.weight(l.Quantity)
	}
}

// Transition is one recorded move of a parcel: who made it, when and why.
type Transition struct {
	ParcelID string
	From     State // empty for the parcel's creation
	To       State
	Actor    Actor
	At       time.Time
	Reason   string
	// EventID is the event that brought the change, for changes made by other services.
	EventID string
	// Delivery details carried by dispatch's and couriers' events.
	RoundID        string
	RouteID        string
	CourierID      string
	DeliveryMethod string
}

// ConfirmedLine is what a supplier confirmed for one item.
type ConfirmedLine struct {
	ItemID    string
	Quantity  int64
	AmountFen int64
}

// Change is a transition another service reports about a parcel (its ParcelStateChanged event).
type Change struct {
	EventID  string
	ParcelID string
	To       State
	Actor    Actor
	At       time.Time
	Reason   string
	// Set for CONFIRMED.
	ConfirmedLines    []ConfirmedLine
	ConfirmedTotalFen int64

	RoundID        string
	RouteID        string
	CourierID      string
	DeliveryMethod string
}

// Apply moves p as c reports. It returns the transition to record, or ok=false when p is
// already in c's state (a repeated report changes nothing). An illegal move returns
// ErrIllegalTransition: events of different publishers arrive out of order, so the caller
// retries it later rather than dropping it; unless p has ended, when no retry can help
// (ErrEnded too: a stale or stray report).
//
// One report of the current state is not a repeat: an ASSIGNED parcel reported ASSIGNED to
// another route or courier (a dispatcher's override: a stop moved, a sick courier's route handed
// over). Its state stays; the move is recorded, ASSIGNED to ASSIGNED, with the new route and
// courier.
func (p *Parcel) Apply(c Change) (t Transition, ok bool, err error) {
	switch {
	case c.To == Assigned && p.State == Assigned && c.reassigns(p.Assignment):
	case p.State == c.To:
		return Transition{}, false, nil
	case !CanMove(p.State, c.To) && p.State.Ended():
		return Transition{}, false, fmt.Errorf("%w: %w: parcel %s is %s, cannot become %s", ErrIllegalTransition, ErrEnded, p.ID, p.State, c.To)
	case !CanMove(p.State, c.To):
		return Transition{}, false, fmt.Errorf("%w: parcel %s is %s, cannot become %s", ErrIllegalTransition, p.ID, p.State, c.To)
	}
	t = Transition{ParcelID: p.ID, From: p.State, To: c.To, Actor: c.Actor, At: c.At, Reason: c.Reason,
		EventID: c.EventID, RoundID: c.RoundID, RouteID: c.RouteID, CourierID: c.CourierID, DeliveryMethod: c.DeliveryMethod}
	p.State = c.To
	p.UpdatedAt = c.At
	switch c.To {
	case Confirmed:
		p.confirm(c.ConfirmedLines, c.ConfirmedTotalFen)
	case Rejected, Cancelled, Expired, Failed:
		p.Reason = c.Reason
	case Assigned:
		p.Assignment = c.assignment()
	}
	return t, true, nil
}

func (c Change) assignment() Assignment {
	return Assignment{RoundID: c.RoundID, RouteID: c.RouteID, CourierID: c.CourierID}
}

// reassigns reports whether c, an ASSIGNED report, puts a parcel assigned as current somewhere
// else. A report naming no route or courier says nothing new (a second publisher's echo).
func (c Change) reassigns(current Assignment) bool {
	return (c.RouteID != "" || c.CourierID != "") && c.assignment() != current
}

// confirm records the supplier's confirmed lines. A line the supplier left out was not
// confirmed (a partial confirmation); no lines at all means everything as ordered. The weight
// follows the confirmed quantities, since that is what couriers carry.
func (p *Parcel) confirm(lines []ConfirmedLine, total int64) {
	if len(lines) == 0 {
		for i := range p.Lines {
			p.Lines[i].ConfirmedQuantity = p.Lines[i].Quantity
			p.Lines[i].ConfirmedAmountFen = p.Lines[i].AmountFen
		}
	} else {
		byItem := make(map[string]ConfirmedLine, len(lines))
		for _, l := range lines {
			byItem[l.ItemID] = l
		}
		for i := range p.Lines {
			cl := byItem[p.Lines[i].ItemID]
			p.Lines[i].ConfirmedQuantity = cl.Quantity
			p.Lines[i].ConfirmedAmountFen = cl.AmountFen
		}
	}
	p.TotalFen, p.WeightGrams = 0, 0
	for _, l := range p.Lines {
		p.TotalFen += l.ConfirmedAmountFen
		p.WeightGrams += l.weight(l.ConfirmedQuantity)
	}
	if total > 0 || len(lines) > 0 {
		// The supplier's own total is authoritative (it may round per line differently).
		p.TotalFen = total
	}
}
