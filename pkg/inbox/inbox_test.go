package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// openPool opens a fresh database with the inbox table and an effects table for handlers to write.
func openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, inbox.Migrations()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE effects (event_id text)`); err != nil {
		t.Fatal(err)
	}
	return pool
}

// AfterCommit hooks run once the effect is visible to other connections, and never for an effect
// that rolled back or for a redelivery.
func TestAfterCommit(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	fail := false
	var visibleAtHook []int
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, ev.GetEventId()); err != nil {
				return err
			}
			inbox.AfterCommit(ctx, func() {
				var n int
				_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM effects WHERE event_id = $1`, ev.GetEventId()).Scan(&n)
				visibleAtHook = append(visibleAtHook, n)
			})
			if fail {
				return errors.New("boom")
			}
			return nil
		}}
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now())
	fail = true
	if err := c.Apply(ctx, ev); err == nil {
		t.Fatal("failing handler reported success")
	}
	if len(visibleAtHook) != 0 {
		t.Fatalf("hook ran for a rolled-back effect: %v", visibleAtHook)
	}
	fail = false
	if err := c.Apply(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, ev); err != nil { // a redelivery
		t.Fatal(err)
	}
	if len(visibleAtHook) != 1 || visibleAtHook[0] != 1 {
		t.Fatalf("hook runs and rows visible then: %v, want [1]", visibleAtHook)
	}
}

// A group of events commits together; one whose handler fails is rolled back alone, with its
// after-commit hooks, and reported at its index.
func TestApplyAllRollsBackOnlyTheFailure(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	var evs []*eventsv1.Event
	for range 3 {
		evs = append(evs, events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now()))
	}
	hooks := 0
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, ev.GetEventId()); err != nil {
				return err
			}
			inbox.AfterCommit(ctx, func() { hooks++ })
			if ev == evs[1] {
				return errors.New("not yet")
			}
			return nil
		}}
	errs := c.ApplyAll(ctx, evs)
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors %v, want only the second", errs)
	}
	var n, inboxRows int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n)
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM inbox`).Scan(&inboxRows)
	if n != 2 || inboxRows != 2 || hooks != 2 {
		t.Fatalf("effects %d, inbox rows %d, hooks %d; want 2 each", n, inboxRows, hooks)
	}
	// The failed one, redelivered, applies; the others are recognised.
	errs = c.ApplyAll(ctx, []*eventsv1.Event{evs[0], evs[2]})
	if errs[0] != nil || errs[1] != nil || hooks != 2 {
		t.Fatalf("redelivery: %v, hooks %d", errs, hooks)
	}
}

// A group is applied as a whole when nothing fails: an event delivered twice within it is applied
// once, and one already applied is recognised. An id that cannot be recorded fails that event
// alone, as a failing handler does.
func TestApplyAllTogether(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	var evs []*eventsv1.Event
	for range 3 {
		evs = append(evs, events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now()))
	}
	handled := map[string]int{}
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			handled[ev.GetEventId()]++
			return nil
		}}
	if errs := c.ApplyAll(ctx, []*eventsv1.Event{evs[0], evs[1], evs[0]}); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	if errs := c.ApplyAll(ctx, []*eventsv1.Event{evs[1], evs[2]}); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	if handled[evs[0].GetEventId()] != 1 || handled[evs[1].GetEventId()] != 1 || handled[evs[2].GetEventId()] != 1 {
		t.Fatalf("handler runs per event: %v; want 1 each", handled)
	}

	bad := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now())
	bad.EventId = "not-a-uuid"
	good := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now())
	errs := c.ApplyAll(ctx, []*eventsv1.Event{bad, good})
	if errs[0] == nil || errs[1] != nil || handled[good.GetEventId()] != 1 {
		t.Fatalf("errors %v, good handled %d times; want only the bad id to fail, good once", errs, handled[good.GetEventId()])
	}
	var rows int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM inbox`).Scan(&rows)
	if rows != 4 {
		t.Fatalf("inbox rows %d, want 4", rows)
	}
}

