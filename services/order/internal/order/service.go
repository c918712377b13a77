package order

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// ErrPermissionDenied: the actor may not act for this household.
var ErrPermissionDenied = errors.New("permission denied")

// systemActor is the order service acting on its own (giving stock back after a failed placement).
var systemActor = Actor{Role: RoleSystem, ID: "order"}

// releaseTimeout bounds the clean-up after a failed placement; it runs even when the caller has
// gone, or the stock would stay reserved until the supplier's cutoff.
const releaseTimeout = 10 * time.Second

// Service carries out the order service's use cases.
type Service struct {
	store     Store
	suppliers Suppliers
	now       func() time.Time
	log       *slog.Logger
}

// NewService wires the use cases; now nil means time.Now.
func NewService(store Store, suppliers Suppliers, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, suppliers: suppliers, now: func() time.Time { return now().UTC() }, log: log}
}

// UpsertHousehold registers or updates h; an empty id becomes <compound>-<building>-<unit>-<room>.
func (s *Service) UpsertHousehold(ctx context.Context, requestID string, h Household) (Household, error) {
	if h.ID == "" {
		h.ID = HouseholdID(h.Address)
	}
	var key RequestKey
	if requestID != "" {
		key = RequestKey{Kind: "household", Scope: h.ID, ID: requestID, Hash: HouseholdHash(h)}
	}
	return s.store.UpsertHousehold(ctx, h, key)
}

// Household returns one household.
func (s *Service) Household(ctx context.Context, id string) (Household, error) {
	return s.store.Household(ctx, id)
}

// Households pages through a compound's households in id order.
func (s *Service) Households(ctx context.Context, compound, after string, limit int) ([]Household, error) {
	return s.store.Households(ctx, compound, after, limit)
}

// Order returns one order with its parcels.
func (s *Service) Order(ctx context.Context, id string) (Order, error) { return s.store.Order(ctx, id) }

// Orders lists a household's orders, newest first.
func (s *Service) Orders(ctx context.Context, householdID string, limit int) ([]Order, error) {
	if _, err := s.store.Household(ctx, householdID); err != nil {
		return nil, err
	}
	return s.store.Orders(ctx, householdID, limit)
}

// Parcel returns one parcel.
func (s *Service) Parcel(ctx context.Context, id string) (Parcel, error) {
	return s.store.Parcel(ctx, id)
}

// authorize keeps a household to its own orders; workers (proxy orders) and the system may act
// for any household.
func authorize(a Actor, householdID string) error {
	switch a.Role {
	case RoleResident:
		if a.ID != householdID {
			return fmt.Errorf("%w: resident %s cannot act for household %s", ErrPermissionDenied, a.ID, householdID)
		}
	case RoleWorker, RoleSystem:
	default:
		return fmt.Errorf("%w: role %s cannot order for households", ErrPermissionDenied, a.Role)
	}
	return nil
}

