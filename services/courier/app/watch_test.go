package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	"github.com/doorstep/doorstep/services/courier/app"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// watcher reads a WatchRoute stream in the background, so a test can wait for what it sends.
type watcher struct {
	t      *testing.T
	name   string
	routes chan *courierv1.CourierRoute
	ended  chan error
	cancel context.CancelFunc
}

// watch opens a watch of courierID's route as that courier.
func (h *harness) watch(client courierv1.CourierServiceClient, courierID, roundID string) *watcher {
	h.t.Helper()
	return h.watchAs(h.by(courierID), client, courierID, roundID)
}

// watchAs opens a watch of courierID's route as the identity in ctx.
func (h *harness) watchAs(ctx context.Context, client courierv1.CourierServiceClient, courierID, roundID string) *watcher {
	t := h.t
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := client.WatchRoute(ctx, &courierv1.WatchRouteRequest{CourierId: courierID, RoundId: roundID})
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, name: courierID + "/" + roundID, routes: make(chan *courierv1.CourierRoute, 64),
		ended: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				w.ended <- err
				return
			}
			w.routes <- resp.GetRoute()
		}
	}()
	return w
}

// next is the next route the stream sends, within the test's bounded wait.
func (w *watcher) next() *courierv1.CourierRoute {
	w.t.Helper()
	select {
	case r := <-w.routes:
		return r
	case err := <-w.ended:
		w.t.Fatalf("watch %s ended: %v", w.name, err)
	case <-time.After(wait):
		w.t.Fatalf("watch %s sent nothing within %s", w.name, wait)
	}
	return nil
}

// until waits for a route that satisfies cond, passing over earlier ones: changes that follow
// each other closely may reach the client as one.
func (w *watcher) until(what string, cond func(*courierv1.CourierRoute) bool) *courierv1.CourierRoute {
	w.t.Helper()
	deadline := time.After(wait)
	var last *courierv1.CourierRoute
	for {
		select {
		case r := <-w.routes:
			if cond(r) {
				return r
			}
			last = r
		case err := <-w.ended:
			w.t.Fatalf("watch %s ended waiting for %s: %v", w.name, what, err)
		case <-deadline:
			w.t.Fatalf("watch %s: no %s within %s; last sent %v", w.name, what, wait, last)
		}
	}
}

// end waits for the stream to end and returns why.
func (w *watcher) end() error {
	w.t.Helper()
	for {
		select {
		case r := <-w.routes:
			w.t.Logf("watch %s sent %v before ending", w.name, r)
		case err := <-w.ended:
			return err
		case <-time.After(wait):
			w.t.Fatalf("watch %s did not end within %s", w.name, wait)
		}
	}
}

// announcedOnly turns the periodic re-read off, so what a watcher sends came from announcements
// made after each change committed.
func announcedOnly(c *app.Config) { c.WatchResync = time.Hour }

func allStatus(r *courierv1.CourierRoute, want courierv1.StopStatus) bool {
	st := statuses(r)
	for _, s := range st {
		if s != want {
			return false
		}
	}
	return len(st) > 0
}

func TestWatcherSeesNewVersionsAndDeliveriesMadeOnAnotherInstance(t *testing.T) {
	h := start(t, announcedOnly)
	b := h.instance() // a second replica on the same database and broker

	// Watching before the courier has any route: nothing is sent until dispatch plans one.
	w := h.watch(h.client, courierA, "")
	h.publish(version(planned("route-1", "round-am", courierA, clock,
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}), 1), "plan-1")
	first := w.next()
	if first.GetRouteId() != "route-1" || first.GetVersion() != 1 || first.GetCourierId() != courierA ||
		len(first.GetStops()) != 2 || !allStatus(first, pending) {
		t.Fatalf("first route sent = %v", first)
	}

	// A new version, applied by whichever replica's consumer takes it.
	h.publish(version(planned("route-1", "round-am", courierA, clock,
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}, stop{"haixin-3-2-402", []string{"p4"}}), 2), "plan-2")
	w.until("version 2", func(r *courierv1.CourierRoute) bool { return r.GetVersion() == 2 && len(r.GetStops()) == 3 })

	// The courier's app talks to replica B; the watch on A sees every change.
	if _, err := b.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	w.until("pick-up", func(r *courierv1.CourierRoute) bool { return allStatus(r, out) })
	if _, err := b.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: "d1", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR}); err != nil {
		t.Fatal(err)
	}
	w.until("p1 delivered", func(r *courierv1.CourierRoute) bool { return statuses(r)["p1"] == delivered })
	if _, err := b.client.CompleteStops(h.by(courierA), &courierv1.CompleteStopsRequest{RequestId: "floor-5", CourierId: courierA,
		Outcomes: []*courierv1.StopOutcome{
			deliveredOutcome("p2", courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER, ""),
			failedOutcome("p3", courierv1.FailureReason_FAILURE_REASON_NOT_HOME, ""),
		}}); err != nil {
		t.Fatal(err)
	}
	got := w.until("floor 5 completed", func(r *courierv1.CourierRoute) bool {
		st := statuses(r)
		return st["p2"] == delivered && st["p3"] == failed
	})
	if st := statuses(got); st["p1"] != delivered || st["p4"] != out || got.GetVersion() != 2 {
		t.Errorf("route after floor 5 = %v", got)
	}

	// A watch of the round, opened on B, starts from where the route stands.
	wr := h.watch(b.client, courierA, "round-am")
	if r := wr.next(); r.GetRouteId() != "route-1" || statuses(r)["p3"] != failed || statuses(r)["p4"] != out {
		t.Fatalf("round watch starts with %v", r)
	}

	// The afternoon's route becomes the courier's newest: the round-less watch moves on to it.
	h.publish(version(planned("route-pm", "round-pm", courierA, clock.Add(4*time.Hour), stop{"haixin-3-2-302", []string{"p7"}}), 1), "plan-pm")
	w.until("the afternoon route", func(r *courierv1.CourierRoute) bool { return r.GetRouteId() == "route-pm" })

	// Route-1 withdrawn: the round watch's next route is exactly that (nothing was sent for the
	// afternoon route, which is not its round).
	h.publish(version(planned("route-1", "round-am", courierA, clock), 3), "withdraw-1")
	if r := wr.next(); r.GetRouteId() != "route-1" || r.GetVersion() != 3 || len(statuses(r)) != 3 || statuses(r)["p4"] != 0 {
		t.Errorf("round watch after withdrawal = %v, want version 3 with p1-p3 as history", r)
	}

	// The stream ends when the client cancels.
	w.cancel()
	if err := w.end(); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled watch ended with %v", err)
	}
}

