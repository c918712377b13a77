// Package watch lets a gRPC watch on any replica of the tracking service hear that what it
// watches has changed, whichever replica's consumer applied the event. After a consumer's
// transaction commits, the Announcer publishes a small core-NATS message on
// trackingwatch.order.<order_id> or trackingwatch.round.<round_id> (outside the event stream's
// doorstep.> subjects, so nothing of it is stored); watchers subscribe there and re-read the
// database. A message carries no data: the database is the only truth, and a lost message costs
// a late update, never a wrong one.
package watch

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// Prefix of every watch subject.
const Prefix = "trackingwatch."

// OrderSubject is where changes of an order's timeline are announced.
func OrderSubject(orderID string) string { return Prefix + "order." + token(orderID) }

// RoundSubject is where changes of a round's progress are announced.
func RoundSubject(roundID string) string { return Prefix + "round." + token(roundID) }

var plainToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// token makes an id one subject token. Order ids (UUIDs) and round ids (<compound>-<date>-<slot>)
// are used as they are; anything else (a dot, a wildcard) is hex-encoded behind an "x." so it can
// neither split the subject nor match another id.
func token(id string) string {
	if plainToken.MatchString(id) {
		return id
	}
	return "x." + hex.EncodeToString([]byte(id))
}

// Announcer publishes the subjects an event changed once the consumer's transaction that applied
// it has committed. The inbox gives handlers no hook after commit, so the Announcer looks for the
// event in the consumer's inbox table, written in that same transaction: once it is there, the
// change is visible to every replica's readers.
type Announcer struct {
	pool     *pgxpool.Pool
	nc       *nats.Conn
	consumer string
	log      *slog.Logger

	mu      sync.Mutex
	pending map[string]*pending // by event id
	wake    chan struct{}
}

type pending struct {
	subjects map[string]struct{}
	since    time.Time
}

// giveUp is how long an event may stay uncommitted before its announcement is dropped: its
// transaction rolled back, and a redelivery announces again.
const giveUp = time.Minute

// NewAnnouncer announces for the durable consumer named consumer (the inbox's consumer column).
func NewAnnouncer(pool *pgxpool.Pool, nc *nats.Conn, consumer string, log *slog.Logger) *Announcer {
	return &Announcer{pool: pool, nc: nc, consumer: consumer, log: log,
		pending: map[string]*pending{}, wake: make(chan struct{}, 1)}
}

// Announce queues subjects to publish once eventID's transaction has committed. Handlers call it
// inside that transaction; calling it again for the same event (a retried transaction, a
// redelivery) adds to the same announcement.
func (a *Announcer) Announce(eventID string, subjects ...string) {
	a.mu.Lock()
	p, ok := a.pending[eventID]
	if !ok {
		p = &pending{subjects: map[string]struct{}{}}
		a.pending[eventID] = p
	}
	p.since = time.Now()
	for _, s := range subjects {
		p.subjects[s] = struct{}{}
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run publishes announcements until ctx is done.
func (a *Announcer) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		}
		// A commit follows the handler within milliseconds; look soon, then less often. Events
		// announced meanwhile are looked for in the same query, so a burst costs few queries and
		// each subject is published once per round of looking.
		delay := 2 * time.Millisecond
		for a.waiting() {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			progressed, err := a.publishCommitted(ctx)
			if err != nil && ctx.Err() == nil {
				a.log.Warn("watch: announcing failed; will retry", "err", err)
			}
			if progressed {
				delay = 2 * time.Millisecond
			} else {
				delay = min(2*delay, 200*time.Millisecond)
			}
		}
	}
}

func (a *Announcer) waiting() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending) > 0
}

// publishCommitted publishes the subjects of every pending event whose transaction has
// committed and drops the ones that never will.
func (a *Announcer) publishCommitted(ctx context.Context) (progressed bool, err error) {
	a.mu.Lock()
	ids := slices.Collect(maps.Keys(a.pending))
	a.mu.Unlock()

	rows, err := a.pool.Query(ctx, `SELECT event_id::text FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])`, a.consumer, ids)
	if err != nil {
		return false, fmt.Errorf("look for committed events: %w", err)
	}
	committed := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return false, err
		}
		committed[id] = true
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("look for committed events: %w", err)
	}

	subjects := map[string]struct{}{}
	a.mu.Lock()
	for id, p := range a.pending {
		switch {
		case committed[id]:
			maps.Copy(subjects, p.subjects)
			delete(a.pending, id)
			progressed = true
		case time.Since(p.since) > giveUp:
			delete(a.pending, id)
			progressed = true
		}
	}
	a.mu.Unlock()
	for s := range subjects {
		if err := a.nc.Publish(s, nil); err != nil {
			// The connection is closed or its buffer full; the resync of the watches catches up.
			a.log.Warn("watch: publish failed", "subject", s, "err", err)
		}
	}
	return progressed, nil
}

// Subscriber subscribes watches to announcements.
type Subscriber struct {
	NC *nats.Conn
}

// Subscribe returns a channel that receives after each announced change of subject, and a
// function ending the subscription. The channel holds one value: changes announced while the
// watcher is busy re-reading coalesce into one more read. When Subscribe returns the server has
// the subscription, so a change committed after that is heard — subscribe first, then read.
func (s *Subscriber) Subscribe(subject string) (<-chan struct{}, func(), error) {
	changed := make(chan struct{}, 1)
	sub, err := s.NC.Subscribe(subject, func(*nats.Msg) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	if err := s.NC.FlushTimeout(5 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return nil, nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	return changed, func() { _ = sub.Unsubscribe() }, nil
}
