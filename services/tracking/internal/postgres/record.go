package postgres

import (
	"context"

	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/doorstep/doorstep/services/tracking/internal/views"
	"github.com/jackc/pgx/v5"
)

// Delivery is what one order.placed or parcel.<state> event records: its entry on the timeline
// of the order it belongs to (none if it names no order) and the parcel facts it reports (the
// order's placement or one parcel's new state).
type Delivery struct {
	Order     timeline.Order // whose Entry is; its household once an event names it
	Entry     *timeline.Entry
	Placement *views.Placement
	Change    *views.StateChange
}

// Recorded is what Record changed, for the watches.
type Recorded struct {
	NewEntry bool     // the order's timeline gained the entry (false for one stored before)
	Rounds   []string // the rounds whose progress moved
}

// Record writes d inside tx, the consumer's inbox transaction, in one round trip: the tracking
// service applies every event of every order, and each round trip costs this process and its
// PostgreSQL backend a wake-up and a pair of system calls on top of the writes.
func Record(ctx context.Context, tx pgx.Tx, d Delivery) (Recorded, error) {
	var r Recorded
	b := &pgx.Batch{}
	QueueRecord(b, d, &r)
	if b.Len() == 0 {
		return r, nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return Recorded{}, err
	}
	r.Rounds = dedupe(r.Rounds)
	return r, nil
}

// QueueRecord adds to b the statements that record d; r says what they changed once b has run
// (its Rounds may then name a round more than once). The consumer queues them on its
// transaction's COMMIT, so that a group of events costs no round trip per event.
func QueueRecord(b *pgx.Batch, d Delivery, r *Recorded) {
	if d.Entry != nil {
		queueEntry(b, d.Order, *d.Entry, &r.NewEntry)
	}
	if d.Placement != nil {
		queuePlacement(b, *d.Placement)
	}
	if d.Change != nil {
		queueStateChange(b, *d.Change, &r.Rounds)
	}
}
