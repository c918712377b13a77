// Package consumer applies the parcel transitions that other services publish (the suppliers'
// confirmations, rejections and expiries, dispatch's check-ins, routes and withdrawals of
// cancelled parcels, the couriers' deliveries) to the order service's parcels, which are the
// record residents and dispatch read.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorstep/doorstep/pkg/inbox"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/jackc/pgx/v5"
)

// Purpose names the durable consumer, which servicekit prefixes with the service name.
const (
	Purpose = "parcels" // the durable is "order-parcels"
)

// Subjects are the events the consumer applies: the other services' parcel transitions. The
// order service's own parcel.placed are left out, so they cost it no delivery, transaction or
// inbox row (one of every order's events). parcel.cancelled is in: dispatch announces the
// cancellation of a parcel that failed at the door, which the order service records from the
// event if it never got dispatch's answer; its own cancellations come back as no-ops.
var Subjects = []string{
	"doorstep.*.parcel.confirmed", "doorstep.*.parcel.rejected", "doorstep.*.parcel.expired", "doorstep.*.parcel.ready",
	"doorstep.*.parcel.at_gate", "doorstep.*.parcel.assigned", "doorstep.*.parcel.out_for_delivery",
	"doorstep.*.parcel.delivered", "doorstep.*.parcel.failed", "doorstep.*.parcel.cancelled",
}

// Applier applies one reported change inside the inbox transaction.
type Applier interface {
	ApplyChange(ctx context.Context, tx pgx.Tx, c order.Change) error
}

// Handler returns the inbox handler. Errors (an unknown parcel, a move that is not legal yet)
// are returned for the inbox to retry with backoff: events from different publishers arrive out
// of order, and a supplier may confirm a parcel before the order that holds it has committed. A
// move out of a parcel that has ended can never become legal: it is dead-lettered at once.
func Handler(a Applier) inbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
		sc := ev.GetParcelStateChanged()
		if sc == nil {
			return fmt.Errorf("%w: event %s is not a parcel state change", inbox.ErrPermanent, ev.GetEventId())
		}
		to := pbconv.State(sc.GetState())
		switch to {
		case "":
			return fmt.Errorf("%w: event %s: unknown parcel state %v", inbox.ErrPermanent, ev.GetEventId(), sc.GetState())
		case order.Placed:
			// This service's own announcement (outside Subjects; harmless if a replay brings one).
			return nil
		}
		at := time.Now().UTC()
		if ev.GetOccurredAt() != nil {
			// The transition happened when the publisher made it, not when it reached us.
			at = ev.GetOccurredAt().AsTime().UTC()
		}
		c := order.Change{
			EventID: ev.GetEventId(), ParcelID: sc.GetParcelId(), To: to, Actor: pbconv.Actor(ev.GetActor()),
			At: at, Reason: sc.GetReason(), ConfirmedTotalFen: sc.GetConfirmedTotalFen(),
			RoundID: sc.GetRoundId(), RouteID: sc.GetRouteId(), CourierID: sc.GetCourierId(), DeliveryMethod: sc.GetDeliveryMethod(),
		}
		for _, l := range sc.GetConfirmedLines() {
			c.ConfirmedLines = append(c.ConfirmedLines, order.ConfirmedLine{ItemID: l.GetItemId(), Quantity: l.GetQuantity(), AmountFen: l.GetAmountFen()})
		}
		if err := a.ApplyChange(ctx, tx, c); err != nil {
			if errors.Is(err, order.ErrEnded) {
				// No retry makes a move out of an ended parcel legal: dead-letter it now.
				err = fmt.Errorf("%w: %w", inbox.ErrPermanent, err)
			}
			return fmt.Errorf("event %s (parcel %s -> %s): %w", ev.GetEventId(), c.ParcelID, to, err)
		}
		return nil
	}
}
