package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Service carries out dispatch's use cases.
type Service struct {
	store  Store
	orders Orders
	now    func() time.Time
}

// NewService wires the use cases; now nil means time.Now.
func NewService(store Store, orders Orders, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, orders: orders, now: now}
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
	c.FloorRanges = slices.Clone(c.FloorRanges)
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

// Routes are a round's routes that have stops; ErrNotFound if there is no such round.
func (s *Service) Routes(ctx context.Context, roundID string) ([]Route, error) {
	var out []Route
	err := s.store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Round(ctx, roundID); err != nil {
			return err
		}
		routes, err := tx.Routes(ctx, roundID)
		out = withStops(routes)
		return err
	})
	return out, err
}

// withStops drops withdrawn (emptied) routes.
func withStops(routes []Route) []Route {
	return slices.DeleteFunc(routes, func(r Route) bool { return len(r.Stops) == 0 })
}

// FieldError is input the domain refuses once it can see more than the transport could (a
// shortage naming an item the parcel does not hold): Field names it as the request spells it.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }
