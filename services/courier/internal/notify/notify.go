// Package notify tells route watchers on every replica of the courier service that a courier's
// route changed. Each committed change is one small core-NATS message on
// courierwatch.<compound>.<courier>, deliberately outside the JetStream stream's doorstep.>
// space: it is a wake-up call, not an event, so nothing stores or replays it. The message only
// says which route reached which revision; watchers re-read the route from the database.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/doorstep/doorstep/services/courier/internal/route"
	"github.com/nats-io/nats.go"
)

// SubjectPrefix starts every announcement's subject.
const SubjectPrefix = "courierwatch."

// flushTimeout bounds the round trip that makes a new subscription's interest known to the
// server before the watcher's first read.
const flushTimeout = 5 * time.Second

// Bus announces route changes and subscribes watchers to them. It implements route.Notifier and
// route.Feed.
type Bus struct {
	NC  *nats.Conn
	Log *slog.Logger
}

var (
	_ route.Notifier = (*Bus)(nil)
	_ route.Feed     = (*Bus)(nil)
)

type message struct {
	RouteID  string `json:"route_id"`
	Revision int64  `json:"revision"`
}

// Subject is where changes to courierID's routes in compound are announced.
func Subject(compound, courierID string) string {
	return SubjectPrefix + token(compound) + "." + token(courierID)
}

var plainToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// token makes an id safe as one subject token. Ids like haixin-courier-01 are used as they are;
// anything else (a dot, a space, a wildcard) becomes a hash, marked by a character plain tokens
// never contain. A hash collision would only wake a watcher for nothing.
func token(id string) string {
	if plainToken.MatchString(id) {
		return id
	}
	h := sha256.Sum256([]byte(id))
	return "~" + hex.EncodeToString(h[:16])
}

// Announce implements route.Notifier. A publish that fails is logged: the watchers' periodic
// re-read catches up.
func (b *Bus) Announce(_ context.Context, revs ...route.Revision) {
	for _, r := range revs {
		data, err := json.Marshal(message{RouteID: r.RouteID, Revision: r.Revision})
		if err == nil {
			err = b.NC.Publish(Subject(r.Compound, r.CourierID), data)
		}
		if err != nil {
			b.Log.Warn("route change not announced", "route", r.RouteID, "courier", r.CourierID, "err", err)
		}
	}
}

// Subscribe implements route.Feed.
func (b *Bus) Subscribe(_ context.Context, courierID string) (route.Subscription, error) {
	s := &subscription{ready: make(chan struct{}, 1), pending: map[string]int64{}, log: b.Log}
	sub, err := b.NC.Subscribe(SubjectPrefix+"*."+token(courierID), s.receive)
	if err != nil {
		return nil, fmt.Errorf("%w: watch courier %s: %w", route.ErrUnavailable, courierID, err)
	}
	// Once the server knows of the interest, no announcement made after this returns is missed.
	if err := b.NC.FlushTimeout(flushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("%w: watch courier %s: %w", route.ErrUnavailable, courierID, err)
	}
	s.sub = sub
	return s, nil
}

// subscription coalesces announcements: the newest revision per route, and one wake-up however
// many arrive before the watcher takes them.
type subscription struct {
	sub   *nats.Subscription
	ready chan struct{}
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]int64
}

func (s *subscription) receive(m *nats.Msg) {
	var msg message
	if err := json.Unmarshal(m.Data, &msg); err != nil || msg.RouteID == "" {
		s.log.Warn("undecodable route announcement", "subject", m.Subject, "err", err)
		return
	}
	s.mu.Lock()
	if cur, ok := s.pending[msg.RouteID]; !ok || msg.Revision > cur {
		s.pending[msg.RouteID] = msg.Revision
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default: // a wake-up is already waiting
	}
}

func (s *subscription) Ready() <-chan struct{} { return s.ready }

func (s *subscription) Take() []route.Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]route.Revision, 0, len(s.pending))
	for id, rev := range s.pending {
		out = append(out, route.Revision{RouteID: id, Revision: rev})
	}
	clear(s.pending)
	return out
}

func (s *subscription) Close() { _ = s.sub.Unsubscribe() }
