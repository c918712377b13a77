package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/order/app"
	"google.golang.org/protobuf/proto"
)

// Request keys live 48 hours: a retry within a day returns the first result, and older keys are
// pruned by the service's clock.
func TestRequestKeysArePruned(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *app.Config) { c.PruneEvery = 20 * time.Millisecond })
	hh := e.household() // key hh-1
	first := e.place("old", hh, basket())

	e.clock.advance(24 * time.Hour)
	// A key from three days ago, whose disappearance shows that the pruner has run since.
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO requests (kind, scope, request_id, request_hash, created_at)
		VALUES ('place', $1, 'canary', '\x00', $2)`, hh, e.clock.now().Add(-72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.waitRequests("canary", 0)
	if n := e.count(`SELECT count(*) FROM requests WHERE request_id IN ('hh-1', 'old')`); n != 2 {
		t.Fatalf("%d of the day-old keys left, want both", n)
	}
	if again := e.place("old", hh, basket()); !proto.Equal(again, first) {
		t.Errorf("a retry after a day got %v", again)
	}
	e.place("new", hh, basket()[:1])

	e.clock.advance(25 * time.Hour) // "old" is 49 hours old, "new" 25
	e.waitRequests("old", 0)
	e.waitRequests("hh-1", 0)
	if n := e.count(`SELECT count(*) FROM requests WHERE request_id = 'new'`); n != 1 {
		t.Errorf("the 25-hour-old key was pruned")
	}
	// The order outlives its key: its id derives from the request id, so a late retry still
	// finds it rather than ordering twice.
	if late := e.place("old", hh, basket()); late.OrderId != first.OrderId {
		t.Errorf("a retry after the key was pruned placed %s, want %s", late.OrderId, first.OrderId)
	}
	if n := e.count(`SELECT count(*) FROM orders`); n != 2 {
		t.Errorf("%d orders, want 2", n)
	}
}

// waitRequests waits until want keys with request id id are recorded.
func (e *env) waitRequests(id string, want int) {
	e.t.Helper()
	testkit.Eventually(e.t, 10*time.Second, func() error {
		if n := e.count(`SELECT count(*) FROM requests WHERE request_id = $1`, id); n != want {
			return fmt.Errorf("%d keys %q, want %d", n, id, want)
		}
		return nil
	})
}
