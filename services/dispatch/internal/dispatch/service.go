package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/doorstep/doorstep/services/dispatch/internal/planner"
	"github.com/google/uuid"
)

// horizonDays bounds how far ahead check-in looks for an open round: rounds are planned one at a
// time, so running out means something is wrong rather than busy.
const horizonDays = 14

// peerConcurrency bounds concurrent GetParcel calls of one check-in.
const peerConcurrency = 8

// Service carries out dispatch's use cases.
type Service struct {
	store    Store
	orders   Orders
	schedule Schedule
	now      func() time.Time
}

// NewService wires the use cases; now nil means time.Now.
func NewService(store Store, orders Orders, schedule Schedule, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, orders: orders, schedule: schedule, now: now}
}

// once runs a mutating use case at most once per request id: the first run's answer is stored
// with a fingerprint of the request in the same transaction as its changes, a retry gets that
// answer back, and the same id with a different request gets ErrRequestConflict. A failed run
// stores nothing, so the request can be retried once its cause is fixed.
func once[T any](ctx context.Context, s *Service, method, requestID string, request any, run func(Tx) (T, error)) (T, error) {
	fp, err := fingerprint(method, request)
	var out T
	if err != nil {
		return out, err
	}
	err = s.store.InTx(ctx, func(tx Tx) error {
		prev, found, err := tx.ClaimRequest(ctx, requestID)
		if err != nil {
			return err
		}
		if found {
			return replay(prev, method, fp, &out)
		}
		res, err := run(tx)
		if err != nil {
			return err
		}
		body, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode %s response: %w", method, err)
		}
		out = res
		return tx.SaveRequest(ctx, Request{ID: requestID, Method: method, Fingerprint: fp, Response: body})
	})
	return out, err
}

// answered returns the stored answer to requestID without changing anything, if there is one.
func answered[T any](ctx context.Context, s *Service, method, requestID string, request any) (T, bool, error) {
	var out T
	fp, err := fingerprint(method, request)
	if err != nil {
		return out, false, err
	}
	var found bool
	err = s.store.InTx(ctx, func(tx Tx) error {
		// Not ClaimRequest: this is only a look, and must not wait on a request in flight.
		var prev Request
		var err error
		prev, found, err = tx.LookRequest(ctx, requestID)
		if err != nil || !found {
			return err
		}
		return replay(prev, method, fp, &out)
	})
	return out, found, err
}

func replay(prev Request, method string, fp []byte, out any) error {
	if prev.Method != method || !bytes.Equal(prev.Fingerprint, fp) {
		return fmt.Errorf("%w: request_id %s", ErrRequestConflict, prev.ID)
	}
	if err := json.Unmarshal(prev.Response, out); err != nil {
		return fmt.Errorf("decode stored %s response: %w", method, err)
	}
	return nil
}

func fingerprint(method string, request any) ([]byte, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return nil, fmt.Errorf("fingerprint %s: %w", method, err)
	}
	sum := sha256.Sum256(append([]byte(method+"\x00"), body...))
	return sum[:], nil
}

// UpsertBuilding records a building of the site plan.
func (s *Service) UpsertBuilding(ctx context.Context, requestID string, b Building) (Building, error) {
	return once(ctx, s, "UpsertBuilding", requestID, b, func(tx Tx) (Building, error) {
		return b, tx.UpsertBuilding(ctx, b)
	})
}

// Buildings is a compound's site plan.
func (s *Service) Buildings(ctx context.Context, compound string) ([]Building, error) {
	var out []Building
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		out, err = tx.Buildings(ctx, compound)
		return err
	})
	return out, err
}

// UpsertCourier records a courier.
func (s *Service) UpsertCourier(ctx context.Context, requestID string, c Courier) (Courier, error) {
	c.Buildings = slices.Clone(c.Buildings)
	slices.Sort(c.Buildings)
	return once(ctx, s, "UpsertCourier", requestID, c, func(tx Tx) (Courier, error) {
		return c, tx.UpsertCourier(ctx, c)
	})
}

// Couriers are a compound's couriers.
func (s *Service) Couriers(ctx context.Context, compound string) ([]Courier, error) {
	var out []Courier
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		out, err = tx.Couriers(ctx, compound)
		return err
	})
	return out, err
}

