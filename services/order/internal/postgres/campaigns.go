package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/outbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
)

// packLine and target are a campaign's pack and target as stored (jsonb).
type packLine struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
}

type target struct {
	Buildings      []string     `json:"buildings,omitempty"`
	Flags          []order.Flag `json:"flags,omitempty"`
	IncludeUnknown bool         `json:"include_unknown_occupancy,omitempty"`
}

// campaignColumns are read by scanCampaign; c is the campaigns table's alias.
const campaignColumns = `c.campaign_id::text, c.compound, c.name, c.supplier_id, c.pack, c.target, c.state,
	c.created_by_role, c.created_by_id, c.created_at, c.launched_by_role, c.launched_by_id, c.launched_at`

func scanCampaign(row pgx.Row) (order.Campaign, error) {
	var (
		c          order.Campaign
		pack       []packLine
		tgt        target
		launchedAt *time.Time
	)
	err := row.Scan(&c.ID, &c.Compound, &c.Name, &c.SupplierID, &pack, &tgt, &c.State, &c.CreatedBy.Role, &c.CreatedBy.ID,
		&c.CreatedAt, &c.LaunchedBy.Role, &c.LaunchedBy.ID, &launchedAt)
	if err != nil {
		return c, err
	}
	for _, l := range pack {
		c.Pack = append(c.Pack, order.BasketLine{ItemID: l.ItemID, Quantity: l.Quantity})
	}
	c.Target = order.Target{Buildings: tgt.Buildings, Flags: tgt.Flags, IncludeUnknown: tgt.IncludeUnknown}
	c.CreatedAt = c.CreatedAt.UTC()
	if launchedAt != nil {
		c.LaunchedAt = launchedAt.UTC()
	}
	return c, nil
}

// CreateCampaign implements order.Store.
func (s *Store) CreateCampaign(ctx context.Context, c order.Campaign, key order.RequestKey) (order.Campaign, error) {
	pack := make([]packLine, len(c.Pack))
	for i, l := range c.Pack {
		pack[i] = packLine{ItemID: l.ItemID, Quantity: l.Quantity}
	}
	tgt := target{Buildings: c.Target.Buildings, Flags: c.Target.Flags, IncludeUnknown: c.Target.IncludeUnknown}
	var out order.Campaign
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := s.claim(ctx, tx, key); err != nil {
			return err
		}
		// The id derives from the request, so a retry finds the campaign its first call created.
		if _, err := tx.Exec(ctx, `INSERT INTO campaigns (campaign_id, compound, name, supplier_id, pack, target, state,
				created_by_role, created_by_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (campaign_id) DO NOTHING`,
			c.ID, c.Compound, c.Name, c.SupplierID, pack, tgt, c.State, c.CreatedBy.Role, c.CreatedBy.ID, c.CreatedAt); err != nil {
			return fmt.Errorf("insert campaign: %w", err)
		}
		if err := finish(ctx, tx, key, nil); err != nil {
			return err
		}
		var err error
		out, err = s.campaign(ctx, tx, c.ID)
		return err
	})
	return out, err
}

// Campaign implements order.Store.
func (s *Store) Campaign(ctx context.Context, id string) (order.Campaign, error) {
	return s.campaign(ctx, s.pool, id)
}

