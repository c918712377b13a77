package route

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// memRepo is the part of a Repository Watch reads, in memory, so a test decides exactly when a
// change becomes visible.
type memRepo struct {
	Repository // the rest is not used by Watch
	mu         sync.Mutex
	route      *Route
	planned    bool
	// reads receives after every Route read, so a test can tell a read happened.
	reads chan struct{}
}

func (m *memRepo) set(r *Route) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.route = r
}

func (m *memRepo) Route(_ context.Context, courierID, roundID, compound string) (Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reads != nil {
		select {
		case m.reads <- struct{}{}:
		default:
		}
	}
	if m.route == nil || (compound != "" && m.route.Compound != compound) {
		return Route{}, NoRoute(courierID, roundID)
	}
	return *m.route, nil
}

func (m *memRepo) RoundPlanned(context.Context, string) (bool, error) { return m.planned, nil }

// memFeed hands announcements straight to the one subscription.
type memFeed struct {
	ready      chan struct{}
	mu         sync.Mutex
	revs       []Revision
	subscribed int
}

func (f *memFeed) Subscribe(context.Context, string) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribed++
	return f, nil
}
func (f *memFeed) Ready() <-chan struct{} { return f.ready }
func (f *memFeed) Close()                 {}
func (f *memFeed) Take() []Revision {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.revs
	f.revs = nil
	return out
}
func (f *memFeed) announce(r Revision) {
	f.mu.Lock()
	f.revs = append(f.revs, r)
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// watchInMemory runs Watch of courier c1 as scope; with no resync given, there is no periodic
// re-read during the test: only announcements count.
func watchInMemory(t *testing.T, repo *memRepo, scope Scope, roundID string, resync time.Duration) (*memFeed, chan Route, chan error) {
	t.Helper()
	if resync == 0 {
		resync = time.Hour
	}
	feed := &memFeed{ready: make(chan struct{}, 1)}
	svc := &Service{Repo: repo, Feed: feed, Resync: resync}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sent, done := make(chan Route, 16), make(chan error, 1)
	go func() {
		done <- svc.Watch(ctx, scope, "c1", roundID, func(r Route) error { sent <- r; return nil })
	}()
	return feed, sent, done
}

func receive(t *testing.T, sent chan Route) Route {
	t.Helper()
	select {
	case r := <-sent:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent within 5s")
	}
	return Route{}
}

func TestWatchSendsWhatAnAnnouncementMadeVisible(t *testing.T) {
	repo := &memRepo{}
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 1})
	feed, sent, _ := watchInMemory(t, repo, Scope{}, "", 0)
	if r := receive(t, sent); r.ID != "r1" || r.Revision != 1 {
		t.Fatalf("first send = %+v", r)
	}

	// Announcements come after their commit, so the read they prompt sees the change.
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 2, Version: 2})
	feed.announce(Revision{RouteID: "r1", Revision: 2})
	if r := receive(t, sent); r.Revision != 2 || r.Version != 2 {
		t.Fatalf("after the announcement = %+v", r)
	}

	// An announcement of what was already sent sends nothing; the next real change is next.
	feed.announce(Revision{RouteID: "r1", Revision: 2})
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 3})
	feed.announce(Revision{RouteID: "r1", Revision: 3})
	if r := receive(t, sent); r.Revision != 3 {
		t.Fatalf("third send = %+v, want revision 3", r)
	}

	// The route taken away from the courier: an empty route says so.
	repo.set(nil)
	feed.announce(Revision{RouteID: "r1", Revision: 4})
	if r := receive(t, sent); r.ID != "" || r.CourierID != "c1" || len(r.Stops) != 0 {
		t.Fatalf("after the route left = %+v", r)
	}
}

// An announcement lost (the broker was away) is made up for by the periodic re-read.
func TestWatchRereadsWithoutAnnouncements(t *testing.T) {
	repo := &memRepo{}
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 1})
	_, sent, _ := watchInMemory(t, repo, Scope{}, "", 10*time.Millisecond)
	receive(t, sent)
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 2})
	if r := receive(t, sent); r.Revision != 2 {
		t.Fatalf("after a change nobody announced = %+v", r)
	}
}

func TestWatchOfAPlannedRoundWithoutTheCourierIsNotFound(t *testing.T) {
	_, _, done := watchInMemory(t, &memRepo{planned: true}, Scope{}, "round-am", 0)
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Watch = %v, want ErrNotFound", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch of someone else's round did not end")
	}
}

// A courier watching another courier's route is told it is not found, whether or not it exists,
// before anything is read or subscribed to.
func TestWatchOfAnotherCourierIsNotFound(t *testing.T) {
	repo := &memRepo{reads: make(chan struct{}, 1)}
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 1})
	feed, _, done := watchInMemory(t, repo, Scope{Courier: "c2"}, "", 0)
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotFound) || err.Error() != NoRoute("c1", "").Error() {
			t.Fatalf("Watch = %v, want %v", err, NoRoute("c1", ""))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch of another courier did not end")
	}
	select {
	case <-repo.reads:
		t.Error("the route was read")
	default:
	}
	if feed.subscribed != 0 {
		t.Error("the watch subscribed to the courier's announcements")
	}
}

type pruneRepo struct {
	Repository
	cutoff time.Time
}

func (p *pruneRepo) PruneKeys(_ context.Context, cutoff time.Time) (int64, error) {
	p.cutoff = cutoff
	return 0, nil
}

func TestPruneKeysKeepsTwoDays(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	repo := &pruneRepo{}
	svc := &Service{Repo: repo, Now: func() time.Time { return now }}
	if _, err := svc.PruneKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-48 * time.Hour); !repo.cutoff.Equal(want) || repo.cutoff.Location() != time.UTC {
		t.Errorf("cutoff = %v, want %v in UTC", repo.cutoff, want)
	}
	if KeyRetention < 24*time.Hour {
		t.Errorf("keys live %v, less than a day", KeyRetention)
	}
}
