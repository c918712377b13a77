package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// wantNotAccepting fails unless err refuses a reservation because the supplier is not accepting
// orders, naming the supplier and the reason in the message and in a PreconditionFailure.
func wantNotAccepting(t *testing.T, err error, supplierID, reason string) {
	t.Helper()
	wantCode(t, err, codes.FailedPrecondition)
	st := status.Convert(err)
	if want := "supplier " + supplierID + " is not accepting orders: " + reason; st.Message() != want {
		t.Fatalf("message %q, want %q", st.Message(), want)
	}
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok && len(pf.GetViolations()) == 1 {
			v := pf.GetViolations()[0]
			if v.GetType() != "NOT_ACCEPTING_ORDERS" || v.GetSubject() != supplierID || v.GetDescription() != reason {
				t.Fatalf("violation %v", v)
			}
			return
		}
	}
	t.Fatalf("no precondition failure in %v", st.Details())
}

func (e *env) listSupplier(id string) *supplierv1.Supplier {
	e.t.Helper()
	res, err := e.client.ListSuppliers(e.worker(), &supplierv1.ListSuppliersRequest{Compound: compound})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range res.GetSuppliers() {
		if s.GetSupplierId() == id {
			return s
		}
	}
	e.t.Fatalf("supplier %s not listed", id)
	return nil
}

func wantStanding(t *testing.T, s *supplierv1.Supplier, accepting bool, reason string) {
	t.Helper()
	if s.GetAcceptingOrders() != accepting || s.GetNotAcceptingReason() != reason {
		t.Fatalf("supplier %s: accepting %v (%q), want %v (%q)", s.GetSupplierId(), s.GetAcceptingOrders(),
			s.GetNotAcceptingReason(), accepting, reason)
	}
}

