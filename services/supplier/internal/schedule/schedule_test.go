package schedule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/doorstep/doorstep/pkg/testkit"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestFromSettings(t *testing.T) {
	slot := func(name, cutoff, departs string) *dispatchv1.RoundSlot {
		return &dispatchv1.RoundSlot{Slot: name, Cutoff: cutoff, Departs: departs}
	}
	got, err := FromSettings(&dispatchv1.CompoundSettings{Slots: []*dispatchv1.RoundSlot{
		slot("am", "08:00", "08:30"), slot("pm", "16:15", "16:45")}})
	if err != nil || len(got) != 2 || got[1].Name != "pm" || got[1].Cutoff != 16*time.Hour+15*time.Minute ||
		got[0].Departs != 8*time.Hour+30*time.Minute {
		t.Fatalf("%v, %v", got, err)
	}
	for name, slots := range map[string][]*dispatchv1.RoundSlot{
		"none":          nil,
		"bad cutoff":    {slot("am", "8am", "08:30")},
		"bad departure": {slot("am", "08:00", "")},
		"out of order":  {slot("pm", "16:00", "16:30"), slot("am", "08:00", "08:30")},
		"bad name":      {slot("Morning", "08:00", "08:30")},
	} {
		if _, err := FromSettings(&dispatchv1.CompoundSettings{Slots: slots}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Without a dispatch client there is nothing to ask: the default rounds, quietly.
func TestNoDispatch(t *testing.T) {
	s := New(context.Background(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if got := s.Schedule(context.Background(), "haixin"); len(got) != len(rounds.Default) || got[0] != rounds.Default[0] {
		t.Fatalf("schedule %v", got)
	}
}

// dispatchClient answers GetCompoundSettings with its slots, or its err, once release lets it
// (nil: at once), counting the questions.
type dispatchClient struct {
	dispatchv1.DispatchServiceClient // any other call panics

	mu      sync.Mutex
	slots   []*dispatchv1.RoundSlot
	err     error
	release chan struct{}
	asked   int
}

func (d *dispatchClient) GetCompoundSettings(ctx context.Context, req *dispatchv1.GetCompoundSettingsRequest, _ ...grpc.CallOption) (*dispatchv1.GetCompoundSettingsResponse, error) {
	d.mu.Lock()
	d.asked++
	slots, err, release := d.slots, d.err, d.release
	d.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &dispatchv1.GetCompoundSettingsResponse{Settings: &dispatchv1.CompoundSettings{Compound: req.GetCompound(), Slots: slots}}, nil
}

func (d *dispatchClient) set(f func(d *dispatchClient)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *dispatchClient) questions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked
}

// clock is a settable clock for the cache's minute.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// syncBuffer is a log destination that a background question may write to while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// cachedEntry is what s holds for compound.
func cachedEntry(s *Source, compound string) cached {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache[compound]
}

// Once dispatch has answered for a compound, no reservation waits for it again: an old answer
// serves while dispatch is asked in the background (one question however many reservations come),
// and when dispatch hangs or fails, the answer it gave last stays in use rather than the default.
func TestScheduleNeverWaitsForDispatchOnceKnown(t *testing.T) {
	threeRounds := []*dispatchv1.RoundSlot{{Slot: "am", Cutoff: "08:00", Departs: "08:30"},
		{Slot: "noon", Cutoff: "12:00", Departs: "12:30"}, {Slot: "eve", Cutoff: "17:00", Departs: "17:30"}}
	twoRounds := []*dispatchv1.RoundSlot{{Slot: "am", Cutoff: "08:00", Departs: "08:30"}, {Slot: "late", Cutoff: "20:00", Departs: "20:15"}}
	dispatch := &dispatchClient{slots: threeRounds}
	clk := &clock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, rounds.Shanghai)}
	logs := &syncBuffer{}
	s := New(context.Background(), dispatch, slog.New(slog.NewTextHandler(logs, nil)), clk.Now)
	s.timeout = time.Minute // the hung question below must not time out on a slow machine
	slots := func() string {
		var names []string
		for _, sl := range s.Schedule(context.Background(), "haixin") {
			names = append(names, sl.Name)
		}
		return strings.Join(names, ",")
	}
	want := func(got, names string) {
		t.Helper()
		if got != names {
			t.Fatalf("rounds %s, want %s", got, names)
		}
	}
	// settled waits until dispatch has been asked n times and the answer is stored.
	settled := func(n int) {
		t.Helper()
		testkit.Eventually(t, 5*time.Second, func() error {
			if q := dispatch.questions(); q != n {
				return fmt.Errorf("dispatch asked %d times, want %d", q, n)
			}
			if cachedEntry(s, "haixin").asking {
				return errors.New("the answer is not stored yet")
			}
			return nil
		})
	}

	want(slots(), "am,noon,eve")
	clk.Advance(TTL - time.Second)
	want(slots(), "am,noon,eve")
	if n := dispatch.questions(); n != 1 {
		t.Fatalf("dispatch asked %d times within the minute, want 1", n)
	}

	// Dispatch hangs. Past the minute every call still answers at once, with the old rounds, and
	// only one question waits on dispatch.
	release := make(chan struct{})
	dispatch.set(func(d *dispatchClient) { d.slots, d.release = twoRounds, release })
	clk.Advance(time.Second)
	for range 50 {
		answered := make(chan string, 1)
		go func() { answered <- slots() }()
		select {
		case got := <-answered:
			want(got, "am,noon,eve")
		case <-time.After(time.Second):
			t.Fatal("Schedule waited for a hung dispatch")
		}
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := dispatch.questions(); n != 2 {
			return fmt.Errorf("dispatch asked %d times, want 2", n)
		}
		return nil
	})
	// It answers: the new rounds from then on.
	close(release)
	settled(2)
	want(slots(), "am,late")

	// Dispatch fails, minute after minute: the rounds it gave last stay, with one warning.
	dispatch.set(func(d *dispatchClient) { d.release, d.err = nil, status.Error(codes.Unavailable, "dispatch is down") })
	for i := range 3 {
		clk.Advance(TTL)
		want(slots(), "am,late") // finds the answer a minute old: asks in the background
		settled(3 + i)
		want(slots(), "am,late")
	}
	if n := logs.count("round settings unavailable from dispatch; using the round settings it gave last"); n != 1 {
		t.Fatalf("%d warnings of the outage, want 1", n)
	}
	if n := logs.count("default rounds"); n != 0 {
		t.Fatalf("%d warnings of the default rounds while dispatch's last answer was kept", n)
	}

	// Back again: one line says so.
	dispatch.set(func(d *dispatchClient) { d.err, d.slots = nil, threeRounds })
	clk.Advance(TTL)
	slots()
	settled(6)
	want(slots(), "am,noon,eve")
	if n := logs.count("dispatch answers round settings again"); n != 1 {
		t.Fatalf("%d lines saying dispatch is back, want 1", n)
	}

	// After a quiet spell (no reservation for over two minutes) the answer is too old to serve:
	// the next reservation waits for dispatch's.
	dispatch.set(func(d *dispatchClient) { d.slots = twoRounds })
	clk.Advance(2 * TTL)
	want(slots(), "am,late")
	if n := dispatch.questions(); n != 7 {
		t.Fatalf("dispatch asked %d times, want 7", n)
	}
}

