package order

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// systemActor is the order service acting on its own (giving stock back after a failed placement).
var systemActor = Actor{Role: RoleSystem, ID: "order"}

// releaseTimeout bounds the clean-up after a failed placement, and the recording of a
// cancellation its peers have carried out; both run even when the caller has gone, or the stock
// would stay reserved until the supplier's cutoff.
const releaseTimeout = 10 * time.Second

// KeepRequests is how long request keys are kept: a retry within it returns the first result.
// Clients retry within minutes; the margin covers a client that comes back the next day.
const KeepRequests = 48 * time.Hour

// Service carries out the order service's use cases.
type Service struct {
	store     Store
	suppliers Suppliers
	dispatch  Dispatch
	now       func() time.Time
	log       *slog.Logger
	// launches wakes the campaign launcher (RunLauncher) after a launch or a retry.
	launches chan struct{}
	// itemHomes remembers whose each item is and where it is sold (item id → itemHome); see
	// group. Bounded by the catalogs' size.
	itemHomes sync.Map
}

// NewService wires the use cases; now nil means time.Now.
func NewService(store Store, suppliers Suppliers, dispatch Dispatch, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, suppliers: suppliers, dispatch: dispatch, now: func() time.Time { return now().UTC() }, log: log,
		launches: make(chan struct{}, 1)}
}

// Now is the service's clock, by which households' quarantine and priority are judged.
func (s *Service) Now() time.Time { return s.now() }

// UpsertHousehold registers or updates h; an empty id becomes <compound>-<building>-<unit>-<room>.
// It states the household in full, so a priority migrated without reasons ends here. Staff of a
// compound neither write into another compound nor move a household out of one.
func (s *Service) UpsertHousehold(ctx context.Context, c Caller, requestID string, h Household) (Household, error) {
	if h.ID == "" {
		h.ID = HouseholdID(h.Address)
	}
	if !c.reachesCompound(h.Address.Compound) {
		return Household{}, NotFound("compound", h.Address.Compound)
	}
	if h.Occupancy == "" {
		h.Occupancy = OccupancyUnknown
	}
	h.UnstatedPriority = false
	var key RequestKey
	if requestID != "" {
		key = RequestKey{Kind: "household", Scope: h.ID, ID: requestID, Hash: HouseholdHash(h)}
	}
	return s.store.UpsertHousehold(ctx, h, key, func(current Household) bool {
		return c.reachesCompound(current.Address.Compound)
	})
}

// Household returns one household the caller reaches.
func (s *Service) Household(ctx context.Context, c Caller, id string) (Household, error) {
	h, err := s.store.Household(ctx, id)
	if err != nil {
		return Household{}, err
	}
	if !c.reachesHousehold(h.ID, h.Address.Compound) {
		return Household{}, NotFound("household", id)
	}
	return h, nil
}

// Households pages through a compound's households in id order.
func (s *Service) Households(ctx context.Context, c Caller, compound, after string, limit int) ([]Household, error) {
	if !c.reachesCompound(compound) {
		return nil, NotFound("compound", compound)
	}
	return s.store.Households(ctx, compound, after, limit)
}

// ImportHouseholds reads a roster spreadsheet and, unless it is a dry run or any row is
// rejected, upserts every row in one transaction. Buildings and units are checked against
// dispatch's site plan; when dispatch cannot be reached nothing is checked or written
// (ErrUnavailable). A retry of a finished import returns its first result.
func (s *Service) ImportHouseholds(ctx context.Context, c Caller, req ImportRequest) (ImportResult, error) {
	if !c.reachesCompound(req.Compound) {
		return ImportResult{}, NotFound("compound", req.Compound)
	}
	key := RequestKey{Kind: "import", Scope: req.Compound, ID: req.RequestID, Hash: req.Hash()}
	if !req.DryRun {
		if res, found, err := s.store.ImportResult(ctx, key); err != nil || found {
			return res, err
		}
	}
	roster := ParseRoster(req.Compound, req.CSV)
	if len(roster.Rows) > 0 {
		plan, err := s.dispatch.Buildings(ctx, req.Compound)
		if err != nil {
			return ImportResult{}, fmt.Errorf("site plan of %s: %w", req.Compound, err)
		}
		roster.CheckSitePlan(plan)
	}
	result := func(c ImportCounts) ImportResult {
		return ImportResult{Rows: roster.DataRows, Created: c.Created, Updated: c.Updated, Unchanged: c.Unchanged, Errors: roster.Errors}
	}
	if req.DryRun || len(roster.Errors) > 0 {
		current, err := s.store.Roster(ctx, req.Compound)
		if err != nil {
			return ImportResult{}, err
		}
		return result(roster.Plan(current)), nil
	}
	return s.store.ImportRoster(ctx, req.Compound, key, func(current []Household) ([]Household, ImportResult) {
		c := roster.Plan(current)
		res := result(c)
		res.Applied = true
		return c.Writes, res
	})
}

