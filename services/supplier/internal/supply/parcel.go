package supply

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

// State is a parcel's place in SPEC.md's life cycle; the names are the event subject tokens.
type State string

// Parcel states. The supplier drives PLACED to READY; later states belong to other services and
// are listed so that the whole life reads in one place.
const (
	StatePlaced         State = "placed"
	StateConfirmed      State = "confirmed"
	StateRejected       State = "rejected"
	StateCancelled      State = "cancelled"
	StateExpired        State = "expired"
	StateReady          State = "ready"
	StateAtGate         State = "at_gate"
	StateAssigned       State = "assigned"
	StateOutForDelivery State = "out_for_delivery"
	StateDelivered      State = "delivered"
	StateFailed         State = "failed"
)

var next = map[State][]State{
	StatePlaced:         {StateConfirmed, StateRejected, StateCancelled, StateExpired},
	StateConfirmed:      {StateReady},
	StateReady:          {StateAtGate},
	StateAtGate:         {StateAssigned},
	StateAssigned:       {StateOutForDelivery},
	StateOutForDelivery: {StateDelivered, StateFailed},
	StateFailed:         {StateAssigned, StateCancelled},
}

// CanBecome reports whether SPEC.md allows a parcel in s to move to to.
func (s State) CanBecome(to State) bool { return slices.Contains(next[s], to) }

// Valid reports whether s is one of the parcel states.
func (s State) Valid() bool {
	_, ok := next[s]
	return ok || s == StateRejected || s == StateCancelled || s == StateExpired || s == StateDelivered
}

// Released reports whether a parcel in s no longer holds stock and no longer counts against a
// household's ration.
func (s State) Released() bool {
	return s == StateRejected || s == StateCancelled || s == StateExpired
}

// Line is one item of a parcel, priced when reserved and again when confirmed.
type Line struct {
	ItemID          string
	Name            string
	Unit            string
	Weighed         bool
	Quantity        int64 // units, or estimated grams for weighed items
	UnitPriceFen    int64 // per unit, or per kilogram for weighed items
	AmountFen       int64
	UnitWeightGrams int64
	// Set once confirmed.
	ConfirmedQuantity  int64
	ConfirmedAmountFen int64
}

// Parcel is one supplier's part of an order: what to pack for which door.
type Parcel struct {
	ID          string
	OrderID     string
	SupplierID  string
	Compound    string
	HouseholdID string
	Address     Address
	State       State
	Lines       []Line
	// TotalFen is what the parcel costs now: the reserved total, then the confirmed total.
	TotalFen  int64
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Day is the Asia/Shanghai day of the reservation, which the household's rations count in.
	Day time.Time
	// RoundID is the round the parcel is due for; an unconfirmed reservation expires at that
	// round's cutoff, ConfirmBy. Parcels reserved before rounds were kept have neither.
	RoundID   string
	ConfirmBy time.Time
	// CampaignID is set on a campaign's free pack: priced at zero, confirmed when reserved, so it
	// has no ConfirmBy and never expires.
	CampaignID string
	// Fingerprint identifies the reservation request, so a retry is told from a different
	// request reusing the parcel id.
	Fingerprint []byte
}

// Transition is a change of state to be recorded (and, when Announce is set, published).
// A zero Transition means nothing changed.
type Transition struct {
	From   State
	To     State
	Actor  Actor
	Reason string
	At     time.Time
	// Announce: the supplier's decisions are events; a reservation and its release are not,
	// because the order service announces those as part of the order.
	Announce bool
}

// ReservationLine asks for a quantity of one item: units, or estimated grams when weighed.
type ReservationLine struct {
	ItemID   string
	Quantity int64
}

// Reservation asks a supplier to hold stock for one parcel.
type Reservation struct {
	ParcelID    string
	OrderID     string
	SupplierID  string
	HouseholdID string
	Address     Address
	Lines       []ReservationLine
	Actor       Actor
	// CampaignID makes the parcel a campaign's free pack (see NewParcel).
	CampaignID string
}

