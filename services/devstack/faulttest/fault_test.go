package faulttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// ordersPerScenario flow through the system while each fault happens.
const ordersPerScenario = 1000

// requireFaultTests skips the suite unless DOORSTEP_FAULT_TESTS=1: it builds the binaries, runs
// real processes and waits out JetStream's 30 s redelivery after every fault, which takes minutes
// (`make fault-test` sets the variable).
func requireFaultTests(t *testing.T) {
	if os.Getenv("DOORSTEP_FAULT_TESTS") != "1" {
		t.Skip("fault tests run real processes for minutes; set DOORSTEP_FAULT_TESTS=1 (make fault-test)")
	}
}

// fault is injected while a scenario's orders flow; done is closed when the load has finished.
type fault func(ctx context.Context, t *testing.T, sys *System, js jetstream.JetStream, l *load, done <-chan struct{}) error

// TestFaults kills one process at a time while 1,000 orders flow, then checks that every
// acknowledged order has each of its events in the stream exactly once and that each consumer
// applied each event exactly once. The scenarios share one system; each checks its own orders,
// and the stream-wide checks cover everything published so far.
func TestFaults(t *testing.T) {
	requireFaultTests(t)
	sys := startSystem(t, "supplier", "order", "tracking")
	w := seed(t, sys)
	js := connect(t, sys)

	for _, sc := range []struct {
		name  string
		fault fault
	}{
		{"nats-kill", killNATS},
		{"order-kill", killOrder},
		{"consumer-kill-after-commit", killConsumerAfterCommit},
		{"postgres-restart", restartPostgres},
		{"postgres-kill", killPostgres},
	} {
		t.Run(sc.name, func(t *testing.T) {
			runScenario(t, sys, js, w, sc.name, sc.fault)
		})
	}
}

func runScenario(t *testing.T, sys *System, js jetstream.JetStream, w world, name string, f fault) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := newLoad(t, sys, w, name, ordersPerScenario)
	start := time.Now()
	done := make(chan struct{})
	var loadErr error
	go func() {
		defer close(done)
		loadErr = l.run(ctx)
	}()
	faultErr := f(ctx, t, sys, js, l, done)
	if faultErr != nil {
		// Let the load finish and leave a whole system to the next scenario.
		if err := sys.Revive(ctx); err != nil {
			t.Errorf("revive after a failed fault: %v", err)
		}
	}
	<-done
	if faultErr != nil {
		t.Fatalf("fault: %v", faultErr)
	}
	if loadErr != nil {
		t.Fatalf("load: %v", loadErr)
	}
	elapsed := time.Since(start)
	t.Logf("load: %d orders acknowledged in %s (%.0f/s); %d calls retried with the same request id, %d placed again under a new one, %d confirmations retried",
		l.acked.Load(), elapsed.Round(time.Millisecond), float64(l.acked.Load())/elapsed.Seconds(), l.retried.Load(), l.renewed.Load(), l.confirmRetried.Load())
	requireRunning(t, sys, "supplier", "order", "tracking")
	settle(t, sys, js)
	verify(t, sys, js, l.acknowledged())
}

// waitAcked waits until n orders were acknowledged or the load is over.
func waitAcked(ctx context.Context, l *load, n int64, done <-chan struct{}) error {
	return waitFor(ctx, func() bool {
		select {
		case <-done:
			return true
		default:
			return l.acked.Load() >= n
		}
	})
}

// (a) kill -9 the NATS server mid-flow, keep placing orders while it is down (they wait in the
// outbox), then restart it on the same store and port.
func killNATS(ctx context.Context, t *testing.T, sys *System, js jetstream.JetStream, l *load, done <-chan struct{}) error {
	if err := waitAcked(ctx, l, 300, done); err != nil {
		return err
	}
	before := consumerPositions(ctx, js)
	sys.NATS.Kill()
	down := time.Now()
	at := l.acked.Load()
	if err := waitAcked(ctx, l, at+200, done); err != nil {
		return err
	}
	backlog := outboxBacklog(ctx, sys)
	if err := sys.StartNATS(ctx); err != nil {
		return err
	}
	t.Logf("nats-server killed at %d orders acknowledged, restarted after %s and %d more orders; outbox backlog at restart: %d events",
		at, time.Since(down).Round(time.Millisecond), l.acked.Load()-at, backlog)
	var after map[string]position
	if err := waitFor(ctx, func() bool {
		after = consumerPositions(ctx, js)
		return len(after) == len(before)
	}); err != nil {
		return err
	}
	for d, b := range before {
		a := after[d]
		t.Logf("consumer %s: ack floor %d and delivered %d before the kill, %d and %d after the restart (a lower floor means acknowledged events will be delivered again)",
			d, b.ackFloor, b.delivered, a.ackFloor, a.delivered)
	}
	return nil
}

// (b) kill -9 the order service while its relay has unpublished rows, and restart it.
func killOrder(ctx context.Context, t *testing.T, sys *System, js jetstream.JetStream, l *load, done <-chan struct{}) error {
	if err := waitAcked(ctx, l, 300, done); err != nil {
		return err
	}
	// Mid-batch: wait (briefly) for a moment when the relay has rows in hand.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	backlog := 0
	_ = waitFor(wctx, func() bool { backlog = outboxBacklog(ctx, sys); return backlog > 0 })
	cancel()
	ord := sys.Replicas("order")[0]
	ord.Kill()
	down := time.Now()
	at := l.acked.Load()
	if err := sys.StartService(ctx, ord); err != nil {
		return err
	}
	t.Logf("order service killed at %d orders acknowledged with %d events unpublished in its outbox; serving again after %s",
		at, backlog, time.Since(down).Round(time.Millisecond))
	return nil
}

// (c) kill a consumer between its commit and its ack. When the services have the fault hook
// (DOORSTEP_FAULT_EXIT_AFTER_COMMIT=n: exit right after the n-th commit, before its ack),
// tracking is made to end itself exactly there, three times. Without it, tracking is killed (-9)
// the moment the test sees its inbox grow, again and again while events flow: each kill lands just
// after a commit, often before the ack has left the process. Either way the test counts, after
// each death, the events tracking had committed that JetStream still holds as unacknowledged;
// they are redelivered (after AckWait) and must change nothing.
func killConsumerAfterCommit(ctx context.Context, t *testing.T, sys *System, js jetstream.JetStream, l *load, done <-chan struct{}) error {
	tr := sys.Replicas("tracking")[0]
	// Down until 600 orders are in: the backlog keeps every run busy applying (so each death
	// lands mid-flow) while the last 400 orders still flow.
	tr.Kill()
	if err := waitAcked(ctx, l, 600, done); err != nil {
		return err
	}
	u, err := newUnackedCounter(ctx, sys, js, "tracking")
	if err != nil {
		return err
	}
	deaths, committedUnacked, hooked := 0, 0, true
	for deaths < 3 && hooked {
		base := trackingApplied(ctx, sys)
		n := 20 + rand.IntN(100)
		env := tr.Env
		tr.Env = append(env[:len(env):len(env)], fmt.Sprintf("DOORSTEP_FAULT_EXIT_AFTER_COMMIT=%d", n))
		err := tr.Start()
		tr.Env = env
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = waitFor(wctx, func() bool { return !tr.Running() || trackingApplied(ctx, sys) > base+n+64 })
		cancel()
		if tr.Running() {
			tr.Kill()
			hooked = false
			deaths++
			fresh, committed, err := u.count(ctx)
			if err != nil {
				return err
			}
			committedUnacked += committed
			t.Logf("tracking went past %d commits without exiting: the services have no DOORSTEP_FAULT_EXIT_AFTER_COMMIT hook; killed it (%d delivered and unacknowledged, %d of them committed) and kill it from now on",
				n, fresh, committed)
			break
		}
		if err != nil {
			return err
		}
		deaths++
		fresh, committed, err := u.count(ctx)
		if err != nil {
			return err
		}
		committedUnacked += committed
		t.Logf("exit %d (hook, exit status %d): tracking applied %d events, exiting after commit %d; %d delivered and unacknowledged at the exit, %d of them committed",
			deaths, tr.ExitCode(), trackingApplied(ctx, sys)-base, n, fresh, committed)
		if committed == 0 {
			t.Errorf("tracking exited by the hook after a commit, yet no committed event is unacknowledged")
		}
	}
	// Without the hook: at least eight kills, more (up to twenty) until one landed between a
	// commit and its ack.
	for kills := 0; !hooked && (kills < 8 || (committedUnacked == 0 && kills < 20)); {
		if err := sys.StartService(ctx, tr); err != nil {
			return err
		}
		base := trackingApplied(ctx, sys)
		target := base + 20 + rand.IntN(100)
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := waitFor(wctx, func() bool { return trackingApplied(ctx, sys) >= target })
		cancel()
		tr.Kill()
		kills++
		deaths++
		if err != nil {
			info, _ := consumerInfo(ctx, js, trackingDurable)
			if info != nil {
				t.Logf("kill %d: tracking applied nothing more within 15 s (its consumer: %d pending, %d unacknowledged, %d redelivered); stopping the loop",
					kills, info.NumPending, info.NumAckPending, info.NumRedelivered)
			}
			break
		}
		fresh, committed, err := u.count(ctx)
		if err != nil {
			return err
		}
		committedUnacked += committed
		t.Logf("kill %d: tracking applied %d events in this run; %d delivered and unacknowledged at the kill, %d of them committed (killed between commit and ack)",
			kills, trackingApplied(ctx, sys)-base, fresh, committed)
	}
	if err := sys.StartService(ctx, tr); err != nil {
		return err
	}
	t.Logf("consumer died %d times; %d events were committed by tracking but not acknowledged to JetStream when it died", deaths, committedUnacked)
	if committedUnacked == 0 {
		t.Errorf("no death landed between a commit and its ack in %d tries: the redelivery of an applied event was not exercised", deaths)
	}
	return nil
}

