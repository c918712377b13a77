package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/testkit"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var noticeWorker = &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}

func noticePosted(compound, noticeID string, at time.Time, title string, buildings ...string) *eventsv1.Event {
	ev := events.New(compound, noticeWorker, "", at)
	ev.Payload = &eventsv1.Event_NoticePosted{NoticePosted: &eventsv1.NoticePosted{NoticeId: noticeID, Title: title,
		Text: title + ": details inside", Buildings: buildings}}
	return ev
}

func noticeWithdrawn(compound, noticeID string, at time.Time) *eventsv1.Event {
	ev := events.New(compound, noticeWorker, "", at)
	ev.Payload = &eventsv1.Event_NoticeWithdrawn{NoticeWithdrawn: &eventsv1.NoticeWithdrawn{NoticeId: noticeID}}
	return ev
}

// publishNotices publishes notice events as the order service's relay does, on the subjects the
// events proto names: doorstep.<compound>.notice.posted and doorstep.<compound>.notice.withdrawn.
func (e *env) publishNotices(t *testing.T, evs ...*eventsv1.Event) {
	t.Helper()
	for _, ev := range evs {
		name := "notice.posted"
		if ev.GetNoticeWithdrawn() != nil {
			name = "notice.withdrawn"
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		msg := &nats.Msg{Subject: "doorstep." + ev.GetCompound() + "." + name, Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, ev.GetEventId())
		if _, err := e.js.PublishMsg(e.ctx, msg); err != nil {
			t.Fatalf("publish %s: %v", msg.Subject, err)
		}
	}
}

// waitNotices waits until the notices in force for compound and building, newest first, are the
// ones with ids want, and returns them.
func (e *env) waitNotices(t *testing.T, compound, building string, want ...string) []*trackingv1.Notice {
	t.Helper()
	var list []*trackingv1.Notice
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := e.client.ListNotices(e.worker, &trackingv1.ListNoticesRequest{Compound: compound, Building: building})
		if err != nil {
			return err
		}
		list = resp.GetNotices()
		var got []string
		for _, n := range list {
			got = append(got, n.GetNoticeId())
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("notices of %s for building %q: %q, want %q", compound, building, got, want)
		}
		return nil
	})
	return list
}

func TestListNoticesInForceByBuilding(t *testing.T) {
	e := start(t)
	everyone := noticePosted("haixin", "everyone", t0, "Testing at 8 in the square")
	b3 := noticePosted("haixin", "b3", t0.Add(time.Hour), "Water off in building 3", "3")
	gonePosted := noticePosted("haixin", "gone", t0.Add(2*time.Hour), "Posted by mistake", "3")
	goneWithdrawn := noticeWithdrawn("haixin", "gone", t0.Add(2*time.Hour+time.Minute))
	yuyuan := noticePosted("yuyuan", "everyone", t0.Add(3*time.Hour), "Yuyuan's notice")
	b5 := noticePosted("haixin", "b5", t0.Add(4*time.Hour), "Lift repairs", "5")
	// The withdrawal of "gone" overtakes its posting (two subjects, two publishers' relays).
	e.publishNotices(t, everyone, b3, goneWithdrawn, yuyuan, gonePosted, b5)

	// One consumer applies the stream in order: once the last posting is in force, so is all before.
	list := e.waitNotices(t, "haixin", "", "b5", "b3", "everyone")
	want := &trackingv1.Notice{NoticeId: "b3", Title: "Water off in building 3", Text: "Water off in building 3: details inside",
		Buildings: []string{"3"}, PostedAt: timestamppb.New(t0.Add(time.Hour)), PostedBy: noticeWorker}
	if !proto.Equal(list[1], want) {
		t.Errorf("notice b3 = %v, want %v", list[1], want)
	}
	if len(list[2].GetBuildings()) != 0 {
		t.Errorf("a notice to every building names %q", list[2].GetBuildings())
	}
	e.waitNotices(t, "haixin", "3", "b3", "everyone")
	e.waitNotices(t, "haixin", "5", "b5", "everyone")
	e.waitNotices(t, "haixin", "9", "everyone")
	e.waitNotices(t, "yuyuan", "", "everyone")
	e.waitNotices(t, "nowhere", "")

	// A resident of the compound reads its notices; withdrawing one takes it down.
	residentCtx := testkit.As(t, e.ctx, typesv1.Role_ROLE_RESIDENT, "haixin-3-2-302", testkit.InCompound("haixin"))
	resp, err := e.client.ListNotices(residentCtx, &trackingv1.ListNoticesRequest{Compound: "haixin", Building: "3"})
	if err != nil || len(resp.GetNotices()) != 2 {
		t.Fatalf("resident of building 3: %v, %v", resp, err)
	}
	e.publishNotices(t, noticeWithdrawn("haixin", "b3", t0.Add(5*time.Hour)))
	e.waitNotices(t, "haixin", "3", "everyone")

	// Another compound's notices are NOT_FOUND for its residents, saying no more than for a
	// compound that does not exist.
	_, errOther := e.client.ListNotices(residentCtx, &trackingv1.ListNoticesRequest{Compound: "yuyuan"})
	_, errNone := e.client.ListNotices(residentCtx, &trackingv1.ListNoticesRequest{Compound: "nowhere"})
	if status.Code(errOther) != codes.NotFound || status.Code(errNone) != codes.NotFound {
		t.Fatalf("another compound: %v; a compound that does not exist: %v; want NOT_FOUND", errOther, errNone)
	}
	if got, want := status.Convert(errOther).Message(), status.Convert(errNone).Message(); got != strings.ReplaceAll(want, "nowhere", "yuyuan") {
		t.Errorf("another compound says %q, one that does not exist %q", got, want)
	}

	// The timeline and views consumers read the notice events too and pass over them: once they
	// have applied an order published after them, nothing has been dead-lettered.
	orderID, parcelID := newID(), newID()
	e.publishAll(t, placeOrder(orderID, "haixin-3-2-302", "haixin-freshmart", t0.Add(6*time.Hour), parcelID))
	e.timeline(t, orderID, 1)
	e.waitQueue(t, "haixin-freshmart", map[typesv1.ParcelState]int32{typesv1.ParcelState_PARCEL_STATE_PLACED: 1})
	s, err := e.js.Stream(e.ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("dead-letter stream holds %d messages, want none", info.State.Msgs)
	}
}

func TestListNoticesErrors(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name, compound, building string
		field                    string
	}{
		{"no compound", "", "3", "compound"},
		{"not a compound slug", "Hai Xin", "", "compound"},
		{"building with spaces around", "haixin", " 3", "building"},
		{"building too long", "haixin", strings.Repeat("3", 65), "building"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.ListNotices(e.worker, &trackingv1.ListNoticesRequest{Compound: tc.compound, Building: tc.building})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want INVALID_ARGUMENT", status.Code(err), err)
			}
			if _, ok := grpcx.FieldViolations(err)[tc.field]; !ok {
				t.Errorf("violations %v do not name %s", grpcx.FieldViolations(err), tc.field)
			}
		})
	}
	// A compound nobody has posted to has no notices, not an error.
	resp, err := e.client.ListNotices(e.worker, &trackingv1.ListNoticesRequest{Compound: "haixin"})
	if err != nil || len(resp.GetNotices()) != 0 {
		t.Errorf("no notices yet: %v, %v", resp, err)
	}
}