// campaignIDRE is what a campaign id may look like: the order service's UUIDs, or a readable slug.
var campaignIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Validate checks a reservation's shape. Field names are ReserveStockRequest's.
func (r Reservation) Validate() error {
	var v violations
	v.id(r.ParcelID, "parcel_id")
	v.id(r.OrderID, "order_id")
	v.required(r.SupplierID, "supplier_id")
	v.required(r.HouseholdID, "household_id")
	v.maxLen(r.HouseholdID, "household_id", MaxText)
	v.check(ValidSlug(r.Address.Compound), "address.compound", "must be a compound slug")
	v.required(r.Address.Building, "address.building")
	v.required(r.Address.Unit, "address.unit")
	v.required(r.Address.Room, "address.room")
	v.maxLen(r.Address.Building, "address.building", 32)
	v.maxLen(r.Address.Unit, "address.unit", 32)
	v.maxLen(r.Address.Room, "address.room", 32)
	v.check(r.Address.Floor >= 0, "address.floor", "must not be negative")
	v.check(r.CampaignID == "" || campaignIDRE.MatchString(r.CampaignID), "campaign_id",
		"must be at most 64 letters, digits, '-' or '_'")
	v.check(len(r.Lines) > 0, "lines", "must hold at least one line")
	v.check(len(r.Lines) <= MaxLines, "lines", "must hold at most %d lines", MaxLines)
	seen := map[string]bool{}
	for i, l := range r.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		v.required(l.ItemID, f+".item_id")
		v.check(!seen[l.ItemID], f+".item_id", "item %s appears twice", l.ItemID)
		seen[l.ItemID] = true
		v.check(l.Quantity > 0, f+".quantity", "must be positive")
		v.check(l.Quantity <= MaxQuantity, f+".quantity", "must be at most %d", MaxQuantity)
	}
	return v.err()
}

// Fingerprint digests everything a reservation asks for, with its lines in item order so that a
// retry listing them differently is still the same request.
func (r Reservation) Fingerprint() []byte {
	h := sha256.New()
	str := func(s string) {
		_ = binary.Write(h, binary.BigEndian, uint32(len(s)))
		h.Write([]byte(s))
	}
	num := func(n int64) { _ = binary.Write(h, binary.BigEndian, n) }
	for _, s := range []string{r.ParcelID, r.OrderID, r.SupplierID, r.HouseholdID,
		r.Address.Compound, r.Address.Building, r.Address.Unit, r.Address.Room} {
		str(s)
	}
	num(int64(r.Address.Floor))
	lines := slices.Clone(r.Lines)
	slices.SortFunc(lines, func(a, b ReservationLine) int { return cmp.Compare(a.ItemID, b.ItemID) })
	for _, l := range lines {
		str(l.ItemID)
		num(l.Quantity)
	}
	// Only when set, so that the fingerprints of parcels reserved before campaigns existed, which
	// a retry is compared with, stay what they were.
	if r.CampaignID != "" {
		str("campaign")
		str(r.CampaignID)
	}
	return h.Sum(nil)
}

