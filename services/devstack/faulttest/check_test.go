package faulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// trackingDurable is the consumer behind tracking's timelines, the read model the checks compare
// row by row with the stream.
const trackingDurable = "tracking-deliveries"

// durable is one service's durable consumer on the event stream.
type durable struct {
	name    string
	schema  string // where its inbox table is
	filters []string
}

// durables lists the durable consumers the running services created, so that a consumer a
// service adds later is checked too.
func durables(ctx context.Context, js jetstream.JetStream) ([]durable, error) {
	st, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return nil, err
	}
	var out []durable
	l := st.ListConsumers(ctx)
	for info := range l.Info() {
		if info.Config.Durable == "" {
			continue // the checker's own ordered consumers
		}
		d := durable{name: info.Config.Durable, filters: info.Config.FilterSubjects}
		if info.Config.FilterSubject != "" {
			d.filters = append(d.filters, info.Config.FilterSubject)
		}
		service, _, _ := strings.Cut(d.name, "-")
		d.schema = schemaOf(service)
		out = append(out, d)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b durable) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// schemaOf is the PostgreSQL schema of a service (servicekit names consumers "<service>-<purpose>").
func schemaOf(service string) string {
	if service == "order" {
		return "orders"
	}
	return service
}

func (d durable) wants(subject string) bool {
	for _, f := range d.filters {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return len(d.filters) == 0
}

// subjectMatches is NATS subject matching: "*" is one token, ">" the rest.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

// connect is the test's own JetStream connection; it reconnects for ever, like the services'.
func connect(t *testing.T, sys *System) jetstream.JetStream {
	t.Helper()
	nc, js, err := natsx.Connect(sys.NATSURL, "faulttest-checker", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

// streamMsg is one message of the event stream, decoded.
type streamMsg struct {
	seq     uint64
	subject string
	msgID   string
	ev      *eventsv1.Event
	// name is the event's "<aggregate>.<event>", e.g. "parcel.confirmed".
	name string
}

// key names what the event says happened, so that two different events announcing the same
// thing (a double effect upstream) are caught even though their ids differ.
func (m streamMsg) key() string {
	if pc := m.ev.GetParcelStateChanged(); pc != nil {
		return m.name + "/" + pc.GetParcelId()
	}
	return m.name + "/" + m.ev.GetOrderId()
}

// readStream reads every message of the stream, in order, with an ordered consumer.
func readStream(ctx context.Context, js jetstream.JetStream, name string) ([]streamMsg, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	last := info.State.LastSeq
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []streamMsg
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			ev := &eventsv1.Event{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				return nil, fmt.Errorf("message %d on %s: %w", md.Sequence.Stream, m.Subject(), err)
			}
			name, _ := events.Name(ev)
			out = append(out, streamMsg{seq: md.Sequence.Stream, subject: m.Subject(),
				msgID: m.Headers().Get(jetstream.MsgIDHeader), ev: ev, name: name})
			if md.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("stream %s: read stalled after %d of %d messages", name, len(out), info.State.Msgs)
		}
	}
}

func consumerInfo(ctx context.Context, js jetstream.JetStream, durable string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, events.Stream, durable)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// settle waits until every outbox is published and every durable consumer has acknowledged
// everything it was handed. An event committed by a consumer that died before acking is redelivered only
// after the consumer's AckWait (30 s), so this may take that long: the check is meaningful only
// once those redeliveries have been made and recognised.
func settle(t *testing.T, sys *System, js jetstream.JetStream) {
	t.Helper()
	start := time.Now()
	var names []string
	testkit.Eventually(t, 2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var backlog int
		if err := sys.DB.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM orders.outbox WHERE published_at IS NULL) +
				(SELECT count(*) FROM supplier.outbox WHERE published_at IS NULL)`).Scan(&backlog); err != nil {
			return err
		}
		if backlog > 0 {
			return fmt.Errorf("%d events not published yet", backlog)
		}
		ds, err := durables(ctx, js)
		if err != nil {
			return err
		}
		names = names[:0]
		for _, d := range ds {
			info, err := consumerInfo(ctx, js, d.name)
			if err != nil {
				return fmt.Errorf("consumer %s: %w", d.name, err)
			}
			if info.NumPending > 0 || info.NumAckPending > 0 {
				return fmt.Errorf("consumer %s: %d not delivered, %d not acknowledged", d.name, info.NumPending, info.NumAckPending)
			}
			names = append(names, d.name)
		}
		return nil
	})
	t.Logf("settled %s after the load: outboxes empty, consumers %v fully acknowledged", time.Since(start).Round(100*time.Millisecond), names)
}

// verify compares what the clients were told (acknowledged orders and confirmations) with the
// stream, and the stream with what each consumer applied. scope limits the per-order checks to
// one scenario's orders; the stream-wide checks cover everything the system ever published.
func verify(t *testing.T, sys *System, js jetstream.JetStream, acked []placed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msgs, err := readStream(ctx, js, events.Stream)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}

	// The stream: each Nats-Msg-Id once, equal to the event id, and each fact announced once.
	perID := map[string]int{}
	perKey := map[string]int{}
	foreign := map[string]bool{}
	mismatched := 0
	for _, m := range msgs {
		perID[m.msgID]++
		perKey[m.key()]++
		if m.msgID != m.ev.GetEventId() {
			mismatched++
		}
		// Transitions the order service applies from others' events: every parcel.<state> but its
		// own parcel.placed and parcel.cancelled (which name no round; dispatch's cancellations of
		// parcels that failed at the door name the round they left).
		own := m.name == "parcel.placed" || m.name == "parcel.cancelled" && m.ev.GetParcelStateChanged().GetRoundId() == ""
		if strings.HasPrefix(m.name, "parcel.") && !own {
			foreign[m.ev.GetEventId()] = true
		}
	}
	dupIDs, dupKeys := 0, 0
	for _, n := range perID {
		dupIDs += n - 1
	}
	for k, n := range perKey {
		if n > 1 {
			dupKeys += n - 1
			t.Errorf("stream: %s announced %d times", k, n)
		}
	}
	if dupIDs > 0 || mismatched > 0 {
		t.Errorf("stream: %d duplicate Nats-Msg-Ids, %d Nats-Msg-Ids differing from the event id", dupIDs, mismatched)
	}
	t.Logf("stream: %d messages, %d distinct Nats-Msg-Ids, %d duplicates (by id), %d duplicates (by order/parcel and event)",
		len(msgs), len(perID), dupIDs, dupKeys)

	// Every acknowledged order: its order.placed, one parcel.placed per parcel and one
	// parcel.confirmed per acknowledged confirmation, each in the stream exactly once.
	var wantPlaced, wantParcels, wantConfirmed, missing int
	var orderIDs, parcelIDs, confirmedIDs []string
	for _, o := range acked {
		orderIDs = append(orderIDs, o.orderID)
		wantPlaced++
		missing += expectOnce(t, perKey, "order.placed/"+o.orderID)
		for _, p := range o.parcels {
			parcelIDs = append(parcelIDs, p.id)
			wantParcels++
			missing += expectOnce(t, perKey, "parcel.placed/"+p.id)
			if p.confirmed {
				confirmedIDs = append(confirmedIDs, p.id)
				wantConfirmed++
				missing += expectOnce(t, perKey, "parcel.confirmed/"+p.id)
			} else if perKey["parcel.confirmed/"+p.id] != 0 {
				t.Errorf("parcel %s confirmed in the stream but the supplier never acknowledged a confirmation", p.id)
			}
		}
	}
	t.Logf("acknowledged: %d orders, %d parcels, %d confirmations -> expected %d events in the stream, %d missing",
		wantPlaced, wantParcels, wantConfirmed, wantPlaced+wantParcels+wantConfirmed, missing)

	// Orders the service committed but never acknowledged would be lost to their clients.
	var committed int
	if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM orders.orders WHERE order_id = ANY($1::uuid[])`, orderIDs).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if committed != len(acked) {
		t.Errorf("order service holds %d of the %d acknowledged orders", committed, len(acked))
	}

	// Every consumer recorded each event of its subjects once in its inbox, in the transaction
	// of the event's effect: no more (a stray id), no fewer (a lost event).
	ds, err := durables(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		want := map[string]bool{}
		for _, m := range msgs {
			if d.wants(m.subject) {
				want[m.ev.GetEventId()] = true
			}
		}
		got := ids(t, sys, `SELECT event_id::text FROM `+d.schema+`.inbox WHERE consumer = $1`, d.name)
		sameSet(t, d.name+" inbox", got, want)
		t.Logf("consumer %s (%s): %d inbox rows for the %d stream events of %v", d.name, d.schema, len(got), len(want), d.filters)
	}

	// Tracking's effect: one timeline row per event of an order.
	timeline := ids(t, sys, `SELECT event_id::text FROM tracking.timeline_entries`)
	wantTimeline := map[string]bool{}
	for _, m := range msgs {
		if m.ev.GetOrderId() != "" && m.name != "route.planned" {
			wantTimeline[m.ev.GetEventId()] = true
		}
	}
	sameSet(t, "tracking timeline", timeline, wantTimeline)
	var tlPlaced, tlParcels, tlConfirmed int
	if err := sys.DB.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE kind = 'order.placed'),
			count(*) FILTER (WHERE kind = 'parcel.placed'),
			count(*) FILTER (WHERE kind = 'parcel.confirmed')
		FROM tracking.timeline_entries WHERE order_id = ANY($1::uuid[])`, orderIDs).Scan(&tlPlaced, &tlParcels, &tlConfirmed); err != nil {
		t.Fatal(err)
	}
	if tlPlaced != wantPlaced || tlParcels != wantParcels || tlConfirmed != wantConfirmed {
		t.Errorf("tracking timelines of the acknowledged orders: %d order.placed, %d parcel.placed, %d parcel.confirmed; want %d, %d, %d",
			tlPlaced, tlParcels, tlConfirmed, wantPlaced, wantParcels, wantConfirmed)
	}
	t.Logf("tracking: %d timeline rows for %d stream events; acknowledged orders' timelines hold %d+%d+%d entries",
		len(timeline), len(msgs), tlPlaced, tlParcels, tlConfirmed)

	// The order service's effect: one transition per foreign parcel event, and every parcel in
	// the state the clients were told.
	rows, err := sys.DB.Query(ctx, `SELECT event_id::text, count(*) FROM orders.parcel_transitions WHERE event_id IS NOT NULL GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	transitions := map[string]bool{}
	twice := 0
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		transitions[id] = true
		if n > 1 {
			twice++
			t.Errorf("order service: event %s applied %d times (parcel_transitions)", id, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sameSet(t, "order transitions from events", transitions, foreign)
	var parcels, inPlaced, inConfirmed, badPlacedRows, badConfirmedRows int
	if err := sys.DB.QueryRow(ctx, `WITH p AS (
			SELECT p.parcel_id, p.state, p.parcel_id = ANY($2::uuid[]) AS confirmed,
				(SELECT count(*) FROM orders.parcel_transitions t WHERE t.parcel_id = p.parcel_id AND t.to_state = 'PLACED') AS placed_rows,
				(SELECT count(*) FROM orders.parcel_transitions t WHERE t.parcel_id = p.parcel_id AND t.to_state = 'CONFIRMED') AS confirmed_rows
			FROM orders.parcels p WHERE p.parcel_id = ANY($1::uuid[]))
		SELECT count(*),
			count(*) FILTER (WHERE state = 'PLACED' AND NOT confirmed),
			count(*) FILTER (WHERE state = 'CONFIRMED' AND confirmed),
			count(*) FILTER (WHERE placed_rows <> 1),
			count(*) FILTER (WHERE confirmed_rows <> CASE WHEN confirmed THEN 1 ELSE 0 END)
		FROM p`, parcelIDs, confirmedIDs).Scan(&parcels, &inPlaced, &inConfirmed, &badPlacedRows, &badConfirmedRows); err != nil {
		t.Fatal(err)
	}
	if parcels != wantParcels || inPlaced+inConfirmed != wantParcels || badPlacedRows > 0 || badConfirmedRows > 0 {
		t.Errorf("order service parcels of acknowledged orders: %d of %d stored, %d PLACED + %d CONFIRMED as told (want %d + %d), %d with other than one PLACED transition, %d with a wrong number of CONFIRMED transitions",
			parcels, wantParcels, inPlaced, inConfirmed, wantParcels-wantConfirmed, wantConfirmed, badPlacedRows, badConfirmedRows)
	}
	t.Logf("order service: %d transitions from events for %d foreign parcel events, %d applied twice; acknowledged parcels: %d PLACED, %d CONFIRMED",
		len(transitions), len(foreign), twice, inPlaced, inConfirmed)

	// Nothing was given up on.
	dl, err := js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	dlInfo, err := dl.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dlInfo.State.Msgs != 0 {
		t.Errorf("%d events dead-lettered", dlInfo.State.Msgs)
	}
	t.Logf("dead letters: %d", dlInfo.State.Msgs)
}

func expectOnce(t *testing.T, perKey map[string]int, key string) (missing int) {
	t.Helper()
	switch n := perKey[key]; n {
	case 1:
		return 0
	case 0:
		t.Errorf("stream: %s missing", key)
		return 1
	default:
		return 0 // reported as a duplicate already
	}
}

func ids(t *testing.T, sys *System, query string, args ...any) map[string]bool {
	t.Helper()
	rows, err := sys.DB.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameSet reports event ids applied but not in the stream, and in the stream but not applied.
func sameSet(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	var extra, missing []string
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	for id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if len(extra)+len(missing) > 0 {
		slices.Sort(extra)
		slices.Sort(missing)
		t.Errorf("%s: %d events not in the stream %v, %d stream events missing %v", what, len(extra), head(extra), len(missing), head(missing))
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }
