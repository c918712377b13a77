package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/pkg/pgkit"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/notices"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/jackc/pgx/v5"
)

var workerLi = &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}

func noticePosted(compound, noticeID string, at time.Time, title string, buildings ...string) *eventsv1.Event {
	ev := events.New(compound, workerLi, "", at)
	ev.Payload = &eventsv1.Event_NoticePosted{NoticePosted: &eventsv1.NoticePosted{NoticeId: noticeID, Title: title,
		Text: title + ", in full", Buildings: buildings}}
	return ev
}

func noticeWithdrawn(compound, noticeID string, at time.Time) *eventsv1.Event {
	ev := events.New(compound, workerLi, "", at)
	ev.Payload = &eventsv1.Event_NoticeWithdrawn{NoticeWithdrawn: &eventsv1.NoticeWithdrawn{NoticeId: noticeID}}
	return ev
}

func TestPostingAndWithdrawal(t *testing.T) {
	posted := noticePosted("haixin", "n1", at, "Testing at 8", "3", "5", "3")
	got, err := Posting(posted)
	if err != nil {
		t.Fatal(err)
	}
	want := notices.Posted{Compound: "haixin", NoticeID: "n1", Title: "Testing at 8", Text: "Testing at 8, in full",
		Buildings: []string{"3", "5"}, PostedBy: notices.Actor{Role: "worker", ID: "worker-li"}, At: at, EventID: posted.GetEventId()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Posting =\n %+v\nwant\n %+v", got, want)
	}
	withdrawn := noticeWithdrawn("haixin", "n1", at.Add(time.Hour))
	w, err := Withdrawal(withdrawn)
	if err != nil {
		t.Fatal(err)
	}
	if want := (notices.Withdrawn{Compound: "haixin", NoticeID: "n1", At: at.Add(time.Hour), EventID: withdrawn.GetEventId()}); w != want {
		t.Errorf("Withdrawal = %+v, want %+v", w, want)
	}
}

func TestNoticeMappingsRefuseMalformedEventsPermanently(t *testing.T) {
	noID := noticePosted("haixin", "", at, "t")
	noTime := noticePosted("haixin", "n1", at, "t")
	noTime.OccurredAt = nil
	badCompound := noticeWithdrawn("Hai Xin", "n1", at)
	badEventID := noticeWithdrawn("haixin", "n1", at)
	badEventID.EventId = "event-1"
	noWithdrawnID := noticeWithdrawn("haixin", "", at)
	for name, tc := range map[string]struct {
		ev *eventsv1.Event
		fn func(*eventsv1.Event) error
	}{
		"posted without notice id":     {noID, func(ev *eventsv1.Event) error { _, err := Posting(ev); return err }},
		"posted without time":          {noTime, func(ev *eventsv1.Event) error { _, err := Posting(ev); return err }},
		"withdrawn, bad compound":      {badCompound, func(ev *eventsv1.Event) error { _, err := Withdrawal(ev); return err }},
		"withdrawn, event id not UUID": {badEventID, func(ev *eventsv1.Event) error { _, err := Withdrawal(ev); return err }},
		"withdrawn without notice id":  {noWithdrawnID, func(ev *eventsv1.Event) error { _, err := Withdrawal(ev); return err }},
	} {
		if err := tc.fn(tc.ev); !errors.Is(err, inbox.ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}

// announcements counts what the notices consumer announced, by subject.
type announcements struct {
	mu  sync.Mutex
	got []string
}

func (a *announcements) Announce(subjects ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, subjects...)
}

func (a *announcements) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.got
	a.got = nil
	return out
}