// NewParcel reserves r against the supplier's items, which the caller holds locked: every line
// must be in the supplier's catalog, in stock and within the household's daily ration
// (rationUsed: what the household's live parcels already hold of each item today). It takes
// the stock off items and prices every line at the current price. All failing lines are reported
// together, each as an ItemError. It returns the transitions to record, in order.
// The parcel is due for round due, by whose cutoff the supplier must confirm it.
//
// A campaign's free pack (r.CampaignID set) is priced at zero, whatever the items cost, and
// rations do not apply to it (it is the community's gift, not the household's purchase); stock is
// taken all the same. It has nothing to weigh or decide, so it is confirmed as reserved at once:
// PLACED then CONFIRMED, both by r.Actor, the confirmation announced as any other, and it never
// expires. The community's donated stock is handed out by campaigns only.
func NewParcel(r Reservation, sup Supplier, items map[string]*Item, rationUsed map[string]int64, now time.Time, due rounds.Round) (Parcel, []Transition, error) {
	if err := r.Validate(); err != nil {
		return Parcel{}, nil, err
	}
	if r.Address.Compound != sup.Compound {
		return Parcel{}, nil, Invalid("address.compound",
			fmt.Sprintf("supplier %s serves compound %s", sup.ID, sup.Compound))
	}
	if ok, why := sup.Standing(now); !ok {
		return Parcel{}, nil, NotAcceptingError(sup, why)
	}
	campaign := r.CampaignID != ""
	var problems []error
	lines := make([]Line, 0, len(r.Lines))
	for _, rl := range r.Lines {
		it := items[rl.ItemID]
		switch {
		case it == nil || it.SupplierID != sup.ID:
			problems = append(problems, &ItemError{ItemID: rl.ItemID, Err: ErrNotInCatalog, Detail: "supplier " + sup.ID})
			continue
		case sup.Kind == KindDonations && !campaign:
			problems = append(problems, &ItemError{ItemID: it.ID, Err: ErrDonatedStock})
			continue
		case it.Stock < rl.Quantity:
			problems = append(problems, &ItemError{ItemID: it.ID, Err: ErrOutOfStock,
				Detail: fmt.Sprintf("%s: asked %d, %d left", it.Name, rl.Quantity, it.Stock)})
		case !campaign && it.RationPerDay > 0 && rationUsed[it.ID]+rl.Quantity > it.RationPerDay:
			problems = append(problems, &ItemError{ItemID: it.ID, Err: ErrRationExceeded,
				Detail: fmt.Sprintf("%s: limit %d a day, %d already reserved today, asked %d",
					it.Name, it.RationPerDay, rationUsed[it.ID], rl.Quantity)})
		}
		price := it.CurrentPriceFen
		if campaign {
			price = 0
		}
		lines = append(lines, Line{
			ItemID:          it.ID,
			Name:            it.Name,
			Unit:            it.Unit,
			Weighed:         it.Weighed,
			Quantity:        rl.Quantity,
			UnitPriceFen:    price,
			AmountFen:       LineAmount(it.Weighed, price, rl.Quantity),
			UnitWeightGrams: it.UnitWeightGrams,
		})
	}
	if len(problems) > 0 {
		return Parcel{}, nil, joinErrors(problems)
	}
	p := Parcel{
		ID:          r.ParcelID,
		OrderID:     r.OrderID,
		SupplierID:  sup.ID,
		Compound:    sup.Compound,
		HouseholdID: r.HouseholdID,
		Address:     r.Address,
		State:       StatePlaced,
		Lines:       lines,
		CreatedAt:   now,
		UpdatedAt:   now,
		Day:         ServiceDay(now),
		Fingerprint: r.Fingerprint(),
		RoundID:     due.ID,
		ConfirmBy:   due.Cutoff,
		CampaignID:  r.CampaignID,
	}
	for _, l := range lines {
		items[l.ItemID].Stock -= l.Quantity
		p.TotalFen += l.AmountFen
	}
	placed := Transition{To: StatePlaced, Actor: r.Actor, Reason: "reserved for order " + r.OrderID, At: now}
	if !campaign {
		return p, []Transition{placed}, nil
	}
	placed.Reason += " (free pack of campaign " + r.CampaignID + ")"
	p.ConfirmBy = time.Time{} // confirmed now: there is no cutoff to confirm it by
	confirmed, err := p.confirm(items, nil, r.Actor, "free pack of campaign "+r.CampaignID, now)
	if err != nil {
		return Parcel{}, nil, err
	}
	return p, []Transition{placed, confirmed}, nil
}

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return &joined{errs}
}

// joined is errors.Join with a one-line message, since it becomes a status message.
type joined struct{ errs []error }

func (j *joined) Error() string {
	s := ""
	for i, e := range j.errs {
		if i > 0 {
			s += "; "
		}
		s += e.Error()
	}
	return s
}

func (j *joined) Unwrap() []error { return j.errs }

