package dispatch

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/uuid"
)

// FailedParcel is a courier's report that a parcel could not be delivered.
type FailedParcel struct {
	ParcelID string
	Reason   string
}

// ParcelFailed records a failure at the door in the parcel's round and puts the parcel back into
// the gate pool of the next open round with room, keeping the reason, so that round's plan takes
// it again (no longer pinned: the next round has its own couriers). The round it failed in is
// done once every parcel it had was delivered, failed or withdrawn. It runs inside the caller's transaction
// (the event consumer's, which records the event as applied in the same one).
func (s *Service) ParcelFailed(ctx context.Context, tx Tx, f FailedParcel) error {
	p, err := lockParcel(ctx, tx, f.ParcelID)
	if err != nil {
		return err
	}
	switch p.Status {
	case StatusDelivered, StatusWithdrawn:
		return nil // delivered or cancelled stands: a late or stray failure report changes nothing
	case StatusPooled:
		// Already waiting at the gate (a second report of the same failure): only the reason changes.
		return tx.RepoolParcel(ctx, p.ID, p.RoundID, f.Reason)
	}
	if err := tx.RecordOutcome(ctx, p.ID, false); err != nil {
		return err
	}
	now := s.now()
	st, err := settings(ctx, tx, p.Address.Compound)
	if err != nil {
		return err
	}
	next, err := openRound(ctx, tx, st, now)
	if err != nil {
		return err
	}
	if err := tx.RepoolParcel(ctx, p.ID, next.ID, f.Reason); err != nil {
		return err
	}
	_, err = tx.FinishRound(ctx, p.RoundID, now)
	return err
}

// ParcelDelivered records a delivery: the parcel stays on its route as delivered, no override
// moves it any more, and its round is done once every parcel it had was delivered, failed or
// withdrawn. It
// runs inside the event consumer's transaction.
func (s *Service) ParcelDelivered(ctx context.Context, tx Tx, parcelID string) error {
	p, err := lockParcel(ctx, tx, parcelID)
	if err != nil {
		return err
	}
	if p.Status == StatusDelivered || p.Status == StatusWithdrawn {
		// A withdrawn parcel was on no route: a report of its delivery is stray, and the order
		// service, where it is CANCELLED, refuses it as well.
		return nil
	}
	if err := tx.RecordOutcome(ctx, p.ID, true); err != nil {
		return err
	}
	_, err = tx.FinishRound(ctx, p.RoundID, s.now())
	return err
}

// PickedUp is a courier's report that they have a parcel in hand at the gate (out for
// delivery). RoundID and RouteID are the round and route they picked it up from, when the report
// says.
type PickedUp struct {
	ParcelID string
	RoundID  string
	RouteID  string
}

// ParcelPickedUp records that a parcel on a route is out for delivery: from now on no override
// moves it from its courier, since the order service's parcel cannot go back to ASSIGNED. A
// report about another round or route than the parcel's now (it failed and moved on, or a
// dispatcher moved it in the moment before the pick-up) and one about a parcel delivered or back
// at the gate change nothing. It runs inside the event consumer's transaction.
func (s *Service) ParcelPickedUp(ctx context.Context, tx Tx, u PickedUp) error {
	p, err := lockParcel(ctx, tx, u.ParcelID)
	if err != nil {
		return err
	}
	if p.Status != StatusAssigned || p.PickedUp || u.RoundID != "" && u.RoundID != p.RoundID ||
		u.RouteID != "" && u.RouteID != p.RouteID {
		return nil
	}
	return tx.MarkPickedUp(ctx, p.ID)
}

// WithdrawCmd asks dispatch to keep a parcel that failed at the door out of every later round:
// its household cancelled it (SPEC.md: a FAILED parcel goes back to the next round unless the
// household cancels).
type WithdrawCmd struct {
	RequestID string `json:"-"`
	ParcelID  string
	// FailedIn is the round the caller saw the parcel fail in.
	FailedIn string
	Reason   string
	// By is who cancels, recorded on the event.
	By Actor `json:"-"`
	// Compound and Household, when set, are the only compound and household the caller reaches
	// (a resident reaches their own household).
	Compound  string `json:"-"`
	Household string `json:"-"`
}

// Withdrawn is where a withdrawn parcel was waiting, and the parcel.cancelled event announcing it.
type Withdrawn struct {
	ParcelID string
	RoundID  string
	EventID  string
}

