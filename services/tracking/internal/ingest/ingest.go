// Package ingest applies Doorstep's events to the tracking service's tables. It holds the handlers
// of its three consumers: the timeline (every event of an order, and whose order it is), the
// views (parcels, routes and their states, for round progress and supplier queues) and the
// notices (what workers posted to a compound's residents). The inbox runs
// each in the transaction that records the event id, so each event is applied once however often
// JetStream delivers it.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
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

// Subjects the timeline and views consumers read: every event, since any of them may belong to an
// order or a round. Both pass over notice events, which belong to neither.
var Subjects = []string{events.StreamSubjects}

// Announcer tells the watches of every replica what changed (watch.Publisher). Handlers hand it
// to inbox.AfterCommit, so it is called only once the change is visible to every replica's
// readers, and not at all for a transaction that rolled back or an event already applied.
type Announcer interface {
	Announce(subjects ...string)
}

// Timeline stores each event that belongs to an order, notes whose order it is, and, once that
// has committed, announces the order's change.
func Timeline(log *slog.Logger, announce Announcer) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		e, ok, err := Entry(ev)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		household := ev.GetOrderPlaced().GetHouseholdId()
		if household == "" {
			household = ev.GetParcelStateChanged().GetHouseholdId()
		}
		inserted, err := postgres.Insert(ctx, tx, timeline.Order{ID: e.OrderID, Compound: e.Compound, HouseholdID: household}, e)
		if err != nil {
			return err
		}
		if inserted {
			inbox.AfterCommit(ctx, func() { announce.Announce(watch.OrderSubject(e.OrderID)) })
		}
		log.DebugContext(ctx, "timeline entry stored", "order", e.OrderID, "kind", e.Kind, "event", e.EventID, "new", inserted)
		return nil
	}
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
	if r := p.GetRoundId(); r != "" {
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
