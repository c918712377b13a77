package route

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Feed delivers the announcements about one courier's routes, made by any replica.
type Feed interface {
	// Subscribe starts listening for courierID's announcements. Once it returns, no announcement
	// made afterwards is missed (short of a broker outage, which the periodic re-read covers).
	Subscribe(ctx context.Context, courierID string) (Subscription, error)
}

// Subscription is one watcher's announcements. A burst of them is coalesced: Ready fires once
// and Take returns them all.
type Subscription interface {
	// Ready receives when announcements are waiting to be taken.
	Ready() <-chan struct{}
	// Take returns the announcements since the last Take.
	Take() []Revision
	Close()
}

// How a watcher waits for an announced revision to become visible. Changes made through the API
// are announced after their commit, so they are visible at once; a new route version is
// announced by the consumer from inside the inbox transaction (pkg/inbox has no after-commit
// hook), a moment before it commits, so the watcher re-reads until it sees that revision. An
// announcement still invisible after awaitGiveUp belonged to a transaction that rolled back.
const (
	awaitFirst  = 5 * time.Millisecond
	awaitMax    = 250 * time.Millisecond
	awaitGiveUp = 10 * time.Second
	resyncEvery = 30 * time.Second
)

func (s *Service) resync() time.Duration {
	if s.Resync > 0 {
		return s.Resync
	}
	return resyncEvery
}

// Watch sends the courier's route (of roundID, or their newest) and then the route again after
// every change to it, until ctx is done. With no route yet it sends nothing and waits for one;
// if the round is planned without a route for this courier (someone else's round) it returns
// ErrNotFound at once. A route taken away from the courier (given to another) is sent as an
// empty route with no id. send is called from one goroutine, never concurrently.
func (s *Service) Watch(ctx context.Context, courierID, roundID string, send func(Route) error) error {
	if s.Feed == nil {
		return errors.New("route watching is not configured")
	}
	// Subscribe before the first read, so a change committed between the two is not missed.
	sub, err := s.Feed.Subscribe(ctx, courierID)
	if err != nil {
		return err
	}
	defer sub.Close()
	resync := time.NewTicker(s.resync())
	defer resync.Stop()

	type awaited struct {
		revision int64
		since    time.Time
	}
	waiting := map[string]awaited{}
	delay := awaitFirst
	var shown Route // what the client has; ID "" when nothing (or the empty route) was sent
	for first := true; ; first = false {
		// Settle announcements before reading: a revision visible here is in the read below.
		if len(waiting) > 0 {
			ids := make([]string, 0, len(waiting))
			for id := range waiting {
				ids = append(ids, id)
			}
			revs, err := s.Repo.Revisions(ctx, ids)
			if err != nil {
				return err
			}
			for id, w := range waiting {
				if revs[id] >= w.revision || time.Since(w.since) > awaitGiveUp {
					delete(waiting, id)
				}
			}
		}
		r, err := s.Repo.Route(ctx, courierID, roundID)
		switch {
		case errors.Is(err, ErrNotFound):
			if first && roundID != "" {
				planned, err := s.Repo.RoundPlanned(ctx, roundID)
				if err != nil {
					return err
				}
				if planned {
					return fmt.Errorf("%w: courier %s has no route in round %s", ErrNotFound, courierID, roundID)
				}
			}
			if shown.ID != "" {
				if err := send(Route{CourierID: courierID, RoundID: roundID}); err != nil {
					return err
				}
				shown = Route{}
			}
		case err != nil:
			return err
		case r.ID != shown.ID || r.Revision != shown.Revision:
			if err := send(r); err != nil {
				return err
			}
			shown = r
		}

		var retry <-chan time.Time
		if len(waiting) > 0 {
			retry = time.After(delay)
			delay = min(2*delay, awaitMax)
		} else {
			delay = awaitFirst
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Ready():
			now := time.Now()
			for _, a := range sub.Take() {
				if w, ok := waiting[a.RouteID]; !ok || a.Revision > w.revision {
					waiting[a.RouteID] = awaited{revision: a.Revision, since: now}
				}
			}
		case <-resync.C:
		case <-retry:
		}
	}
}