// A compound dispatch never answered for gets the default rounds, and so does every compound when
// dispatch does not offer the call (it then runs the default rounds itself), even one it answered
// for before. The client closing as the service stops is not reported as an outage.
func TestScheduleDefaults(t *testing.T) {
	ctx := context.Background()
	isDefault := func(got rounds.Schedule) bool { return len(got) == len(rounds.Default) && got[0] == rounds.Default[0] }
	t.Run("never answered", func(t *testing.T) {
		dispatch := &dispatchClient{err: status.Error(codes.Unavailable, "connection refused")}
		logs := &syncBuffer{}
		clk := &clock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, rounds.Shanghai)}
		s := New(context.Background(), dispatch, slog.New(slog.NewTextHandler(logs, nil)), clk.Now)
		for range 3 {
			if got := s.Schedule(ctx, "haixin"); !isDefault(got) {
				t.Fatalf("schedule %v, want the default", got)
			}
			clk.Advance(2 * TTL) // too old to serve: asks again, waiting
		}
		if n := dispatch.questions(); n != 3 {
			t.Fatalf("dispatch asked %d times, want 3", n)
		}
		if n := logs.count("using the default rounds"); n != 1 {
			t.Fatalf("%d warnings, want 1", n)
		}
	})
	t.Run("call not offered", func(t *testing.T) {
		dispatch := &dispatchClient{slots: []*dispatchv1.RoundSlot{{Slot: "noon", Cutoff: "12:00", Departs: "12:30"}}}
		logs := &syncBuffer{}
		clk := &clock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, rounds.Shanghai)}
		s := New(context.Background(), dispatch, slog.New(slog.NewTextHandler(logs, nil)), clk.Now)
		if got := s.Schedule(ctx, "haixin"); isDefault(got) {
			t.Fatalf("schedule %v, want dispatch's", got)
		}
		// An outage first: the last slots are kept. Then a dispatch without the call (rolled
		// back): the default rounds, and a second warning saying so.
		dispatch.set(func(d *dispatchClient) { d.err = status.Error(codes.Unavailable, "down") })
		clk.Advance(2 * TTL)
		if got := s.Schedule(ctx, "haixin"); isDefault(got) {
			t.Fatalf("schedule %v during the outage, want dispatch's last", got)
		}
		dispatch.set(func(d *dispatchClient) { d.err = status.Error(codes.Unimplemented, "unknown method") })
		clk.Advance(2 * TTL)
		if got := s.Schedule(ctx, "haixin"); !isDefault(got) {
			t.Fatalf("schedule %v, want the default", got)
		}
		if n, m := logs.count("using the round settings it gave last"), logs.count("using the default rounds"); n != 1 || m != 1 {
			t.Fatalf("%d warnings of the last slots and %d of the default, want 1 and 1", n, m)
		}
	})
	t.Run("service stopping", func(t *testing.T) {
		dispatch := &dispatchClient{slots: []*dispatchv1.RoundSlot{{Slot: "noon", Cutoff: "12:00", Departs: "12:30"}}}
		logs := &syncBuffer{}
		clk := &clock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, rounds.Shanghai)}
		stopping, stop := context.WithCancel(context.Background())
		s := New(stopping, dispatch, slog.New(slog.NewTextHandler(logs, nil)), clk.Now)
		s.Schedule(ctx, "haixin")
		// The service stops and its connection to dispatch closes: the last slots stay, quietly.
		stop()
		dispatch.set(func(d *dispatchClient) {
			d.err = status.Error(codes.Canceled, "grpc: the client connection is closing")
		})
		clk.Advance(2 * TTL)
		if got := s.Schedule(ctx, "haixin"); isDefault(got) {
			t.Fatalf("schedule %v, want dispatch's last", got)
		}
		if n := logs.count("round settings unavailable"); n != 0 {
			t.Fatalf("%d warnings while the service stopped, want none", n)
		}
		// A source that reported an outage while the service ran keeps it reported as the service
		// stops: no line saying dispatch is back.
		other := New(context.Background(), dispatch, slog.New(slog.NewTextHandler(logs, nil)), clk.Now)
		other.Schedule(ctx, "haixin")
		if n := logs.count("round settings unavailable"); n != 1 {
			t.Fatalf("%d warnings of the outage, want 1", n)
		}
		other.stopping = stopping
		clk.Advance(2 * TTL)
		other.Schedule(ctx, "haixin")
		if !cachedEntry(other, "haixin").failing {
			t.Fatal("the outage was forgotten as the service stopped")
		}
		if n := logs.count("answers round settings again"); n != 0 {
			t.Fatalf("%d lines saying dispatch is back", n)
		}
	})
}
