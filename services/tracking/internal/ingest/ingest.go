// Package ingest applies Doorstep's events to the tracking service's tables. It holds the handlers
// of its two consumers: the deliveries (each event of an order goes on the order's timeline, and
// parcels, routes and their states into the views behind round progress and supplier queues) and
// the notices (what workers posted to a compound's residents). The inbox runs each in the
// transaction that records the event id, so each event is applied once however often JetStream
// delivers it.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/inbox"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/postgres"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Subjects the deliveries consumer reads: every event, since any of them may belong to an order
// or a round. It passes over notice events, which belong to neither.
var Subjects = []string{events.StreamSubjects}

// Announcer tells the watches of every replica what changed (watch.Publisher). Handlers hand it
// to inbox.AfterCommit, so it is called only once the change is visible to every replica's
// readers, and not at all for a transaction that rolled back or an event already applied.
type Announcer interface {
	Announce(subjects ...string)
}

// Deliveries applies order.placed, parcel.<state> and route.planned events to the timelines and
// the views and, once that has committed, announces the order and the rounds they changed. In a
// group of events an order's or a parcel's event is written with the group's COMMIT, costing no
// round trip of its own (applied alone, it costs one); a planned route, which replaces a route's
// parcels, reads what the events before it wrote and takes a few.
func Deliveries(log *slog.Logger, announce Announcer) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		switch ev.GetPayload().(type) {
		case *eventsv1.Event_NoticePosted, *eventsv1.Event_NoticeWithdrawn:
			return nil // no order, parcel or round in it: the notices consumer's
		case *eventsv1.Event_RoutePlanned:
			r, err := Route(ev)
			if err != nil {
				return err
			}
			if err := inbox.SendQueued(ctx, tx); err != nil {
				return fmt.Errorf("record the events before route %s: %w", r.RouteID, err)
			}
			rounds, err := postgres.ApplyRoute(ctx, tx, r)
			if err != nil {
				return err
			}
			if subjects := roundSubjects(rounds); len(subjects) > 0 {
				inbox.AfterCommit(ctx, func() { announce.Announce(subjects...) })
			}
		default:
			d, err := Delivery(ev)
			if err != nil {
				return err
			}
			// What the writes changed is known once they have run: after the COMMIT they go with.
			rec := &postgres.Recorded{}
			if b := inbox.WithCommit(ctx); b != nil {
				postgres.QueueRecord(b, d, rec)
			} else if *rec, err = postgres.Record(ctx, tx, d); err != nil {
				return fmt.Errorf("record event %s: %w", ev.GetEventId(), err)
			}
			inbox.AfterCommit(ctx, func() {
				var subjects []string
				if rec.NewEntry {
					subjects = append(subjects, watch.OrderSubject(d.Entry.OrderID))
				}
				subjects = append(subjects, roundSubjects(rec.Rounds)...)
				if len(subjects) > 0 {
					announce.Announce(subjects...)
				}
			})
		}
		log.DebugContext(ctx, "event applied", "event", ev.GetEventId(), "order", ev.GetOrderId())
		return nil
	}
}

