package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/notices"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// NoticeSubjects is what the notices consumer reads: notice.posted and notice.withdrawn of every
// compound (doorstep.<compound>.notice.<event>), and nothing of the parcel traffic.
var NoticeSubjects = []string{"doorstep.*.notice.>"}

// Notices applies notice.posted and notice.withdrawn to the notices table and, once that has
// committed, announces the compound's notices changed.
func Notices(log *slog.Logger, announce Announcer) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		var changed bool
		switch ev.GetPayload().(type) {
		case *eventsv1.Event_NoticePosted:
			p, err := Posting(ev)
			if err != nil {
				return err
			}
			if changed, err = postgres.PostNotice(ctx, tx, p); err != nil {
				return err
			}
		case *eventsv1.Event_NoticeWithdrawn:
			w, err := Withdrawal(ev)
			if err != nil {
				return err
			}
			if changed, err = postgres.WithdrawNotice(ctx, tx, w); err != nil {
				return err
			}
		default:
			// Only notice events reach this consumer; one whose payload this build does not know
			// can never be applied by it.
			return fmt.Errorf("event %s: not a notice event this version knows: %w", ev.GetEventId(), inbox.ErrPermanent)
		}
		if changed {
			compound := ev.GetCompound()
			inbox.AfterCommit(ctx, func() { announce.Announce(watch.NoticesSubject(compound)) })
		}
		log.DebugContext(ctx, "notices updated", "event", ev.GetEventId(), "compound", ev.GetCompound(), "changed", changed)
		return nil
	}
}

// Posting maps a notice.posted event. Like Withdrawal, it refuses an event that can never be
// applied (no compound, notice id or time, an event id that is not a UUID) with inbox.ErrPermanent.
func Posting(ev *eventsv1.Event) (notices.Posted, error) {
	np := ev.GetNoticePosted()
	if err := checkNoticeEnvelope(ev, np.GetNoticeId()); err != nil {
		return notices.Posted{}, err
	}
	// A building named twice reaches it once; the order the worker gave them is kept.
	var buildings []string
	for _, b := range np.GetBuildings() {
		if !slices.Contains(buildings, b) {
			buildings = append(buildings, b)
		}
	}
	return notices.Posted{Compound: ev.GetCompound(), NoticeID: np.GetNoticeId(), Title: np.GetTitle(), Text: np.GetText(),
		Buildings: buildings, PostedBy: notices.Actor{Role: roleName(ev.GetActor().GetRole()), ID: ev.GetActor().GetId()},
		At: ev.GetOccurredAt().AsTime().UTC(), EventID: ev.GetEventId()}, nil
}

// Withdrawal maps a notice.withdrawn event.
func Withdrawal(ev *eventsv1.Event) (notices.Withdrawn, error) {
	nw := ev.GetNoticeWithdrawn()
	if err := checkNoticeEnvelope(ev, nw.GetNoticeId()); err != nil {
		return notices.Withdrawn{}, err
	}
	return notices.Withdrawn{Compound: ev.GetCompound(), NoticeID: nw.GetNoticeId(),
		At: ev.GetOccurredAt().AsTime().UTC(), EventID: ev.GetEventId()}, nil
}

func checkNoticeEnvelope(ev *eventsv1.Event, noticeID string) error {
	if !events.ValidCompound(ev.GetCompound()) {
		return fmt.Errorf("event %s: invalid compound %q: %w", ev.GetEventId(), ev.GetCompound(), inbox.ErrPermanent)
	}
	if _, err := uuid.Parse(ev.GetEventId()); err != nil {
		return fmt.Errorf("event %s: event_id is not a UUID: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	if noticeID == "" {
		return fmt.Errorf("event %s: notice_id missing: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	if !ev.GetOccurredAt().IsValid() {
		return fmt.Errorf("event %s: occurred_at missing or invalid: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	return nil
}
