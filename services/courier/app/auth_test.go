package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/app"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rpcs calls each RPC of the service about courier A's route-1 (planned and picked up) as the
// identity in ctx. The mutations carry fixed request ids: the first caller allowed records the
// outcome, and every later caller allowed gets it again as a retry, so each row of a table sees
// the same answer whatever rows ran before it.
func (h *harness) rpcs() []struct {
	name string
	call func(ctx context.Context, courierID string) error
} {
	return []struct {
		name string
		call func(ctx context.Context, courierID string) error
	}{
		{"GetRoute", func(ctx context.Context, courierID string) error {
			_, err := h.client.GetRoute(ctx, &courierv1.GetRouteRequest{CourierId: courierID, RoundId: "round-am"})
			return err
		}},
		{"WatchRoute", func(ctx context.Context, courierID string) error {
			// Judged by the first message; a watch that sends nothing ends at the deadline.
			ctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			s, err := h.client.WatchRoute(ctx, &courierv1.WatchRouteRequest{CourierId: courierID, RoundId: "round-am"})
			if err != nil {
				return err
			}
			resp, err := s.Recv()
			if err == nil && resp.GetRoute().GetRouteId() != "route-1" {
				return fmt.Errorf("watch of %s sent %v", courierID, resp.GetRoute())
			}
			return err
		}},
		{"PickUp", func(ctx context.Context, courierID string) error {
			_, err := h.client.PickUp(ctx, &courierv1.PickUpRequest{RequestId: "t-pick", CourierId: courierID, RouteId: "route-1"})
			return err
		}},
		{"MarkDelivered", func(ctx context.Context, courierID string) error {
			_, err := h.client.MarkDelivered(ctx, &courierv1.MarkDeliveredRequest{RequestId: "t-deliver", CourierId: courierID,
				ParcelId: "p1", Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
			return err
		}},
		{"MarkFailed", func(ctx context.Context, courierID string) error {
			_, err := h.client.MarkFailed(ctx, &courierv1.MarkFailedRequest{RequestId: "t-fail", CourierId: courierID,
				ParcelId: "p2", Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME})
			return err
		}},
		{"CompleteStops", func(ctx context.Context, courierID string) error {
			resp, err := h.client.CompleteStops(ctx, &courierv1.CompleteStopsRequest{RequestId: "t-complete", CourierId: courierID,
				Outcomes: []*courierv1.StopOutcome{deliveredOutcome("p3", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, "")}})
			for _, r := range resp.GetResults() {
				if !r.GetRecorded() {
					return errors.New("outcome refused: " + r.GetError())
				}
			}
			return err
		}},
	}
}

func onBehalfOf(role typesv1.Role, subject string, opts ...func(*auth.Identity)) func(*auth.Identity) {
	return func(id *auth.Identity) {
		obo := auth.Identity{Role: role, Subject: subject}
		for _, o := range opts {
			o(&obo)
		}
		id.OnBehalfOf = &obo
	}
}

// Every RPC against every kind of caller, through the real server. A courier reaches only their
// own courier_id, staff of a compound only its routes; what a caller may not reach is NOT_FOUND,
// as if it did not exist. Residents, workers and suppliers have no business here at all.
func TestWhoMayCallWhat(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock.Add(-time.Hour),
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}))
	h.plan(planned("route-b", "round-am", courierB, clock, stop{"haixin-1-1-101", []string{"p9"}}))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "setup-pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}

	forged, err := auth.NewKeys([]byte("not-the-doorstep-key-but-32-bytes-long"), h.clock)
	if err != nil {
		t.Fatal(err)
	}
	forgedCtx, err := forged.Outgoing(h.ctx, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "intruder"})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := auth.NewKeys(testkit.AuthKey, func() time.Time { return h.clock().Add(-auth.TokenTTL - time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	expiredCtx, err := stale.Outgoing(h.ctx, auth.Identity{Role: typesv1.Role_ROLE_COURIER, Subject: courierA, Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}

	const (
		ok       = codes.OK
		notFound = codes.NotFound
		denied   = codes.PermissionDenied
		unauth   = codes.Unauthenticated
	)
	var (
		all = func(c codes.Code) [6]codes.Code { return [6]codes.Code{c, c, c, c, c, c} }
		// reads: GetRoute and WatchRoute answer c; the four changes are refused.
		reads = func(c codes.Code) [6]codes.Code { return [6]codes.Code{c, c, denied, denied, denied, denied} }
	)
	haixin, yuyuan := testkit.InCompound("haixin"), testkit.InCompound("yuyuan")
	for _, tc := range []struct {
		caller string
		ctx    context.Context
		// Codes for GetRoute, WatchRoute, PickUp, MarkDelivered, MarkFailed, CompleteStops, all
		// about courier A's route.
		want [6]codes.Code
	}{
		// First, so that the outcomes recorded are the courier's own.
		{"courier A", h.by(courierA), all(ok)},
		{"courier B", h.by(courierB), all(notFound)},
		{"dispatcher", h.as(typesv1.Role_ROLE_DISPATCHER, "wang", haixin), reads(ok)},
		{"city-wide dispatcher", h.as(typesv1.Role_ROLE_DISPATCHER, "chen"), reads(ok)},
		{"dispatcher of another compound", h.as(typesv1.Role_ROLE_DISPATCHER, "zhou", yuyuan), reads(notFound)},
		{"worker", h.as(typesv1.Role_ROLE_WORKER, "li", haixin), all(denied)},
		{"resident on the route", h.as(typesv1.Role_ROLE_RESIDENT, "haixin-3-2-602", haixin), all(denied)},
		{"supplier", h.as(typesv1.Role_ROLE_SUPPLIER, "staff-1", testkit.Supplier("haixin-freshmart")), all(denied)},
		{"system", h.as(typesv1.Role_ROLE_SYSTEM, "gateway"), all(ok)},
		{"system for courier A", h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_COURIER, courierA, haixin)), all(ok)},
		{"system for courier B", h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_COURIER, courierB, haixin)), all(notFound)},
		{"system for a dispatcher", h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_DISPATCHER, "wang", haixin)), reads(ok)},
		{"system for a dispatcher of another compound", h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_DISPATCHER, "zhou", yuyuan)), reads(notFound)},
		{"system for a resident", h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, "haixin-3-2-602")), all(denied)},
		{"system for a worker", h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_WORKER, "li")), all(denied)},
		{"no identity", h.ctx, all(unauth)},
		{"identity signed with another key", forgedCtx, all(unauth)},
		{"expired identity", expiredCtx, all(unauth)},
	} {
		for i, rpc := range h.rpcs() {
			t.Run(tc.caller+"/"+rpc.name, func(t *testing.T) {
				if err := rpc.call(tc.ctx, courierA); status.Code(err) != tc.want[i] {
					t.Errorf("%s as %s: %v, want %v", rpc.name, tc.caller, err, tc.want[i])
				}
			})
		}
	}

	// Only courier A's own calls changed anything, once each, and the events name A.
	pub := h.published()
	dl, fl := pub["doorstep.haixin.parcel.delivered"], pub["doorstep.haixin.parcel.failed"]
	if len(dl) != 2 || len(fl) != 1 {
		t.Fatalf("%d delivered and %d failed events, want 2 and 1", len(dl), len(fl))
	}
	for _, s := range append(dl, fl...) {
		if a := s.ev.GetActor(); a.GetRole() != typesv1.Role_ROLE_COURIER || a.GetId() != courierA {
			t.Errorf("%s: actor %v, want courier A", s.subject, a)
		}
	}
	if n := h.count(`SELECT count(*) FROM requests`); n != 5 {
		t.Errorf("%d request keys, want 5 (the set-up pick-up and one per change)", n)
	}
	b, err := h.client.GetRoute(h.by(courierB), &courierv1.GetRouteRequest{CourierId: courierB})
	if err != nil || statuses(b.GetRoute())["p9"] != pending {
		t.Errorf("B's route = %v, %v", b.GetRoute(), err)
	}
}

