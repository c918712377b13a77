package outbox

import (
	"errors"
	"testing"
	"time"
)

func TestPacerWaitsLongerOnceTheOutboxHasBeenEmptyForAWhile(t *testing.T) {
	const idle, quiet = 50 * time.Millisecond, 250 * time.Millisecond
	p := pacer{idle: idle, quiet: quiet, quietAfter: time.Second}
	step := func(published int, err error, want time.Duration) {
		t.Helper()
		if got := p.next(published, 100, err); got != want {
			t.Fatalf("after a poll publishing %d (err %v): wait %v, want %v", published, err, got, want)
		}
	}
	// A second of empty polls at the idle pace, then the quiet pace.
	for range 20 {
		step(0, nil, idle)
	}
	step(0, nil, quiet)
	step(0, nil, quiet)
	// Rows found: back to the idle pace at once, and a full batch polls again straight away.
	step(3, nil, idle)
	step(0, nil, idle)
	step(100, nil, 0)
	for range 20 {
		step(0, nil, idle)
	}
	step(0, nil, quiet)
	// Failures back off, doubling up to 5 s, whatever the pace was; an empty poll after them
	// starts the second of idle polls again.
	failed := errors.New("broker down")
	step(0, failed, 100*time.Millisecond)
	step(0, failed, 200*time.Millisecond)
	for range 6 {
		p.next(0, 100, failed)
	}
	step(0, failed, 5*time.Second)
	step(0, nil, idle)
	step(0, failed, 100*time.Millisecond) // the backoff starts over after a poll that worked
	// A full batch whose commit failed is a failure, not a reason to poll again at once.
	step(100, failed, 200*time.Millisecond)
}
