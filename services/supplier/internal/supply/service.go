package supply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/google/uuid"
)

// IdempotencyKey identifies a mutating request: a retry with the same RequestID, Method and Hash
// within the same Scope gets the first response back; the same RequestID with anything else is
// refused. The scope is what the request acts on, "supplier:<id>" (or "compound:<c>" for a
// supplier's registration), so clients of two suppliers picking the same id never conflict while
// two workers handing over one supplier's packs under ids derived from the parcels share keys.
type IdempotencyKey struct {
	Scope     string // set by stamp; never empty ('' marks keys stored before scopes)
	RequestID string
	Method    string
	Hash      []byte
	// At is when the key was first used, by the service's clock; keys are kept KeyRetention.
	At time.Time
}

// stamp sets key's scope and time (nil stays nil).
func (s *Service) stamp(key *IdempotencyKey, scope string, now time.Time) *IdempotencyKey {
	if key != nil {
		key.Scope, key.At = scope, now
	}
	return key
}

func supplierScope(id string) string { return "supplier:" + id }

// ParcelRef names a parcel. SupplierID, when set, must own it and Reach must reach it: any
// other parcel is not found, worded as an unknown one (ParcelNotFound), so that suppliers cannot
// probe each other's queues nor residents each other's parcels.
type ParcelRef struct {
	ID         string
	SupplierID string
	Reach      Reach
}

// Matches reports whether p is the parcel r may name.
func (r ParcelRef) Matches(p Parcel) bool {
	return p.ID == r.ID && (r.SupplierID == "" || r.SupplierID == p.SupplierID) && r.Reach.Parcel(p)
}

// ParcelChange decides a change to a parcel whose row and items (when asked for) the repository
// holds locked. It mutates p and the items' stock and returns the transition to record; a zero
// Transition stores nothing.
type ParcelChange func(p *Parcel, items map[string]*Item) (Transition, error)

// Repository stores suppliers, catalogs and parcels. Every method that takes an
// IdempotencyKey (nil: none) runs the change and the key in one transaction.
type Repository interface {
	CreateSupplier(ctx context.Context, key *IdempotencyKey, s Supplier) (Supplier, error)
	// GetSupplier returns a supplier with its credentials.
	GetSupplier(ctx context.Context, id string) (Supplier, error)
	ListSuppliers(ctx context.Context, compound string) ([]Supplier, error)
	// UpsertItem creates an item, or replaces an existing one of the same supplier except for
	// its stock, which only AdjustStock and reservations change; it returns the item as stored
	// (with its real stock). Its compound is its supplier's. Raising an existing item's reference
	// price is refused (item.reference_price_fen) unless mayRaiseReference.
	UpsertItem(ctx context.Context, key *IdempotencyKey, it Item, mayRaiseReference bool) (Item, error)
	// AdjustStock adds a.Delta to the stock of a.SupplierID's item a.ItemID in one statement that
	// refuses (a.Refusal) to take it below zero or above MaxStock, records the adjustment with its
	// actor, time and the stock after it, and returns the item. Unknown suppliers are
	// SupplierNotFound; unknown items, and other suppliers' items, ItemNotFound.
	AdjustStock(ctx context.Context, key *IdempotencyKey, a StockAdjustment, at time.Time) (Item, error)
	// ListItems lists a compound's items, only supplierID's when set, in supplier and item order;
	// the items of donations suppliers only when withDonated.
	ListItems(ctx context.Context, compound, supplierID string, withDonated bool) ([]Item, error)
	// GetItems returns those of ids that exist.
	GetItems(ctx context.Context, ids []string) ([]Item, error)
	// UpdateCredentials replaces the supplier's credentials and returns the supplier.
	UpdateCredentials(ctx context.Context, key *IdempotencyKey, u CredentialsUpdate) (Supplier, error)
	// SetSuspended records a suspension or reinstatement, with its actor, reason and time, and
	// returns the supplier.
	SetSuspended(ctx context.Context, key *IdempotencyKey, c SuspensionChange, at time.Time) (Supplier, error)
	// Reserve returns the stored parcel when r.ParcelID exists; otherwise it locks the supplier's
	// items named by r in item id order, reads the household's ration use for today (not for a
	// campaign's pack, to which rations do not apply) and lets decide build the parcel, then
	// stores it with the items' new stock and its transitions in order, announcing those marked
	// so, all in one transaction.
	Reserve(ctx context.Context, r Reservation, day time.Time, decide func(sup Supplier, items map[string]*Item, rationUsed map[string]int64) (Parcel, []Transition, error)) (Parcel, error)
	// ChangeParcel locks the parcel (and its items in id order when lockItems), applies change and
	// stores the result, the transition and, when announced, its event. A parcel that ref does
	// not match is ParcelNotFound.
	ChangeParcel(ctx context.Context, key *IdempotencyKey, ref ParcelRef, lockItems bool, change ParcelChange) (Parcel, error)
	// ListParcels is a supplier's parcels, oldest first (newest first if f says so), narrowed and
	// paged by f.
	ListParcels(ctx context.Context, supplierID string, f ParcelFilter) ([]Parcel, error)
	// DueForExpiry lists up to limit placed parcels whose cutoff has come by now, earliest first.
	DueForExpiry(ctx context.Context, now time.Time, limit int) ([]string, error)
	// PruneKeys deletes idempotency keys first used before cutoff and says how many.
	PruneKeys(ctx context.Context, cutoff time.Time) (int64, error)
}

