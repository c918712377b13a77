// Package schedule tells the supplier service each compound's delivery rounds, which the dispatch
// service owns: it asks dispatch's GetCompoundSettings and keeps the answer, asking again in the
// background once it is a minute old. Only a compound's first reservation, or the first after a
// quiet spell, waits for dispatch. While dispatch cannot say (unreachable, hung) the last answer
// stays in use, and rounds.Default stands in for a compound it never answered for or a dispatch
// that does not offer the call (which then runs the default rounds itself). So reservations
// never wait on dispatch for long or fail because of it.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TTL is how long a compound's schedule is used before dispatch is asked again: round times
// change rarely, and a minute's delay in seeing a change only moves which round a reservation
// made in that minute is due for. An answer is served while the next question is out, for up to
// another TTL; after a longer quiet spell the next reservation waits for a fresh one.
const TTL = time.Minute

// callTimeout bounds one question to dispatch, retries included: how long a reservation that
// waits for an answer (a compound's first, or the first once its answer is two minutes old) may
// wait while dispatch does not answer.
const callTimeout = 2 * time.Second

// Source answers compounds' schedules. The zero value is not usable; see New.
type Source struct {
	client  dispatchv1.DispatchServiceClient // nil: rounds.Default everywhere
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration // callTimeout
	// stopping is done once the service stops: a question failing then (its connection closing)
	// is no outage to report.
	stopping context.Context

	mu    sync.Mutex
	cache map[string]cached
	// calls holds one question per compound at a time, which everyone who needs it shares.
	calls singleflight.Group
}

type cached struct {
	schedule rounds.Schedule
	until    time.Time // when dispatch is asked again
	answered bool      // dispatch's answer, not rounds.Default standing in for one
	asking   bool      // a question to dispatch is on its way in the background
	// failing is set once an outage of dispatch for this compound has been logged and cleared
	// when it answers again, so an outage is logged once rather than once a minute.
	failing bool
}

// New asks client (nil: never ask, use rounds.Default); stopping is done once the service stops
// (a question failing after that is not reported). now (nil: time.Now), the service's clock,
// measures the cache's minute.
func New(stopping context.Context, client dispatchv1.DispatchServiceClient, log *slog.Logger, now func() time.Time) *Source {
	if now == nil {
		now = time.Now
	}
	return &Source{client: client, log: log, now: now, timeout: callTimeout, stopping: stopping, cache: map[string]cached{}}
}

// Schedule is compound's schedule: dispatch's latest answer, or rounds.Default while it has
// given none.
func (s *Source) Schedule(_ context.Context, compound string) rounds.Schedule {
	if s.client == nil {
		return rounds.Default
	}
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[compound]
	wait := !ok || !now.Before(c.until.Add(TTL))
	startAsking := !wait && !now.Before(c.until) && !c.asking
	if startAsking {
		c.asking = true
		s.cache[compound] = c
	}
	s.mu.Unlock()
	switch {
	case wait:
		return s.question(compound)
	case startAsking:
		// Answer now with what is known; the new answer serves the reservations after it.
		go s.question(compound)
	}
	return c.schedule
}

// question asks dispatch for compound's schedule, sharing a question already on its way, and
// keeps the answer a minute. The question is the service's own, not a caller's: it runs apart
// from any caller's cancellation, since its answer serves everyone, and without the caller's
// identity, so that dispatch sees the supplier service asking (SYSTEM "supplier") rather than
// the supplier service acting for a resident, who may not read round settings.
func (s *Source) question(compound string) rounds.Schedule {
	v, _, _ := s.calls.Do(compound, func() (any, error) { return s.refresh(compound), nil })
	return v.(rounds.Schedule)
}

// refresh asks dispatch once and stores what its answer, or the lack of one, means.
func (s *Source) refresh(compound string) rounds.Schedule {
	sched, err := s.ask(context.Background(), compound)
	s.mu.Lock()
	last := s.cache[compound]
	next := cached{schedule: sched, until: s.now().Add(TTL), answered: true}
	switch code := status.Code(err); {
	case err == nil:
	case code == codes.Unimplemented:
		// A dispatch without the call runs the default rounds itself.
		next.schedule, next.answered = rounds.Default, false
	case last.answered:
		next.schedule = last.schedule
	default:
		next.schedule, next.answered = rounds.Default, false
	}
	next.failing = err != nil && (last.failing || s.stopping.Err() == nil)
	s.cache[compound] = next
	s.mu.Unlock()
	switch {
	case next.failing && (!last.failing || next.answered != last.answered):
		keeps := "the default rounds (am 09:00, pm 15:00)"
		if next.answered {
			keeps = "the round settings it gave last"
		}
		s.log.Warn("round settings unavailable from dispatch; using "+keeps+" until it answers", "compound", compound, "err", err)
	case err == nil && last.failing:
		s.log.Info("dispatch answers round settings again", "compound", compound)
	}
	return next.schedule
}

// ask is dispatch's schedule for compound.
func (s *Source) ask(ctx context.Context, compound string) (rounds.Schedule, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := s.client.GetCompoundSettings(ctx, &dispatchv1.GetCompoundSettingsRequest{Compound: compound})
	if err != nil {
		return nil, fmt.Errorf("dispatch GetCompoundSettings: %w", err)
	}
	sched, err := FromSettings(res.GetSettings())
	if err != nil {
		return nil, fmt.Errorf("dispatch's settings of %s: %w", compound, err)
	}
	return sched, nil
}

// FromSettings reads dispatch's settings as a schedule, checked with rounds' own rules.
func FromSettings(cs *dispatchv1.CompoundSettings) (rounds.Schedule, error) {
	sched := make(rounds.Schedule, 0, len(cs.GetSlots()))
	for i, sl := range cs.GetSlots() {
		cutoff, err := rounds.ParseClock(sl.GetCutoff())
		if err != nil {
			return nil, fmt.Errorf("slots[%d].cutoff: %w", i, err)
		}
		departs, err := rounds.ParseClock(sl.GetDeparts())
		if err != nil {
			return nil, fmt.Errorf("slots[%d].departs: %w", i, err)
		}
		sched = append(sched, rounds.Slot{Name: sl.GetSlot(), Cutoff: cutoff, Departs: departs})
	}
	if err := sched.Validate(); err != nil {
		return nil, err
	}
	return sched, nil
}