// Delivery maps an order.placed or parcel.<state> event to what it records: its timeline entry,
// if it belongs to an order, and the placement or state change. Like every mapping here, it
// refuses an event that can never be applied (ids that are not UUIDs, no time, no payload) with
// inbox.ErrPermanent, so it is dead-lettered at once instead of being retried.
func Delivery(ev *eventsv1.Event) (postgres.Delivery, error) {
	var d postgres.Delivery
	e, ok, err := Entry(ev)
	if err != nil {
		return postgres.Delivery{}, err
	}
	if ok {
		household := ev.GetOrderPlaced().GetHouseholdId()
		if household == "" {
			household = ev.GetParcelStateChanged().GetHouseholdId()
		}
		d.Order = timeline.Order{ID: e.OrderID, Compound: e.Compound, HouseholdID: household}
		d.Entry = &e
	}
	switch ev.GetPayload().(type) {
	case *eventsv1.Event_OrderPlaced:
		p, err := Placement(ev)
		if err != nil {
			return postgres.Delivery{}, err
		}
		d.Placement = &p
	case *eventsv1.Event_ParcelStateChanged:
		c, err := StateChange(ev)
		if err != nil {
			return postgres.Delivery{}, err
		}
		d.Change = &c
	default:
		return postgres.Delivery{}, fmt.Errorf("event %s: neither an order's nor a parcel's: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	return d, nil
}

func roundSubjects(rounds []string) []string {
	rounds = slices.Compact(slices.Sorted(slices.Values(rounds)))
	subjects := make([]string, len(rounds))
	for i, r := range rounds {
		subjects[i] = watch.RoundSubject(r)
	}
	return subjects
}

// Entry maps ev to a timeline entry. ok is false for events that belong to no order (a planned
// route names many orders; per-order route entries come with the parcels' own assigned events).
// An event that can never be stored (malformed ids, no payload) is an inbox.ErrPermanent error,
// so it is dead-lettered at once instead of being retried.
func Entry(ev *eventsv1.Event) (e timeline.Entry, ok bool, err error) {
	if ev.GetOrderId() == "" {
		return timeline.Entry{}, false, nil
	}
	if _, err := uuid.Parse(ev.GetOrderId()); err != nil {
		return timeline.Entry{}, false, fmt.Errorf("event %s: order_id %q is not a UUID: %w", ev.GetEventId(), ev.GetOrderId(), inbox.ErrPermanent)
	}
	kind, err := events.Name(ev)
	if err != nil {
		return timeline.Entry{}, false, fmt.Errorf("%w: %w", err, inbox.ErrPermanent)
	}
	if !ev.GetOccurredAt().IsValid() {
		return timeline.Entry{}, false, fmt.Errorf("event %s: occurred_at missing or invalid: %w", ev.GetEventId(), inbox.ErrPermanent)
	}
	e = timeline.Entry{
		EventID:    ev.GetEventId(),
		Compound:   ev.GetCompound(),
		OrderID:    ev.GetOrderId(),
		OccurredAt: ev.GetOccurredAt().AsTime().UTC(),
		Kind:       kind,
		Actor:      timeline.Actor{Role: roleName(ev.GetActor().GetRole()), ID: ev.GetActor().GetId()},
	}
	switch p := ev.GetPayload().(type) {
	case *eventsv1.Event_OrderPlaced:
		e.Detail = orderPlacedDetail(p.OrderPlaced)
	case *eventsv1.Event_ParcelStateChanged:
		pc := p.ParcelStateChanged
		if pc.GetParcelId() != "" {
			if _, err := uuid.Parse(pc.GetParcelId()); err != nil {
				return timeline.Entry{}, false, fmt.Errorf("event %s: parcel_id %q is not a UUID: %w", ev.GetEventId(), pc.GetParcelId(), inbox.ErrPermanent)
			}
		}
		e.ParcelID = pc.GetParcelId()
		e.State = events.StateName(pc.GetState())
		e.Detail = parcelDetail(pc)
	default:
		// A route.planned that names an order: nothing per-order to say beyond the parcel events.
		return timeline.Entry{}, false, nil
	}
	return e, true, nil
}

func orderPlacedDetail(p *eventsv1.OrderPlaced) string {
	n := len(p.GetParcels())
	noun := "parcels"
	if n == 1 {
		noun = "parcel"
	}
	d := fmt.Sprintf("%d %s, total %s", n, noun, timeline.Yuan(p.GetTotalFen()))
	if p.GetChannel() != "" {
		d += ", via " + p.GetChannel()
	}
	return d
}

// parcelDetail says what a reader of the timeline wants to know about a transition: why it was
// refused or failed, what the supplier confirmed, which round and courier took it, how it was left.
func parcelDetail(p *eventsv1.ParcelStateChanged) string {
	var parts []string
	switch p.GetState() {
	case typesv1.ParcelState_PARCEL_STATE_CONFIRMED:
		parts = append(parts, "confirmed total "+timeline.Yuan(p.GetConfirmedTotalFen()))
	case typesv1.ParcelState_PARCEL_STATE_DELIVERED:
		if m := p.GetDeliveryMethod(); m != "" {
			parts = append(parts, strings.ReplaceAll(m, "_", " "))
		}
	}
	if r := p.GetReason(); r != "" {
		parts = append(parts, "reason: "+r)
	}
	// A cancellation after a failure at the door names the round whose gate pool the parcel
	// left, one it never went out in: not worth a reader's attention.
	if r := p.GetRoundId(); r != "" && p.GetState() != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		parts = append(parts, "round "+r)
	}
	if c := p.GetCourierId(); c != "" {
		parts = append(parts, "courier "+c)
	}
	return strings.Join(parts, ", ")
}

// roleName is a role as the timeline stores it: ROLE_RESIDENT -> "resident".
func roleName(r typesv1.Role) string {
	if r == typesv1.Role_ROLE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}
