// Package order is the order service's domain: households, orders split into one parcel per
// supplier, the parcel state machine, and the use cases that place and cancel orders. It knows
// neither gRPC nor PostgreSQL; the adapters in the sibling packages map to and from it.
package order

import (
	"errors"
	"fmt"
)

// Sentinel errors; grpcapi maps each to one status code.
var (
	// ErrNotFound: no such household, order, parcel or item.
	ErrNotFound = errors.New("not found")
	// ErrIllegalTransition: the parcel state machine forbids the change (FAILED_PRECONDITION).
	ErrIllegalTransition = errors.New("illegal parcel transition")
	// ErrEnded: the parcel has ended (State.Ended), so no change will ever be legal again; it
	// comes wrapped together with ErrIllegalTransition.
	ErrEnded = errors.New("parcel has ended")
	// ErrConflict: a request id was reused for a different request (ALREADY_EXISTS).
	ErrConflict = errors.New("request id already used for a different request")
	// ErrNothingToCancel: every parcel of the order is past the point of cancelling.
	ErrNothingToCancel = errors.New("nothing left to cancel")
	// ErrRefused: a supplier refused (out of stock, ration exceeded, already confirmed).
	ErrRefused = errors.New("refused by supplier")
	// ErrInvalid: a peer judged our request invalid.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: a peer could not be reached or did not answer in time; retry later.
	ErrUnavailable = errors.New("unavailable")
	// ErrCampaignState: a campaign is not in the state the call needs (FAILED_PRECONDITION).
	ErrCampaignState = errors.New("campaign state")
	// ErrAborted: a concurrent attempt of the same request got in the way; retry (ABORTED).
	ErrAborted = errors.New("aborted")
)

// FieldError is bad input discovered past the edge (it needs data, e.g. an unknown item id);
// it names the request field so the client can point at it.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Is makes a FieldError an ErrInvalid for callers that only care about the class.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }
