// Package schedule tells the supplier service each compound's delivery rounds, which the dispatch
// service owns: it asks dispatch's GetCompoundSettings, keeps the answer a minute per compound,
// and uses rounds.Default when dispatch cannot say (unreachable, or not offering the call yet), so
// reservations never wait on dispatch for long or fail because of it.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	"golang.org/x/sync/singleflight"
)

// TTL is how long a compound's schedule is used before dispatch is asked again: round times
// change rarely, and a minute's delay in seeing a change only moves which round a reservation
// made in that minute is due for.
const TTL = time.Minute

// callTimeout bounds one question to dispatch, retries included; a reservation waits at most this
// long, once a minute per compound, while dispatch is down.
const callTimeout = 2 * time.Second

// Source answers compounds' schedules. The zero value is not usable; see New.
type Source struct {
	client dispatchv1.DispatchServiceClient // nil: rounds.Default everywhere
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
	calls singleflight.Group
	// warned is set once a fallback has been logged and cleared when dispatch answers again, so
	// an outage is logged once rather than once a minute per compound.
	warned atomic.Bool
}

type cached struct {
	schedule rounds.Schedule
	until    time.Time
}

// New asks client (nil: never ask, use rounds.Default) and measures the cache's minute with now
// (nil: time.Now), the service's clock.
func New(client dispatchv1.DispatchServiceClient, log *slog.Logger, now func() time.Time) *Source {
	if now == nil {
		now = time.Now
	}
	return &Source{client: client, log: log, now: now, cache: map[string]cached{}}
}

// Schedule is compound's schedule: dispatch's when it answers, rounds.Default otherwise.
func (s *Source) Schedule(_ context.Context, compound string) rounds.Schedule {
	if s.client == nil {
		return rounds.Default
	}
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[compound]
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.schedule
	}
	// Concurrent reservations of one compound share one question. It is the service's own, not
	// the caller's: it runs apart from the caller's cancellation, since its answer serves everyone
	// waiting, and without the caller's identity, so that dispatch sees the supplier service
	// asking (SYSTEM "supplier") rather than the supplier service acting for a resident, who may
	// not read round settings.
	v, _, _ := s.calls.Do(compound, func() (any, error) {
		sched := s.ask(context.Background(), compound)
		s.mu.Lock()
		s.cache[compound] = cached{schedule: sched, until: now.Add(TTL)}
		s.mu.Unlock()
		return sched, nil
	})
	return v.(rounds.Schedule)
}

func (s *Source) ask(ctx context.Context, compound string) rounds.Schedule {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := s.client.GetCompoundSettings(ctx, &dispatchv1.GetCompoundSettingsRequest{Compound: compound})
	if err != nil {
		return s.fallback(compound, fmt.Errorf("dispatch GetCompoundSettings: %w", err))
	}
	sched, err := FromSettings(res.GetSettings())
	if err != nil {
		return s.fallback(compound, fmt.Errorf("dispatch's settings of %s: %w", compound, err))
	}
	if s.warned.Swap(false) {
		s.log.Info("dispatch answers round settings again", "compound", compound)
	}
	return sched
}

func (s *Source) fallback(compound string, err error) rounds.Schedule {
	if !s.warned.Swap(true) {
		s.log.Warn("round settings unavailable from dispatch; using the default rounds (am 09:00, pm 15:00) until it answers",
			"compound", compound, "err", err)
	}
	return rounds.Default
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