// Writes a handler queues on WithCommit go with the group's COMMIT, in the order queued and after
// what the handlers ran on tx; their results are there for the after-commit hooks, and SendQueued
// shows them to a later handler's read. One that fails fails the group, which is then applied
// event by event: WithCommit is nil there, the writes run at once, and only the bad event fails.
func TestWithCommit(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	if _, err := pool.Exec(ctx, `ALTER TABLE effects ADD UNIQUE (event_id)`); err != nil {
		t.Fatal(err)
	}
	actor := &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}
	var (
		queued, direct int
		seen           []int // what each reading handler counted
		returned       []string
	)
	reads := map[string]bool{}
	dup := map[string]bool{}
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			id := ev.GetEventId()
			if dup[id] {
				id = "dup" // a second effect named "dup" violates the unique key
			}
			if reads[ev.GetEventId()] {
				if err := inbox.SendQueued(ctx, tx); err != nil {
					return err
				}
				var n int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
					return err
				}
				seen = append(seen, n)
			}
			var got string
			if b := inbox.WithCommit(ctx); b != nil {
				queued++
				b.Queue(`INSERT INTO effects VALUES ($1) RETURNING event_id`, id).QueryRow(func(r pgx.Row) error { return r.Scan(&got) })
			} else {
				direct++
				if err := tx.QueryRow(ctx, `INSERT INTO effects VALUES ($1) RETURNING event_id`, id).Scan(&got); err != nil {
					return err
				}
			}
			inbox.AfterCommit(ctx, func() { returned = append(returned, got) })
			return nil
		}}
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	var evs []*eventsv1.Event
	for range 3 {
		evs = append(evs, events.New("haixin", actor, "o", time.Now()))
	}
	reads[evs[2].GetEventId()] = true
	if errs := c.ApplyAll(ctx, evs); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	want := []string{evs[0].GetEventId(), evs[1].GetEventId(), evs[2].GetEventId()}
	if queued != 3 || direct != 0 || count() != 3 || !slices.Equal(seen, []int{2}) || !slices.Equal(returned, want) {
		t.Fatalf("queued %d, direct %d, rows %d, the third handler saw %v, hooks saw %v; want 3, 0, 3, [2], %v",
			queued, direct, count(), seen, returned, want)
	}

	queued, direct, returned = 0, 0, nil
	var more []*eventsv1.Event
	for range 3 {
		more = append(more, events.New("haixin", actor, "o", time.Now()))
	}
	dup[more[0].GetEventId()], dup[more[2].GetEventId()] = true, true
	errs := c.ApplyAll(ctx, more)
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("errors %v, want only the third (its effect's key is taken)", errs)
	}
	if queued != 3 || direct != 3 || count() != 5 || !slices.Equal(returned, []string{"dup", more[1].GetEventId()}) {
		t.Fatalf("queued %d, direct %d, rows %d, hooks saw %v; want the group queued (3), then event by event (3), 5 rows, [dup %s]",
			queued, direct, count(), returned, more[1].GetEventId())
	}
}

// A callback of a write queued on commit that fails leaves the group applied: it has committed,
// so it is neither reported failed nor applied again event by event, and its hooks run.
func TestWithCommitCallbackFailsAfterTheCommit(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	handled, hooks := 0, 0
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			handled++
			inbox.WithCommit(ctx).Queue(`INSERT INTO effects VALUES ($1) RETURNING event_id`, ev.GetEventId()).
				QueryRow(func(pgx.Row) error { return errors.New("cannot read") })
			inbox.AfterCommit(ctx, func() { hooks++ })
			return nil
		}}
	evs := []*eventsv1.Event{events.New("haixin", nil, "o", time.Now()), events.New("haixin", nil, "o", time.Now())}
	if errs := c.ApplyAll(ctx, evs); errors.Join(errs...) != nil {
		t.Fatalf("errors %v, want none: the group committed", errs)
	}
	var effects int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&effects); err != nil {
		t.Fatal(err)
	}
	if handled != 2 || hooks != 2 || effects != 2 {
		t.Fatalf("handled %d, hooks %d, effects %d; want 2 each", handled, hooks, effects)
	}
}