// Rounds are a compound's rounds of date (today when empty), opened if they do not exist yet.
func (s *Service) Rounds(ctx context.Context, compound, date string) ([]Round, error) {
	if date == "" {
		date = s.schedule.Date(s.now())
	}
	want, err := s.schedule.Rounds(compound, date)
	if err != nil {
		return nil, err
	}
	var out []Round
	err = s.store.InTx(ctx, func(tx Tx) error {
		if err := tx.EnsureRounds(ctx, want); err != nil {
			return err
		}
		out, err = tx.RoundsOn(ctx, compound, date)
		return err
	})
	return out, err
}

// openRound is the round a parcel arriving at the gate now joins: the first open round, today's
// or a later day's, whose cutoff is still ahead. It is share-locked so that it cannot be planned
// before the parcel is in.
func (s *Service) openRound(ctx context.Context, tx Tx, compound string, now time.Time) (Round, error) {
	date := s.schedule.Date(now)
	for range horizonDays {
		rounds, err := s.schedule.Rounds(compound, date)
		if err != nil {
			return Round{}, err
		}
		if err := tx.EnsureRounds(ctx, rounds); err != nil {
			return Round{}, err
		}
		r, ok, err := tx.FirstOpenRound(ctx, compound, date, now)
		if err != nil || ok {
			return r, err
		}
		if date, err = s.schedule.NextDate(date); err != nil {
			return Round{}, err
		}
	}
	return Round{}, fmt.Errorf("%w: compound %s has no open round in the next %d days", ErrNoOpenRound, compound, horizonDays)
}

// CheckIn is a batch of parcels handed over at the gate.
type CheckIn struct {
	RequestID string `json:"-"`
	Compound  string
	ParcelIDs []string
}

