// Package events builds Doorstep's event envelopes and names their JetStream subjects:
// doorstep.<compound>.<aggregate>.<event>, e.g. doorstep.haixin.parcel.delivered.
package events

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Stream is the JetStream stream every event lands in; DeadLetterStream keeps events that a
// consumer gave up on, with the reason.
const (
	Stream            = "DOORSTEP"
	StreamSubjects    = "doorstep.>"
	DeadLetterStream  = "DOORSTEP_DEADLETTER"
	DeadLetterSubject = "deadletter."
)

var compoundRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidCompound reports whether s can be a compound slug: it becomes a subject token and a key.
func ValidCompound(s string) bool { return compoundRE.MatchString(s) }

// New starts an event with a fresh, time-ordered id.
func New(compound string, actor *typesv1.Actor, orderID string, at time.Time) *eventsv1.Event {
	return &eventsv1.Event{
		EventId:    uuid.Must(uuid.NewV7()).String(),
		Compound:   compound,
		OccurredAt: timestamppb.New(at),
		Actor:      actor,
		OrderId:    orderID,
	}
}

// Subject is where ev is published.
func Subject(ev *eventsv1.Event) (string, error) {
	if !ValidCompound(ev.GetCompound()) {
		return "", fmt.Errorf("event %s: invalid compound %q", ev.GetEventId(), ev.GetCompound())
	}
	name, err := Name(ev)
	if err != nil {
		return "", err
	}
	return "doorstep." + ev.GetCompound() + "." + name, nil
}

// Name is the subject's <aggregate>.<event> part, e.g. "parcel.delivered".
func Name(ev *eventsv1.Event) (string, error) {
	switch p := ev.GetPayload().(type) {
	case *eventsv1.Event_OrderPlaced:
		return "order.placed", nil
	case *eventsv1.Event_ParcelStateChanged:
		st := p.ParcelStateChanged.GetState()
		if st == typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED {
			return "", fmt.Errorf("event %s: parcel state unspecified", ev.GetEventId())
		}
		return "parcel." + StateName(st), nil
	case *eventsv1.Event_RoutePlanned:
		return "route.planned", nil
	case *eventsv1.Event_NoticePosted:
		return "notice.posted", nil
	case *eventsv1.Event_NoticeWithdrawn:
		return "notice.withdrawn", nil
	default:
		return "", errors.New("event " + ev.GetEventId() + ": no payload")
	}
}

// StateName is a parcel state's subject token: PARCEL_STATE_OUT_FOR_DELIVERY -> "out_for_delivery".
func StateName(s typesv1.ParcelState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PARCEL_STATE_"))
}