// Another courier's route, and anything on it, is refused in exactly the words used for ids that
// do not exist, so a courier cannot learn which couriers, routes or parcels there are.
func TestAnotherCouriersRouteLooksLikeNone(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1"}}))
	h.plan(planned("route-b", "round-am", courierB, clock, stop{"haixin-1-1-101", []string{"p9"}}))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "a-pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	const nobody = "haixin-courier-99"
	asB := h.by(courierB)

	same := func(what string, other, unknown error, otherID, unknownID string) {
		t.Helper()
		if status.Code(other) != codes.NotFound || status.Code(unknown) != codes.NotFound {
			t.Errorf("%s: %v and %v, want NOT_FOUND for both", what, other, unknown)
			return
		}
		if got, want := status.Convert(other).Message(), status.Convert(unknown).Message(); got != strings.ReplaceAll(want, unknownID, otherID) {
			t.Errorf("%s: %q for what exists, %q for what does not", what, got, want)
		}
	}

	// B naming courier A, and naming a courier that does not exist.
	for i, rpc := range h.rpcs() {
		other, unknown := rpc.call(asB, courierA), rpc.call(asB, nobody)
		same(fmt.Sprintf("%d %s naming another courier", i, rpc.name), other, unknown, courierA, nobody)
	}

	// B as themself, naming A's route and parcel, and ones that do not exist.
	_, other := h.client.PickUp(asB, &courierv1.PickUpRequest{RequestId: "b-pick-1", CourierId: courierB, RouteId: "route-1"})
	_, unknown := h.client.PickUp(asB, &courierv1.PickUpRequest{RequestId: "b-pick-2", CourierId: courierB, RouteId: "route-none"})
	same("PickUp of A's route", other, unknown, "route-1", "route-none")
	_, other = h.client.MarkDelivered(asB, &courierv1.MarkDeliveredRequest{RequestId: "b-d1", CourierId: courierB, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	_, unknown = h.client.MarkDelivered(asB, &courierv1.MarkDeliveredRequest{RequestId: "b-d2", CourierId: courierB, ParcelId: "p-none",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	same("MarkDelivered of A's parcel", other, unknown, "p1", "p-none")
	_, other = h.client.MarkFailed(asB, &courierv1.MarkFailedRequest{RequestId: "b-f1", CourierId: courierB, ParcelId: "p1",
		Reason: courierv1.FailureReason_FAILURE_REASON_REFUSED})
	_, unknown = h.client.MarkFailed(asB, &courierv1.MarkFailedRequest{RequestId: "b-f2", CourierId: courierB, ParcelId: "p-none",
		Reason: courierv1.FailureReason_FAILURE_REASON_REFUSED})
	same("MarkFailed of A's parcel", other, unknown, "p1", "p-none")

	// A watch of A's route by B ends at once, before anything is sent.
	w := h.watchAs(asB, h.client, courierA, "")
	if err := w.end(); status.Code(err) != codes.NotFound || strings.Contains(status.Convert(err).Message(), "route-1") {
		t.Errorf("B watching A: %v, want NOT_FOUND naming no route", err)
	}

	// Nothing B tried left a trace.
	if n := h.count(`SELECT count(*) FROM requests WHERE request_id LIKE 'b-%' OR request_id LIKE 't-%'`); n != 0 {
		t.Errorf("%d request keys kept for refused requests", n)
	}
	if n := len(h.published()["doorstep.haixin.parcel.delivered"]); n != 0 {
		t.Errorf("%d delivered events", n)
	}
}

// A courier's identity bound to one compound reaches only routes planned in it, like other staff.
func TestCourierBoundToAnotherCompoundReachesNoRoute(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1", "p2"}}))
	elsewhere := h.as(typesv1.Role_ROLE_COURIER, courierA, testkit.InCompound("yuyuan"))

	_, err := h.client.GetRoute(elsewhere, &courierv1.GetRouteRequest{CourierId: courierA})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.PickUp(elsewhere, &courierv1.PickUpRequest{RequestId: "y-pick", CourierId: courierA, RouteId: "route-1"})
	wantCode(t, err, codes.NotFound)
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.MarkDelivered(elsewhere, &courierv1.MarkDeliveredRequest{RequestId: "y-d", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.MarkFailed(elsewhere, &courierv1.MarkFailedRequest{RequestId: "y-f", CourierId: courierA, ParcelId: "p1",
		Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME})
	wantCode(t, err, codes.NotFound)
	resp, err := h.client.CompleteStops(elsewhere, &courierv1.CompleteStopsRequest{RequestId: "y-c", CourierId: courierA,
		Outcomes: []*courierv1.StopOutcome{deliveredOutcome("p2", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, "")}})
	if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetRecorded() ||
		!strings.Contains(resp.GetResults()[0].GetError(), "none of your routes") {
		t.Errorf("CompleteStops from another compound = %v, %v", resp.GetResults(), err)
	}
	w := h.watchAs(elsewhere, h.client, courierA, "round-am")
	wantCode(t, w.end(), codes.NotFound)

	// The same courier signed in for haixin still has it all.
	r, err := h.client.GetRoute(h.by(courierA), &courierv1.GetRouteRequest{CourierId: courierA})
	if err != nil || statuses(r.GetRoute())["p1"] != out || statuses(r.GetRoute())["p2"] != out {
		t.Errorf("A's route = %v, %v", r.GetRoute(), err)
	}
}

// The actor of an event is the verified caller: the courier, whether calling directly or through
// a service acting for them, or a service acting on its own.
func TestEventsNameTheVerifiedCaller(t *testing.T) {
	h := start(t)
	h.plan(planned("route-1", "round-am", courierA, clock,
		stop{"haixin-3-2-602", []string{"p1", "p2"}}, stop{"haixin-3-2-502", []string{"p3"}}))
	ops := h.as(typesv1.Role_ROLE_SYSTEM, "ops-console")
	forA := h.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_COURIER, courierA, testkit.InCompound("haixin")))

	if _, err := h.client.PickUp(ops, &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.MarkDelivered(forA, &courierv1.MarkDeliveredRequest{RequestId: "d1", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.MarkFailed(h.by(courierA), &courierv1.MarkFailedRequest{RequestId: "f2", CourierId: courierA, ParcelId: "p2",
		Reason: courierv1.FailureReason_FAILURE_REASON_NOT_HOME}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.CompleteStops(ops, &courierv1.CompleteStopsRequest{RequestId: "c3", CourierId: courierA,
		Outcomes: []*courierv1.StopOutcome{deliveredOutcome("p3", courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR, "")}}); err != nil {
		t.Fatal(err)
	}

	system := &typesv1.Actor{Role: typesv1.Role_ROLE_SYSTEM, Id: "ops-console"}
	courier := &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER, Id: courierA}
	want := map[string]*typesv1.Actor{ // by subject and parcel
		"out_for_delivery p1": system, "out_for_delivery p2": system, "out_for_delivery p3": system,
		"delivered p1": courier, "failed p2": courier, "delivered p3": system,
	}
	got := 0
	for subject, list := range h.published() {
		state := strings.TrimPrefix(subject, "doorstep.haixin.parcel.")
		for _, s := range list {
			key := state + " " + s.ev.GetParcelStateChanged().GetParcelId()
			w, ok := want[key]
			if !ok {
				continue
			}
			got++
			if a := s.ev.GetActor(); a.GetRole() != w.GetRole() || a.GetId() != w.GetId() {
				t.Errorf("%s: actor %v, want %v", key, a, w)
			}
		}
	}
	if got != len(want) {
		t.Errorf("%d of the %d events published", got, len(want))
	}
}

func TestRunNeedsAnAuthKeyOfAtLeast32Bytes(t *testing.T) {
	for _, key := range []string{"", "only-31-bytes-long-0123456789ab"} {
		err := app.Run(context.Background(), app.Config{AuthKey: key, DatabaseURL: "postgres://unused", NATSURL: "nats://unused"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "DOORSTEP_AUTH_KEY") {
			t.Errorf("Run with a %d-byte key: %v, want an error naming DOORSTEP_AUTH_KEY", len(key), err)
		}
	}
	t.Setenv("DOORSTEP_AUTH_KEY", string(testkit.AuthKey))
	cfg, err := app.ConfigFromEnv()
	if err != nil || cfg.AuthKey != string(testkit.AuthKey) {
		t.Errorf("ConfigFromEnv = %+v, %v", cfg, err)
	}
}