func TestUpdateCredentialsValidatesEveryField(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.newSupplier("freshmart", "supermarket")
	valid := func() *supplierv1.UpdateCredentialsRequest {
		return &supplierv1.UpdateCredentialsRequest{RequestId: newID(), SupplierId: "freshmart", Credentials: []*supplierv1.Credential{
			credential("business_licence", "2030-12-31"), credential("food_permit", "2027-06-30")}}
	}
	tests := []struct {
		field string
		edit  func(*supplierv1.UpdateCredentialsRequest)
	}{
		{"supplier_id", func(r *supplierv1.UpdateCredentialsRequest) { r.SupplierId = "" }},
		{"credentials[0].kind", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].Kind = "fishing_licence" }},
		{"credentials[0].kind", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].Kind = "" }},
		{"credentials[1].kind", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[1].Kind = "business_licence" }},
		{"credentials[1].number", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[1].Number = " " }},
		{"credentials[1].number", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[1].Number = strings.Repeat("9", 65) }},
		{"credentials[0].expires_on", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].ExpiresOn = "" }},
		{"credentials[0].expires_on", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].ExpiresOn = "2026-02-30" }},
		{"credentials[0].expires_on", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].ExpiresOn = "2026-3-1" }},
		{"credentials[0].expires_on", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].ExpiresOn = "31/12/2030" }},
		{"credentials[0].expires_on", func(r *supplierv1.UpdateCredentialsRequest) { r.Credentials[0].ExpiresOn = "1999-12-31" }},
		{"request_id", func(r *supplierv1.UpdateCredentialsRequest) { r.RequestId = strings.Repeat("x", 129) }},
	}
	for _, tt := range tests {
		req := valid()
		tt.edit(req)
		_, err := e.client.UpdateCredentials(e.worker(), req)
		wantField(t, err, tt.field)
	}
	unknown := valid()
	unknown.SupplierId = "nobody"
	_, err := e.client.UpdateCredentials(e.worker(), unknown)
	wantCode(t, err, codes.NotFound)

	// A refused update stored nothing.
	wantStanding(t, e.listSupplier("freshmart"), false, "business_licence missing; food_permit missing")

	// Retries answer the first result; the same id on other credentials is refused.
	req := valid()
	req.RequestId = "credentials-1"
	first, err := e.client.UpdateCredentials(e.worker(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client.UpdateCredentials(e.worker(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, again) {
		t.Fatalf("retry answered %v, first %v", again, first)
	}
	changed := proto.Clone(req).(*supplierv1.UpdateCredentialsRequest)
	changed.Credentials[1].ExpiresOn = "2028-01-01"
	_, err = e.client.UpdateCredentials(e.worker(), changed)
	wantCode(t, err, codes.AlreadyExists)

	s := first.GetSupplier()
	if len(s.GetCredentials()) != 2 || s.GetCredentials()[1].GetKind() != "food_permit" ||
		s.GetCredentials()[1].GetExpiresOn() != "2027-06-30" || s.GetCredentials()[1].GetNumber() != "No. food_permit" {
		t.Fatalf("credentials %v", s.GetCredentials())
	}
	wantStanding(t, s, true, "")
	if !proto.Equal(e.listSupplier("freshmart"), s) {
		t.Fatalf("listed %v, updated %v", e.listSupplier("freshmart"), s)
	}

	// The update replaces: dropping the permit leaves it missing.
	wantStanding(t, e.credentials("freshmart", credential("business_licence", "2030-12-31")), false, "food_permit missing")
}

// A supplier takes orders only with the licence and permit of its kind, each valid through the
// Asia/Shanghai day it expires on.
func TestStandingFollowsCredentialsAndTheDay(t *testing.T) {
	t.Parallel()
	e := start(t) // 2026-03-01 10:00 in Shanghai
	created := e.newSupplier("freshmart", "supermarket")
	wantStanding(t, created, false, "business_licence missing; food_permit missing")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	_, err := e.reserve("freshmart", "302", line("rice", 1))
	wantNotAccepting(t, err, "freshmart", "business_licence missing; food_permit missing")

	// A permit whose last day is today is still valid.
	wantStanding(t, e.credentials("freshmart", credential("business_licence", "2030-12-31"),
		credential("food_permit", "2026-03-01")), true, "")
	e.mustReserve("freshmart", "302", line("rice", 1))

	// A pharmacy needs a drug permit; a food permit is no substitute.
	e.newSupplier("pharmacy", "pharmacy")
	e.item(counted("pharmacy", "masks", 2000, 10, 0))
	wantStanding(t, e.credentials("pharmacy", credential("business_licence", "2026-02-28"),
		credential("food_permit", "2030-12-31")), false, "business_licence expired on 2026-02-28; drug_permit missing")
	_, err = e.reserve("pharmacy", "302", line("masks", 1))
	wantNotAccepting(t, err, "pharmacy", "business_licence expired on 2026-02-28; drug_permit missing")
	wantStanding(t, e.credentials("pharmacy", credential("business_licence", "2030-12-31"),
		credential("drug_permit", "2030-12-31")), true, "")
	e.mustReserve("pharmacy", "302", line("masks", 1))

	// 02:00 UTC + 14 h is midnight in Shanghai: the food permit has lapsed.
	e.clock.Advance(14 * time.Hour)
	wantStanding(t, e.listSupplier("freshmart"), false, "food_permit expired on 2026-03-01")
	_, err = e.reserve("freshmart", "302", line("rice", 1))
	wantNotAccepting(t, err, "freshmart", "food_permit expired on 2026-03-01")
	e.wantStock("rice", 9)
	wantStanding(t, e.listSupplier("pharmacy"), true, "")
}

// A supplier whose permit has expired takes no new orders but fills the ones it has.
func TestExpiredCredentialStillFillsPlacedParcels(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	p := e.mustReserve("freshmart", "302", line("rice", 2))
	q := e.mustReserve("freshmart", "303", line("rice", 3))

	e.credentials("freshmart", credential("business_licence", "2030-12-31"), credential("food_permit", "2026-02-28"))
	_, err := e.reserve("freshmart", "304", line("rice", 1))
	wantNotAccepting(t, err, "freshmart", "food_permit expired on 2026-02-28")

	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.MarkParcelReady(e.staff("freshmart"), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RejectParcel(e.staff("freshmart"), &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: q.GetParcelId(), Reason: "permit lapsed"}); err != nil {
		t.Fatal(err)
	}
	e.wantStock("rice", 8)
}

func TestSuspension(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.item(counted("freshmart", "rice", 4500, 10, 0))
	confirmed := e.mustReserve("freshmart", "301", line("rice", 1))
	rejected := e.mustReserve("freshmart", "302", line("rice", 1))
	released := e.mustReserve("freshmart", "303", line("rice", 1))

	// The actor a request names is not read: suspensions are recorded as the caller's.
	valid := func() *supplierv1.SetSupplierSuspendedRequest {
		return &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "freshmart", Suspended: true,
			Reason: "hygiene inspection", Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_SUPPLIER, Id: "freshmart"}}
	}
	tests := []struct {
		field string
		edit  func(*supplierv1.SetSupplierSuspendedRequest)
	}{
		{"supplier_id", func(r *supplierv1.SetSupplierSuspendedRequest) { r.SupplierId = "" }},
		{"reason", func(r *supplierv1.SetSupplierSuspendedRequest) { r.Reason = " " }},
		{"reason", func(r *supplierv1.SetSupplierSuspendedRequest) { r.Reason = strings.Repeat("x", 501) }},
	}
	for _, tt := range tests {
		req := valid()
		tt.edit(req)
		_, err := e.client.SetSupplierSuspended(e.worker(), req)
		wantField(t, err, tt.field)
	}
	unknown := valid()
	unknown.SupplierId = "nobody"
	_, err := e.client.SetSupplierSuspended(e.worker(), unknown)
	wantCode(t, err, codes.NotFound)

	suspend := valid()
	suspend.RequestId = "suspend-1"
	res, err := e.client.SetSupplierSuspended(e.worker(), suspend)
	if err != nil {
		t.Fatal(err)
	}
	s := res.GetSupplier()
	if !s.GetSuspended() || s.GetSuspensionReason() != "hygiene inspection" {
		t.Fatalf("supplier %v", s)
	}
	wantStanding(t, s, false, "suspended: hygiene inspection")
	again, err := e.client.SetSupplierSuspended(e.worker(), suspend)
	if err != nil || !proto.Equal(again, res) {
		t.Fatalf("retry answered %v (%v), first %v", again, err, res)
	}
	other := valid()
	other.RequestId, other.Reason = "suspend-1", "another reason"
	_, err = e.client.SetSupplierSuspended(e.worker(), other)
	wantCode(t, err, codes.AlreadyExists)

	_, err = e.reserve("freshmart", "304", line("rice", 1))
	wantNotAccepting(t, err, "freshmart", "suspended: hygiene inspection")
	// Suspended and without papers: every reason is told.
	e.credentials("freshmart", credential("business_licence", "2030-12-31"))
	_, err = e.reserve("freshmart", "304", line("rice", 1))
	wantNotAccepting(t, err, "freshmart", "suspended: hygiene inspection; food_permit missing")
	e.credentials("freshmart", credential("business_licence", "2030-12-31"), credential("food_permit", "2030-12-31"))

	// What was placed before the suspension is still filled, rejected or cancelled.
	if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(confirmed)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.MarkParcelReady(e.staff("freshmart"), &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: confirmed.GetParcelId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RejectParcel(e.staff("freshmart"), &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: rejected.GetParcelId(), Reason: "suspended"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ReleaseReservation(e.system(), &supplierv1.ReleaseReservationRequest{ParcelId: released.GetParcelId()}); err != nil {
		t.Fatal(err)
	}
	e.wantStock("rice", 9)

	// Reinstated through the gateway acting for another worker: recorded as that worker's.
	reinstate := &supplierv1.SetSupplierSuspendedRequest{RequestId: "reinstate-1", SupplierId: "freshmart",
		Reason: "inspection passed", Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_DISPATCHER, Id: "manager-wang"}}
	res, err = e.client.SetSupplierSuspended(e.as(typesv1.Role_ROLE_SYSTEM, "gateway",
		onBehalfOf(typesv1.Role_ROLE_WORKER, "worker-zhao", testkit.InCompound(compound))), reinstate)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetSupplier().GetSuspended() || res.GetSupplier().GetSuspensionReason() != "" {
		t.Fatalf("reinstated %v", res.GetSupplier())
	}
	wantStanding(t, res.GetSupplier(), true, "")
	e.mustReserve("freshmart", "304", line("rice", 1))
	// Reinstating a supplier in good standing records nothing more.
	if _, err := e.client.SetSupplierSuspended(e.worker(), &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "freshmart"}); err != nil {
		t.Fatal(err)
	}

	rows, err := e.pool.Query(e.ctx, `SELECT suspended, reason, actor_role, actor_id, at FROM supplier_suspensions
		WHERE supplier_id = 'freshmart' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var history []string
	for rows.Next() {
		var suspended bool
		var reason, role, id string
		var at time.Time
		if err := rows.Scan(&suspended, &reason, &role, &id, &at); err != nil {
			t.Fatal(err)
		}
		if !at.Equal(e.clock.Now().Truncate(time.Microsecond)) {
			t.Fatalf("recorded at %v, clock %v", at, e.clock.Now())
		}
		history = append(history, strings.Join([]string{map[bool]string{true: "suspended", false: "reinstated"}[suspended], reason, role, id}, " | "))
	}
	want := []string{"suspended | hygiene inspection | worker | worker-li", "reinstated | inspection passed | worker | worker-zhao"}
	if strings.Join(history, "\n") != strings.Join(want, "\n") {
		t.Fatalf("history\n%s\nwant\n%s", strings.Join(history, "\n"), strings.Join(want, "\n"))
	}
}
