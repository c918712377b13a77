package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/testkit"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every RPC against every kind of caller, through the real server and its interceptor. Where
// ownership applies, the caller's own object and another's: another supplier's records and
// parcels, another household's parcel and another compound's anything are NOT_FOUND, as if
// unknown. The community's donated stock is kept by the compound's workers, who may keep no
// other supplier's, and only a worker's campaign (through the order service) reserves free packs.
func TestWhoMayCallWhat(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.supplier("freshmart")
	e.supplier("pharmacy")
	e.item(counted("freshmart", "rice", 4500, 100_000, 0))
	e.donations("donations")
	e.donated("donations", "disinfectant", 100_000)
	const household = "haixin-3-2-302" // the resident whose order the parcels are

	// packed is a fresh campaign's pack of donated stock for the household, confirmed at once.
	packed := func() (*supplierv1.SupplierParcel, error) {
		res, err := e.client.ReserveStock(e.campaign(), packReq("donations", "302", "spring", line("disinfectant", 1)))
		if err != nil {
			return nil, fmt.Errorf("setup: campaign pack: %v", err)
		}
		return res.GetParcel(), nil
	}
	// placed is a fresh parcel of the household at FreshMart, reserved by the order service. A
	// failed setup is an error without a status code, so the test names it.
	placed := func() (*supplierv1.SupplierParcel, error) {
		res, err := e.client.ReserveStock(e.system(), reserveReq("freshmart", "302", line("rice", 1)))
		if err != nil {
			return nil, fmt.Errorf("setup: reserve: %v", err)
		}
		return res.GetParcel(), nil
	}
	// Each RPC, called as the identity in ctx, on FreshMart, its rice and its parcels in haixin.
	// Each call stands alone (fresh parcels and suppliers, repeatable updates), so the callers
	// may come in any order.
	rpcs := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"CreateSupplier", func(ctx context.Context) error {
			_, err := e.client.CreateSupplier(ctx, &supplierv1.CreateSupplierRequest{RequestId: newID(), Compound: compound,
				SupplierId: "s-" + newID(), Name: "New Mart", Kind: "supermarket"})
			return err
		}},
		{"ListSuppliers", func(ctx context.Context) error {
			_, err := e.client.ListSuppliers(ctx, &supplierv1.ListSuppliersRequest{Compound: compound})
			return err
		}},
		{"UpdateCredentials", func(ctx context.Context) error {
			_, err := e.client.UpdateCredentials(ctx, &supplierv1.UpdateCredentialsRequest{RequestId: newID(), SupplierId: "freshmart",
				Credentials: []*supplierv1.Credential{credential("business_licence", "2030-12-31"), credential("food_permit", "2030-12-31")}})
			return err
		}},
		{"SetSupplierSuspended", func(ctx context.Context) error {
			// Reinstating a supplier in good standing changes nothing, however often.
			_, err := e.client.SetSupplierSuspended(ctx, &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "freshmart"})
			return err
		}},
		{"UpsertItem", func(ctx context.Context) error {
			_, err := e.client.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: newID(), Item: counted("freshmart", "rice", 4500, 100_000, 0)})
			return err
		}},
		{"ListItems", func(ctx context.Context) error {
			_, err := e.client.ListItems(ctx, &supplierv1.ListItemsRequest{Compound: compound})
			return err
		}},
		{"BatchGetItems", func(ctx context.Context) error {
			_, err := e.client.BatchGetItems(ctx, &supplierv1.BatchGetItemsRequest{ItemIds: []string{"rice"}})
			return err
		}},
		{"ReserveStock", func(ctx context.Context) error {
			_, err := e.client.ReserveStock(ctx, reserveReq("freshmart", "302", line("rice", 1)))
			return err
		}},
		{"ReleaseReservation", func(ctx context.Context) error {
			p, err := placed()
			if err != nil {
				return err
			}
			_, err = e.client.ReleaseReservation(ctx, &supplierv1.ReleaseReservationRequest{ParcelId: p.GetParcelId(), Reason: "cancelled"})
			return err
		}},
		{"ConfirmParcel", func(ctx context.Context) error {
			p, err := placed()
			if err != nil {
				return err
			}
			_, err = e.client.ConfirmParcel(ctx, confirmReq(p))
			return err
		}},
		{"RejectParcel", func(ctx context.Context) error {
			p, err := placed()
			if err != nil {
				return err
			}
			_, err = e.client.RejectParcel(ctx, &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId(), Reason: "sold out"})
			return err
		}},
		{"MarkParcelReady", func(ctx context.Context) error {
			p, err := placed()
			if err != nil {
				return err
			}
			if _, err := e.client.ConfirmParcel(e.staff("freshmart"), confirmReq(p)); err != nil {
				return fmt.Errorf("setup: confirm: %v", err)
			}
			_, err = e.client.MarkParcelReady(ctx, &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: p.GetParcelId()})
			return err
		}},
		{"ListParcels", func(ctx context.Context) error {
			_, err := e.client.ListParcels(ctx, &supplierv1.ListParcelsRequest{SupplierId: "freshmart"})
			return err
		}},
		{"AdjustStock", func(ctx context.Context) error {
			_, err := e.client.AdjustStock(ctx, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "freshmart",
				ItemId: "rice", Delta: 1, Reason: "delivery"})
			return err
		}},
		// The same for the donated stock.
		{"UpsertItem of donated stock", func(ctx context.Context) error {
			_, err := e.client.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: newID(), Item: donatedItem("donations", "disinfectant", 100_000)})
			return err
		}},
		{"AdjustStock of donated stock", func(ctx context.Context) error {
			_, err := e.client.AdjustStock(ctx, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "donations",
				ItemId: "disinfectant", Delta: 1, Reason: "donated by a neighbour"})
			return err
		}},
		{"MarkParcelReady of a campaign's pack", func(ctx context.Context) error {
			p, err := packed()
			if err != nil {
				return err
			}
			_, err = e.client.MarkParcelReady(ctx, &supplierv1.MarkParcelReadyRequest{RequestId: newID(), SupplierId: "donations", ParcelId: p.GetParcelId()})
			return err
		}},
		{"ListParcels of donated stock", func(ctx context.Context) error {
			_, err := e.client.ListParcels(ctx, &supplierv1.ListParcelsRequest{SupplierId: "donations"})
			return err
		}},
		{"ReserveStock of a campaign's pack", func(ctx context.Context) error {
			_, err := e.client.ReserveStock(ctx, packReq("donations", "302", "spring", line("disinfectant", 1)))
			return err
		}},
	}

	const (
		resident   = typesv1.Role_ROLE_RESIDENT
		worker     = typesv1.Role_ROLE_WORKER
		supplier   = typesv1.Role_ROLE_SUPPLIER
		dispatcher = typesv1.Role_ROLE_DISPATCHER
		courier    = typesv1.Role_ROLE_COURIER
		system     = typesv1.Role_ROLE_SYSTEM
	)
	in := testkit.InCompound
	as := e.as
	forSomeone := func(role typesv1.Role, subject string, opts ...func(*auth.Identity)) context.Context {
		return as(system, "gateway", onBehalfOf(role, subject, opts...))
	}
	forged, err := auth.NewKeys([]byte("not-the-doorstep-key-but-32-bytes-long"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forgedCtx, err := forged.Outgoing(e.ctx, auth.Identity{Role: system, Subject: "intruder"})
	if err != nil {
		t.Fatal(err)
	}

	const (
		ok          = codes.OK
		notFound    = codes.NotFound
		denied      = codes.PermissionDenied
		unauthentic = codes.Unauthenticated
	)
	const n = 19 // len(rpcs)
	var (
		// Codes in the order of rpcs: CreateSupplier, ListSuppliers, UpdateCredentials,
		// SetSupplierSuspended, UpsertItem, ListItems, BatchGetItems, ReserveStock,
		// ReleaseReservation, ConfirmParcel, RejectParcel, MarkParcelReady, ListParcels,
		// AdjustStock; then for the donated stock UpsertItem, AdjustStock, MarkParcelReady,
		// ListParcels, and ReserveStock of a campaign's pack.
		reader = [n]codes.Code{denied, ok, denied, denied, denied, ok, ok, denied, denied, denied, denied, denied, denied, denied,
			denied, denied, denied, denied, denied}
		// A worker keeps the donated stock, and no supermarket's (refused by the domain).
		compoundStaff = [n]codes.Code{ok, ok, ok, ok, denied, ok, ok, denied, denied, denied, denied, denied, ok, denied,
			ok, ok, ok, ok, denied}
		otherCompound = [n]codes.Code{denied, notFound, notFound, notFound, notFound, notFound, notFound, denied, denied, denied, denied, notFound, notFound, notFound,
			notFound, notFound, notFound, notFound, denied}
		ownStaff = [n]codes.Code{denied, ok, ok, denied, ok, ok, ok, denied, denied, ok, ok, ok, ok, ok,
			notFound, notFound, notFound, notFound, denied}
		otherStaff = [n]codes.Code{denied, ok, notFound, denied, notFound, ok, ok, denied, denied, notFound, notFound, notFound, notFound, notFound,
			notFound, notFound, notFound, notFound, denied}
		everything = [n]codes.Code{ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok}
		nobody     = [n]codes.Code{unauthentic, unauthentic, unauthentic, unauthentic, unauthentic, unauthentic, unauthentic,
			unauthentic, unauthentic, unauthentic, unauthentic, unauthentic, unauthentic, unauthentic,
			unauthentic, unauthentic, unauthentic, unauthentic, unauthentic}
		unbound = [n]codes.Code{denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied, denied,
			denied, denied, denied, denied, denied}
	)
	if len(rpcs) != n {
		t.Fatalf("%d rpcs, the tables have %d codes", len(rpcs), n)
	}
	// with is want with the codes of ReserveStock, ReleaseReservation and ReserveStock of a
	// campaign's pack replaced: the order service reserves and releases for residents and workers,
	// whose own roles may not, and reserves campaigns' packs for workers only.
	with := func(want [n]codes.Code, reserve, release, pack codes.Code) [n]codes.Code {
		want[7], want[8], want[18] = reserve, release, pack
		return want
	}
	// A dispatcher reads like a resident, and also lists parcels (what waits at the gate).
	gate := reader
	gate[12], gate[17] = ok, ok
	for _, tc := range []struct {
		caller string
		ctx    context.Context
		want   [n]codes.Code
	}{
		{"the resident", as(resident, household, in(compound)), reader},
		{"worker", as(worker, "worker-li", in(compound)), compoundStaff},
		{"city-wide worker", as(worker, "worker-chen"), compoundStaff},
		{"worker of another compound", as(worker, "worker-zhao", in("yuyuan")), with(otherCompound, denied, denied, denied)},
		{"FreshMart's staff", as(supplier, "fm-1", testkit.Supplier("freshmart"), in(compound)), ownStaff},
		{"another supplier's staff", as(supplier, "ph-1", testkit.Supplier("pharmacy"), in(compound)), otherStaff},
		{"supplier staff bound to no supplier", as(supplier, "stray-1", in(compound)), unbound},
		{"dispatcher", as(dispatcher, "wang", in(compound)), gate},
		{"courier", as(courier, "haixin-courier-01", in(compound)), reader},
		{"system", as(system, "order"), everything},
		{"system for the resident", forSomeone(resident, household, in(compound)), with(reader, ok, ok, denied)},
		{"system for another resident", forSomeone(resident, "haixin-9-1-901", in(compound)), with(reader, denied, notFound, denied)},
		{"system for FreshMart's staff", forSomeone(supplier, "fm-1", testkit.Supplier("freshmart"), in(compound)), ownStaff},
		{"system for another supplier's staff", forSomeone(supplier, "ph-1", testkit.Supplier("pharmacy"), in(compound)), otherStaff},
		{"system for a worker", forSomeone(worker, "worker-li", in(compound)), with(compoundStaff, ok, ok, ok)},
		{"system for a worker of another compound", forSomeone(worker, "worker-zhao", in("yuyuan")), with(otherCompound, denied, notFound, denied)},
		{"system for a dispatcher", forSomeone(dispatcher, "wang", in(compound)), gate},
		{"system for a courier", forSomeone(courier, "haixin-courier-01", in(compound)), reader},
		{"no identity", e.ctx, nobody},
		{"identity signed with another key", forgedCtx, nobody},
	} {
		for i, rpc := range rpcs {
			t.Run(tc.caller+"/"+rpc.name, func(t *testing.T) {
				if err := rpc.call(tc.ctx); status.Code(err) != tc.want[i] {
					t.Errorf("%s as %s: %v, want %v", rpc.name, tc.caller, err, tc.want[i])
				}
			})
		}
	}

	// What a caller may not reach is refused exactly as what does not exist.
	same := func(what string, other, unknown error, otherID, unknownID string) {
		t.Helper()
		got, want := status.Convert(other), status.Convert(unknown)
		if got.Code() != codes.NotFound || want.Code() != codes.NotFound ||
			got.Message() != strings.ReplaceAll(want.Message(), unknownID, otherID) {
			t.Errorf("%s: %v; unknown: %v", what, other, unknown)
		}
	}
	p, err := placed()
	if err != nil {
		t.Fatal(err)
	}
	pharmacy := e.staff("pharmacy")
	unknownParcel := newID()
	_, errOther := e.client.ConfirmParcel(pharmacy, confirmReq(p))
	_, errUnknown := e.client.ConfirmParcel(pharmacy, &supplierv1.ConfirmParcelRequest{RequestId: newID(), SupplierId: "freshmart", ParcelId: unknownParcel})
	same("another supplier's parcel", errOther, errUnknown, p.GetParcelId(), unknownParcel)
	_, errOther = e.client.RejectParcel(pharmacy, &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "pharmacy", ParcelId: p.GetParcelId(), Reason: "x"})
	_, errUnknown = e.client.RejectParcel(pharmacy, &supplierv1.RejectParcelRequest{RequestId: newID(), SupplierId: "pharmacy", ParcelId: unknownParcel, Reason: "x"})
	same("another supplier's parcel under one's own name", errOther, errUnknown, p.GetParcelId(), unknownParcel)
	_, errOther = e.client.UpdateCredentials(pharmacy, &supplierv1.UpdateCredentialsRequest{RequestId: newID(), SupplierId: "freshmart"})
	_, errUnknown = e.client.UpdateCredentials(e.system(), &supplierv1.UpdateCredentialsRequest{RequestId: newID(), SupplierId: "nobody"})
	same("another supplier", errOther, errUnknown, "freshmart", "nobody")
	_, errOther = e.client.ListParcels(pharmacy, &supplierv1.ListParcelsRequest{SupplierId: "freshmart"})
	_, errUnknown = e.client.ListParcels(e.system(), &supplierv1.ListParcelsRequest{SupplierId: "nobody"})
	same("another supplier's queue", errOther, errUnknown, "freshmart", "nobody")
	elsewhere := as(worker, "worker-zhao", in("yuyuan"))
	_, errOther = e.client.BatchGetItems(elsewhere, &supplierv1.BatchGetItemsRequest{ItemIds: []string{"rice"}})
	_, errUnknown = e.client.BatchGetItems(e.system(), &supplierv1.BatchGetItemsRequest{ItemIds: []string{"caviar"}})
	same("another compound's item", errOther, errUnknown, "rice", "caviar")
	_, errOther = e.client.SetSupplierSuspended(elsewhere, &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "freshmart"})
	_, errUnknown = e.client.SetSupplierSuspended(elsewhere, &supplierv1.SetSupplierSuspendedRequest{RequestId: newID(), SupplierId: "nobody"})
	same("another compound's supplier", errOther, errUnknown, "freshmart", "nobody")
	_, errOther = e.client.AdjustStock(elsewhere, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "donations",
		ItemId: "disinfectant", Delta: 1, Reason: "donated"})
	_, errUnknown = e.client.AdjustStock(elsewhere, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "nobody",
		ItemId: "disinfectant", Delta: 1, Reason: "donated"})
	same("another compound's donated stock", errOther, errUnknown, "donations", "nobody")
	_, errOther = e.client.AdjustStock(pharmacy, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "freshmart",
		ItemId: "rice", Delta: 1, Reason: "delivery"})
	_, errUnknown = e.client.AdjustStock(e.system(), &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "nobody",
		ItemId: "rice", Delta: 1, Reason: "delivery"})
	same("another supplier's stock", errOther, errUnknown, "freshmart", "nobody")
	_, errOther = e.client.AdjustStock(pharmacy, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "pharmacy",
		ItemId: "rice", Delta: 1, Reason: "delivery"})
	_, errUnknown = e.client.AdjustStock(pharmacy, &supplierv1.AdjustStockRequest{RequestId: newID(), SupplierId: "pharmacy",
		ItemId: "caviar", Delta: 1, Reason: "delivery"})
	same("another supplier's item under one's own name", errOther, errUnknown, "rice", "caviar")
	forNeighbour := forSomeone(resident, "haixin-9-1-901", in(compound))
	_, errOther = e.client.ReleaseReservation(forNeighbour, &supplierv1.ReleaseReservationRequest{ParcelId: p.GetParcelId()})
	_, errUnknown = e.client.ReleaseReservation(forNeighbour, &supplierv1.ReleaseReservationRequest{ParcelId: unknownParcel})
	same("another household's parcel", errOther, errUnknown, p.GetParcelId(), unknownParcel)

	// Nothing refused changed the parcel; its own supplier still decides it, recorded as the staff
	// member who did.
	confirm := confirmReq(p)
	confirm.RequestId = "confirm-" + p.GetParcelId()
	if _, err := e.client.ConfirmParcel(as(supplier, "fm-2", testkit.Supplier("freshmart"), in(compound)), confirm); err != nil {
		t.Fatal(err)
	}
	if got := e.transitions(p.GetParcelId()); len(got) != 2 || got[1] != "placed>confirmed by supplier:fm-2" {
		t.Fatalf("transitions %q", got)
	}
	// Replaying that very request, request id and all, does not hand another supplier the stored
	// answer.
	_, errOther = e.client.ConfirmParcel(pharmacy, confirm)
	same("another supplier's stored answer", errOther, errUnknown, p.GetParcelId(), unknownParcel)
	adjust := &supplierv1.AdjustStockRequest{RequestId: "adjust-1", SupplierId: "freshmart", ItemId: "rice", Delta: 5, Reason: "delivery"}
	if _, err := e.client.AdjustStock(e.staff("freshmart"), adjust); err != nil {
		t.Fatal(err)
	}
	_, errOther = e.client.AdjustStock(pharmacy, adjust)
	_, errUnknown = e.client.AdjustStock(e.system(), &supplierv1.AdjustStockRequest{RequestId: "adjust-2", SupplierId: "nobody",
		ItemId: "rice", Delta: 5, Reason: "delivery"})
	same("another supplier's stored adjustment", errOther, errUnknown, "freshmart", "nobody")
}