// ExportHouseholds writes a compound's roster as the import reads it.
func (s *Service) ExportHouseholds(ctx context.Context, c Caller, compound string) ([]byte, error) {
	if !c.reachesCompound(compound) {
		return nil, NotFound("compound", compound)
	}
	hs, err := s.store.Roster(ctx, compound)
	if err != nil {
		return nil, err
	}
	return FormatRoster(hs), nil
}

// PruneRequests forgets request keys older than KeepRequests.
func (s *Service) PruneRequests(ctx context.Context) (int64, error) {
	return s.store.PruneRequests(ctx, s.now().Add(-KeepRequests))
}

// Order returns one order, with its parcels, of a household the caller reaches.
func (s *Service) Order(ctx context.Context, c Caller, id string) (Order, error) {
	o, err := s.store.Order(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if !c.reachesHousehold(o.HouseholdID, o.Compound) {
		return Order{}, NotFound("order", id)
	}
	return o, nil
}

// Orders lists a household's orders, newest first.
func (s *Service) Orders(ctx context.Context, c Caller, householdID string, limit int) ([]Order, error) {
	if _, err := s.Household(ctx, c, householdID); err != nil {
		return nil, err
	}
	return s.store.Orders(ctx, householdID, limit)
}

// Parcel returns one parcel of a household the caller reaches.
func (s *Service) Parcel(ctx context.Context, c Caller, id string) (Parcel, error) {
	p, err := s.store.Parcel(ctx, id)
	if err != nil {
		return Parcel{}, err
	}
	if !c.reachesHousehold(p.HouseholdID, p.Address.Compound) {
		return Parcel{}, NotFound("parcel", id)
	}
	return p, nil
}

// GatePosition is where a page of the gate list ended: the last parcel's time of becoming READY
// and its id. It is carried whole, not looked up: that parcel may be checked in (and its time
// changed) before the next page is asked for.
type GatePosition struct {
	ReadyAt  time.Time
	ParcelID string
}

// ParcelsToCheckIn is what waits at the gate of a compound the caller reaches: the parcels the
// suppliers handed over (READY) that the dispatcher has not checked in, longest waiting first.
func (s *Service) ParcelsToCheckIn(ctx context.Context, c Caller, compound string, after GatePosition, limit int) ([]Parcel, error) {
	if !c.reachesCompound(compound) {
		return nil, NotFound("compound", compound)
	}
	return s.store.ParcelsToCheckIn(ctx, compound, after, limit)
}

// PlaceOrder turns a basket into an order with one parcel per supplier, reserving the stock of
// each parcel first. The input is assumed well-formed (the transport validated it). The caller
// places it for a household they reach, recorded as placed by them (see Caller.placing).
//
// Retries, even concurrent ones, are safe: the order id derives from the household and request
// id and the parcel ids from the order and the request's attempt, the suppliers reserve once per
// parcel id, and exactly one retry's insert of the order wins; the others return the winner's
// order. The request is claimed (with a hash of its basket) before anything is reserved, so a
// reused request id with another basket is refused up front.
//
// An attempt that fails gives its reservations back and moves the request to its next attempt
// (see abandon), so a retry after a failure is a fresh attempt under fresh parcel ids rather than
// a refusal: the supplier never reserves a released parcel id again.
func (s *Service) PlaceOrder(ctx context.Context, c Caller, req PlaceRequest) (Order, error) {
	req, err := c.placing(req)
	if err != nil {
		return Order{}, err
	}
	compound, ok := c.householdScope(req.HouseholdID)
	if !ok {
		return Order{}, NotFound("household", req.HouseholdID)
	}
	orderID := OrderID(req.HouseholdID, req.RequestID)
	hash := req.Hash()
	key := RequestKey{Kind: "place", Scope: req.HouseholdID, ID: req.RequestID, Hash: hash}
	// The household is read and the request claimed in one round trip; the claim is written only
	// for a household the caller reaches.
	hh, claim, err := s.store.ClaimPlacement(ctx, req.HouseholdID, compound, key)
	if err != nil {
		return Order{}, err
	}
	// A retry may find its order placed already. A request seen for the first time has none (its
	// id derives from the request id), unless its key was pruned after KeepRequests while the order
	// stayed; then the reservations below find the order's parcels at the suppliers (same ids, so
	// nothing is reserved twice) and CreateOrder returns the stored order.
	if !claim.New {
		if o, err := s.store.Order(ctx, orderID); err == nil {
			return o, nil
		} else if !errors.Is(err, ErrNotFound) {
			return Order{}, err
		}
	}

	groups, err := s.group(ctx, hh.Address.Compound, req.Lines)
	if err != nil {
		return Order{}, err
	}
	// PostgreSQL keeps microseconds: the order returned is then the very order a retry reads back.
	now := s.now().Truncate(time.Microsecond)
	attempt := claim.Attempt
	o := Order{ID: orderID, HouseholdID: hh.ID, Compound: hh.Address.Compound, RequestID: req.RequestID,
		RequestHash: hash, Channel: req.Channel, PlacedBy: req.PlacedBy, Proxy: req.PlacedBy.Role == RoleWorker, PlacedAt: now}
	var reserved []string
	fail := func(cause error, unsure ...string) (Order, error) {
		return s.abandon(ctx, key, attempt, orderID, append(reserved, unsure...), cause)
	}
	// The suppliers reserve at the same time: each reservation is its own transaction in its own
	// service, so nothing is held across them, and the order waits for the slowest supplier rather
	// than for all of them one after another. Results are then read in a fixed supplier order.
	sups := slices.Sorted(maps.Keys(groups))
	type outcome struct {
		r   Reservation
		got Reserved
		err error
	}
	outcomes := make([]outcome, len(sups))
	var wg sync.WaitGroup
	for i, sup := range sups {
		r := Reservation{ParcelID: ParcelID(orderID, sup, attempt), OrderID: orderID, SupplierID: sup,
			HouseholdID: hh.ID, Address: hh.Address, Lines: groups[sup]}
		wg.Go(func() {
			got, err := s.suppliers.Reserve(ctx, r)
			outcomes[i] = outcome{r: r, got: got, err: err}
		})
	}
	wg.Wait()
	// Everything that may have been reserved is known before any failure is answered, so a
	// failure gives all of it back: what was reserved, and what a lost answer may have reserved.
	var unsure []string
	var firstErr error
	var refusals []error // every supplier's, so that the resident learns every item to change at once
	for i, oc := range outcomes {
		sup, r, got, err := sups[i], oc.r, oc.got, oc.err
		switch {
		case errors.Is(err, ErrUnavailable):
			unsure = append(unsure, r.ParcelID)
			firstErr = cmp.Or(firstErr, fmt.Errorf("reserve at supplier %s: %w", sup, err))
			continue
		case errors.Is(err, ErrRefused):
			refusals = append(refusals, fmt.Errorf("reserve at supplier %s: %w", sup, err))
			firstErr = cmp.Or(firstErr, refusals[0])
			continue
		case err != nil:
			firstErr = cmp.Or(firstErr, fmt.Errorf("reserve at supplier %s: %w", sup, err))
			continue
		case !sameLines(r.Lines, got.Lines):
			// Another request holds this parcel id; with the request claimed first this means a
			// supplier bug, and the reservation is not ours to release.
			firstErr = cmp.Or(firstErr, fmt.Errorf("%w: supplier %s holds parcel %s with other lines", ErrConflict, sup, r.ParcelID))
			continue
		}
		reserved = append(reserved, r.ParcelID)
		switch got.State {
		case Cancelled, Expired, Rejected:
			// A concurrent retry of this attempt failed and gave the attempt's reservations back.
			firstErr = cmp.Or(firstErr, fmt.Errorf("%w: a concurrent attempt of request %q failed (parcel %s is %s at supplier %s); retry",
				ErrAborted, req.RequestID, r.ParcelID, got.State, sup))
			continue
		}
		p := Parcel{ID: r.ParcelID, OrderID: orderID, SupplierID: sup, HouseholdID: hh.ID, State: Placed,
			Lines: got.Lines, UpdatedAt: now, Address: hh.Address, Priority: hh.Priority(now), Contactless: hh.Quarantined(now)}
		p.Totals()
		o.Parcels = append(o.Parcels, p)
	}
	if len(refusals) > 1 && firstErr == refusals[0] {
		for _, r := range refusals[1:] {
			firstErr = fmt.Errorf("%w; %w", firstErr, r) // one line, for a message shown as it is
		}
	}
	if firstErr != nil {
		return fail(firstErr, unsure...)
	}

	stored, created, err := s.store.CreateOrder(ctx, o, key, attempt)
	if err != nil {
		return fail(err)
	}
	if !created && !bytes.Equal(stored.RequestHash, hash) {
		return Order{}, fmt.Errorf("%w: request id %q placed order %s with another basket", ErrConflict, req.RequestID, stored.ID)
	}
	return stored, nil
}

// itemHome is whose an item is and the compound it is sold in.
type itemHome struct{ supplierID, compound string }

// group splits the basket's lines by supplier, refusing (naming the line) an item not sold in the
// household's compound. An item never changes supplier (the supplier service refuses it), so
// whose each item is is remembered once learnt: a basket of known items costs no call.
// Everything else about an item (price, stock, ration) is the reservation's to judge.
func (s *Service) group(ctx context.Context, compound string, lines []BasketLine) (map[string][]BasketLine, error) {
	var unknown []string
	for _, l := range lines {
		if _, ok := s.itemHomes.Load(l.ItemID); !ok {
			unknown = append(unknown, l.ItemID)
		}
	}
	if len(unknown) > 0 {
		items, err := s.suppliers.Items(ctx, unknown)
		if errors.Is(err, ErrNotFound) {
			return nil, s.unknownItem(ctx, "lines", lines, err)
		}
		if err != nil {
			return nil, fmt.Errorf("look up items: %w", err)
		}
		for id, it := range items {
			s.itemHomes.Store(id, itemHome{supplierID: it.SupplierID, compound: it.Compound})
		}
	}
	groups := map[string][]BasketLine{}
	for i, l := range lines {
		v, ok := s.itemHomes.Load(l.ItemID)
		home, _ := v.(itemHome)
		// An item without a compound comes from a supplier service older than this one (a rolling
		// upgrade): its reservation still refuses another compound's address.
		if !ok || (home.compound != "" && home.compound != compound) {
			return nil, &FieldError{Field: fmt.Sprintf("lines[%d].item_id", i), Reason: fmt.Sprintf("no item %q in compound %s", l.ItemID, compound)}
		}
		groups[home.supplierID] = append(groups[home.supplierID], l)
	}
	return groups, nil
}

// unknownItem names the first line whose item does not exist. The supplier's batch look-up is all
// or nothing, so on NOT_FOUND each item is asked for alone (a rare path: a stale basket).
// field names the request's list of lines ("lines", "pack").
func (s *Service) unknownItem(ctx context.Context, field string, lines []BasketLine, batchErr error) error {
	for i, l := range lines {
		if _, err := s.suppliers.Items(ctx, []string{l.ItemID}); errors.Is(err, ErrNotFound) {
			return &FieldError{Field: fmt.Sprintf("%s[%d].item_id", field, i), Reason: fmt.Sprintf("no item %q", l.ItemID)}
		}
	}
	return fmt.Errorf("look up items: %w", batchErr)
}

func sameLines(want []BasketLine, got []Line) bool {
	if len(want) != len(got) {
		return false
	}
	q := make(map[string]int64, len(want))
	for _, l := range want {
		q[l.ItemID] = l.Quantity
	}
	for _, l := range got {
		if v, ok := q[l.ItemID]; !ok || v != l.Quantity {
			return false
		}
	}
	return true
}

// abandon ends a failed attempt of a placement and gives back its reservations (parcelIDs), then
// reports cause. If a concurrent retry has meanwhile stored the order, that order is the
// request's result and is returned instead; only reservations it does not hold are given back.
// If the attempt cannot be ended (our database is down) nothing is released, since a concurrent
// retry may yet store an order holding those reservations; the suppliers release unconfirmed
// stock at the round's cutoff. Release failures are logged, not returned, for the same reason.
func (s *Service) abandon(ctx context.Context, key RequestKey, attempt int, orderID string, parcelIDs []string, cause error) (Order, error) {
	// The clean-up runs even when the caller has gone, or the stock would stay reserved until the
	// supplier's cutoff.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	stored, err := s.store.EndAttempt(ctx, key, attempt, orderID)
	if err != nil {
		s.log.Warn("cannot end a failed placement attempt; its reservations wait for the suppliers' cutoff",
			"order", orderID, "attempt", attempt, "parcels", parcelIDs, "err", err)
		return Order{}, cause
	}
	// At once, each at its own supplier: one supplier that does not answer must not use up the
	// time the others' releases need.
	var wg sync.WaitGroup
	for _, id := range parcelIDs {
		if stored != nil && slices.ContainsFunc(stored.Parcels, func(p Parcel) bool { return p.ID == id }) {
			continue
		}
		wg.Go(func() {
			err := s.suppliers.Release(ctx, id, "order not placed: "+cause.Error(), systemActor)
			if err != nil && !errors.Is(err, ErrNotFound) {
				s.log.Warn("release after failed placement", "order", orderID, "parcel", id, "err", err)
			}
		})
	}
	wg.Wait()
	if stored != nil {
		return *stored, nil
	}
	return Order{}, cause
}

// CancelOrder cancels every parcel of the order that can still be cancelled: each one its
// supplier has not confirmed (released at its supplier first; a supplier that has confirmed
// meanwhile refuses, leaving the parcel as it is), and each one that failed at the door (SPEC.md:
// it goes back to the next round unless the household cancels), withdrawn from dispatch's gate
// pool first; one a later round has put on a route again stays as it is, as does a campaign's
// free pack. If nothing could be cancelled the result is ErrNothingToCancel; a retry counts the
// parcels already cancelled as its own. A retry of a finished cancellation returns the order
// as it is. The caller cancels an order of a household they reach, recorded as cancelled by them
// (see Caller.cancelling).
func (s *Service) CancelOrder(ctx context.Context, c Caller, req CancelRequest) (Order, error) {
	o, err := s.Order(ctx, c, req.OrderID)
	if err != nil {
		return Order{}, err
	}
	if req.Actor, err = c.cancelling(req.Actor, o.HouseholdID); err != nil {
		return Order{}, err
	}
	key := RequestKey{Kind: "cancel", Scope: o.ID, ID: req.RequestID, Hash: req.Hash()}
	claim, err := s.store.ClaimRequest(ctx, key)
	if err != nil {
		return Order{}, err
	}
	if claim.Done {
		return s.store.Order(ctx, o.ID)
	}

	// released holds the parcels let go by their supplier or by dispatch: the change to record.
	released := map[string]Change{}
	var failures []error
	for _, p := range o.Parcels {
		change, ok, err := s.letGo(ctx, o, p, key, req, !claim.New)
		switch {
		case err != nil:
			failures = append(failures, err)
		case ok:
			released[p.ID] = change
		}
	}
	// Only a cancellation that reached every supplier and dispatch is finished; otherwise a retry
	// goes again.
	var finished *RequestKey
	if len(failures) == 0 {
		finished = &key
	}
	now := s.now()
	// The stock is back and the parcels are out of dispatch's pool: record it even if the caller
	// has gone meanwhile.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	updated, err := s.store.UpdateOrder(recordCtx, o.ID, finished, func(o *Order) ([]Transition, error) {
		var ts []Transition
		cancelled := 0
		for i := range o.Parcels {
			p := &o.Parcels[i]
			change, ok := released[p.ID]
			switch {
			case !ok:
				continue
			case p.State == Cancelled:
				cancelled++ // dispatch's event got here first, or an earlier try of this request
				continue
			case p.State != Placed && p.State != Failed:
				continue
			}
			change.At = now
			t, _, err := p.Apply(change)
			if err != nil {
				return nil, err
			}
			ts = append(ts, t)
			cancelled++
		}
		if cancelled == 0 && len(failures) == 0 {
			return nil, fmt.Errorf("%w: order %s: every parcel is confirmed by its supplier, on its way or ended", ErrNothingToCancel, o.ID)
		}
		return ts, nil
	})
	if err != nil {
		return Order{}, err
	}
	if len(failures) > 0 {
		return Order{}, errors.Join(failures...)
	}
	return updated, nil
}