// Schedules tells a compound's delivery rounds, which dispatch owns. It always answers with a
// valid schedule (the default one when it cannot learn better).
type Schedules interface {
	Schedule(ctx context.Context, compound string) rounds.Schedule
}

// DefaultConfirmLead is how long before a round's cutoff a reservation must be made to be due
// for that round, giving the supplier time to confirm it.
const DefaultConfirmLead = 30 * time.Minute

// KeyRetention is how long idempotency keys are kept: twice the day a client may retry in.
const KeyRetention = 48 * time.Hour

// Service is the supplier's use cases over a Repository.
type Service struct {
	Repo Repository
	// Schedules gives compounds' rounds; nil means rounds.Default everywhere.
	Schedules Schedules
	// ConfirmLead is the least time between a reservation and its confirmation cutoff; 0 means
	// DefaultConfirmLead.
	ConfirmLead time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// now is truncated to PostgreSQL's microseconds, so a first answer and a stored one agree.
func (s *Service) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return now().UTC().Truncate(time.Microsecond)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// CreateSupplier registers a supplier; an empty ID gets a generated one. Staff of a compound
// register suppliers in their compound only.
func (s *Service) CreateSupplier(ctx context.Context, c Caller, key *IdempotencyKey, sup Supplier) (Supplier, error) {
	sup.Name = strings.TrimSpace(sup.Name)
	if err := sup.Validate(); err != nil {
		return Supplier{}, err
	}
	if !c.Reach.InCompound(sup.Compound) {
		return Supplier{}, fmt.Errorf("%s %s may not register suppliers in compound %s: %w", c.Actor.Role, c.Actor.ID, sup.Compound, ErrForbidden)
	}
	if sup.ID == "" {
		sup.ID = newID()
	}
	now := s.now()
	sup, err := s.Repo.CreateSupplier(ctx, s.stamp(key, "compound:"+sup.Compound, now), sup)
	return sup.WithStanding(now), err
}

// ListSuppliers lists a compound's suppliers.
func (s *Service) ListSuppliers(ctx context.Context, c Caller, compound string) ([]Supplier, error) {
	if !ValidSlug(compound) {
		return nil, Invalid("compound", "must be a compound slug")
	}
	if !c.Reach.InCompound(compound) {
		return nil, compoundNotFound(compound)
	}
	list, err := s.Repo.ListSuppliers(ctx, compound)
	now := s.now()
	for i := range list {
		list[i] = list[i].WithStanding(now)
	}
	return list, err
}

// UpdateCredentials replaces a supplier's licences and permits.
func (s *Service) UpdateCredentials(ctx context.Context, c Caller, key *IdempotencyKey, u CredentialsUpdate) (Supplier, error) {
	u.Normalize()
	if err := u.Validate(); err != nil {
		return Supplier{}, err
	}
	if err := s.reachSupplier(ctx, c.Reach, u.SupplierID); err != nil {
		return Supplier{}, err
	}
	now := s.now()
	sup, err := s.Repo.UpdateCredentials(ctx, s.stamp(key, supplierScope(u.SupplierID), now), u)
	return sup.WithStanding(now), err
}

// SetSuspended suspends a supplier (no new reservations; its placed parcels can still be
// filled) or reinstates it, recorded as done by the caller.
func (s *Service) SetSuspended(ctx context.Context, c Caller, key *IdempotencyKey, ch SuspensionChange) (Supplier, error) {
	ch.Reason = strings.TrimSpace(ch.Reason)
	ch.Actor = c.Actor
	if err := ch.Validate(); err != nil {
		return Supplier{}, err
	}
	if err := s.reachSupplier(ctx, c.Reach, ch.SupplierID); err != nil {
		return Supplier{}, err
	}
	now := s.now()
	sup, err := s.Repo.SetSuspended(ctx, s.stamp(key, supplierScope(ch.SupplierID), now), ch, now)
	return sup.WithStanding(now), err
}

// UpsertItem creates (empty ID: generated) or replaces a catalog item of a supplier the caller
// keeps (see keeper). it.Stock is the stock of a new item only: an existing item keeps its stock, whatever
// the request says, since the request may come from a screen loaded before reservations took
// some (stock changes are AdjustStock's). The item returned shows the stock as it is.
// Its prices and ration are checked against its supplier's kind (Item.ValidateFor). The reference
// price is the pre-epidemic price that caps what residents pay (SPEC.md, "No markup"): the staff
// of the supplier who sells the item may lower it but never raise it, or raising both prices would
// be a markup; only the system (an operator's tool) may correct it upwards.
func (s *Service) UpsertItem(ctx context.Context, c Caller, key *IdempotencyKey, it Item) (Item, error) {
	it.Normalize()
	if err := it.Validate(); err != nil {
		return Item{}, err
	}
	sup, err := s.keeper(ctx, c, it.SupplierID)
	if err != nil {
		return Item{}, err
	}
	// A supplier's kind never changes, so checking it before the repository's transaction holds.
	if err := it.ValidateFor(sup.Kind); err != nil {
		return Item{}, err
	}
	if it.ID == "" {
		it.ID = newID()
	}
	return s.Repo.UpsertItem(ctx, s.stamp(key, supplierScope(it.SupplierID), s.now()), it, c.Actor.Role == RoleSystem)
}

// ListItems lists a compound's catalog, or one supplier's part of it. The community's donated
// stock is listed only to those who hand it out or plan its delivery (SeesDonatedStock): it is
// not for sale, so it is no part of the catalog residents order from.
func (s *Service) ListItems(ctx context.Context, c Caller, compound, supplierID string) ([]Item, error) {
	if !ValidSlug(compound) {
		return nil, Invalid("compound", "must be a compound slug")
	}
	if !c.Reach.InCompound(compound) {
		return nil, compoundNotFound(compound)
	}
	return s.Repo.ListItems(ctx, compound, supplierID, c.SeesDonatedStock())
}

// MaxBatch bounds BatchGetItems.
const MaxBatch = 1000

// BatchGetItems returns every named item in the order asked (duplicates once), or ErrNotFound
// naming the missing ones; an item of a compound the caller does not reach is missing.
func (s *Service) BatchGetItems(ctx context.Context, c Caller, ids []string) ([]Item, error) {
	var v violations
	v.check(len(ids) > 0, "item_ids", "must name at least one item")
	v.check(len(ids) <= MaxBatch, "item_ids", "must name at most %d items", MaxBatch)
	for i, id := range ids {
		v.required(id, fmt.Sprintf("item_ids[%d]", i))
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	var uniq []string
	for _, id := range ids {
		if !slices.Contains(uniq, id) {
			uniq = append(uniq, id)
		}
	}
	found, err := s.Repo.GetItems(ctx, uniq)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]Item, len(found))
	for _, it := range found {
		if c.Reach.InCompound(it.Compound) {
			byID[it.ID] = it
		}
	}
	out := make([]Item, 0, len(uniq))
	var missing []string
	for _, id := range uniq {
		it, ok := byID[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		out = append(out, it)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("items %s: %w", strings.Join(missing, ", "), ErrNotFound)
	}
	return out, nil
}

// Reserve holds stock for one parcel, recorded as placed by the caller; a retry of the same
// reservation returns the stored parcel. A caller acting for a household or a compound reserves
// for that household or compound only. A campaign's free pack (r.CampaignID) is reserved by the
// order service for the worker running the campaign, or by a service alone: a resident's order
// cannot make itself free.
func (s *Service) Reserve(ctx context.Context, c Caller, r Reservation) (Parcel, error) {
	r.Actor = c.Actor
	if err := r.Validate(); err != nil {
		return Parcel{}, err
	}
	if !c.Reach.Parcel(Parcel{SupplierID: r.SupplierID, HouseholdID: r.HouseholdID, Compound: r.Address.Compound}) {
		return Parcel{}, fmt.Errorf("%s %s may not reserve for household %s of compound %s: %w",
			c.Actor.Role, c.Actor.ID, r.HouseholdID, r.Address.Compound, ErrForbidden)
	}
	if r.CampaignID != "" && c.Actor.Role != RoleWorker && c.Actor.Role != RoleSystem {
		return Parcel{}, fmt.Errorf("%s %s may not reserve a campaign's free pack: only a worker's campaign gives them: %w",
			c.Actor.Role, c.Actor.ID, ErrForbidden)
	}
	now := s.now()
	due := s.dueRound(ctx, r.Address.Compound, now)
	return s.Repo.Reserve(ctx, r, ServiceDay(now), func(sup Supplier, items map[string]*Item, used map[string]int64) (Parcel, []Transition, error) {
		return NewParcel(r, sup, items, used, now, due)
	})
}

// dueRound is the first round whose cutoff is at least the lead time after now.
func (s *Service) dueRound(ctx context.Context, compound string, now time.Time) rounds.Round {
	sched := rounds.Default
	if s.Schedules != nil {
		sched = s.Schedules.Schedule(ctx, compound)
	}
	lead := s.ConfirmLead
	if lead <= 0 {
		lead = DefaultConfirmLead
	}
	// Next is strictly after its argument; a cutoff exactly the lead away still counts.
	return sched.Next(compound, now.Add(lead-time.Nanosecond))
}

// expiryBatch bounds one query of due parcels; each is then expired in its own transaction.
const expiryBatch = 200

// ExpireDue expires every placed parcel whose cutoff has come, gives its stock back and
// announces parcel.expired, one parcel per transaction. It returns how many this call expired.
// Replicas may run it at once and confirmations may race it: each parcel is locked and
// re-checked, so exactly one decision wins.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	now := s.now()
	expired := 0
	for {
		due, err := s.Repo.DueForExpiry(ctx, now, expiryBatch)
		if err != nil {
			return expired, err
		}
		var errs []error
		for _, id := range due {
			var did bool
			_, err := s.Repo.ChangeParcel(ctx, nil, ParcelRef{ID: id}, true, func(p *Parcel, items map[string]*Item) (Transition, error) {
				t, err := p.Expire(items, now)
				did = t.To != ""
				return t, err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("expire parcel %s: %w", id, err))
				continue
			}
			if did {
				expired++
			}
		}
		// A failing parcel would come back in every batch: leave it to the next run.
		if len(due) < expiryBatch || len(errs) > 0 {
			return expired, errors.Join(errs...)
		}
	}
}

// PruneKeys forgets idempotency keys older than KeyRetention, so the table stays the size of two
// days of requests.
func (s *Service) PruneKeys(ctx context.Context) (int64, error) {
	return s.Repo.PruneKeys(ctx, s.now().Add(-KeyRetention))
}

// Release cancels an unconfirmed parcel the caller reaches, for the order service, and restocks it.
func (s *Service) Release(ctx context.Context, c Caller, parcelID, reason string) (Parcel, error) {
	var v violations
	v.id(parcelID, "parcel_id")
	v.maxLen(reason, "reason", MaxReason)
	if err := v.err(); err != nil {
		return Parcel{}, err
	}
	now := s.now()
	return s.Repo.ChangeParcel(ctx, nil, ParcelRef{ID: parcelID, Reach: c.Reach}, true, func(p *Parcel, items map[string]*Item) (Transition, error) {
		return p.Release(items, c.Actor, reason, now)
	})
}

func supplierRef(c Caller, supplierID, parcelID string) (ParcelRef, violations) {
	var v violations
	v.required(supplierID, "supplier_id")
	v.id(parcelID, "parcel_id")
	return ParcelRef{ID: parcelID, SupplierID: supplierID, Reach: c.Reach}, v
}

// mayDecide refuses, as for an unknown parcel, a caller deciding for a supplier other than its
// own. It runs before the repository, which would otherwise answer a retried request with its
// stored response before looking at the parcel.
func mayDecide(c Caller, ref ParcelRef) error {
	if c.Reach.HouseholdID != "" || (c.Reach.SupplierID != "" && c.Reach.SupplierID != ref.SupplierID) {
		return ParcelNotFound(ref.ID)
	}
	return nil
}

