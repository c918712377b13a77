package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	"github.com/doorstep/doorstep/services/courier/app"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func TestIdempotencyKeysArePrunedAfterTwoDays(t *testing.T) {
	h := start(t, func(c *app.Config) { c.PruneEvery = 50 * time.Millisecond })
	h.plan(planned("route-1", "round-am", courierA, clock, stop{"haixin-3-2-602", []string{"p1", "p2"}}))

	t0 := clock
	// A key two hours older than the rest, to see pruning passes happen.
	h.setClock(t0.Add(-2 * time.Hour))
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "early", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	h.setClock(t0)
	if _, err := h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-1"}); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	if err := h.db.QueryRow(h.ctx, `SELECT created_at FROM requests WHERE request_id = 'pick'`).Scan(&at); err != nil || !at.Equal(t0) {
		t.Fatalf("key written at %v (%v), want the service's clock %v", at, err, t0)
	}

	h.setClock(t0.Add(30 * time.Hour))
	deliver := &courierv1.MarkDeliveredRequest{RequestId: "d1", CourierId: courierA, ParcelId: "p1",
		Method: courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER}
	first, err := h.client.MarkDelivered(h.by(courierA), deliver)
	if err != nil {
		t.Fatal(err)
	}

	// 47 hours on, a pass prunes the 49-hour-old key and keeps the 47-hour-old one.
	h.setClock(t0.Add(47 * time.Hour))
	testkit.Eventually(t, wait, func() error {
		if n := h.count(`SELECT count(*) FROM requests WHERE request_id = 'early'`); n != 0 {
			return fmt.Errorf("key of the 49-hour-old pick-up still there")
		}
		return nil
	})
	_, err = h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-other"})
	wantCode(t, err, codes.AlreadyExists)

	// 49 hours on, that one goes too.
	h.setClock(t0.Add(49 * time.Hour))
	testkit.Eventually(t, wait, func() error {
		if n := h.count(`SELECT count(*) FROM requests WHERE request_id = 'pick'`); n != 0 {
			return fmt.Errorf("key of the 49-hour-old pick-up still there")
		}
		return nil
	})
	if n := h.count(`SELECT count(*) FROM requests WHERE request_id = 'd1'`); n != 1 {
		t.Fatalf("the 19-hour-old key was pruned")
	}
	again, err := h.client.MarkDelivered(h.by(courierA), deliver)
	if err != nil || !proto.Equal(again, first) {
		t.Errorf("retry of a kept key = %v, %v; want %v", again, err, first)
	}
	// The pruned id is free again: a different request under it is no longer refused as reused.
	_, err = h.client.PickUp(h.by(courierA), &courierv1.PickUpRequest{RequestId: "pick", CourierId: courierA, RouteId: "route-other"})
	wantCode(t, err, codes.NotFound)
}