// WithdrawParcel withdraws a parcel waiting at the gate after failing at the door in cmd.FailedIn,
// and announces it cancelled (ParcelCancelled) in the same transaction: the order service records
// the cancellation from the answer or, if it never got the answer, from the event. The round lock
// it takes first (lockParcel) is the one planning takes, so a withdrawal and the plan of the
// parcel's next round cannot both win: a parcel a plan has put on a route again is refused
// (ErrIllegalTransition), as are a delivered one and one whose latest failure was not in
// cmd.FailedIn (the caller is behind). A
// parcel still on the route of the round it failed in has a failure report on its way to
// dispatch: ErrNotHeardYet, try again. Withdrawing a withdrawn parcel answers as the first
// withdrawal did.
func (s *Service) WithdrawParcel(ctx context.Context, cmd WithdrawCmd) (Withdrawn, error) {
	return once(ctx, s, "WithdrawParcel", cmd.RequestID, cmd, func(tx Tx) (Withdrawn, error) {
		p, err := lockParcel(ctx, tx, cmd.ParcelID)
		if err != nil {
			return Withdrawn{}, err
		}
		if cmd.Compound != "" && p.Address.Compound != cmd.Compound || cmd.Household != "" && p.HouseholdID != cmd.Household {
			return Withdrawn{}, fmt.Errorf("parcel %s: %w", p.ID, ErrNotFound)
		}
		out := Withdrawn{ParcelID: p.ID, RoundID: p.RoundID, EventID: CancelledEventID(p.ID)}
		switch p.Status {
		case StatusWithdrawn:
			return out, nil
		case StatusPooled:
			// The caller must have heard of its latest failure: one that knows only of an
			// earlier round's is behind a later round's delivery attempt.
			last, err := tx.LastFailure(ctx, p.ID)
			if err != nil {
				return Withdrawn{}, err
			}
			if last != cmd.FailedIn {
				return Withdrawn{}, fmt.Errorf("%w: parcel %s last failed in round %s, not %s; it waits at the gate for round %s",
					ErrIllegalTransition, p.ID, cmp.Or(last, "(none)"), cmd.FailedIn, p.RoundID)
			}
			if err := tx.WithdrawParcel(ctx, p.ID, cmd.Reason); err != nil {
				return Withdrawn{}, err
			}
			return out, tx.Publish(ctx, ParcelCancelled{Parcel: p, EventID: out.EventID, Reason: cmd.Reason, At: s.now(), By: cmd.By})
		case StatusAssigned:
			if p.RoundID == cmd.FailedIn {
				return Withdrawn{}, fmt.Errorf("%w: parcel %s is still on its route in round %s; its failure is on its way to dispatch, try again shortly",
					ErrNotHeardYet, p.ID, p.RoundID)
			}
			return Withdrawn{}, fmt.Errorf("%w: parcel %s is on a route of round %s again", ErrIllegalTransition, p.ID, p.RoundID)
		default:
			return Withdrawn{}, fmt.Errorf("%w: parcel %s is %s", ErrIllegalTransition, p.ID, p.Status)
		}
	})
}

// CancelledEventID is the id of the parcel.cancelled event of a withdrawn parcel: derived from the
// parcel, since a parcel is withdrawn once, so that every answer about it names the same event.
func CancelledEventID(parcelID string) string {
	return uuid.NewSHA1(eventSpace, []byte("cancelled/"+parcelID)).String()
}

// eventSpace is the UUID namespace of the event ids dispatch derives.
var eventSpace = uuid.MustParse("0b6f6a52-8f51-4c3e-a3f4-5d0e2c9b7a18")

// lockParcel locks a parcel's round and then the parcel: rounds before parcels, the order every
// use case takes them in, so that an override of the round and an event about one of its
// parcels wait for each other instead of deadlocking.
func lockParcel(ctx context.Context, tx Tx, id string) (Parcel, error) {
	for range 3 {
		seen, err := tx.Parcels(ctx, []string{id})
		if err != nil {
			return Parcel{}, err
		}
		if len(seen) == 0 {
			return Parcel{}, fmt.Errorf("parcel %s: %w", id, ErrNotFound)
		}
		if _, err := tx.LockRound(ctx, seen[0].RoundID); err != nil {
			return Parcel{}, err
		}
		p, err := tx.LockParcel(ctx, id)
		if err != nil || p.RoundID == seen[0].RoundID {
			return p, err
		}
		// It moved on to another round while we waited: lock that one instead.
	}
	return Parcel{}, fmt.Errorf("parcel %s keeps changing rounds", id)
}
