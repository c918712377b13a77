// Package inbox consumes events from JetStream exactly once in effect: each event's handler runs in
// a database transaction that also records the event id, and the message is acknowledged only
// after that transaction commits. A redelivery (crash between commit and ack, broker restart)
// finds the id recorded and changes nothing.
// An id is kept for Keep (151 days) after its event was last delivered, after which no copy of the
// event can arrive; a running consumer deletes older ones every hour.
package inbox

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/metrics"
	"github.com/doorstep/doorstep/pkg/pgkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the inbox table in the service's schema.
func Migrations() pgkit.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return pgkit.Migrations{Table: "goose_inbox", FS: sub}
}

// ErrPermanent marks a handler error that no retry can fix (a malformed or impossible event);
// the event goes straight to the dead-letter stream.
var ErrPermanent = errors.New("permanent failure")

// Handler applies one event inside tx.
type Handler func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error

type afterCommitKey struct{}

// withCommitKey marks a context whose handler's statements may wait for the COMMIT.
type withCommitKey struct{}

// WithCommit returns the batch that goes to the server with the COMMIT of the transaction applying
// the event, when the event is applied in a group (and nil when it is applied alone behind a
// savepoint, where its statements must run at once). A handler saves a round trip per event by
// queueing there the writes whose results it needs only after the commit (their callbacks run
// then), e.g. in the hooks it gives AfterCommit. The queued statements run after everything the
// handlers of the group run on tx, in the order queued; a handler that is about to read what an
// earlier event queued calls SendQueued first. Only statements whose failure PostgreSQL reports
// as an error belong there: such a failure fails the group, which is then applied event by event.
// Their callbacks must not fail: the group has committed when they run (it stays applied, and the
// failure is logged).
func WithCommit(ctx context.Context) *pgx.Batch {
	b, _ := ctx.Value(withCommitKey{}).(*pgx.Batch)
	return b
}

// SendQueued runs on tx, now, what the handlers of the group have queued on WithCommit so far.
func SendQueued(ctx context.Context, tx pgx.Tx) error {
	b := WithCommit(ctx)
	if b == nil || b.Len() == 0 {
		return nil
	}
	queued := &pgx.Batch{QueuedQueries: b.QueuedQueries}
	b.QueuedQueries = nil
	return tx.SendBatch(ctx, queued).Close()
}

// AfterCommit runs f once the transaction of the event being handled has committed (not at all if
// it rolls back, nor for a redelivery, which never reaches the handler). Handlers call it with the ctx they were given, e.g. to
// tell watchers on other replicas that the change is visible; elsewhere it does nothing.
func AfterCommit(ctx context.Context, f func()) {
	if hooks, ok := ctx.Value(afterCommitKey{}).(*[]func()); ok {
		*hooks = append(*hooks, f)
	}
}

// Consumer is one durable pull consumer whose effects live in Pool.
type Consumer struct {
	Pool    *pgxpool.Pool
	JS      jetstream.JetStream
	Log     *slog.Logger
	Durable string
	// Subjects filters the stream, e.g. "doorstep.*.parcel.>".
	Subjects []string
	Handle   Handler
	// Replaces names durables whose work this one took over (a service merged or renamed its
	// consumers). Created for the first time, this durable starts after the last event every one
	// of them had acknowledged instead of at the stream's start (30 days of events), and once it
	// exists they are deleted. Their inbox ids do not count for it: events they had applied
	// past that point are applied again, so the handler must tolerate a replay (each of Doorstep's
	// compares event ids or times before writing).
	Replaces []string
	// MaxDeliver bounds redelivery before the event is dead-lettered; default 8.
	MaxDeliver int
	// Metrics, when set, receives applied, retried and dead-lettered counts and the lag.
	Metrics *metrics.Pipeline
	// ExitAfterCommit, when positive, ends the process with FaultExitCode right after the
	// ExitAfterCommit-th event it applied has committed and before that event is acknowledged:
	// the fault tests' crash between commit and ack. servicekit sets it from
	// DOORSTEP_FAULT_EXIT_AFTER_COMMIT; production never sets it.
	ExitAfterCommit int64

	committed    atomic.Int64
	eventByEvent atomic.Int32 // groups still to apply event by event; see ApplyAll
}

// FaultExitCode is the exit status of a process ended by ExitAfterCommit.
const FaultExitCode = 86

// backoff is the redelivery schedule for handler errors, indexed by delivery attempt.
var backoff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}