func (s *Store) campaign(ctx context.Context, q querier, id string) (order.Campaign, error) {
	if uuid.Validate(id) != nil {
		return order.Campaign{}, order.NotFound("campaign", id)
	}
	c, err := scanCampaign(q.QueryRow(ctx, `SELECT `+campaignColumns+` FROM campaigns c WHERE c.campaign_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, order.NotFound("campaign", id)
	}
	if err != nil {
		return c, fmt.Errorf("read campaign %s: %w", id, err)
	}
	entries, err := s.roster(ctx, q, id)
	if err != nil {
		return c, err
	}
	c.Counts, _ = order.CountRoster(entries)
	return c, nil
}

// Campaigns implements order.Store.
func (s *Store) Campaigns(ctx context.Context, compound string) ([]order.Campaign, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+campaignColumns+` FROM campaigns c WHERE c.compound = $1
		ORDER BY c.created_at DESC, c.campaign_id`, compound)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Campaign, error) { return scanCampaign(r) })
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	for i := range list {
		entries, err := s.roster(ctx, s.pool, list[i].ID)
		if err != nil {
			return nil, err
		}
		list[i].Counts, _ = order.CountRoster(entries)
	}
	return list, nil
}

// LaunchCampaign implements order.Store. The compound's households are read inside the
// transaction that records the targets, after the campaign row is locked, so two launches at once
// serialize and the second finds the campaign launched.
func (s *Store) LaunchCampaign(ctx context.Context, id string, actor order.Actor, now time.Time,
	choose func([]order.Household) []order.Household) (order.Campaign, error) {
	var out order.Campaign
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		var compound string
		var state order.CampaignState
		err := tx.QueryRow(ctx, `SELECT compound, state FROM campaigns WHERE campaign_id = $1 FOR UPDATE`, id).Scan(&compound, &state)
		if errors.Is(err, pgx.ErrNoRows) {
			return order.NotFound("campaign", id)
		}
		if err != nil {
			return fmt.Errorf("lock campaign %s: %w", id, err)
		}
		if state == order.CampaignDraft {
			hs, err := households(ctx, tx, `SELECT `+householdColumns+` FROM households h WHERE h.compound = $1`, compound)
			if err != nil {
				return err
			}
			targets := choose(hs)
			if len(targets) == 0 {
				// Launching would do nothing, silently: most likely the target is not what the
				// worker meant (a building without such households).
				return fmt.Errorf("%w: campaign %s reaches no household of %s (occupied, in its buildings, with its flags); define another",
					order.ErrCampaignState, id, compound)
			}
			ids := make([]string, len(targets))
			for i, h := range targets {
				ids[i] = h.ID
			}
			if _, err := tx.Exec(ctx, `INSERT INTO campaign_households (campaign_id, household_id, updated_at)
				SELECT $1, unnest($2::text[]), $3`, id, ids, now); err != nil {
				return fmt.Errorf("record the targets of campaign %s: %w", id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE campaigns SET state = $2, launched_by_role = $3, launched_by_id = $4, launched_at = $5
				WHERE campaign_id = $1`, id, order.CampaignLaunching, actor.Role, actor.ID, now); err != nil {
				return fmt.Errorf("launch campaign %s: %w", id, err)
			}
		}
		out, err = s.campaign(ctx, tx, id)
		return err
	})
	return out, err
}

// RetryMissed implements order.Store.
func (s *Store) RetryMissed(ctx context.Context, id string, key order.RequestKey, now time.Time) (int, error) {
	var retried int
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := s.claim(ctx, tx, key)
		if err != nil {
			return err
		}
		if c.Done {
			result, err := storedResult(ctx, tx, key)
			if err != nil {
				return err
			}
			retried, err = strconv.Atoi(string(result))
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM campaigns WHERE campaign_id = $1 FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock campaign %s: %w", id, err)
		}
		// Missed as order.RosterEntry.Status says: no pack could be made, or its parcel ended
		// without reaching the door. Keep the two in step.
		tag, err := tx.Exec(ctx, `UPDATE campaign_households ch SET attempt = ch.attempt + 1, order_id = NULL,
				missed_reason = '', updated_at = $2
			WHERE ch.campaign_id = $1 AND ((ch.order_id IS NULL AND ch.missed_reason <> '')
				OR EXISTS (SELECT 1 FROM parcels p WHERE p.order_id = ch.order_id AND p.state IN ('REJECTED', 'CANCELLED', 'EXPIRED')))`,
			id, now)
		if err != nil {
			return fmt.Errorf("retry the missed households of campaign %s: %w", id, err)
		}
		retried = int(tag.RowsAffected())
		if retried > 0 {
			if _, err := tx.Exec(ctx, `UPDATE campaigns SET state = 'LAUNCHING' WHERE campaign_id = $1`, id); err != nil {
				return fmt.Errorf("relaunch campaign %s: %w", id, err)
			}
		}
		// The count is the request's result, for its retries ("3" is valid JSON).
		return finish(ctx, tx, key, []byte(strconv.Itoa(retried)))
	})
	return retried, err
}

// CampaignRoster implements order.Store.
func (s *Store) CampaignRoster(ctx context.Context, id string) ([]order.RosterEntry, error) {
	return s.roster(ctx, s.pool, id)
}