// The notices consumer applies each event once however often it is delivered, in whatever order
// a notice's two events arrive, keeps what a notice says to the buildings it names, and announces
// a change of the notices in force once it has committed (and only then).
func TestNoticesConsumer(t *testing.T) {
	ctx := context.Background()
	pool, err := pgkit.Open(ctx, testkit.Postgres(t), "tracking")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgkit.Migrate(ctx, pool, inbox.Migrations(), postgres.Migrations()); err != nil {
		t.Fatal(err)
	}
	store := &postgres.Store{Pool: pool}
	announced := &announcements{}
	consumer := &inbox.Consumer{Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Durable: "tracking-notices",
		Handle: Notices(slog.New(slog.NewTextHandler(io.Discard, nil)), announced)}
	haixin := watch.NoticesSubject("haixin")

	// apply delivers ev and wants exactly the announcements want.
	apply := func(ev *eventsv1.Event, want ...string) {
		t.Helper()
		if err := consumer.Apply(ctx, ev); err != nil {
			t.Fatalf("Apply %s: %v", ev.GetEventId(), err)
		}
		if got := announced.take(); !slices.Equal(got, want) {
			t.Fatalf("announced %q, want %q", got, want)
		}
	}
	// inForce wants the notice ids in force for building, newest first.
	inForce := func(compound, building string, want ...string) {
		t.Helper()
		list, err := store.Notices(ctx, compound, building)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range list {
			got = append(got, n.NoticeID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("notices in force in %s for building %q: %q, want %q", compound, building, got, want)
		}
	}

	everyone := noticePosted("haixin", "everyone", at, "Testing at 8 in the square")
	b3and5 := noticePosted("haixin", "b3-and-5", at.Add(time.Hour), "Water off", "3", "5")
	b7 := noticePosted("haixin", "b7", at.Add(2*time.Hour), "Lift repairs", "7")
	elsewhere := noticePosted("yuyuan", "everyone", at.Add(3*time.Hour), "Yuyuan's own notice")

	t.Run("post", func(t *testing.T) {
		apply(everyone, haixin)
		apply(b3and5, haixin)
		apply(b7, haixin)
		apply(elsewhere, watch.NoticesSubject("yuyuan"))
		list, err := store.Notices(ctx, "haixin", "3")
		if err != nil {
			t.Fatal(err)
		}
		want := []notices.Notice{
			{NoticeID: "b3-and-5", Title: "Water off", Text: "Water off, in full", Buildings: []string{"3", "5"},
				PostedBy: notices.Actor{Role: "worker", ID: "worker-li"}, PostedAt: at.Add(time.Hour)},
			{NoticeID: "everyone", Title: "Testing at 8 in the square", Text: "Testing at 8 in the square, in full",
				Buildings: []string{}, PostedBy: notices.Actor{Role: "worker", ID: "worker-li"}, PostedAt: at},
		}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("notices for building 3 =\n %+v\nwant\n %+v", list, want)
		}
	})

	t.Run("building targeting", func(t *testing.T) {
		inForce("haixin", "", "b7", "b3-and-5", "everyone")
		inForce("haixin", "5", "b3-and-5", "everyone")
		inForce("haixin", "7", "b7", "everyone")
		inForce("haixin", "9", "everyone")
		inForce("yuyuan", "", "everyone")
		inForce("nowhere", "")
	})

	t.Run("duplicate delivery", func(t *testing.T) {
		apply(b3and5) // a redelivery: the inbox knows it, nothing changes or is announced
		// The same posting replayed under another consumer's eyes (past the inbox) leaves one row.
		if err := pgkit.Tx(ctx, pool, func(tx pgx.Tx) error {
			p, err := Posting(b3and5)
			if err != nil {
				return err
			}
			changed, err := postgres.PostNotice(ctx, tx, p)
			if changed {
				t.Errorf("the same posting again changed the notices in force")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		inForce("haixin", "3", "b3-and-5", "everyone")
	})

	t.Run("withdraw", func(t *testing.T) {
		withdrawn := noticeWithdrawn("haixin", "b3-and-5", at.Add(4*time.Hour))
		apply(withdrawn, haixin)
		apply(withdrawn) // redelivered
		inForce("haixin", "3", "everyone")
		inForce("haixin", "", "b7", "everyone")
		// Withdrawing again (another worker at the same time) changes nothing in force.
		apply(noticeWithdrawn("haixin", "b3-and-5", at.Add(5*time.Hour)))
		// A withdrawal in one compound leaves another compound's notice of the same id alone.
		apply(noticeWithdrawn("haixin", "everyone", at.Add(4*time.Hour)), haixin)
		inForce("haixin", "", "b7")
		inForce("yuyuan", "", "everyone")
	})

	t.Run("withdrawn before posted", func(t *testing.T) {
		// The withdrawal overtakes the posting: nothing was in force, so nothing is announced, and
		// the posting that follows stays out of force however often it is delivered.
		late := noticePosted("haixin", "late", at.Add(6*time.Hour), "Parcel pick-up moves to gate 2", "3")
		apply(noticeWithdrawn("haixin", "late", at.Add(7*time.Hour)))
		apply(late)
		apply(late)
		inForce("haixin", "", "b7")
		inForce("haixin", "3")
	})

	t.Run("rolled back", func(t *testing.T) {
		// A posting whose transaction fails is not in force and not announced; its redelivery is.
		failing := &inbox.Consumer{Pool: pool, Log: consumer.Log, Durable: consumer.Durable,
			Handle: func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
				if err := consumer.Handle(ctx, tx, ev); err != nil {
					return err
				}
				return errors.New("the commit never happens")
			}}
		again := noticePosted("haixin", "again", at.Add(8*time.Hour), "Testing again at 9")
		if err := failing.Apply(ctx, again); err == nil {
			t.Fatal("a failing handler reported success")
		}
		if got := announced.take(); len(got) != 0 {
			t.Fatalf("announced %q for a rolled-back posting", got)
		}
		inForce("haixin", "", "b7")
		apply(again, haixin)
		inForce("haixin", "", "again", "b7")
	})

	t.Run("not a notice", func(t *testing.T) {
		// Only notice subjects reach this consumer; anything else is dead-lettered at once.
		if err := consumer.Apply(ctx, parcelEvent(typesv1.ParcelState_PARCEL_STATE_READY, nil, nil)); !errors.Is(err, inbox.ErrPermanent) {
			t.Errorf("a parcel event: %v, want ErrPermanent", err)
		}
	})
}

// The deliveries consumer reads every subject, notices included: it passes over them rather than
// dead-letter them.
func TestDeliveriesPassOverNotices(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	announced := &announcements{}
	for _, ev := range []*eventsv1.Event{noticePosted("haixin", "n1", at, "t", "3"), noticeWithdrawn("haixin", "n1", at)} {
		if _, ok, err := Entry(ev); ok || err != nil {
			t.Errorf("Entry(%T): ok=%v err=%v, want skipped", ev.GetPayload(), ok, err)
		}
		// No transaction: passing over a notice must not touch the database.
		if err := Deliveries(log, announced)(context.Background(), nil, ev); err != nil {
			t.Errorf("Deliveries(%T): %v", ev.GetPayload(), err)
		}
	}
	if got := announced.take(); len(got) != 0 {
		t.Errorf("announced %q for notices", got)
	}
}
