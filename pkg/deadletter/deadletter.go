// Package deadletter lists the events consumers gave up on and replays one after a fix. A replay
// republishes the event on its original subject under a fresh Nats-Msg-Id (the original id may
// still be inside the duplicate window); every consumer sees it again, and those that had applied
// it already skip it through their inbox, so only the consumer that failed applies it.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Letter is one parked event.
type Letter struct {
	Seq           uint64
	Subject       string // the original subject
	OriginalMsgID string
	Consumer      string
	Reason        string
	Parked        time.Time
	Data          []byte
}

// List returns up to limit parked events, oldest first.
func List(ctx context.Context, js jetstream.JetStream, limit int) ([]Letter, error) {
	s, err := js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		// Nothing parked, the usual case. A stream that never held a letter says its first and
		// last sequence are 0, and asking for message 0 is a bad request.
		return nil, nil
	}
	var out []Letter
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && len(out) < limit; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // replayed and deleted
		}
		if err != nil {
			return nil, err
		}
		out = append(out, letter(m))
	}
	return out, nil
}

func letter(m *jetstream.RawStreamMsg) Letter {
	return Letter{
		Seq:           m.Sequence,
		Subject:       strings.TrimPrefix(m.Subject, events.DeadLetterSubject),
		OriginalMsgID: m.Header.Get("Doorstep-Original-Msg-Id"),
		Consumer:      m.Header.Get("Doorstep-Consumer"),
		Reason:        m.Header.Get("Doorstep-Reason"),
		Parked:        m.Time,
		Data:          m.Data,
	}
}

// Replay republishes the parked event seq on its original subject and removes it from the
// dead-letter stream once JetStream has acknowledged the republish.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	s, err := js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		return Letter{}, fmt.Errorf("dead-letter stream: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	l := letter(m)
	msg := &nats.Msg{Subject: l.Subject, Data: l.Data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("replay-%d-%s", seq, l.OriginalMsgID))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return l, fmt.Errorf("republish on %s: %w", l.Subject, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		return l, fmt.Errorf("republished, but removing dead letter %d failed: %w", seq, err)
	}
	return l, nil
}
