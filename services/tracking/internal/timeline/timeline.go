// Package timeline is the tracking service's domain: an order's life as the events that happened
// to it, oldest first. It knows nothing of protobuf, gRPC or PostgreSQL.
package timeline

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound means no event of the order has been recorded (an unknown order, or one whose
// events have not arrived yet).
var ErrNotFound = errors.New("timeline not found")

// Actor is who caused an event.
type Actor struct {
	// Role in lower case, e.g. "resident", "supplier", "courier", "system".
	Role string
	ID   string
}

// Entry is one event of an order's life.
type Entry struct {
	EventID    string
	Compound   string
	OrderID    string
	OccurredAt time.Time
	// Kind is the event's subject suffix, e.g. "order.placed" or "parcel.delivered".
	Kind string
	// ParcelID is empty for events about the whole order.
	ParcelID string
	// State is the parcel's state after the event in lower case (e.g. "out_for_delivery"), or
	// empty when the event changed no parcel.
	State  string
	Actor  Actor
	Detail string
}

// Order is whose order it is, as far as the events have said.
type Order struct {
	ID       string
	Compound string
	// HouseholdID is empty until an event names the household.
	HouseholdID string
}

// Reader reads timelines.
type Reader interface {
	// Order returns whose order it is, or ErrNotFound when no event of the order is recorded.
	Order(ctx context.Context, orderID string) (Order, error)
	// OrderTimeline returns the order's entries ordered by occurred_at, then event_id (UUIDv7 ids
	// are time-ordered, so the tie-break keeps events of one instant in publication order).
	// It returns ErrNotFound when the order has no entry.
	OrderTimeline(ctx context.Context, orderID string) ([]Entry, error)
}

// Yuan formats fen as yuan for people: 3560 -> "¥35.60". Money is never a float, so neither is
// this arithmetic.
func Yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, fen/100, fen%100)
}