// Confirm records the supplier's confirmation, with actual weights or partial quantities, as
// made by the caller.
func (s *Service) Confirm(ctx context.Context, c Caller, key *IdempotencyKey, supplierID, parcelID string, lines []ConfirmLine) (Parcel, error) {
	ref, v := supplierRef(c, supplierID, parcelID)
	v.check(len(lines) <= MaxLines, "lines", "must hold at most %d lines", MaxLines)
	for i, l := range lines {
		v.required(l.ItemID, fmt.Sprintf("lines[%d].item_id", i))
		if l.Quantity != nil {
			v.check(*l.Quantity >= 0, fmt.Sprintf("lines[%d].quantity", i), "must not be negative")
			v.check(*l.Quantity <= MaxQuantity, fmt.Sprintf("lines[%d].quantity", i), "must be at most %d", MaxQuantity)
		}
	}
	if err := v.err(); err != nil {
		return Parcel{}, err
	}
	if err := mayDecide(c, ref); err != nil {
		return Parcel{}, err
	}
	now := s.now()
	return s.Repo.ChangeParcel(ctx, s.stamp(key, supplierScope(ref.SupplierID), now), ref, true, func(p *Parcel, items map[string]*Item) (Transition, error) {
		return p.Confirm(items, lines, c.Actor, now)
	})
}

