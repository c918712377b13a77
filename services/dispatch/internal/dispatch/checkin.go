package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// peerConcurrency bounds concurrent GetParcel calls of one check-in.
const peerConcurrency = 8

// CheckIn is a batch of parcels handed over at the gate.
type CheckIn struct {
	RequestID string `json:"-"`
	Compound  string
	ParcelIDs []string
	// Shortages found checking the batch against the supplier's list; each names a parcel of
	// the batch (the transport checks that).
	Shortages []Shortage
	// By is who checks the batch in, recorded on each parcel.at_gate.
	By Actor `json:"-"`
}

// CheckIn checks parcels in at the gate. Each parcel must be READY in the order service's view
// and belong to the compound; a parcel that is not gets its reason in its result while the others
// still go in. Each joins the first open round with room whose cutoff is ahead, so a batch may
// spill into the next round when one fills. A parcel checked in before keeps its round and the
// shortages recorded then. Shortages must name items of their parcel, at most as many as it holds.
func (s *Service) CheckIn(ctx context.Context, cmd CheckIn) ([]CheckInResult, error) {
	const method = "CheckInParcels"
	if prev, ok, err := answered[[]CheckInResult](ctx, s, method, cmd.RequestID, cmd); err != nil || ok {
		return prev, err
	}
	var known []Parcel
	if err := s.store.InTx(ctx, func(tx Tx) (err error) {
		known, err = tx.Parcels(ctx, cmd.ParcelIDs)
		return err
	}); err != nil {
		return nil, err
	}
	fetched, err := s.fetch(ctx, cmd.Compound, cmd.ParcelIDs, known)
	if err != nil {
		return nil, err
	}
	if err := checkShortages(cmd.Shortages, fetched); err != nil {
		return nil, err
	}
	return once(ctx, s, method, cmd.RequestID, cmd, func(tx Tx) ([]CheckInResult, error) {
		now := s.now()
		st, err := settings(ctx, tx, cmd.Compound)
		if err != nil {
			return nil, err
		}
		existing, err := tx.Parcels(ctx, cmd.ParcelIDs)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(existing))
		for i, p := range existing {
			ids[i] = p.ID
		}
		stored, err := tx.Shortages(ctx, ids)
		if err != nil {
			return nil, err
		}
		results := make([]CheckInResult, len(cmd.ParcelIDs))
		var round *Round
		for i, id := range cmd.ParcelIDs {
			results[i].ParcelID = id
			if j := slices.IndexFunc(existing, func(p Parcel) bool { return p.ID == id }); j >= 0 {
				// Known already: scanned again, or in a retried batch. One that will not go out
				// again is not reported as checked in.
				switch existing[j].Status {
				case StatusWithdrawn:
					results[i].Error = fmt.Sprintf("parcel %s was cancelled by its household after failing at the door: it does not go out again", id)
				case StatusDelivered:
					results[i].Error = fmt.Sprintf("parcel %s was delivered", id)
				default:
					results[i].CheckedIn, results[i].RoundID = true, existing[j].RoundID
					results[i].Shortages = shortagesOf(stored, id)
				}
				continue
			}
			f, ok := fetched[id]
			if !ok {
				return nil, fmt.Errorf("parcel %s vanished between reads", id)
			}
			if f.problem != "" {
				results[i].Error = f.problem
				continue
			}
			if round == nil || !hasRoom(st, *round) {
				r, err := openRound(ctx, tx, st, now)
				if err != nil {
					return nil, err
				}
				round = &r
			}
			p := Parcel{ID: id, OrderID: f.parcel.OrderID, HouseholdID: f.parcel.HouseholdID, Address: f.parcel.Address,
				Priority: f.parcel.Priority, Contactless: f.parcel.Contactless, WeightGrams: f.parcel.WeightGrams,
				RoundID: round.ID, Status: StatusPooled, CheckedInAt: now}
			inserted, err := tx.InsertParcel(ctx, p)
			if err != nil {
				return nil, err
			}
			if !inserted { // checked in concurrently by another request: report its round
				again, err := tx.Parcels(ctx, []string{id})
				if err != nil || len(again) == 0 {
					return nil, fmt.Errorf("parcel %s: reading concurrent check-in: %w", id, err)
				}
				others, err := tx.Shortages(ctx, []string{id})
				if err != nil {
					return nil, err
				}
				results[i].CheckedIn, results[i].RoundID, results[i].Shortages = true, again[0].RoundID, others
				continue
			}
			round.Parcels++
			short := shortagesOf(cmd.Shortages, id)
			if err := tx.SaveShortages(ctx, short); err != nil {
				return nil, err
			}
			if err := tx.Publish(ctx, ParcelAtGate{Parcel: p, Shortages: short, Reason: ShortageReason(short), At: now,
				By: cmd.By}); err != nil {
				return nil, err
			}
			results[i].CheckedIn, results[i].RoundID, results[i].Shortages = true, round.ID, short
		}
		return results, nil
	})
}

func shortagesOf(all []Shortage, parcelID string) []Shortage {
	var out []Shortage
	for _, s := range all {
		if s.ParcelID == parcelID {
			out = append(out, s)
		}
	}
	return out
}

// ShortageReason says in words what was short, for the household's timeline:
// "missing 1 × fm-eggs-30; damaged 2 × fm-milk-1l (carton crushed)".
func ShortageReason(shortages []Shortage) string {
	parts := make([]string, 0, len(shortages))
	for _, s := range shortages {
		var what []string
		if s.Missing > 0 {
			what = append(what, fmt.Sprintf("missing %d × %s", s.Missing, s.ItemID))
		}
		if s.Damaged > 0 {
			what = append(what, fmt.Sprintf("damaged %d × %s", s.Damaged, s.ItemID))
		}
		part := strings.Join(what, ", ")
		if s.Note != "" {
			part += " (" + s.Note + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// checkShortages refuses shortages naming an item their parcel does not hold, or more than it
// holds, for parcels the order service described (others are not checked in by this request).
func checkShortages(shortages []Shortage, fetched map[string]fetched) error {
	for i, s := range shortages {
		f, ok := fetched[s.ParcelID]
		if !ok || f.problem == "parcel not found" {
			continue
		}
		j := slices.IndexFunc(f.parcel.Lines, func(l OrderLine) bool { return l.ItemID == s.ItemID })
		if j < 0 {
			return &FieldError{Field: fmt.Sprintf("shortages[%d].item_id", i),
				Reason: fmt.Sprintf("parcel %s has no item %s", s.ParcelID, s.ItemID)}
		}
		if q := f.parcel.Lines[j].Quantity; s.Missing+s.Damaged > q {
			return &FieldError{Field: fmt.Sprintf("shortages[%d].missing_quantity", i),
				Reason: fmt.Sprintf("missing and damaged together exceed the %d of %s in the parcel", q, s.ItemID)}
		}
	}
	return nil
}

type fetched struct {
	parcel  OrderParcel
	problem string
}

// fetch asks the order service about every parcel not checked in yet and judges whether it may
// be. An order service that cannot answer fails the whole check-in, so the dispatcher retries it.
func (s *Service) fetch(ctx context.Context, compound string, ids []string, known []Parcel) (map[string]fetched, error) {
	var todo []string
	for _, id := range ids {
		if !slices.ContainsFunc(known, func(p Parcel) bool { return p.ID == id }) {
			todo = append(todo, id)
		}
	}
	out := make(map[string]fetched, len(todo))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, peerConcurrency)
	var wg sync.WaitGroup
	for _, id := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p, err := s.orders.Parcel(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrNotFound):
				out[id] = fetched{problem: "parcel not found"}
			case err != nil:
				if firstErr == nil {
					firstErr = err
				}
			default:
				out[id] = fetched{parcel: p}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	judge(compound, out)
	return out, nil
}

// judge fills in why fetched parcels may not be checked in into compound.
func judge(compound string, out map[string]fetched) {
	for id, f := range out {
		if f.problem != "" {
			continue
		}
		p := f.parcel
		switch {
		case p.State != StateReady:
			f.problem = fmt.Sprintf("parcel is %s, not %s", p.State, StateReady)
		case p.Address.Compound != compound:
			f.problem = fmt.Sprintf("parcel belongs to compound %s, not %s", p.Address.Compound, compound)
		case p.Address.Building == "" || p.Address.Unit == "" || p.Address.Floor < 1:
			f.problem = "parcel has no complete household address"
		}
		out[id] = f
	}
}