// Run consumes until ctx is done. Replicas of a service share one durable consumer, so JetStream
// hands each message to one of them.
func (c *Consumer) Run(ctx context.Context) error {
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 8
	}
	var cons jetstream.Consumer
	for {
		var err error
		if cons, err = c.provision(ctx); err == nil {
			break
		}
		// The broker may still be starting or restarting; keep trying rather than exit.
		c.Log.Warn("consumer: provisioning failed; retrying", "durable", c.Durable, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	var pruner sync.WaitGroup
	pruner.Go(func() { c.pruneUntilDone(ctx) })
	defer pruner.Wait()
	nextSample := time.Now()
	var idle time.Duration // the wait after pulls that failed at once; 0 while pulls work
	for ctx.Err() == nil {
		if c.Metrics != nil && time.Now().After(nextSample) {
			if info, err := cons.Info(ctx); err == nil {
				c.Metrics.ConsumerLag.WithLabelValues(c.Durable).Set(float64(info.NumPending))
			}
			nextSample = time.Now().Add(2 * time.Second)
		}
		received := 0
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err == nil {
			received = c.take(ctx, batch)
			err = batch.Error()
		}
		switch {
		case err == nil || errors.Is(err, nats.ErrTimeout) || ctx.Err() != nil:
			idle = 0
		case received > 0:
			idle = 0
			c.Log.Debug("consumer: batch ended", "durable", c.Durable, "err", err)
		default:
			// The pull failed with nothing delivered: the broker is restarting, the stream cannot
			// answer, or the durable is gone (an old replica after an upgrade merged it into
			// another). Asking again at once would spin a core, so wait longer each time, up to
			// maxIdle. A missing durable is not re-created here: one deleted on purpose would
			// start again from the stream's start.
			idle = min(max(2*idle, 250*time.Millisecond), maxIdle)
			c.Log.Warn("consumer: pull failed; waiting", "durable", c.Durable, "err", err, "in", idle)
			select {
			case <-ctx.Done():
			case <-time.After(idle):
			}
		}
	}
	return nil
}

// take processes the messages of batch as they arrive and returns how many there were.
func (c *Consumer) take(ctx context.Context, batch jetstream.MessageBatch) int {
	msgs := batch.Messages()
	group := make([]jetstream.Msg, 0, 64)
	received := 0
	for msg := range msgs {
		// Take what has already arrived with it: a busy consumer then commits many events in
		// one transaction (one WAL flush), a quiet one still applies each event at once.
		group = append(group[:0], msg)
		for more := true; more && len(group) < cap(group); {
			select {
			case m, ok := <-msgs:
				if ok {
					group = append(group, m)
				}
				more = ok
			default:
				more = false
			}
		}
		received += len(group)
		c.process(ctx, group)
	}
	return received
}

// maxIdle is the longest Run waits between pulls that fail at once: a pull every 2 s costs nothing,
// and a broker back from a restart is used again within 2 s.
const maxIdle = 2 * time.Second

// provision creates the durable, or brings an existing one's settings up to date, and deletes
// the durables it replaces.
func (c *Consumer) provision(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:        c.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     c.MaxDeliver,
		FilterSubjects: c.Subjects,
		MaxAckPending:  1024,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	existing, err := c.JS.Consumer(ctx, events.Stream, c.Durable)
	switch {
	case err == nil:
		// Where a consumer starts is fixed when it is created; an update must repeat it.
		created := existing.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq = created.DeliverPolicy, created.OptStartSeq
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		start, err := c.takeOverPoint(ctx)
		if err != nil {
			return nil, err
		}
		if start > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
			c.Log.Info("consumer: taking over from replaced durables", "durable", c.Durable, "replaces", c.Replaces, "start_seq", start)
		}
	default:
		return nil, err
	}
	cons, err := c.JS.CreateOrUpdateConsumer(ctx, events.Stream, cfg)
	if err != nil {
		return nil, err
	}
	for _, old := range c.Replaces {
		if err := c.JS.DeleteConsumer(ctx, events.Stream, old); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete replaced durable %s: %w", old, err)
		}
	}
	return cons, nil
}

// takeOverPoint is the stream sequence after the last event every replaced durable still present
// had acknowledged; 0 if none is present (start at the stream's start).
func (c *Consumer) takeOverPoint(ctx context.Context) (uint64, error) {
	var start uint64
	for _, old := range c.Replaces {
		cons, err := c.JS.Consumer(ctx, events.Stream, old)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read replaced durable %s: %w", old, err)
		}
		if next := cons.CachedInfo().AckFloor.Stream + 1; start == 0 || next < start {
			start = next
		}
	}
	return start, nil
}

// process applies a group of messages in one transaction, then acknowledges the applied ones and
// sends the failed ones back for redelivery (or to the dead-letter stream).
func (c *Consumer) process(ctx context.Context, msgs []jetstream.Msg) {
	evs := make([]*eventsv1.Event, 0, len(msgs))
	decoded := make([]jetstream.Msg, 0, len(msgs))
	for _, msg := range msgs {
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(msg.Data(), ev); err != nil || ev.GetEventId() == "" {
			c.deadLetter(ctx, msg, fmt.Sprintf("undecodable event: %v", err))
			continue
		}
		evs = append(evs, ev)
		decoded = append(decoded, msg)
	}
	if len(evs) == 0 {
		return
	}
	errs := c.ApplyAll(ctx, evs)
	if c.ExitAfterCommit > 0 {
		ok := int64(0)
		for _, err := range errs {
			if err == nil {
				ok++
			}
		}
		if n := c.committed.Add(ok); n >= c.ExitAfterCommit && n-ok < c.ExitAfterCommit {
			c.Log.Error("fault injection: exiting between commit and ack", "durable", c.Durable, "events", ok)
			os.Exit(FaultExitCode)
		}
	}
	for i, msg := range decoded {
		if errs[i] == nil {
			if err := msg.Ack(); err != nil {
				// The effect is committed; a redelivery will be recognised by the inbox.
				c.Log.Warn("consumer: ack failed", "durable", c.Durable, "event", evs[i].GetEventId(), "err", err)
			}
			continue
		}
		c.failed(ctx, msg, evs[i], errs[i])
	}
}

// failed sends back a message whose handler failed: for redelivery with backoff, or, when no
// retry can help or the retries are used up, to the dead-letter stream.
func (c *Consumer) failed(ctx context.Context, msg jetstream.Msg, ev *eventsv1.Event, err error) {
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	meta, _ := msg.Metadata()
	delivered := 1
	if meta != nil {
		delivered = int(meta.NumDelivered)
	}
	if errors.Is(err, ErrPermanent) || delivered >= c.MaxDeliver {
		c.deadLetter(ctx, msg, err.Error())
		return
	}
	delay := backoff[min(delivered-1, len(backoff)-1)]
	if c.Metrics != nil {
		c.Metrics.ConsumerRetried.WithLabelValues(c.Durable).Inc()
	}
	c.Log.Warn("consumer: handler failed; will retry", "durable", c.Durable, "subject", msg.Subject(),
		"event", ev.GetEventId(), "attempt", delivered, "in", delay, "err", err)
	_ = msg.NakWithDelay(delay)
}

// Apply runs the handler for ev once: in a transaction that first records the event id. It is
// exported so tests and replays can drive a handler without a broker.
func (c *Consumer) Apply(ctx context.Context, ev *eventsv1.Event) error {
	return c.ApplyAll(ctx, []*eventsv1.Event{ev})[0]
}

// ApplyAll applies evs in order in one transaction (one WAL flush for the lot) and returns each
// event's error at its index. An event whose handler fails is rolled back alone, with its
// after-commit hooks; the others commit. If the transaction itself fails, every event gets that
// error.
//
// Most groups apply without a failure, so a group is first applied as a whole: one statement
// records every id, and the handlers run one after another with no savepoint between them. Only if
// that fails is the group applied again event by event, each behind a savepoint that isolates its
// failure. A savepoint and its release are two round trips per event, which for the tracking
// consumers was as much as the work itself.
func (c *Consumer) ApplyAll(ctx context.Context, evs []*eventsv1.Event) []error {
	// A consumer whose events often come before what they depend on (the order service's, when a
	// supplier's confirmation overtakes the order) would apply most groups twice: after a group
	// fails as a whole, the next ones are applied event by event for a while.
	if c.eventByEvent.Load() > 0 {
		c.eventByEvent.Add(-1)
		return c.applyEach(ctx, evs)
	}
	hooks, applied, err := c.applyTogether(ctx, evs)
	if errors.Is(err, pgkit.ErrCommitted) {
		// The group is stored; a result read after its COMMIT was lost, which a hook may miss.
		c.Log.Warn("consumer: a group committed but a result of it could not be read", "durable", c.Durable, "err", err)
		err = nil
	}
	if err == nil {
		c.afterCommitted(applied, hooks)
		return make([]error, len(evs))
	}
	c.eventByEvent.Store(eventByEventAfterFailure)
	return c.applyEach(ctx, evs)
}

// eventByEventAfterFailure is how many groups are applied event by event after a group failed.
const eventByEventAfterFailure = 16