// Reject refuses a parcel for the caller, with a reason, and restocks it.
func (s *Service) Reject(ctx context.Context, c Caller, key *IdempotencyKey, supplierID, parcelID, reason string) (Parcel, error) {
	ref, v := supplierRef(c, supplierID, parcelID)
	v.required(reason, "reason")
	v.maxLen(reason, "reason", MaxReason)
	if err := v.err(); err != nil {
		return Parcel{}, err
	}
	if err := mayDecide(c, ref); err != nil {
		return Parcel{}, err
	}
	now := s.now()
	return s.Repo.ChangeParcel(ctx, s.stamp(key, supplierScope(ref.SupplierID), now), ref, true, func(p *Parcel, items map[string]*Item) (Transition, error) {
		return p.Reject(items, c.Actor, strings.TrimSpace(reason), now)
	})
}

// MarkReady records a confirmed parcel handed over at the gate by the caller: the supplier's
// staff, or, for the community's donated stock, a worker of its compound.
func (s *Service) MarkReady(ctx context.Context, c Caller, key *IdempotencyKey, supplierID, parcelID string) (Parcel, error) {
	ref, v := supplierRef(c, supplierID, parcelID)
	if err := v.err(); err != nil {
		return Parcel{}, err
	}
	if err := mayDecide(c, ref); err != nil {
		return Parcel{}, err
	}
	if c.Actor.Role == RoleWorker {
		if _, err := s.keeper(ctx, c, supplierID); err != nil {
			return Parcel{}, err
		}
	}
	now := s.now()
	return s.Repo.ChangeParcel(ctx, s.stamp(key, supplierScope(ref.SupplierID), now), ref, false, func(p *Parcel, _ map[string]*Item) (Transition, error) {
		return p.MarkReady(c.Actor, now)
	})
}

// ParcelFilter narrows a supplier's parcel queue, and pages it; zero fields do not narrow it.
type ParcelFilter struct {
	State State
	// RoundID: the parcels due for one round.
	RoundID string
	// CampaignID: one campaign's free packs.
	CampaignID string
	// NewestFirst lists the latest reserved first; the queue's order is the oldest first.
	NewestFirst bool
	// After: only the parcels after this one (a parcel id) in the listing's order.
	After string
	// Limit: at most this many.
	Limit int
}

// canonicalUUID says whether s is a UUID as PostgreSQL writes it (lower case, with dashes), not
// another spelling uuid.Parse accepts: PostgreSQL refuses urn:uuid:, and tokens are only ever
// made from the canonical one.
func canonicalUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// ListParcels is the parcel queue of a supplier the caller reaches, narrowed by f.
func (s *Service) ListParcels(ctx context.Context, c Caller, supplierID string, f ParcelFilter) ([]Parcel, error) {
	var v violations
	v.required(supplierID, "supplier_id")
	v.check(f.State == "" || f.State.Valid(), "state", "is not a parcel state")
	v.maxLen(f.RoundID, "round_id", MaxText)
	v.check(f.CampaignID == "" || campaignIDRE.MatchString(f.CampaignID), "campaign_id",
		"must be at most 64 letters, digits, '-' or '_'")
	v.check(f.After == "" || canonicalUUID(f.After), "page_token", "names no parcel")
	v.check(f.Limit >= 0, "page_size", "must not be negative")
	if err := v.err(); err != nil {
		return nil, err
	}
	if err := s.reachSupplier(ctx, c.Reach, supplierID); err != nil {
		return nil, err
	}
	return s.Repo.ListParcels(ctx, supplierID, f)
}
