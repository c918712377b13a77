package watch_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/nats-io/nats.go"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{watch.OrderSubject("019a0000-0000-7000-8000-000000000001"), "trackingwatch.order.019a0000-0000-7000-8000-000000000001"},
		{watch.RoundSubject("haixin-2022-04-10-am"), "trackingwatch.round.haixin-2022-04-10-am"},
		{watch.NoticesSubject("haixin"), "trackingwatch.notices.haixin"},
		// Dots and wildcards would split the subject or match others: encoded into one token.
		{watch.RoundSubject("a.b"), "trackingwatch.round.x.612e62"},
		{watch.RoundSubject(">"), "trackingwatch.round.x.3e"},
		{watch.RoundSubject("a b"), "trackingwatch.round.x.612062"},
	} {
		if tc.got != tc.want {
			t.Errorf("subject %q, want %q", tc.got, tc.want)
		}
	}
}

// An announcement made on one connection (the replica that applied the event) reaches the
// watchers of its subjects on another, ids that are not plain tokens included.
func TestAnnouncementsReachWatchersOnAnotherConnection(t *testing.T) {
	url := testkit.NATS(t)
	connect := func() *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	publisher := &watch.Publisher{NC: connect(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	subscriber := &watch.Subscriber{NC: connect()}
	subscribe := func(subject string) <-chan struct{} {
		t.Helper()
		changed, stop, err := subscriber.Subscribe(subject)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return changed
	}
	order := subscribe(watch.OrderSubject("019a0000-0000-7000-8000-000000000001"))
	round := subscribe(watch.RoundSubject("a.b"))

	publisher.Announce(watch.OrderSubject("019a0000-0000-7000-8000-000000000001"), watch.RoundSubject("a.b"))
	for name, changed := range map[string]<-chan struct{}{"order": order, "round": round} {
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s watcher: no announcement within 10s", name)
		}
	}
}
