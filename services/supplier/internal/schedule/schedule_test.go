package schedule

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
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
	s := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if got := s.Schedule(context.Background(), "haixin"); len(got) != len(rounds.Default) || got[0] != rounds.Default[0] {
		t.Fatalf("schedule %v", got)
	}
}