func (s *Store) roster(ctx context.Context, q querier, id string) ([]order.RosterEntry, error) {
	rows, err := q.Query(ctx, `SELECT ch.household_id, ch.attempt, ch.order_id IS NOT NULL, ch.missed_reason, ch.updated_at,
			coalesce(p.parcel_id::text, ''), coalesce(p.state, ''), coalesce(p.reason, ''), p.updated_at, `+householdColumns+`
		FROM campaign_households ch JOIN households h ON h.household_id = ch.household_id
		LEFT JOIN parcels p ON p.order_id = ch.order_id
		WHERE ch.campaign_id = $1 ORDER BY ch.household_id`, id)
	if err != nil {
		return nil, fmt.Errorf("read the roster of campaign %s: %w", id, err)
	}
	now := s.now()
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.RosterEntry, error) {
		var (
			e        order.RosterEntry
			hh       order.Household
			parcelAt *time.Time
		)
		dest := append([]any{&e.HouseholdID, &e.Attempt, &e.Made, &e.MissedReason, &e.UpdatedAt,
			&e.ParcelID, &e.ParcelState, &e.ParcelReason, &parcelAt}, householdDest(&hh)...)
		if err := r.Scan(dest...); err != nil {
			return e, fmt.Errorf("read the roster of campaign %s: %w", id, err)
		}
		e.CampaignID, e.Address, e.Priority = id, hh.Address, hh.Priority(now)
		if parcelAt != nil && parcelAt.After(e.UpdatedAt) {
			e.UpdatedAt = *parcelAt
		}
		e.UpdatedAt = e.UpdatedAt.UTC()
		return e, nil
	})
}

// PendingPacks implements order.Store. Priority households come first, so that when stock runs
// short it is the old, the ill and the quarantined who get a pack.
func (s *Store) PendingPacks(ctx context.Context, limit int) ([]order.PendingPack, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+campaignColumns+`, ch.attempt, `+householdColumns+`
		FROM campaign_households ch JOIN campaigns c ON c.campaign_id = ch.campaign_id
		JOIN households h ON h.household_id = ch.household_id
		WHERE c.state = 'LAUNCHING' AND ch.order_id IS NULL AND ch.missed_reason = ''
		ORDER BY c.launched_at, (h.over_80 OR h.lives_alone OR h.chronically_ill OR h.priority_unstated
			OR coalesce(h.quarantined_until >= $2::date, false)) DESC, ch.household_id
		LIMIT $1`, limit, rounds.Date(s.now()))
	if err != nil {
		return nil, fmt.Errorf("read pending packs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.PendingPack, error) {
		var p order.PendingPack
		c, err := scanCampaign(scanFirst{r: r, rest: append([]any{&p.Attempt}, householdDest(&p.Household)...)})
		p.Campaign = c
		return p, err
	})
}

// scanFirst lets scanCampaign read the leading columns of a row that carries more: it appends
// rest to the destinations scanCampaign passes.
type scanFirst struct {
	r    pgx.Row
	rest []any
}

func (s scanFirst) Scan(dest ...any) error { return s.r.Scan(append(dest, s.rest...)...) }

