package route

import (
	"context"
	"errors"
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

// resyncEvery is how often a watcher re-reads its route unprompted, by default: announcements
// are sent after commit but over core NATS, so one made while the broker was out of reach is lost.
const resyncEvery = 30 * time.Second

func (s *Service) resync() time.Duration {
	if s.Resync > 0 {
		return s.Resync
	}
	return resyncEvery
}

// Watch sends the courier's route (of roundID, or their newest) and then the route again after
// every change to it, until ctx is done. With no route yet it sends nothing and waits for one;
// if the round is planned without a route for this courier (someone else's round) it returns
// ErrNotFound at once, as it does for a courier scope does not reach. A route taken away from
// the courier (given to another) is sent as an empty route with no id. send is called from one
// goroutine, never concurrently.
//
// Every change is announced once it has committed (the API's after their transaction, a new
// version from the consumer's after-commit hook), so the read an announcement prompts sees it.
func (s *Service) Watch(ctx context.Context, scope Scope, courierID, roundID string, send func(Route) error) error {
	if s.Feed == nil {
		return errors.New("route watching is not configured")
	}
	if !scope.reaches(courierID) {
		return NoRoute(courierID, roundID)
	}
	// Subscribe before the first read, so a change committed between the two is not missed.
	sub, err := s.Feed.Subscribe(ctx, courierID)
	if err != nil {
		return err
	}
	defer sub.Close()
	resync := time.NewTicker(s.resync())
	defer resync.Stop()

	var shown Route // what the client has; ID "" when nothing (or the empty route) was sent
	for first := true; ; first = false {
		r, err := s.Repo.Route(ctx, courierID, roundID, scope.Compound)
		switch {
		case errors.Is(err, ErrNotFound):
			if first && roundID != "" {
				planned, err := s.Repo.RoundPlanned(ctx, roundID)
				if err != nil {
					return err
				}
				if planned {
					return NoRoute(courierID, roundID)
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
		if err := awaitChange(ctx, sub, resync.C, shown); err != nil {
			return err
		}
	}
}

// awaitChange returns when the route may have changed since shown was read: an announcement of
// a revision shown does not have yet (of its route or of any other), or the periodic re-read.
func awaitChange(ctx context.Context, sub Subscription, resync <-chan time.Time, shown Route) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-resync:
			return nil
		case <-sub.Ready():
			for _, a := range sub.Take() {
				if a.RouteID != shown.ID || a.Revision > shown.Revision {
					return nil
				}
			}
			// Only revisions the last read already had (announced while it ran): nothing new.
		}
	}
}
