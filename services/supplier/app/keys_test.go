package app_test

import (
	"testing"
	"time"

	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func (e *env) keys() []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT request_id FROM idempotency_keys ORDER BY request_id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// Keys are honoured for at least a day and forgotten after two, by the service's clock.
func TestIdempotencyKeysArePruned(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("rice", 2))
	first := e.clock.Now()

	setupKeys := len(e.keys()) // the supplier's, its credentials' and its item's, at the same time
	confirm := confirmReq(p)
	confirm.RequestId = "confirm-1"
	answer, err := e.client.ConfirmParcel(e.staff("freshmart"), confirm)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Hour)
	if _, err := e.client.CreateSupplier(e.worker(), &supplierv1.CreateSupplierRequest{RequestId: "create-1",
		Compound: compound, SupplierId: "pharmacy", Name: "Pharmacy", Kind: "pharmacy"}); err != nil {
		t.Fatal(err)
	}
	// A day and more later the retry still gets the first answer.
	again, err := e.client.ConfirmParcel(e.staff("freshmart"), confirm)
	if err != nil || !proto.Equal(again, answer) {
		t.Fatalf("retry after 30 h answered %v (%v), first %v", again, err, answer)
	}

	job := newClock(first.Add(48 * time.Hour).Truncate(time.Microsecond))
	if n, err := e.replica(job).PruneKeys(e.ctx); err != nil || n != 0 {
		t.Fatalf("at 48 h pruned %d, %v", n, err)
	}
	job.Advance(time.Microsecond)
	if n, err := e.replica(job).PruneKeys(e.ctx); err != nil || n != int64(setupKeys)+1 {
		t.Fatalf("past 48 h pruned %d, %v", n, err)
	}
	if got := e.keys(); len(got) != 1 || got[0] != "create-1" {
		t.Fatalf("keys left %v", got)
	}
	// Forgotten: the same request is now a new one, refused since the parcel is confirmed.
	_, err = e.client.ConfirmParcel(e.staff("freshmart"), confirm)
	wantCode(t, err, codes.FailedPrecondition)
	e.wantStock("rice", 8)
}

// Keys stored before keys were kept per caller (scope ”) still answer a retry after the upgrade:
// an adjustment retried across it is not applied twice.
func TestKeysFromBeforeScopesStillAnswer(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	req := adjustReq("freshmart", "rice", 5, "delivery")
	first, err := e.client.AdjustStock(e.staff("freshmart"), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE idempotency_keys SET scope = '' WHERE request_id = $1`, req.GetRequestId()); err != nil {
		t.Fatal(err)
	}
	again, err := e.client.AdjustStock(e.staff("freshmart"), req)
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("retry across the upgrade answered %v (%v), first %v", again, err, first)
	}
	e.wantStock("rice", 15)
	if got := e.keys(); len(got) != 4 { // the supplier's, its credentials', its item's and the legacy one
		t.Fatalf("keys %v: the retry stored a key of its own", got)
	}
}
