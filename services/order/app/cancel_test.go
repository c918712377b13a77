package app_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestCancelBeforeConfirmation(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())
	cancel := &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "ordered twice"}
	resp, err := e.client.CancelOrder(e.resident(hh), cancel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Order.Parcels {
		if p.State != typesv1.ParcelState_PARCEL_STATE_CANCELLED || p.Reason != "ordered twice" {
			t.Errorf("parcel %v", p)
		}
	}
	if resp.Order.Status != orderv1.OrderStatus_ORDER_STATUS_CLOSED || resp.Order.TotalFen != 0 {
		t.Errorf("status %v total %d, want CLOSED and 0", resp.Order.Status, resp.Order.TotalFen)
	}
	if got := e.sup.stock("rice-5kg"); got != 100 {
		t.Errorf("rice stock %d, want 100", got)
	}
	wantOnBehalfOf(t, e.sup.peerAuth, "ReleaseReservation", typesv1.Role_ROLE_RESIDENT, hh)
	for _, m := range e.waitStream("doorstep.haixin.parcel.cancelled", 2) {
		sc := m.event.GetParcelStateChanged()
		if m.msgID != m.event.EventId || sc.GetReason() != "ordered twice" || m.event.Actor.GetId() != hh || m.event.OrderId != o.OrderId {
			t.Errorf("parcel.cancelled %v", m.event)
		}
	}
	if n := e.count(`SELECT count(*) FROM parcel_transitions WHERE from_state = 'PLACED' AND to_state = 'CANCELLED' AND reason = 'ordered twice'`); n != 2 {
		t.Errorf("%d cancel transitions, want 2", n)
	}

	// A retry returns the result; the id reused for something else is refused; a new request finds
	// nothing left to cancel.
	again, err := e.client.CancelOrder(e.resident(hh), cancel)
	if err != nil || again.Order.Status != orderv1.OrderStatus_ORDER_STATUS_CLOSED {
		t.Errorf("retry: %v %v", again, err)
	}
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "changed mind"})
	wantCode(t, err, codes.AlreadyExists)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-2", OrderId: o.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-3", OrderId: o.OrderId,
		Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: "haixin-1-1-101"}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-4", OrderId: "0190f1f6-3c1e-7000-8000-000000000000"})
	wantCode(t, err, codes.NotFound)
}

func TestCancelAfterConfirmation(t *testing.T) {
	t.Parallel()
	e := start(t)
	hh := e.household()
	o := e.place("req-1", hh, basket())
	fresh, pharmacy := parcelOf(o, "freshmart"), parcelOf(o, "pharmacy")
	// The supermarket has confirmed; its event has not reached the order service yet.
	e.sup.confirm(fresh.ParcelId)

	resp, err := e.client.CancelOrder(e.worker, &orderv1.CancelOrderRequest{RequestId: "cancel-1", OrderId: o.OrderId, Reason: "too late?",
		Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := parcelOf(resp.Order, "freshmart"); p.State != typesv1.ParcelState_PARCEL_STATE_PLACED {
		t.Errorf("confirmed parcel was touched: %v", p)
	}
	if p := parcelOf(resp.Order, "pharmacy"); p.State != typesv1.ParcelState_PARCEL_STATE_CANCELLED {
		t.Errorf("pharmacy parcel %v", p)
	}
	if got := e.sup.releasedParcels(); len(got) != 1 || got[0] != pharmacy.ParcelId {
		t.Errorf("released %v", got)
	}
	wantOnBehalfOf(t, e.sup.peerAuth, "ReleaseReservation", typesv1.Role_ROLE_WORKER, "worker-li")

	// The confirmation arrives: the order is under way.
	e.publish(parcelEvent(o, fresh, typesv1.ParcelState_PARCEL_STATE_CONFIRMED, typesv1.Role_ROLE_SUPPLIER, "freshmart", nil), "confirm-1")
	e.waitParcel(fresh.ParcelId, typesv1.ParcelState_PARCEL_STATE_CONFIRMED)
	if got := e.getOrder(o.OrderId); got.Status != orderv1.OrderStatus_ORDER_STATUS_IN_PROGRESS || got.TotalFen != fresh.TotalFen {
		t.Errorf("order %v", got)
	}
	_, err = e.client.CancelOrder(e.resident(hh), &orderv1.CancelOrderRequest{RequestId: "cancel-2", OrderId: o.OrderId})
	wantCode(t, err, codes.FailedPrecondition)
}
