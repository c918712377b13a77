package dispatch

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

// horizonDays bounds how far ahead check-in looks for an open round: rounds are planned one at a
// time, so running out means something is wrong rather than busy.
const horizonDays = 14

var roundIDRE = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)-(\d{4}-\d{2}-\d{2})-([a-z][a-z0-9]{0,7})$`)

// ParseRoundID splits a round id, <compound>-<YYYY-MM-DD>-<slot> (rounds.ID), into its parts.
func ParseRoundID(id string) (compound, date, slot string, err error) {
	m := roundIDRE.FindStringSubmatch(id)
	if m == nil {
		return "", "", "", fmt.Errorf("%w: round id %q is not <compound>-<YYYY-MM-DD>-<slot>", ErrInvalid, id)
	}
	if _, err := time.Parse(rounds.DateLayout, m[2]); err != nil {
		return "", "", "", fmt.Errorf("%w: round id %q has no valid date", ErrInvalid, id)
	}
	return strings.TrimSuffix(m[1], "-"), m[2], m[3], nil
}

// settings are the compound's round rules: stored ones, else the defaults.
func settings(ctx context.Context, tx Tx, compound string) (Settings, error) {
	st, ok, err := tx.Settings(ctx, compound)
	if err != nil || !ok {
		return DefaultSettings(compound), err
	}
	return st, nil
}

// Settings are a compound's round rules (the defaults when never set).
func (s *Service) Settings(ctx context.Context, compound string) (Settings, error) {
	var out Settings
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		out, err = settings(ctx, tx, compound)
		return err
	})
	return out, err
}

// UpdateSettings sets a compound's round rules (the transport has validated the schedule). They
// apply to rounds from now on: an open round whose cutoff is still ahead takes its slot's new
// times, and one whose slot is gone is dropped if no parcel joined it (one with parcels keeps its
// times and closes as it was due to). Closed, planned and done rounds are history.
func (s *Service) UpdateSettings(ctx context.Context, requestID string, st Settings) (Settings, error) {
	if err := st.Schedule.Validate(); err != nil {
		return Settings{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return once(ctx, s, "UpdateCompoundSettings", requestID, st, func(tx Tx) (Settings, error) {
		if err := tx.SaveSettings(ctx, st); err != nil {
			return Settings{}, err
		}
		open, err := tx.OpenRoundsAfter(ctx, st.Compound, s.now())
		if err != nil {
			return Settings{}, err
		}
		for _, r := range open {
			// Read again under the lock: a check-in or plan we waited for shows here.
			if r, err = tx.LockRound(ctx, r.ID); err != nil {
				return Settings{}, err
			}
			if r.State != RoundOpen {
				continue
			}
			i := slices.IndexFunc(st.Schedule, func(sl rounds.Slot) bool { return sl.Name == r.Slot })
			switch {
			case i >= 0:
				day, err := st.Schedule[i:i+1].On(r.Compound, r.Date)
				if err != nil {
					return Settings{}, err
				}
				if err := tx.RescheduleRound(ctx, r.ID, day[0].Cutoff, day[0].Departs); err != nil {
					return Settings{}, err
				}
			case r.Joined == 0:
				if err := tx.DeleteRound(ctx, r.ID); err != nil {
					return Settings{}, err
				}
			}
		}
		return st, nil
	})
}

// ensureDay creates the compound's rounds of date from its schedule, if they do not exist yet.
func ensureDay(ctx context.Context, tx Tx, st Settings, date string) error {
	day, err := st.Schedule.On(st.Compound, date)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	want := make([]Round, len(day))
	for i, r := range day {
		want[i] = Round{ID: r.ID, Compound: r.Compound, Date: r.Date, Slot: r.Slot, Cutoff: r.Cutoff, Departs: r.Departs,
			State: RoundOpen}
	}
	return tx.EnsureRounds(ctx, want)
}

// Rounds are a compound's rounds of date (today when empty), opened if they do not exist yet;
// rounds whose cutoff has passed show as closed.
func (s *Service) Rounds(ctx context.Context, compound, date string) ([]Round, error) {
	now := s.now()
	if date == "" {
		date = rounds.Date(now)
	}
	var out []Round
	err := s.store.InTx(ctx, func(tx Tx) error {
		st, err := settings(ctx, tx, compound)
		if err != nil {
			return err
		}
		if err := ensureDay(ctx, tx, st, date); err != nil {
			return err
		}
		if err := tx.CloseDueRounds(ctx, compound, now); err != nil {
			return err
		}
		out, err = tx.RoundsOn(ctx, compound, date)
		return err
	})
	return out, err
}

// openRound is the round a parcel arriving at the gate at now joins: the first open round,
// today's or a later day's, whose cutoff is still ahead and which has room. It is locked so that
// it cannot be planned (nor, with a cap, filled by another check-in) before the parcel is in.
func openRound(ctx context.Context, tx Tx, st Settings, now time.Time) (Round, error) {
	if err := tx.CloseDueRounds(ctx, st.Compound, now); err != nil {
		return Round{}, err
	}
	date := rounds.Date(now)
	for range horizonDays {
		if err := ensureDay(ctx, tx, st, date); err != nil {
			return Round{}, err
		}
		ids, err := tx.OpenRoundIDs(ctx, st.Compound, date, now)
		if err != nil {
			return Round{}, err
		}
		for _, id := range ids {
			// With a cap, check-ins into one round take turns so that together they cannot pass it;
			// without one they only keep the round from being planned under them.
			lock := tx.ShareRound
			if st.RoundCapacity > 0 {
				lock = tx.LockRound
			}
			r, err := lock(ctx, id)
			if err != nil {
				return Round{}, err
			}
			// Read again under the lock: a plan or close we waited for shows here.
			if r.State == RoundOpen && r.Cutoff.After(now) && hasRoom(st, r) {
				return r, nil
			}
		}
		d, _ := time.ParseInLocation(rounds.DateLayout, date, rounds.Shanghai)
		date = d.AddDate(0, 0, 1).Format(rounds.DateLayout)
	}
	return Round{}, fmt.Errorf("%w: compound %s has no open round with room in the next %d days", ErrNoOpenRound,
		st.Compound, horizonDays)
}

func hasRoom(st Settings, r Round) bool { return st.RoundCapacity == 0 || r.Parcels < st.RoundCapacity }

// CloseRoundCmd stops a round taking parcels before its cutoff.
type CloseRoundCmd struct {
	RequestID string `json:"-"`
	RoundID   string
}

// CloseRound closes an open round by hand; closing a closed round changes nothing, and a planned
// or done round cannot be closed.
func (s *Service) CloseRound(ctx context.Context, cmd CloseRoundCmd) (Round, error) {
	return once(ctx, s, "CloseRound", cmd.RequestID, cmd, func(tx Tx) (Round, error) {
		now := s.now()
		r, err := lockRound(ctx, tx, cmd.RoundID, now)
		if err != nil {
			return Round{}, err
		}
		switch r.State {
		case RoundOpen:
			if err := tx.SetRoundState(ctx, r.ID, RoundClosed, now); err != nil {
				return Round{}, err
			}
			r.State = RoundClosed
		case RoundPlanned, RoundDone:
			return Round{}, fmt.Errorf("%w: round %s is %s and takes no parcels already", ErrIllegalTransition, r.ID, r.State)
		}
		return r, nil
	})
}

// lockRound locks a round, closing it if its cutoff has passed; ErrNotFound if nobody opened it.
func lockRound(ctx context.Context, tx Tx, id string, now time.Time) (Round, error) {
	r, err := tx.LockRound(ctx, id)
	if err != nil {
		return Round{}, err
	}
	if r.State == RoundOpen && !r.Cutoff.After(now) {
		if err := tx.SetRoundState(ctx, r.ID, RoundClosed, r.Cutoff); err != nil {
			return Round{}, err
		}
		r.State = RoundClosed
	}
	return r, nil
}

// Duty is one courier's duty in one round.
type Duty struct {
	RequestID string `json:"-"`
	RoundID   string
	CourierID string
	OnDuty    bool
}

// SetDuty puts a courier on or off duty for one round, overriding the roster's on_duty there; it
// counts from the round's next plan or re-plan. A done round's duty is history.
func (s *Service) SetDuty(ctx context.Context, d Duty) (Duty, error) {
	return once(ctx, s, "SetCourierDuty", d.RequestID, d, func(tx Tx) (Duty, error) {
		// A courier can be taken off a round ahead of time (tomorrow morning's, say), before anyone
		// listed that day: its rounds open here, as ListRounds would open them.
		compound, date, _, err := ParseRoundID(d.RoundID)
		if err != nil {
			return Duty{}, err
		}
		st, err := settings(ctx, tx, compound)
		if err != nil {
			return Duty{}, err
		}
		if err := ensureDay(ctx, tx, st, date); err != nil {
			return Duty{}, err
		}
		r, err := lockRound(ctx, tx, d.RoundID, s.now())
		if err != nil {
			return Duty{}, err
		}
		if r.State == RoundDone {
			return Duty{}, fmt.Errorf("%w: round %s is done", ErrIllegalTransition, r.ID)
		}
		if _, err := courier(ctx, tx, r.Compound, d.CourierID); err != nil {
			return Duty{}, err
		}
		return d, tx.SetDuty(ctx, r.ID, d.CourierID, d.OnDuty)
	})
}

// courier is one courier of the compound; ErrNotFound if there is none.
func courier(ctx context.Context, tx Tx, compound, id string) (Courier, error) {
	cs, err := tx.Couriers(ctx, compound)
	if err != nil {
		return Courier{}, err
	}
	i := slices.IndexFunc(cs, func(c Courier) bool { return c.ID == id })
	if i < 0 {
		return Courier{}, fmt.Errorf("courier %s of %s: %w", id, compound, ErrNotFound)
	}
	return cs[i], nil
}

// roundCouriers are the compound's couriers with their duty in round r: the roster's, unless
// SetCourierDuty said otherwise for r.
func roundCouriers(ctx context.Context, tx Tx, r Round) ([]Courier, error) {
	cs, err := tx.Couriers(ctx, r.Compound)
	if err != nil {
		return nil, err
	}
	duty, err := tx.Duty(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	for i, c := range cs {
		if on, ok := duty[c.ID]; ok {
			cs[i].OnDuty = on
		}
	}
	return cs, nil
}