// An event id spelt another way (upper case) is still one event: applied once, recognised when
// redelivered in PostgreSQL's spelling. After a group fails, the next groups are applied event by
// event, and a failing event still fails alone while the others' effects commit once.
func TestApplyAllIdSpellingAndFailures(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	effects := func(id string) int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects WHERE event_id = lower($1)`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	newEvent := func() *eventsv1.Event {
		return events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now())
	}
	failing := map[string]bool{}
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES (lower($1))`, ev.GetEventId()); err != nil {
				return err
			}
			if failing[ev.GetEventId()] {
				return errors.New("not yet")
			}
			return nil
		}}

	upper := newEvent()
	upper.EventId = strings.ToUpper(upper.EventId)
	if errs := c.ApplyAll(ctx, []*eventsv1.Event{upper}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	lower := proto.Clone(upper).(*eventsv1.Event)
	lower.EventId = strings.ToLower(upper.EventId)
	if errs := c.ApplyAll(ctx, []*eventsv1.Event{lower}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if n := effects(lower.EventId); n != 1 {
		t.Fatalf("an upper-case id took effect %d times over two deliveries, want 1", n)
	}

	for round := range 3 { // the first fails as a whole; the next ones go event by event
		ok1, bad, ok2 := newEvent(), newEvent(), newEvent()
		failing[bad.EventId] = true
		errs := c.ApplyAll(ctx, []*eventsv1.Event{ok1, bad, ok2})
		if errs[0] != nil || errs[1] == nil || errs[2] != nil {
			t.Fatalf("round %d: errors %v, want only the second", round, errs)
		}
		if effects(ok1.EventId) != 1 || effects(bad.EventId) != 0 || effects(ok2.EventId) != 1 {
			t.Fatalf("round %d: effects %d, %d, %d; want 1, 0, 1", round, effects(ok1.EventId), effects(bad.EventId), effects(ok2.EventId))
		}
	}
}

// A durable that replaces others starts after the last event the slowest of them had acknowledged,
// not at the stream's start, and they are deleted. Restarted, it keeps where it started, so it
// provisions again and goes on with new events.
func TestReplacesTakesOverWhereTheSlowestStood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := openPool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, js, err := natsx.Connect(testkit.NATS(t), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	var published []string
	publish := func(n int) {
		for range n {
			ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "", time.Now())
			ev.Payload = &eventsv1.Event_NoticeWithdrawn{NoticeWithdrawn: &eventsv1.NoticeWithdrawn{NoticeId: "n"}}
			testkit.Publish(t, ctx, js, ev, ev.GetEventId())
			published = append(published, strings.ToLower(ev.GetEventId()))
		}
	}
	publish(10)
	// The old durables applied the first 7 and the first 4 events.
	testkit.DurableThatAcked(t, ctx, js, "old-fast", 7)
	testkit.DurableThatAcked(t, ctx, js, "old-slow", 4)

	applied := func() []string {
		rows, err := pool.Query(ctx, `SELECT event_id FROM effects ORDER BY event_id`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	run := func() (stop func()) {
		runCtx, stopRun := context.WithCancel(ctx)
		c := &inbox.Consumer{Pool: pool, JS: js, Log: log, Durable: "merged", Subjects: []string{events.StreamSubjects},
			Replaces: []string{"old-fast", "old-slow", "never-existed"},
			Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
				_, err := tx.Exec(ctx, `INSERT INTO effects VALUES (lower($1))`, ev.GetEventId())
				return err
			}}
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(runCtx) }()
		return func() { stopRun(); <-done }
	}
	wantApplied := func(want []string) {
		t.Helper()
		want = slices.Sorted(slices.Values(want))
		testkit.Eventually(t, 10*time.Second, func() error {
			if got := applied(); !slices.Equal(got, want) {
				return fmt.Errorf("applied %d events %v, want %d %v", len(got), got, len(want), want)
			}
			return nil
		})
	}

	stop := run()
	wantApplied(published[4:])
	for _, old := range []string{"old-fast", "old-slow"} {
		if _, err := js.Consumer(ctx, events.Stream, old); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("replaced durable %s: err = %v, want it deleted", old, err)
		}
	}
	stop()

	publish(2)
	stop = run()
	defer stop()
	wantApplied(published[4:])
}

// A consumer whose durable is deleted under it (an old replica still running after an upgrade
// merged the durable into another) waits between pulls instead of spinning on the failures, does
// not re-create the durable, and resumes once a durable of that name exists again.
func TestPullsWaitWhileTheDurableIsGone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := openPool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := testkit.NATS(t)
	_, js, err := natsx.Connect(url, "admin", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	// The consumer has a connection of its own, so that what it publishes (its pulls) is counted.
	cnc, cjs, err := natsx.Connect(url, "consumer", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cnc.Close)
	c := &inbox.Consumer{Pool: pool, JS: cjs, Log: log, Durable: "doomed", Subjects: []string{events.StreamSubjects},
		Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
			_, err := tx.Exec(ctx, `INSERT INTO effects VALUES (lower($1))`, ev.GetEventId())
			return err
		}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	defer func() { stop(); <-done }()

	publishAndWait := func() {
		t.Helper()
		ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "", time.Now())
		ev.Payload = &eventsv1.Event_NoticeWithdrawn{NoticeWithdrawn: &eventsv1.NoticeWithdrawn{NoticeId: "n"}}
		testkit.Publish(t, ctx, js, ev, ev.GetEventId())
		testkit.Eventually(t, 15*time.Second, func() error {
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects WHERE event_id = lower($1)`, ev.GetEventId()).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("event applied %d times (err %v)", n, err)
			}
			return nil
		})
	}
	publishAndWait()
	cons, err := js.Consumer(ctx, events.Stream, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	if err := js.DeleteConsumer(ctx, events.Stream, "doomed"); err != nil {
		t.Fatal(err)
	}

	before := cnc.Stats().OutMsgs
	time.Sleep(3 * time.Second)
	// Waiting 250 ms, 500 ms, 1 s, 2 s, 2 s ... between failed pulls makes about 5 pulls in 3 s; a
	// loop that asks again at once makes thousands.
	if pulls := cnc.Stats().OutMsgs - before; pulls > 12 {
		t.Errorf("%d pulls in 3 s while the durable was gone; want at most 12", pulls)
	}
	if _, err := js.Consumer(ctx, events.Stream, "doomed"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the deleted durable was re-created (err %v)", err)
	}

	// Once the durable is back, the waiting consumer applies new events again.
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverNewPolicy, 0
	if _, err := js.CreateConsumer(ctx, events.Stream, cfg); err != nil {
		t.Fatal(err)
	}
	publishAndWait()
}

// insertIDs stores n made-up ids of consumer, applied age ago.
func insertIDs(t *testing.T, pool *pgxpool.Pool, consumer string, n int, age time.Duration) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO inbox (consumer, event_id, applied_at)
		SELECT $1, gen_random_uuid(), now() - $2::interval FROM generate_series(1, $3)`, consumer, age, n)
	if err != nil {
		t.Fatal(err)
	}
}

func countIDs(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT consumer, count(*)::int FROM inbox GROUP BY consumer`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var c string
		var n int
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		got[c] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// Prune forgets the ids older than Keep, a retired durable's too, in statements of at most the
// batch size, and keeps every younger one: an event can still arrive again until then.
func TestPruneForgetsOnlyIdsPastKeep(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	defer inbox.SetPruning(time.Minute, 10)()
	// A consumer can park an event until the stream drops it and replay it until its letter
	// expires, and the replay's copy stays in the stream; the others must still know the event
	// until it is gone.
	if inbox.Keep <= 2*natsx.EventMaxAge+natsx.DeadLetterMaxAge {
		t.Fatalf("Keep %s is shorter than the stream (%s) before a letter is parked and after it is replayed, and the letter's life (%s)",
			inbox.Keep, natsx.EventMaxAge, natsx.DeadLetterMaxAge)
	}
	insertIDs(t, pool, "tracking-deliveries", 25, inbox.Keep+time.Hour)
	insertIDs(t, pool, "tracking-deliveries", 3, inbox.Keep-time.Hour)
	insertIDs(t, pool, "tracking-parcels", 7, inbox.Keep+24*time.Hour) // merged into tracking-deliveries long ago
	insertIDs(t, pool, "tracking-parcels", 2, time.Minute)

	n, err := inbox.Prune(ctx, pool, inbox.Keep)
	if err != nil {
		t.Fatal(err)
	}
	if n != 32 {
		t.Errorf("pruned %d ids; want 32", n)
	}
	if got, want := countIDs(t, pool), map[string]int{"tracking-deliveries": 3, "tracking-parcels": 2}; !maps.Equal(got, want) {
		t.Errorf("ids left %v; want %v", got, want)
	}
	if n, err := inbox.Prune(ctx, pool, inbox.Keep); n != 0 || err != nil {
		t.Errorf("second prune: %d, %v; want 0, nil", n, err)
	}
}

// A running consumer prunes its schema's inbox without being asked.
func TestRunningConsumerPrunes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer inbox.SetPruning(0, 10)()
	pool := openPool(t)
	insertIDs(t, pool, "old-durable", 15, inbox.Keep+time.Hour)
	insertIDs(t, pool, "pruner", 1, time.Hour)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, js, err := natsx.Connect(testkit.NATS(t), "test", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	c := &inbox.Consumer{Pool: pool, JS: js, Log: log, Durable: "pruner", Subjects: []string{events.StreamSubjects},
		Handle: func(context.Context, pgx.Tx, *eventsv1.Event) error { return nil }}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	defer func() { stop(); <-done }()
	testkit.Eventually(t, 15*time.Second, func() error {
		if got, want := countIDs(t, pool), map[string]int{"pruner": 1}; !maps.Equal(got, want) {
			return fmt.Errorf("ids left %v; want %v", got, want)
		}
		return nil
	})
}

// An event delivered again (a replayed dead letter) is not applied again, and its id is kept for
// Keep from this delivery: the replay's copy stays in the stream, and a letter parked again can be
// replayed again, for as long after it.
func TestDeliveredAgainRestartsTheIdsTime(t *testing.T) {
	ctx := context.Background()
	pool := openPool(t)
	ev := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now())
	handled := 0
	c := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "t",
		Handle: func(context.Context, pgx.Tx, *eventsv1.Event) error { handled++; return nil }}
	age := func() time.Duration {
		t.Helper()
		var secs float64
		if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM now() - applied_at) FROM inbox WHERE event_id = $1`, ev.GetEventId()).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		return time.Duration(secs * float64(time.Second))
	}
	for _, apply := range []func() error{
		func() error { return errors.Join(c.ApplyAll(ctx, []*eventsv1.Event{ev})...) },
		func() error { // event by event, as for a while after a group failed
			bad := events.New("haixin", &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "t"}, "o", time.Now())
			bad.EventId = "not-a-uuid"
			c.ApplyAll(ctx, []*eventsv1.Event{bad})
			return errors.Join(c.ApplyAll(ctx, []*eventsv1.Event{ev})...)
		},
	} {
		if _, err := pool.Exec(ctx, `DELETE FROM inbox`); err != nil {
			t.Fatal(err)
		}
		handled = 0
		if err := apply(); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE inbox SET applied_at = now() - $1::interval`, inbox.Keep-time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := apply(); err != nil {
			t.Fatal(err)
		}
		if handled != 1 {
			t.Errorf("handler ran %d times for one event delivered twice", handled)
		}
		if a := age(); a > time.Minute {
			t.Errorf("id %s old after being delivered again; want its time restarted", a)
		}
	}
}
