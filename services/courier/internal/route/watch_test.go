package route

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// memRepo is the part of a Repository Watch reads, in memory, so a test can decide exactly
// when a change becomes visible.
type memRepo struct {
	Repository // the rest is not used by Watch
	mu         sync.Mutex
	route      *Route
	planned    bool
	// reads receives after every Route read, so a test can act between two reads.
	reads chan struct{}
}

func (m *memRepo) set(r *Route) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.route = r
}

func (m *memRepo) Route(context.Context, string, string) (Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reads != nil {
		select {
		case m.reads <- struct{}{}:
		default:
		}
	}
	if m.route == nil {
		return Route{}, ErrNotFound
	}
	return *m.route, nil
}

func (m *memRepo) Revisions(_ context.Context, ids []string) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	if m.route != nil {
		out[m.route.ID] = m.route.Revision
	}
	return out, nil
}

func (m *memRepo) RoundPlanned(context.Context, string) (bool, error) { return m.planned, nil }

// memFeed hands announcements straight to the one subscription.
type memFeed struct {
	ready chan struct{}
	mu    sync.Mutex
	revs  []Revision
}

func (f *memFeed) Subscribe(context.Context, string) (Subscription, error) { return f, nil }
func (f *memFeed) Ready() <-chan struct{}                                  { return f.ready }
func (f *memFeed) Close()                                                  {}
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

func watchInMemory(t *testing.T, repo *memRepo, roundID string) (*memFeed, chan Route, chan error) {
	t.Helper()
	feed := &memFeed{ready: make(chan struct{}, 1)}
	// No periodic re-read during the test: only announcements and their follow-up reads count.
	svc := &Service{Repo: repo, Feed: feed, Resync: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sent, done := make(chan Route, 16), make(chan error, 1)
	go func() {
		done <- svc.Watch(ctx, "c1", roundID, func(r Route) error { sent <- r; return nil })
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

func TestWatchWaitsForAnAnnouncedRevisionToBecomeVisible(t *testing.T) {
	repo := &memRepo{reads: make(chan struct{}, 1)}
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 1})
	feed, sent, _ := watchInMemory(t, repo, "")
	if r := receive(t, sent); r.ID != "r1" || r.Revision != 1 {
		t.Fatalf("first send = %+v", r)
	}

	// The consumer announces revision 2 a moment before its transaction commits: the watcher's
	// read after the announcement still sees revision 1, and it must keep looking with no
	// further announcement.
	<-repo.reads // the initial read
	feed.announce(Revision{RouteID: "r1", Revision: 2})
	select {
	case <-repo.reads:
	case <-time.After(5 * time.Second):
		t.Fatal("the announcement was not followed by a read")
	}
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 2, Version: 2})
	if r := receive(t, sent); r.Revision != 2 || r.Version != 2 {
		t.Fatalf("after the commit = %+v", r)
	}

	// An announcement of what was already sent sends nothing; the next real change is next.
	feed.announce(Revision{RouteID: "r1", Revision: 2})
	feed.announce(Revision{RouteID: "r1", Revision: 3})
	repo.set(&Route{ID: "r1", CourierID: "c1", Revision: 3})
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

func TestWatchOfAPlannedRoundWithoutTheCourierIsNotFound(t *testing.T) {
	_, _, done := watchInMemory(t, &memRepo{planned: true}, "round-am")
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Watch = %v, want ErrNotFound", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch of someone else's round did not end")
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
