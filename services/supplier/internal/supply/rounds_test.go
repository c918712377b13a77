package supply

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, rounds.Shanghai)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

type fixedSchedule rounds.Schedule

func (f fixedSchedule) Schedule(context.Context, string) rounds.Schedule { return rounds.Schedule(f) }

func TestDueRound(t *testing.T) {
	three := fixedSchedule{{Name: "am", Cutoff: 8 * time.Hour, Departs: 8 * time.Hour},
		{Name: "noon", Cutoff: 12 * time.Hour, Departs: 12 * time.Hour},
		{Name: "pm", Cutoff: 17 * time.Hour, Departs: 17 * time.Hour}}
	tests := []struct {
		schedules Schedules
		lead      time.Duration
		now, want string
	}{
		{nil, 0, "2026-03-01 08:30:00", "haixin-2026-03-01-am"}, // exactly the default 30 minutes
		{nil, 0, "2026-03-01 08:30:00.000001", "haixin-2026-03-01-pm"},
		{nil, 0, "2026-03-01 14:30:00", "haixin-2026-03-01-pm"},
		{nil, 0, "2026-03-01 14:31:00", "haixin-2026-03-02-am"},
		{nil, 0, "2026-12-31 23:00:00", "haixin-2027-01-01-am"},
		{nil, 2 * time.Hour, "2026-03-01 07:00:00", "haixin-2026-03-01-am"},
		{nil, 2 * time.Hour, "2026-03-01 07:00:01", "haixin-2026-03-01-pm"},
		{three, 0, "2026-03-01 10:00:00", "haixin-2026-03-01-noon"},
		{three, 0, "2026-03-01 16:45:00", "haixin-2026-03-02-am"},
	}
	for _, tt := range tests {
		s := &Service{Schedules: tt.schedules, ConfirmLead: tt.lead}
		if got := s.dueRound(context.Background(), "haixin", at(t, tt.now)); got.ID != tt.want {
			t.Errorf("lead %v at %s: due for %s, want %s", tt.lead, tt.now, got.ID, tt.want)
		}
	}
}

func TestExpire(t *testing.T) {
	reservedAt := at(t, "2026-03-01 10:00:00")
	reserve := func(t *testing.T) (Parcel, map[string]*Item) {
		items := catalog()
		p, _, err := NewParcel(reservation(ReservationLine{"rice", 4}, ReservationLine{"pork", 1000}), freshmart, items, nil,
			reservedAt, due(reservedAt))
		if err != nil {
			t.Fatal(err)
		}
		if p.RoundID != "haixin-2026-03-01-pm" || !p.ConfirmBy.Equal(at(t, "2026-03-01 15:00:00")) {
			t.Fatalf("due for %s by %v", p.RoundID, p.ConfirmBy)
		}
		return p, items
	}
	t.Run("not before the cutoff", func(t *testing.T) {
		p, items := reserve(t)
		tr, err := p.Expire(items, at(t, "2026-03-01 14:59:59.999999"))
		if err != nil || tr.To != "" || p.State != StatePlaced || items["rice"].Stock != 1 {
			t.Fatalf("%+v %v", tr, err)
		}
	})
	t.Run("at the cutoff", func(t *testing.T) {
		p, items := reserve(t)
		cutoff := at(t, "2026-03-01 15:00:00")
		tr, err := p.Expire(items, cutoff)
		if err != nil || tr.To != StateExpired || tr.From != StatePlaced || !tr.Announce || tr.Actor != ExpiryActor ||
			tr.Reason != "not confirmed by the 15:00 cutoff" || !tr.At.Equal(cutoff) {
			t.Fatalf("%+v %v", tr, err)
		}
		if p.State != StateExpired || items["rice"].Stock != 5 || items["pork"].Stock != 10000 {
			t.Fatalf("state %s, stock rice %d pork %d", p.State, items["rice"].Stock, items["pork"].Stock)
		}
		// Twice changes nothing more.
		if tr, err := p.Expire(items, cutoff); err != nil || tr.To != "" || items["rice"].Stock != 5 {
			t.Fatalf("again: %+v %v", tr, err)
		}
	})
	t.Run("decided first", func(t *testing.T) {
		p, items := reserve(t)
		if _, err := p.Confirm(items, nil, staff, at(t, "2026-03-01 14:59:00")); err != nil {
			t.Fatal(err)
		}
		if tr, err := p.Expire(items, at(t, "2026-03-01 15:00:00")); err != nil || tr.To != "" || p.State != StateConfirmed {
			t.Fatalf("%+v %v", tr, err)
		}
	})
	t.Run("no confirmation at the cutoff", func(t *testing.T) {
		p, items := reserve(t)
		_, err := p.Confirm(items, nil, staff, at(t, "2026-03-01 15:00:00"))
		if !errors.Is(err, ErrPastCutoff) || err.Error() != "parcel "+parcelID+
			" was not confirmed by the 15:00 cutoff of round haixin-2026-03-01-pm: past its confirmation cutoff" {
			t.Fatalf("got %v", err)
		}
		if p.State != StatePlaced || items["rice"].Stock != 1 {
			t.Fatal("a refused confirmation changed the parcel")
		}
		// Rejecting is still possible: it releases the stock as expiry would.
		if _, err := p.Reject(items, staff, "too late", at(t, "2026-03-01 15:00:00")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("parcels from before rounds never expire", func(t *testing.T) {
		p, items := reserve(t)
		p.RoundID, p.ConfirmBy = "", time.Time{}
		if tr, _ := p.Expire(items, at(t, "2030-01-01 00:00:00")); tr.To != "" {
			t.Fatal("expired a parcel without a cutoff")
		}
	})
}