// letGo asks whoever holds parcel p of order o to let it go for the cancellation req (with key):
// its supplier while it is unconfirmed, dispatch once it has failed at the door. It returns the
// change to record, or ok=false when p goes ahead as it is. On a retry, a parcel already cancelled
// counts as let go: this request's earlier try may have cancelled it (dispatch's event records a
// withdrawal whose answer was lost).
func (s *Service) letGo(ctx context.Context, o Order, p Parcel, key RequestKey, req CancelRequest, retry bool) (change Change, ok bool, err error) {
	change = Change{ParcelID: p.ID, To: Cancelled, Actor: req.Actor, Reason: req.Reason}
	switch p.State {
	case Placed:
		err := s.suppliers.Release(ctx, p.ID, req.Reason, req.Actor)
		switch {
		case errors.Is(err, ErrRefused):
			return Change{}, false, nil // confirmed meanwhile: its confirmation event is on its way
		case err != nil:
			return Change{}, false, fmt.Errorf("release parcel %s at supplier %s: %w", p.ID, p.SupplierID, err)
		}
		return change, true, nil
	case Failed:
		if o.CampaignID != "" {
			// A free pack is the community's, handed out to every household: it goes out again,
			// and its worker follows a refusal up.
			return Change{}, false, nil
		}
		w, err := s.dispatch.Withdraw(ctx, Withdrawal{RequestID: withdrawalID(key, p), ParcelID: p.ID,
			FailedIn: p.Assignment.RoundID, Reason: req.Reason})
		switch {
		case errors.Is(err, ErrIllegalTransition):
			// Dispatch has it otherwise: on a route of a later round (its assignment event is on
			// its way), or the two services disagree.
			s.log.InfoContext(ctx, "failed parcel not withdrawn", "order", o.ID, "parcel", p.ID, "err", err)
			return Change{}, false, nil
		case err != nil:
			return Change{}, false, fmt.Errorf("withdraw parcel %s from dispatch: %w", p.ID, err)
		}
		// Dispatch has announced the cancellation: recorded under its event, not announced again.
		change.EventID, change.RoundID = w.EventID, w.RoundID
		return change, true, nil
	case Cancelled:
		return change, retry, nil
	default:
		return Change{}, false, nil
	}
}

// withdrawalID is the request id of the withdrawal of failed parcel p from dispatch on behalf of
// the cancellation with key: the same for every retry of that cancellation, and unique to it
// across orders (dispatch's request ids are global). The round it failed in is part of it, since
// dispatch holds a request id to the round it was sent with.
func withdrawalID(key RequestKey, p Parcel) string {
	return uuid.NewSHA1(namespace, []byte("withdraw/"+key.Scope+"/"+p.ID+"/"+p.Assignment.RoundID+"/"+key.ID)).String()
}
