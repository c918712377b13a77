// Package watch lets a gRPC watch on any replica of the tracking service hear that what it
// watches has changed, whichever replica's consumer applied the event. After a consumer's
// transaction commits (inbox.AfterCommit), the Publisher publishes an empty core-NATS message on
// trackingwatch.order.<order_id>, trackingwatch.round.<round_id> or trackingwatch.notices.<compound>
// (outside the event stream's doorstep.> subjects, so nothing of it is stored); watchers subscribe
// there and re-read the database. A message carries no data: the database is the only truth, and
// a lost message costs a late update, never a wrong one.
package watch

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
)

// Prefix of every watch subject.
const Prefix = "trackingwatch."

// OrderSubject is where changes of an order's timeline are announced.
func OrderSubject(orderID string) string { return Prefix + "order." + token(orderID) }

// RoundSubject is where changes of a round's progress are announced.
func RoundSubject(roundID string) string { return Prefix + "round." + token(roundID) }

// NoticesSubject is where changes of a compound's notices in force are announced (a notice posted
// or withdrawn), for a watch of the notices.
func NoticesSubject(compound string) string { return Prefix + "notices." + token(compound) }

var plainToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// token makes an id one subject token. Order ids (UUIDs), round ids (<compound>-<date>-<slot>) and
// compounds are used as they are; anything else (a dot, a wildcard) is hex-encoded behind an "x."
// so it can neither split the subject nor match another id.
func token(id string) string {
	if plainToken.MatchString(id) {
		return id
	}
	return "x." + hex.EncodeToString([]byte(id))
}

// Publisher announces changes to the watches of every replica. The consumers' handlers call
// Announce through inbox.AfterCommit, so a watcher re-reading on the announcement sees the change.
type Publisher struct {
	NC  *nats.Conn
	Log *slog.Logger
}

// Announce publishes an empty message on each subject. A failed publish (the connection closed
// or its buffer full) is logged and dropped: the watches' periodic re-read catches up.
func (p *Publisher) Announce(subjects ...string) {
	for _, s := range subjects {
		if err := p.NC.Publish(s, nil); err != nil {
			p.Log.Warn("watch: publish failed", "subject", s, "err", err)
		}
	}
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