// CheckIn checks parcels in at the gate. Each parcel must be READY in the order service's view
// and belong to the compound; a parcel that is not gets its reason in its result while the others
// still go in. A parcel checked in before keeps its round.
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
	return once(ctx, s, method, cmd.RequestID, cmd, func(tx Tx) ([]CheckInResult, error) {
		now := s.now()
		existing, err := tx.Parcels(ctx, cmd.ParcelIDs)
		if err != nil {
			return nil, err
		}
		results := make([]CheckInResult, len(cmd.ParcelIDs))
		var round *Round
		for i, id := range cmd.ParcelIDs {
			results[i].ParcelID = id
			if j := slices.IndexFunc(existing, func(p Parcel) bool { return p.ID == id }); j >= 0 {
				results[i].CheckedIn, results[i].RoundID = true, existing[j].RoundID
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
			if round == nil {
				r, err := s.openRound(ctx, tx, cmd.Compound, now)
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
				results[i].CheckedIn, results[i].RoundID = true, again[0].RoundID
				continue
			}
			if err := tx.Publish(ctx, ParcelAtGate{Parcel: p, At: now, By: byDispatcher}); err != nil {
				return nil, err
			}
			results[i].CheckedIn, results[i].RoundID = true, round.ID
		}
		return results, nil
	})
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

// PlanRoundCmd asks for a round's routes.
type PlanRoundCmd struct {
	RequestID string `json:"-"`
	RoundID   string
}

// PlanRound plans an open round's parcels onto its on-duty couriers and publishes the routes;
// a round planned before returns its stored plan.
func (s *Service) PlanRound(ctx context.Context, cmd PlanRoundCmd) (Plan, error) {
	return once(ctx, s, "PlanRound", cmd.RequestID, cmd, func(tx Tx) (Plan, error) {
		r, err := tx.LockRound(ctx, cmd.RoundID)
		if err != nil {
			return Plan{}, err
		}
		if r.State == RoundPlanned {
			routes, err := tx.Routes(ctx, r.ID)
			return Plan{Round: r, Routes: routes, Cost: r.Cost, LowerBound: r.LowerBound}, err
		}
		parcels, err := tx.PooledParcels(ctx, r.ID)
		if err != nil {
			return Plan{}, err
		}
		buildings, err := tx.Buildings(ctx, r.Compound)
		if err != nil {
			return Plan{}, err
		}
		couriers, err := tx.Couriers(ctx, r.Compound)
		if err != nil {
			return Plan{}, err
		}
		pp, err := planner.PlanRound(plannerInput(buildings, couriers, parcels))
		if errors.Is(err, planner.ErrUnplannable) {
			return Plan{}, fmt.Errorf("%w %s: %s", ErrCannotPlan, r.ID, err.Error())
		}
		if err != nil {
			return Plan{}, fmt.Errorf("plan round %s: %w", r.ID, err)
		}
		now := s.now()
		plan := fromPlanner(r, pp, parcels)
		if err := tx.SavePlan(ctx, plan, now); err != nil {
			return Plan{}, err
		}
		byID := make(map[string]Parcel, len(parcels))
		for _, p := range parcels {
			byID[p.ID] = p
		}
		var evs []Event
		for _, route := range plan.Routes {
			for _, stop := range route.Stops {
				for _, sp := range stop.Parcels {
					p := byID[sp.ParcelID]
					p.Status, p.RouteID, p.CourierID = StatusAssigned, route.ID, route.CourierID
					evs = append(evs, ParcelAssigned{Parcel: p, At: now, By: byDispatcher})
				}
			}
			evs = append(evs, RoutePlanned{Compound: r.Compound, Route: route, At: now, By: byDispatcher})
		}
		if err := tx.Publish(ctx, evs...); err != nil {
			return Plan{}, err
		}
		return plan, nil
	})
}

func plannerInput(buildings []Building, couriers []Courier, parcels []Parcel) planner.Input {
	var in planner.Input
	for _, b := range buildings {
		in.Buildings = append(in.Buildings, planner.Building{Name: b.Name, Units: b.Units, Floors: b.Floors,
			HasLift: b.HasLift, DistanceM: b.DistanceM})
	}
	for _, c := range couriers {
		if c.OnDuty {
			in.Couriers = append(in.Couriers, planner.Courier{ID: c.ID, Buildings: c.Buildings,
				MaxParcels: c.MaxParcels, MaxGrams: c.MaxGrams})
		}
	}
	for _, p := range parcels {
		in.Parcels = append(in.Parcels, planner.Parcel{ID: p.ID, HouseholdID: p.HouseholdID, Building: p.Address.Building,
			Unit: p.Address.Unit, Floor: p.Address.Floor, Room: p.Address.Room, Priority: p.Priority,
			Contactless: p.Contactless, WeightGrams: p.WeightGrams})
	}
	return in
}

func fromPlanner(r Round, pp planner.Plan, parcels []Parcel) Plan {
	byID := make(map[string]Parcel, len(parcels))
	for _, p := range parcels {
		byID[p.ID] = p
	}
	r.State, r.Cost, r.LowerBound = RoundPlanned, Cost(pp.Cost), Cost(pp.LowerBound)
	plan := Plan{Round: r, Cost: r.Cost, LowerBound: r.LowerBound}
	for _, pr := range pp.Routes {
		route := Route{ID: uuid.Must(uuid.NewV7()).String(), RoundID: r.ID, CourierID: pr.CourierID, Cost: Cost(pr.Cost)}
		for _, ps := range pr.Stops {
			first := byID[ps.ParcelIDs[0]]
			stop := Stop{Sequence: ps.Sequence, Trip: ps.Trip, HouseholdID: ps.HouseholdID, Address: first.Address,
				Priority: ps.Priority, Contactless: ps.Contactless, WeightGrams: ps.WeightGrams}
			for _, id := range ps.ParcelIDs {
				stop.Parcels = append(stop.Parcels, StopParcel{ParcelID: id, OrderID: byID[id].OrderID})
			}
			route.Stops = append(route.Stops, stop)
		}
		plan.Routes = append(plan.Routes, route)
	}
	return plan
}

// Routes are a round's routes; ErrNotFound if there is no such round.
func (s *Service) Routes(ctx context.Context, roundID string) ([]Route, error) {
	var out []Route
	err := s.store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Round(ctx, roundID); err != nil {
			return err
		}
		var err error
		out, err = tx.Routes(ctx, roundID)
		return err
	})
	return out, err
}

// FailedParcel is a courier's report that a parcel could not be delivered.
type FailedParcel struct {
	ParcelID string
	Reason   string
}

// ParcelFailed puts a parcel that failed at the door back into the gate pool of the next open
// round, keeping the reason, so that round's plan takes it again. It runs inside the caller's
// transaction (the event consumer's, which records the event as applied in the same one).
func (s *Service) ParcelFailed(ctx context.Context, tx Tx, f FailedParcel) error {
	p, err := tx.LockParcel(ctx, f.ParcelID)
	if err != nil {
		return err
	}
	if p.Status == StatusPooled {
		// Already waiting at the gate (a second report of the same failure): only the reason changes.
		return tx.RepoolParcel(ctx, p.ID, p.RoundID, f.Reason)
	}
	r, err := s.openRound(ctx, tx, p.Address.Compound, s.now())
	if err != nil {
		return err
	}
	return tx.RepoolParcel(ctx, p.ID, r.ID, f.Reason)
}