// PlaceOrder turns a basket into an order with one parcel per supplier, reserving the stock of
// each parcel first. The input is assumed well-formed (the transport validated it).
//
// Retries, even concurrent ones, are safe: the order and parcel ids derive from the household and
// request id, the suppliers reserve once per parcel id, and exactly one retry's insert of the order
// wins; the others return the winner's order. The request is claimed (with a hash of its basket)
// before anything is reserved, so a reused request id with another basket is refused up front.
func (s *Service) PlaceOrder(ctx context.Context, req PlaceRequest) (Order, error) {
	if req.PlacedBy == (Actor{}) {
		req.PlacedBy = Actor{Role: RoleResident, ID: req.HouseholdID}
	}
	if req.Channel == "" {
		req.Channel = ChannelApp
	}
	if err := authorize(req.PlacedBy, req.HouseholdID); err != nil {
		return Order{}, err
	}
	hh, err := s.store.Household(ctx, req.HouseholdID)
	if err != nil {
		return Order{}, err
	}
	orderID := OrderID(req.HouseholdID, req.RequestID)
	hash := req.Hash()
	if _, err := s.store.ClaimRequest(ctx, RequestKey{Kind: "place", Scope: req.HouseholdID, ID: req.RequestID, Hash: hash}); err != nil {
		return Order{}, err
	}
	if o, err := s.store.Order(ctx, orderID); err == nil {
		return o, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Order{}, err
	}

	groups, err := s.group(ctx, req.Lines)
	if err != nil {
		return Order{}, err
	}
	now := s.now()
	o := Order{ID: orderID, HouseholdID: hh.ID, Compound: hh.Address.Compound, RequestID: req.RequestID,
		RequestHash: hash, Channel: req.Channel, PlacedBy: req.PlacedBy, Proxy: req.PlacedBy.Role == RoleWorker, PlacedAt: now}
	// A fixed supplier order keeps concurrent retries from holding reservations in opposite orders.
	var reserved []string
	for _, sup := range slices.Sorted(maps.Keys(groups)) {
		r := Reservation{ParcelID: ParcelID(orderID, sup), OrderID: orderID, SupplierID: sup,
			HouseholdID: hh.ID, Address: hh.Address, Lines: groups[sup]}
		got, err := s.suppliers.Reserve(ctx, r)
		if err != nil {
			s.release(ctx, orderID, reserved, "order not placed: "+err.Error())
			return Order{}, fmt.Errorf("reserve at supplier %s: %w", sup, err)
		}
		if !sameLines(r.Lines, got.Lines) {
			// Another request holds this parcel id; with the request claimed first this means a
			// supplier bug, and the reservation is not ours to release.
			s.release(ctx, orderID, reserved, "order not placed: reservation mismatch")
			return Order{}, fmt.Errorf("%w: supplier %s holds parcel %s with other lines", ErrConflict, sup, r.ParcelID)
		}
		reserved = append(reserved, r.ParcelID)
		switch got.State {
		case Cancelled, Expired, Rejected:
			// An earlier failed attempt of this same request gave this reservation back; the
			// supplier will not reserve a parcel id twice.
			s.release(ctx, orderID, reserved, "order not placed: reservation released earlier")
			return Order{}, fmt.Errorf("%w: the reservation of an earlier failed attempt with request id %q was released (parcel %s is %s at supplier %s); place the order with a new request id",
				ErrRefused, req.RequestID, r.ParcelID, got.State, sup)
		}
		p := Parcel{ID: r.ParcelID, OrderID: orderID, SupplierID: sup, HouseholdID: hh.ID, State: Placed,
			Lines: got.Lines, UpdatedAt: now, Address: hh.Address, Priority: hh.Priority, Contactless: hh.Quarantined}
		p.Totals()
		o.Parcels = append(o.Parcels, p)
	}

	stored, created, err := s.store.CreateOrder(ctx, o)
	if err != nil {
		s.release(ctx, orderID, reserved, "order not placed: "+err.Error())
		return Order{}, err
	}
	if !created && !bytes.Equal(stored.RequestHash, hash) {
		return Order{}, fmt.Errorf("%w: request id %q placed order %s with another basket", ErrConflict, req.RequestID, stored.ID)
	}
	return stored, nil
}

// group looks the basket's items up and splits the lines by supplier.
func (s *Service) group(ctx context.Context, lines []BasketLine) (map[string][]BasketLine, error) {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ItemID
	}
	items, err := s.suppliers.Items(ctx, ids)
	if errors.Is(err, ErrNotFound) {
		return nil, s.unknownItem(ctx, ids, err)
	}
	if err != nil {
		return nil, fmt.Errorf("look up items: %w", err)
	}
	groups := map[string][]BasketLine{}
	for i, l := range lines {
		it, ok := items[l.ItemID]
		if !ok {
			return nil, &FieldError{Field: fmt.Sprintf("lines[%d].item_id", i), Reason: fmt.Sprintf("no item %q", l.ItemID)}
		}
		groups[it.SupplierID] = append(groups[it.SupplierID], l)
	}
	return groups, nil
}