// unackedCounter finds, after each death of a service, the events its consumers had committed
// but not acknowledged. A consumer applies and acks in stream order, so one run's unacknowledged
// messages are the last ones delivered to it; earlier runs' are not redelivered within the
// scenario's loop (AckWait is 30 s), so the growth of NumAckPending is the last run's share.
type unackedCounter struct {
	sys    *System
	js     jetstream.JetStream
	stream jetstream.Stream
	ds     []durable
	prev   map[string]*jetstream.ConsumerInfo
}

// newUnackedCounter watches the consumers of service.
func newUnackedCounter(ctx context.Context, sys *System, js jetstream.JetStream, service string) (*unackedCounter, error) {
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return nil, err
	}
	all, err := durables(ctx, js)
	if err != nil {
		return nil, err
	}
	u := &unackedCounter{sys: sys, js: js, stream: stream, prev: map[string]*jetstream.ConsumerInfo{}}
	for _, d := range all {
		if strings.HasPrefix(d.name, service+"-") {
			u.ds = append(u.ds, d)
			if u.prev[d.name], err = stableConsumer(ctx, js, d.name); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// count returns how many messages the last run left unacknowledged and how many of those it had
// committed, over the service's consumers.
func (u *unackedCounter) count(ctx context.Context) (fresh, committed int, err error) {
	for _, d := range u.ds {
		info, err := stableConsumer(ctx, u.js, d.name)
		if err != nil {
			return 0, 0, err
		}
		want := info.NumAckPending - u.prev[d.name].NumAckPending
		u.prev[d.name] = info
		fresh += max(want, 0)
		// The last want messages of the consumer's subjects up to what it was delivered.
		for seq := info.Delivered.Stream; want > 0 && seq > 0; seq-- {
			m, err := u.stream.GetMsg(ctx, seq)
			if err != nil {
				return 0, 0, err
			}
			if !d.wants(m.Subject) {
				continue
			}
			want--
			var applied bool
			if err := u.sys.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+d.schema+`.inbox WHERE consumer = $1 AND event_id = $2)`,
				d.name, m.Header.Get(jetstream.MsgIDHeader)).Scan(&applied); err != nil {
				return 0, 0, err
			}
			if applied {
				committed++
			}
		}
	}
	return fresh, committed, nil
}

// (d) restart PostgreSQL (fast shutdown: open transactions roll back, every connection drops)
// on the same data directory and port.
func restartPostgres(ctx context.Context, t *testing.T, sys *System, js jetstream.JetStream, l *load, done <-chan struct{}) error {
	if err := waitAcked(ctx, l, 300, done); err != nil {
		return err
	}
	at := l.acked.Load()
	down := time.Now()
	if err := sys.PG.Stop(); err != nil {
		return err
	}
	if err := sys.PG.Start(ctx); err != nil {
		return err
	}
	t.Logf("postgres restarted at %d orders acknowledged; down for %s", at, time.Since(down).Round(time.Millisecond))
	return nil
}

// (d, harder) kill -9 every PostgreSQL process mid-flow and start it again: crash recovery must
// keep every commit the services were told about.
func killPostgres(ctx context.Context, t *testing.T, sys *System, js jetstream.JetStream, l *load, done <-chan struct{}) error {
	if err := waitAcked(ctx, l, 300, done); err != nil {
		return err
	}
	at := l.acked.Load()
	down := time.Now()
	if err := sys.PG.Kill(); err != nil {
		return err
	}
	if err := sys.PG.Start(ctx); err != nil {
		return err
	}
	t.Logf("postgres killed (-9, every process) at %d orders acknowledged; recovered and accepting connections after %s",
		at, time.Since(down).Round(time.Millisecond))
	return nil
}

type position struct{ ackFloor, delivered uint64 }

// consumerPositions are the durable consumers' positions, as far as the server answers now.
func consumerPositions(ctx context.Context, js jetstream.JetStream) map[string]position {
	out := map[string]position{}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ds, err := durables(cctx, js)
	if err != nil {
		return out
	}
	for _, d := range ds {
		if info, err := consumerInfo(cctx, js, d.name); err == nil {
			out[d.name] = position{ackFloor: info.AckFloor.Stream, delivered: info.Delivered.Stream}
		}
	}
	return out
}

// stableConsumer reads the consumer's state until two reads 100 ms apart agree, so that acks a
// killed process sent just before it died have been processed.
func stableConsumer(ctx context.Context, js jetstream.JetStream, durable string) (*jetstream.ConsumerInfo, error) {
	var last *jetstream.ConsumerInfo
	for {
		info, err := consumerInfo(ctx, js, durable)
		if err != nil {
			return nil, err
		}
		if last != nil && last.NumAckPending == info.NumAckPending && last.Delivered.Stream == info.Delivered.Stream && last.AckFloor.Stream == info.AckFloor.Stream {
			return info, nil
		}
		last = info
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func outboxBacklog(ctx context.Context, sys *System) int {
	var n int
	if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM orders.outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return -1
	}
	return n
}

func trackingApplied(ctx context.Context, sys *System) int {
	var n int
	if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM tracking.inbox WHERE consumer = $1`, trackingDurable).Scan(&n); err != nil {
		return -1
	}
	return n
}