// applyTogether records every id of evs in one statement, sent with the BEGIN, and runs the
// handlers of the fresh ones in that transaction; any error rolls back the lot.
func (c *Consumer) applyTogether(ctx context.Context, evs []*eventsv1.Event) (hooks []func(), applied int, err error) {
	hctx := context.WithValue(ctx, afterCommitKey{}, &hooks)
	// Ids are matched in PostgreSQL's spelling of a UUID (lower case, with dashes), the one that
	// RETURNING gives back; an id that is no UUID fails here and event by event names it.
	ids := make([]string, len(evs))
	for i, ev := range evs {
		id, err := uuid.Parse(ev.GetEventId())
		if err != nil {
			return nil, 0, fmt.Errorf("event id %q: %w", ev.GetEventId(), err)
		}
		ids[i] = id.String()
	}
	var recorded []string
	err = pgkit.BatchTx(ctx, c.Pool, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])
			ON CONFLICT DO NOTHING RETURNING event_id::text`, c.Durable, ids).Query(func(rows pgx.Rows) (err error) {
			recorded, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	}, func(tx pgx.Tx, commit *pgx.Batch) error {
		applied, hooks = 0, hooks[:0]
		hctx := context.WithValue(hctx, withCommitKey{}, commit)
		// An id recorded just now is fresh; one not recorded was applied before (a redelivery). An
		// event delivered twice within the group is applied at its first delivery only.
		fresh := make(map[string]bool, len(recorded))
		for _, id := range recorded {
			fresh[id] = true
		}
		var again []string
		for _, id := range ids {
			if !fresh[id] {
				again = append(again, id)
			}
		}
		if err := c.seenAgain(ctx, tx, again); err != nil {
			return err
		}
		for i, ev := range evs {
			if !fresh[ids[i]] {
				continue
			}
			delete(fresh, ids[i])
			if err := c.Handle(hctx, tx, ev); err != nil {
				return err
			}
			applied++
		}
		return nil
	})
	return hooks, applied, err
}

// applyEach applies evs in one transaction, each behind a savepoint that also records its id.
func (c *Consumer) applyEach(ctx context.Context, evs []*eventsv1.Event) []error {
	errs := make([]error, len(evs))
	applied := 0
	var hooks []func()
	hctx := context.WithValue(ctx, afterCommitKey{}, &hooks)
	err := pgkit.Tx(ctx, c.Pool, func(tx pgx.Tx) error {
		clear(errs)
		applied, hooks = 0, hooks[:0]
		for i, ev := range evs {
			mark := len(hooks)
			sp, err := tx.Begin(hctx) // a savepoint
			if err != nil {
				return err
			}
			fresh, err := c.applyOne(hctx, sp, ev)
			if err != nil {
				if rerr := sp.Rollback(hctx); rerr != nil {
					return rerr
				}
				hooks = hooks[:mark]
				errs[i] = err
				continue
			}
			if err := sp.Commit(hctx); err != nil { // releases the savepoint
				return err
			}
			if fresh {
				applied++
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	c.afterCommitted(applied, hooks)
	return errs
}

// afterCommitted counts what a committed transaction applied and runs its after-commit hooks.
func (c *Consumer) afterCommitted(applied int, hooks []func()) {
	if c.Metrics != nil && applied > 0 {
		c.Metrics.ConsumerApplied.WithLabelValues(c.Durable).Add(float64(applied))
	}
	for _, f := range hooks {
		f()
	}
}

// applyOne records ev's id and runs the handler, unless the id is recorded already (a
// redelivery), in which case it changes nothing and reports fresh false.
func (c *Consumer) applyOne(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) (fresh bool, err error) {
	tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		c.Durable, ev.GetEventId())
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, c.seenAgain(ctx, tx, []string{ev.GetEventId()}) // applied before: a redelivery
	}
	if err := c.Handle(ctx, tx, ev); err != nil {
		return false, err
	}
	return true, nil
}

// seenAgain restarts the clock of ids delivered again (a redelivery, a replayed dead letter), so
// that Prune keeps them for Keep from now: a replay's copy stays in the stream, and a letter parked
// again can be replayed again, for as long after it as after the first delivery.
func (c *Consumer) seenAgain(ctx context.Context, tx pgx.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE inbox SET applied_at = now() WHERE consumer = $1 AND event_id = ANY($2::uuid[])`, c.Durable, ids)
	return err
}

// deadLetter parks msg on the dead-letter stream with the reason, then terminates it so the
// consumer moves on. If the dead-letter publish fails the message is left for redelivery.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, reason string) {
	dl := &nats.Msg{Subject: events.DeadLetterSubject + msg.Subject(), Data: msg.Data(), Header: nats.Header{}}
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	dl.Header.Set(jetstream.MsgIDHeader, c.Durable+":"+id)
	dl.Header.Set("Doorstep-Original-Msg-Id", id)
	dl.Header.Set("Doorstep-Consumer", c.Durable)
	dl.Header.Set("Doorstep-Reason", reason)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.JS.PublishMsg(pctx, dl); err != nil {
		c.Log.Error("consumer: dead-letter publish failed", "durable", c.Durable, "err", err)
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	if c.Metrics != nil {
		c.Metrics.ConsumerDead.WithLabelValues(c.Durable).Inc()
	}
	c.Log.Error("consumer: event dead-lettered", "durable", c.Durable, "subject", msg.Subject(), "msg_id", id, "reason", reason)
	_ = msg.TermWithReason(reason)
}