// unknownItem names the first line whose item does not exist. The supplier's batch look-up is all
// or nothing, so on NOT_FOUND each item is asked for alone (a rare path: a stale basket).
func (s *Service) unknownItem(ctx context.Context, ids []string, batchErr error) error {
	for i, id := range ids {
		if _, err := s.suppliers.Items(ctx, []string{id}); errors.Is(err, ErrNotFound) {
			return &FieldError{Field: fmt.Sprintf("lines[%d].item_id", i), Reason: fmt.Sprintf("no item %q", id)}
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

// release gives back the reservations of a placement that failed, unless a concurrent retry of the
// same request has meanwhile stored the order that holds them. Failures are logged, not returned:
// the caller reports the placement's own error, and the supplier releases unconfirmed stock at
// the round's cutoff anyway.
func (s *Service) release(ctx context.Context, orderID string, parcelIDs []string, reason string) {
	if len(parcelIDs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if _, err := s.store.Order(ctx, orderID); err == nil {
		return
	}
	for _, id := range parcelIDs {
		if err := s.suppliers.Release(ctx, id, reason, systemActor); err != nil {
			s.log.Warn("release after failed placement", "order", orderID, "parcel", id, "err", err)
		}
	}
}

// CancelOrder cancels every parcel of the order its supplier has not confirmed: each is released
// at its supplier first, and a supplier that has already confirmed refuses, leaving that parcel as
// it is. If nothing could be cancelled the result is ErrNothingToCancel. A retry of a finished
// cancellation returns the order as it is.
func (s *Service) CancelOrder(ctx context.Context, req CancelRequest) (Order, error) {
	o, err := s.store.Order(ctx, req.OrderID)
	if err != nil {
		return Order{}, err
	}
	if req.Actor == (Actor{}) {
		req.Actor = Actor{Role: RoleResident, ID: o.HouseholdID}
	}
	if err := authorize(req.Actor, o.HouseholdID); err != nil {
		return Order{}, err
	}
	key := RequestKey{Kind: "cancel", Scope: o.ID, ID: req.RequestID, Hash: req.Hash()}
	done, err := s.store.ClaimRequest(ctx, key)
	if err != nil {
		return Order{}, err
	}
	if done {
		return s.store.Order(ctx, o.ID)
	}

	released := map[string]bool{}
	var failures []error
	for _, p := range o.Parcels {
		if p.State != Placed {
			continue
		}
		switch err := s.suppliers.Release(ctx, p.ID, req.Reason, req.Actor); {
		case err == nil:
			released[p.ID] = true
		case errors.Is(err, ErrRefused):
			// Confirmed meanwhile: the parcel goes ahead; its confirmation event is on its way.
		default:
			failures = append(failures, fmt.Errorf("release parcel %s at supplier %s: %w", p.ID, p.SupplierID, err))
		}
	}
	// Only a cancellation that reached every supplier is finished; otherwise a retry goes again.
	var finished *RequestKey
	if len(failures) == 0 {
		finished = &key
	}
	now := s.now()
	updated, err := s.store.UpdateOrder(ctx, o.ID, finished, func(o *Order) ([]Transition, error) {
		var ts []Transition
		for i := range o.Parcels {
			p := &o.Parcels[i]
			if !released[p.ID] || p.State != Placed {
				continue
			}
			t, _, err := p.Apply(Change{ParcelID: p.ID, To: Cancelled, Actor: req.Actor, At: now, Reason: req.Reason})
			if err != nil {
				return nil, err
			}
			ts = append(ts, t)
		}
		if len(ts) == 0 && len(failures) == 0 {
			return nil, fmt.Errorf("%w: order %s: its suppliers have confirmed or ended every parcel", ErrNothingToCancel, o.ID)
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
