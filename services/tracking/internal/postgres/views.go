package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/doorstep/doorstep/services/tracking/internal/views"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Every write below compares (time, event id) with what the row holds and keeps the later fact,
// so events applied in any order, by any replica, leave the same rows. Each write notes the
// rounds whose progress it changed, for the watches.

// queuePlacement adds to b the statements that store whose each parcel of p is and that it is
// PLACED as of the order's time. The parcel's state outside any round (parcel_states) is left to
// its parcel.placed, which the order service publishes with order.placed in the same transaction
// and which writes the same state: writing it here too cost 2 of the 18 statements an order
// took, per parcel.
func queuePlacement(b *pgx.Batch, p views.Placement) {
	for _, pp := range p.Parcels {
		// Whose the parcel is (order, household, supplier), order.placed says best: it overwrites
		// what an earlier parcel event noted. Its state still goes only where it is the later.
		b.Queue(`
			INSERT INTO parcels (parcel_id, compound, order_id, household_id, supplier_id, state, state_at, state_event_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (parcel_id) DO UPDATE
			SET order_id = EXCLUDED.order_id, household_id = EXCLUDED.household_id, supplier_id = EXCLUDED.supplier_id,
			    `+laterState,
			pp.ParcelID, p.Compound, p.OrderID, p.HouseholdID, pp.SupplierID, views.StatePlaced, p.At.UTC(), p.EventID)
	}
}

// queueStateChange adds to b the statements that record a parcel's new state unless a later one
// is already recorded.
func queueStateChange(b *pgx.Batch, c views.StateChange, rounds *[]string) {
	// The parcel may be news to us (its order.placed not applied yet): note what the event says
	// of it, without overwriting what order.placed said. A row the event changes nothing in is
	// not written at all.
	b.Queue(`
		INSERT INTO parcels (parcel_id, compound, order_id, household_id, state, state_at, state_event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (parcel_id) DO UPDATE
		SET order_id = coalesce(parcels.order_id, EXCLUDED.order_id),
		    household_id = CASE WHEN parcels.household_id = '' THEN EXCLUDED.household_id ELSE parcels.household_id END,
		    `+laterState+`
		WHERE (parcels.order_id IS NULL AND EXCLUDED.order_id IS NOT NULL)
		   OR (parcels.household_id = '' AND EXCLUDED.household_id <> '')
		   OR `+isLater,
		c.ParcelID, c.Compound, nullable(c.OrderID), c.HouseholdID, c.State, c.At.UTC(), c.EventID)
	queueRoundState(b, c, rounds)
}

// isLater, in an upsert of parcels, holds when the proposed state is later than the one recorded
// (or none is): by time, then event id, so that any order of events leaves the same state.
const isLater = `(parcels.state_at IS NULL OR (parcels.state_at, parcels.state_event_id) < (EXCLUDED.state_at, EXCLUDED.state_event_id))`

// laterState, in an upsert of parcels, keeps the later of the recorded and the proposed state.
const laterState = `state = CASE WHEN ` + isLater + ` THEN EXCLUDED.state ELSE parcels.state END,
		    state_at = CASE WHEN ` + isLater + ` THEN EXCLUDED.state_at ELSE parcels.state_at END,
		    state_event_id = CASE WHEN ` + isLater + ` THEN EXCLUDED.state_event_id ELSE parcels.state_event_id END`

// queueRoundState adds to b the statements that record c as the parcel's state in its round, and
// adds to rounds, once b has run, the rounds whose progress that changed.
func queueRoundState(b *pgx.Batch, c views.StateChange, rounds *[]string) {
	changed := false
	b.Queue(`
		INSERT INTO parcel_states (parcel_id, round_id, state, occurred_at, event_id) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (parcel_id, round_id) DO UPDATE
		SET state = EXCLUDED.state, occurred_at = EXCLUDED.occurred_at, event_id = EXCLUDED.event_id
		WHERE (parcel_states.occurred_at, parcel_states.event_id) < (EXCLUDED.occurred_at, EXCLUDED.event_id)`,
		c.ParcelID, c.RoundID, c.State, c.At.UTC(), c.EventID).Exec(func(tag pgconn.CommandTag) error {
		changed = tag.RowsAffected() > 0 // none: an older state than the one recorded
		return nil
	})
	// A state within a round changes that round only; one outside any round (a cancellation)
	// changes every round the parcel is on. Read in the same round trip, used only if it changed.
	b.Queue(`SELECT round_id FROM round_parcels WHERE parcel_id = $1 AND ($2 = '' OR round_id = $2)`,
		c.ParcelID, c.RoundID).Query(func(rows pgx.Rows) error {
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if changed {
			*rounds = append(*rounds, ids...)
		}
		return err
	})
}

// ApplyRoute makes r the route's parcels unless a later version is already applied. A parcel
// that r takes from another route of the round moves only if r was planned after that route.
func ApplyRoute(ctx context.Context, tx pgx.Tx, r views.Route) (rounds []string, err error) {
	tag, err := tx.Exec(ctx, `
		INSERT INTO routes (route_id, compound, round_id, courier_id, version, planned_at, event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (route_id) DO UPDATE
		SET compound = EXCLUDED.compound, round_id = EXCLUDED.round_id, courier_id = EXCLUDED.courier_id,
		    version = EXCLUDED.version, planned_at = EXCLUDED.planned_at, event_id = EXCLUDED.event_id
		WHERE (routes.version, routes.planned_at, routes.event_id) < (EXCLUDED.version, EXCLUDED.planned_at, EXCLUDED.event_id)`,
		r.RouteID, r.Compound, r.RoundID, r.CourierID, r.Version, r.At.UTC(), r.EventID)
	if err != nil {
		return nil, fmt.Errorf("record route %s: %w", r.RouteID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, nil // an older (or the same) version: the route already says more
	}
	// The upsert locks the route's row until commit, so two versions of one route applied at once
	// (two replicas) replace its parcels one after the other.
	parcels := make([]string, 0, len(r.Parcels))
	buildings := make([]string, 0, len(r.Parcels))
	for _, p := range r.Parcels {
		if slices.Contains(parcels, p.ParcelID) {
			continue // listed at two stops: the first one counts
		}
		parcels = append(parcels, p.ParcelID)
		buildings = append(buildings, p.Building)
	}
	rows, err := tx.Query(ctx, `
		DELETE FROM round_parcels WHERE route_id = $1 AND NOT (parcel_id = ANY($2::uuid[]))
		RETURNING round_id`, r.RouteID, parcels)
	if err != nil {
		return nil, fmt.Errorf("withdraw parcels of route %s: %w", r.RouteID, err)
	}
	if rounds, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("withdraw parcels of route %s: %w", r.RouteID, err)
	}
	if len(parcels) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO round_parcels (round_id, parcel_id, compound, route_id, courier_id, building, planned_at, event_id)
			SELECT $1, p.parcel_id, $3, $4, $5, p.building, $7, $8
			FROM unnest($2::uuid[], $6::text[]) AS p(parcel_id, building)
			ON CONFLICT (round_id, parcel_id) DO UPDATE
			SET compound = EXCLUDED.compound, route_id = EXCLUDED.route_id, courier_id = EXCLUDED.courier_id,
			    building = EXCLUDED.building, planned_at = EXCLUDED.planned_at, event_id = EXCLUDED.event_id
			WHERE (round_parcels.planned_at, round_parcels.event_id) <= (EXCLUDED.planned_at, EXCLUDED.event_id)`,
			r.RoundID, parcels, r.Compound, r.RouteID, r.CourierID, buildings, r.At.UTC(), r.EventID); err != nil {
			return nil, fmt.Errorf("plan parcels of route %s: %w", r.RouteID, err)
		}
	}
	if r.RoundID != "" {
		rounds = append(rounds, r.RoundID)
	}
	return dedupe(rounds), nil
}

var _ views.Reader = (*Store)(nil)

// RoundProgress implements views.Reader. A parcel's state in a round is the latest of its
// states in that round and outside any round, so a parcel that failed this morning and is
// out again this afternoon counts as failed in the morning round.
func (s *Store) RoundProgress(ctx context.Context, roundID string) (views.RoundProgress, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT rp.building, rp.courier_id, coalesce(st.state, ''), count(*)
		FROM round_parcels rp
		LEFT JOIN LATERAL (
			SELECT ps.state FROM parcel_states ps
			WHERE ps.parcel_id = rp.parcel_id AND ps.round_id IN (rp.round_id, '')
			ORDER BY ps.occurred_at DESC, ps.event_id DESC
			LIMIT 1) st ON true
		WHERE rp.round_id = $1
		GROUP BY 1, 2, 3`, roundID)
	if err != nil {
		return views.RoundProgress{}, fmt.Errorf("query progress of round %s: %w", roundID, err)
	}
	counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (views.Count, error) {
		var c views.Count
		err := row.Scan(&c.Building, &c.CourierID, &c.State, &c.Parcels)
		return c, err
	})
	if err != nil {
		return views.RoundProgress{}, fmt.Errorf("read progress of round %s: %w", roundID, err)
	}
	return views.Tally(roundID, counts), nil
}

// SupplierQueue implements views.Reader.
func (s *Store) SupplierQueue(ctx context.Context, supplierID string) ([]views.StateCount, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT state, count(*) FROM parcels
		WHERE supplier_id = $1 AND state <> ''
		GROUP BY state ORDER BY state`, supplierID)
	if err != nil {
		return nil, fmt.Errorf("query queue of supplier %s: %w", supplierID, err)
	}
	counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (views.StateCount, error) {
		var c views.StateCount
		err := row.Scan(&c.State, &c.Parcels)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read queue of supplier %s: %w", supplierID, err)
	}
	return counts, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