func (p *Parcel) move(to State, actor Actor, reason string, now time.Time, announce bool) (Transition, error) {
	if !p.State.CanBecome(to) {
		return Transition{}, fmt.Errorf("parcel %s is %s, cannot become %s: %w", p.ID, p.State, to, ErrIllegalTransition)
	}
	t := Transition{From: p.State, To: to, Actor: actor, Reason: reason, At: now, Announce: announce}
	p.State, p.Reason, p.UpdatedAt = to, reason, now
	return t, nil
}

// restock gives every line's held quantity back to the items.
func (p *Parcel) restock(items map[string]*Item) {
	for _, l := range p.Lines {
		if it := items[l.ItemID]; it != nil {
			it.Stock += l.Quantity
		}
	}
}

// Release cancels an unconfirmed parcel and gives its stock back. Releasing a cancelled parcel
// again changes nothing, so the order service can retry; once the supplier has decided, the
// reservation is no longer the order service's to release.
func (p *Parcel) Release(items map[string]*Item, actor Actor, reason string, now time.Time) (Transition, error) {
	if p.State == StateCancelled {
		return Transition{}, nil
	}
	t, err := p.move(StateCancelled, actor, reason, now, false)
	if err != nil {
		return Transition{}, err
	}
	p.restock(items)
	return t, nil
}

// Reject refuses a parcel with a reason and gives its stock back.
func (p *Parcel) Reject(items map[string]*Item, actor Actor, reason string, now time.Time) (Transition, error) {
	if strings.TrimSpace(reason) == "" {
		return Transition{}, Invalid("reason", "is required")
	}
	t, err := p.move(StateRejected, actor, reason, now, true)
	if err != nil {
		return Transition{}, err
	}
	p.restock(items)
	return t, nil
}

// PastConfirmBy reports whether the parcel's confirmation cutoff has come by now.
func (p *Parcel) PastConfirmBy(now time.Time) bool {
	return !p.ConfirmBy.IsZero() && !now.Before(p.ConfirmBy)
}

// cutoffClock is a cutoff as people in the compound read it: "09:00", Asia/Shanghai.
func cutoffClock(t time.Time) string { return t.In(rounds.Shanghai).Format("15:04") }

// ExpiryActor is who expires reservations: the supplier service itself, at the cutoff.
var ExpiryActor = Actor{Role: RoleSystem, ID: "supplier-service"}

// Expire releases a placed parcel whose cutoff has come and gives its stock back. A parcel the
// supplier decided on in the meantime, or one not yet due, is left alone (a zero Transition), so
// an expiry that lost the race to a confirmation changes nothing.
func (p *Parcel) Expire(items map[string]*Item, now time.Time) (Transition, error) {
	if p.State != StatePlaced || !p.PastConfirmBy(now) {
		return Transition{}, nil
	}
	t, err := p.move(StateExpired, ExpiryActor, "not confirmed by the "+cutoffClock(p.ConfirmBy)+" cutoff", now, true)
	if err != nil {
		return Transition{}, err
	}
	p.restock(items)
	return t, nil
}

// MarkReady records a confirmed parcel packed and handed over at the gate.
func (p *Parcel) MarkReady(actor Actor, now time.Time) (Transition, error) {
	return p.move(StateReady, actor, "", now, true)
}

// ConfirmLine is the supplier's word on one line: the actual grams of a weighed line, or how many
// units of a counted line it can supply (0 drops the line). A nil Quantity keeps the ordered one.
type ConfirmLine struct {
	ItemID   string
	Quantity *int64
}

// WeighTolerancePercent is how far an actual weight may be from the estimate the household
// agreed to.
const WeighTolerancePercent = 10

// Confirm accepts a placed parcel. A weighed line takes its actual grams, within ±10 % of the
// estimate, priced at the reserved price per kilogram (never above the item's reference price);
// the difference to the estimate is taken from or given back to stock. A counted line may be
// confirmed partly; either kind may be dropped (0), and what is not confirmed goes back to stock;
// a parcel with nothing left is rejected, not confirmed. items are the parcel's items, held locked.
func (p *Parcel) Confirm(items map[string]*Item, confirm []ConfirmLine, actor Actor, now time.Time) (Transition, error) {
	return p.confirm(items, confirm, actor, "", now)
}

// confirm is Confirm, recorded with reason.
func (p *Parcel) confirm(items map[string]*Item, confirm []ConfirmLine, actor Actor, reason string, now time.Time) (Transition, error) {
	if !p.State.CanBecome(StateConfirmed) {
		return Transition{}, fmt.Errorf("parcel %s is %s, cannot become %s: %w", p.ID, p.State, StateConfirmed, ErrIllegalTransition)
	}
	// The expiry job may not have reached the parcel yet; the cutoff holds all the same.
	if p.PastConfirmBy(now) {
		return Transition{}, fmt.Errorf("parcel %s was not confirmed by the %s cutoff of round %s: %w",
			p.ID, cutoffClock(p.ConfirmBy), p.RoundID, ErrPastCutoff)
	}
	index := make(map[string]int, len(p.Lines))
	for i, l := range p.Lines {
		index[l.ItemID] = i
	}
	quantity := make([]int64, len(p.Lines))
	for i, l := range p.Lines {
		quantity[i] = l.Quantity
	}
	var v violations
	seen := map[string]bool{}
	for i, c := range confirm {
		f := fmt.Sprintf("lines[%d]", i)
		li, ok := index[c.ItemID]
		switch {
		case !ok:
			v.add(f+".item_id", "item %q is not a line of parcel %s", c.ItemID, p.ID)
			continue
		case seen[c.ItemID]:
			v.add(f+".item_id", "item %s appears twice", c.ItemID)
			continue
		}
		seen[c.ItemID] = true
		if c.Quantity == nil {
			continue
		}
		q, l := *c.Quantity, p.Lines[li]
		switch {
		case q < 0:
			v.add(f+".quantity", "must not be negative")
			continue
		case l.Weighed && q != 0: // 0 drops the line: none of it to be had, like a counted line's 0
			if diff := q - l.Quantity; diff*100 > l.Quantity*WeighTolerancePercent || -diff*100 > l.Quantity*WeighTolerancePercent {
				v.add(f+".quantity", "%d g is more than %d%% from the estimated %d g (0 drops the line)", q, WeighTolerancePercent, l.Quantity)
				continue
			}
		case q > l.Quantity:
			v.add(f+".quantity", "must not exceed the %d ordered", l.Quantity)
			continue
		}
		quantity[li] = q
	}
	if err := v.err(); err != nil {
		return Transition{}, err
	}
	if !slices.ContainsFunc(quantity, func(q int64) bool { return q > 0 }) {
		return Transition{}, Invalid("lines", "confirms no line at all: reject the parcel instead (RejectParcel, with a reason)")
	}

	// Stock for extra grams must exist before anything changes.
	var problems []error
	for i, l := range p.Lines {
		extra := quantity[i] - l.Quantity
		if extra <= 0 {
			continue
		}
		if it := items[l.ItemID]; it == nil || it.Stock < extra {
			left := int64(0)
			if it != nil {
				left = it.Stock
			}
			problems = append(problems, &ItemError{ItemID: l.ItemID, Err: ErrOutOfStock,
				Detail: fmt.Sprintf("%s: %d g more than estimated, %d g left", l.Name, extra, left)})
		}
	}
	if len(problems) > 0 {
		return Transition{}, joinErrors(problems)
	}

	total := int64(0)
	for i := range p.Lines {
		l := &p.Lines[i]
		unit := l.UnitPriceFen
		if it := items[l.ItemID]; it != nil && it.ReferencePriceFen < unit {
			unit = it.ReferencePriceFen // the cap was lowered since the reservation
		}
		if it := items[l.ItemID]; it != nil {
			it.Stock -= quantity[i] - l.Quantity
		}
		l.ConfirmedQuantity = quantity[i]
		l.ConfirmedAmountFen = LineAmount(l.Weighed, unit, quantity[i])
		total += l.ConfirmedAmountFen
	}
	p.TotalFen = total
	return p.move(StateConfirmed, actor, reason, now, true)
}