// StorePack implements order.Store.
func (s *Store) StorePack(ctx context.Context, o order.Order, campaignID string, attempt int) (bool, error) {
	var stored bool
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			current int
			made    bool
		)
		err := tx.QueryRow(ctx, `SELECT attempt, order_id IS NOT NULL FROM campaign_households
			WHERE campaign_id = $1 AND household_id = $2 FOR UPDATE`, campaignID, o.HouseholdID).Scan(&current, &made)
		if err != nil {
			return fmt.Errorf("lock household %s of campaign %s: %w", o.HouseholdID, campaignID, err)
		}
		if current != attempt || made {
			stored = false
			return nil
		}
		if _, err := insertOrder(ctx, tx, o); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE campaign_households SET order_id = $3, missed_reason = '', updated_at = $4
			WHERE campaign_id = $1 AND household_id = $2`, campaignID, o.HouseholdID, o.ID, o.PlacedAt); err != nil {
			return fmt.Errorf("record the pack of %s: %w", o.HouseholdID, err)
		}
		stored = true
		return nil
	})
	return stored, err
}

// MarkMissed implements order.Store.
func (s *Store) MarkMissed(ctx context.Context, campaignID, householdID string, attempt int, reason string, now time.Time) error {
	if reason == "" {
		reason = "pack could not be made"
	}
	_, err := s.pool.Exec(ctx, `UPDATE campaign_households SET missed_reason = $4, updated_at = $5
		WHERE campaign_id = $1 AND household_id = $2 AND attempt = $3 AND order_id IS NULL`,
		campaignID, householdID, attempt, reason, now)
	if err != nil {
		return fmt.Errorf("record the missed pack of %s: %w", householdID, err)
	}
	return nil
}

// FinishLaunches implements order.Store.
func (s *Store) FinishLaunches(ctx context.Context, _ time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE campaigns c SET state = 'LAUNCHED' WHERE c.state = 'LAUNCHING'
		AND NOT EXISTS (SELECT 1 FROM campaign_households ch WHERE ch.campaign_id = c.campaign_id
			AND ch.order_id IS NULL AND ch.missed_reason = '')`)
	if err != nil {
		return 0, fmt.Errorf("finish launches: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PostNotice implements order.Store.
func (s *Store) PostNotice(ctx context.Context, n order.Notice, key order.RequestKey) (order.Notice, error) {
	var out order.Notice
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := s.claim(ctx, tx, key)
		if err != nil {
			return err
		}
		if !c.Done {
			buildings := n.Buildings
			if buildings == nil {
				buildings = []string{}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO notices (notice_id, compound, title, body, buildings, posted_by_role,
					posted_by_id, posted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				n.ID, n.Compound, n.Title, n.Text, buildings, n.PostedBy.Role, n.PostedBy.ID, n.PostedAt); err != nil {
				return fmt.Errorf("insert notice: %w", err)
			}
			ev := events.New(n.Compound, pbconv.ActorProto(n.PostedBy), "", n.PostedAt)
			ev.Payload = &eventsv1.Event_NoticePosted{NoticePosted: &eventsv1.NoticePosted{
				NoticeId: n.ID, Title: n.Title, Text: n.Text, Buildings: n.Buildings}}
			if err := outbox.Add(ctx, tx, ev); err != nil {
				return err
			}
			if err := finish(ctx, tx, key, nil); err != nil {
				return err
			}
		}
		out, err = notice(ctx, tx, n.ID, "")
		return err
	})
	return out, err
}

// WithdrawNotice implements order.Store.
func (s *Store) WithdrawNotice(ctx context.Context, id string, actor order.Actor, now time.Time, reaches func(order.Notice) bool) (order.Notice, error) {
	var out order.Notice
	err := pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		n, err := notice(ctx, tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		if !reaches(n) {
			return order.NotFound("notice", id)
		}
		if !n.WithdrawnAt.IsZero() {
			out = n
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE notices SET withdrawn_at = $2, withdrawn_by_role = $3, withdrawn_by_id = $4
			WHERE notice_id = $1`, id, now, actor.Role, actor.ID); err != nil {
			return fmt.Errorf("withdraw notice %s: %w", id, err)
		}
		ev := events.New(n.Compound, pbconv.ActorProto(actor), "", now)
		ev.Payload = &eventsv1.Event_NoticeWithdrawn{NoticeWithdrawn: &eventsv1.NoticeWithdrawn{NoticeId: id}}
		if err := outbox.Add(ctx, tx, ev); err != nil {
			return err
		}
		out, err = notice(ctx, tx, id, "")
		return err
	})
	return out, err
}

// Notices implements order.Store.
func (s *Store) Notices(ctx context.Context, compound string) ([]order.Notice, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+noticeColumns+` FROM notices WHERE compound = $1
		ORDER BY posted_at DESC, notice_id`, compound)
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Notice, error) { return scanNotice(r) })
}

const noticeColumns = `notice_id::text, compound, title, body, buildings, posted_by_role, posted_by_id, posted_at,
	withdrawn_at, withdrawn_by_role, withdrawn_by_id`

func scanNotice(row pgx.Row) (order.Notice, error) {
	var (
		n           order.Notice
		withdrawnAt *time.Time
	)
	err := row.Scan(&n.ID, &n.Compound, &n.Title, &n.Text, &n.Buildings, &n.PostedBy.Role, &n.PostedBy.ID, &n.PostedAt,
		&withdrawnAt, &n.WithdrawnBy.Role, &n.WithdrawnBy.ID)
	n.PostedAt = n.PostedAt.UTC()
	if withdrawnAt != nil {
		n.WithdrawnAt = withdrawnAt.UTC()
	}
	return n, err
}

func notice(ctx context.Context, tx pgx.Tx, id, lock string) (order.Notice, error) {
	if uuid.Validate(id) != nil {
		return order.Notice{}, order.NotFound("notice", id)
	}
	n, err := scanNotice(tx.QueryRow(ctx, `SELECT `+noticeColumns+` FROM notices WHERE notice_id = $1 `+lock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return n, order.NotFound("notice", id)
	}
	if err != nil {
		return n, fmt.Errorf("read notice %s: %w", id, err)
	}
	return n, nil
}
