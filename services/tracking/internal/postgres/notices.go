package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/doorstep/doorstep/services/tracking/internal/notices"
	"github.com/jackc/pgx/v5"
)

// PostNotice records a notice.posted inside tx. A second posting of the same notice (a replay
// under another event id) replaces the first only if it is later (time, then event id), so any
// order of application leaves the same row. A withdrawal already recorded stays: the notice is
// stored but not in force. It reports whether the notices in force changed, for the watches.
func PostNotice(ctx context.Context, tx pgx.Tx, p notices.Posted) (changed bool, err error) {
	buildings := p.Buildings
	if buildings == nil {
		buildings = []string{} // the column is NOT NULL; empty means every building
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO notices AS n (compound, notice_id, title, body, buildings, posted_by_role, posted_by_id, posted_at, posted_event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (compound, notice_id) DO UPDATE
		SET title = EXCLUDED.title, body = EXCLUDED.body, buildings = EXCLUDED.buildings,
		    posted_by_role = EXCLUDED.posted_by_role, posted_by_id = EXCLUDED.posted_by_id,
		    posted_at = EXCLUDED.posted_at, posted_event_id = EXCLUDED.posted_event_id
		WHERE n.posted_at IS NULL OR (n.posted_at, n.posted_event_id) < (EXCLUDED.posted_at, EXCLUDED.posted_event_id)
		RETURNING n.withdrawn_at IS NULL`,
		p.Compound, p.NoticeID, p.Title, p.Text, buildings, p.PostedBy.Role, p.PostedBy.ID, p.At.UTC(), p.EventID).
		Scan(&changed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // an earlier (or the same) posting than the one recorded
	}
	if err != nil {
		return false, fmt.Errorf("post notice %s of %s: %w", p.NoticeID, p.Compound, err)
	}
	return changed, nil
}

// WithdrawNotice records a notice.withdrawn inside tx, before or after the notice's posting: a
// row without a posting is the marker that keeps the posting, when it comes, out of force. Of
// several withdrawals the earliest is kept. It reports whether the notices in force may have
// changed: a posted notice was withdrawn (or its withdrawal moved earlier, which changes nothing
// visible; announcing it costs the watchers one re-read).
func WithdrawNotice(ctx context.Context, tx pgx.Tx, w notices.Withdrawn) (changed bool, err error) {
	err = tx.QueryRow(ctx, `
		INSERT INTO notices AS n (compound, notice_id, withdrawn_at, withdrawn_event_id)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (compound, notice_id) DO UPDATE
		SET withdrawn_at = EXCLUDED.withdrawn_at, withdrawn_event_id = EXCLUDED.withdrawn_event_id
		WHERE n.withdrawn_at IS NULL OR (n.withdrawn_at, n.withdrawn_event_id) > (EXCLUDED.withdrawn_at, EXCLUDED.withdrawn_event_id)
		RETURNING n.posted_at IS NOT NULL`,
		w.Compound, w.NoticeID, w.At.UTC(), w.EventID).Scan(&changed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // withdrawn earlier already
	}
	if err != nil {
		return false, fmt.Errorf("withdraw notice %s of %s: %w", w.NoticeID, w.Compound, err)
	}
	return changed, nil
}

var _ notices.Reader = (*Store)(nil)

// Notices implements notices.Reader.
func (s *Store) Notices(ctx context.Context, compound, building string) ([]notices.Notice, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT notice_id, title, body, buildings, posted_by_role, posted_by_id, posted_at
		FROM notices
		WHERE compound = $1 AND posted_at IS NOT NULL AND withdrawn_at IS NULL
		  AND ($2 = '' OR buildings = '{}' OR $2 = ANY(buildings))
		ORDER BY posted_at DESC, posted_event_id DESC`, compound, building)
	if err != nil {
		return nil, fmt.Errorf("query notices of %s: %w", compound, err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (notices.Notice, error) {
		var n notices.Notice
		err := row.Scan(&n.NoticeID, &n.Title, &n.Text, &n.Buildings, &n.PostedBy.Role, &n.PostedBy.ID, &n.PostedAt)
		n.PostedAt = n.PostedAt.UTC()
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("read notices of %s: %w", compound, err)
	}
	return list, nil
}