func TestWatchingSomeoneElsesRoundIsNotFound(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}))

	w := h.watch(h.client, courierB, "round-am")
	err := w.end()
	if status.Code(err) != codes.NotFound || strings.Contains(status.Convert(err).Message(), "route-1") {
		t.Fatalf("B watching round-am: %v, want NOT_FOUND that names no route", err)
	}

	// B watching their newest route waits, and the first thing sent is B's own route.
	wb := h.watch(h.client, courierB, "")
	h.plan(planned("route-2", "round-am", courierB, clock.Add(time.Minute), stop{"haixin-1-1-101", []string{"p9"}}))
	if r := wb.next(); r.GetRouteId() != "route-2" || r.GetCourierId() != courierB {
		t.Fatalf("B's first route = %v", r)
	}
}

func TestRouteGivenToAnotherCourierLeavesTheFirstCouriersWatch(t *testing.T) {
	h := start(t, announcedOnly)
	h.plan(version(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}), 1))
	wa := h.watch(h.client, courierA, "")
	if r := wa.next(); r.GetRouteId() != "route-1" {
		t.Fatalf("A's first route = %v", r)
	}
	// A is sick: dispatch hands the whole route to B under a new version.
	h.plan(version(planned("route-1", "round-am", courierB, clock, stop{"haixin-3-2-602", []string{"p1"}}), 2))
	if r := wa.next(); r.GetRouteId() != "" || len(r.GetStops()) != 0 || r.GetCourierId() != courierA {
		t.Errorf("A's watch after the route left = %v, want an empty route", r)
	}
	if r := h.watch(h.client, courierB, "").next(); r.GetRouteId() != "route-1" || r.GetVersion() != 2 {
		t.Errorf("B's watch = %v", r)
	}
}

func TestWatchEndsWhenItsServerShutsDown(t *testing.T) {
	h := start(t)
	b := h.instance()
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}))
	w := h.watch(b.client, courierA, "")
	w.next()
	if err := b.stop(); err != nil {
		t.Fatalf("stopping instance: %v", err)
	}
	err := w.end()
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "watch again") {
		t.Errorf("watch ended with %v, want UNAVAILABLE telling the client to watch again", err)
	}
	// The other replica still serves watches.
	if r := h.watch(h.client, courierA, "").next(); r.GetRouteId() != "route-1" {
		t.Errorf("watch on the remaining replica = %v", r)
	}
}

// A burst of changes ends in the final state, each change sent at most once (announcements that
// arrive together are coalesced into one re-read, and an unchanged route is never sent again).
func TestWatcherFollowsABurstToItsEnd(t *testing.T) {
	h := start(t, announcedOnly)
	var stops []stop
	for i := range 20 {
		stops = append(stops, stop{fmt.Sprintf("haixin-2-1-%d01", i+1), []string{fmt.Sprintf("p%d", i)}})
	}
	h.plan(planned("route-1", "round-am", courierA, clock, stops...))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	w := h.watch(h.client, courierA, "")
	w.next()
	for i := range 20 {
		if _, err := h.client.MarkDelivered(h.by(courierA), &courierv1.MarkDeliveredRequest{RequestId: fmt.Sprintf("d%d", i), CourierId: courierA,
			ParcelId: fmt.Sprintf("p%d", i), Method: courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR}); err != nil {
			t.Fatal(err)
		}
	}
	sends := 0
	w.until("every parcel delivered", func(r *courierv1.CourierRoute) bool { sends++; return allStatus(r, delivered) })
	if sends > 20 {
		t.Errorf("%d sends for 20 changes", sends)
	}
}
