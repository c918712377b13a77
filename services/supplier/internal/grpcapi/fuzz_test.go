package grpcapi

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The fuzz targets decode arbitrary bytes as each mutating request and run them through the
// server: edge checks, proto → domain mapping, the domain's validation and decisions (against
// fuzzRepo's fixed catalog and parcels) and the error mapping. They must never panic, never
// answer INTERNAL or an INVALID_ARGUMENT without a field, and never break the stock arithmetic.
// `go test` runs every committed input under testdata/fuzz; `go test -fuzz FuzzX` searches more.

var updateCorpus = flag.Bool("update-corpus", false, "write the seed requests to testdata/fuzz")

// fuzzParcelID names a placed parcel (see fuzzParcel), readyParcelID a confirmed one and
// packParcelID a campaign's confirmed pack of donated stock.
const (
	fuzzParcelID  = "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02"
	readyParcelID = "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f04"
	packParcelID  = "d190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f03"
)

var fuzzNow = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC) // 10:00 in Shanghai

// seeds are the committed corpus: one valid request of each kind and the edge cases the tests
// name, so the fuzzer starts from requests that reach deep into the domain.
var seeds = map[string]map[string]proto.Message{
	"FuzzCreateSupplier": {
		"valid":     &supplierv1.CreateSupplierRequest{RequestId: "r1", Compound: "haixin", Name: "FreshMart", Kind: "supermarket", SupplierId: "freshmart"},
		"bad-ids":   &supplierv1.CreateSupplierRequest{Compound: "Hai Xin", Name: " ", Kind: "bakery", SupplierId: "Fresh Mart"},
		"donations": &supplierv1.CreateSupplierRequest{Compound: "haixin", Name: "捐赠物资", Kind: "donations", SupplierId: "haixin-donations"},
	},
	"FuzzUpsertItem": {
		"counted": &supplierv1.UpsertItemRequest{RequestId: "r1", Item: &supplierv1.Item{ItemId: "rice", SupplierId: "freshmart",
			Name: "Rice", Unit: "bag", ReferencePriceFen: 4500, CurrentPriceFen: 4000, Stock: 10, RationPerDay: 2, UnitWeightGrams: 5000}},
		"weighed-bundle": &supplierv1.UpsertItemRequest{Item: &supplierv1.Item{SupplierId: "freshmart", Name: "Veg", Unit: "kg",
			Weighed: true, Bundle: true, ReferencePriceFen: 100, CurrentPriceFen: 101, Stock: -1}},
		"no-item": &supplierv1.UpsertItemRequest{RequestId: "r2"},
		"donated": &supplierv1.UpsertItemRequest{RequestId: "r3", Item: &supplierv1.Item{ItemId: "disinfectant", SupplierId: "donations",
			Name: "84消毒液", Unit: "bottle", Stock: 1300, UnitWeightGrams: 600}},
		"donated-priced": &supplierv1.UpsertItemRequest{Item: &supplierv1.Item{ItemId: "masks", SupplierId: "donations",
			Name: "Masks", Unit: "pack", ReferencePriceFen: 100, CurrentPriceFen: 100, RationPerDay: 1, UnitWeightGrams: 60}},
		"free-at-supermarket": &supplierv1.UpsertItemRequest{Item: &supplierv1.Item{ItemId: "rice", SupplierId: "freshmart",
			Name: "Rice", Unit: "bag", UnitWeightGrams: 5000}},
	},
	"FuzzAdjustStock": {
		"delivery": &supplierv1.AdjustStockRequest{RequestId: "r1", SupplierId: "freshmart", ItemId: "rice", Delta: 20,
			Reason: "delivery from the wholesaler"},
		"too-many-removed": &supplierv1.AdjustStockRequest{RequestId: "r2", SupplierId: "freshmart", ItemId: "rice", Delta: -6,
			Reason: "spoiled"},
		"bad": &supplierv1.AdjustStockRequest{SupplierId: "Fresh Mart", Delta: 0, Reason: " "},
		"other-supplier": &supplierv1.AdjustStockRequest{RequestId: "r3", SupplierId: "freshmart", ItemId: "other", Delta: 1,
			Reason: "recount"},
		"above-max": &supplierv1.AdjustStockRequest{RequestId: "r4", SupplierId: "freshmart", ItemId: "eggs", Delta: supply.MaxStock,
			Reason: "recount"},
		"donated": &supplierv1.AdjustStockRequest{RequestId: "r5", SupplierId: "donations", ItemId: "disinfectant", Delta: -3,
			Reason: "broken bottles"},
	},
	"FuzzReserveStock": {
		"valid": &supplierv1.ReserveStockRequest{ParcelId: fuzzParcelID, OrderId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02",
			SupplierId: "freshmart", HouseholdId: "haixin-3-2-302",
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Lines:   []*supplierv1.ReservationLine{{ItemId: "rice", Quantity: 2}, {ItemId: "pork", Quantity: 50}, {ItemId: "masks", Quantity: 1}}},
		"refusals": &supplierv1.ReserveStockRequest{ParcelId: fuzzParcelID, OrderId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02",
			SupplierId: "freshmart", HouseholdId: "haixin-3-2-302",
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Lines:   []*supplierv1.ReservationLine{{ItemId: "rice", Quantity: 99}, {ItemId: "masks", Quantity: 3}, {ItemId: "caviar", Quantity: 1}}},
		"suspended-supplier": &supplierv1.ReserveStockRequest{ParcelId: fuzzParcelID, OrderId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02",
			SupplierId: "suspended", HouseholdId: "haixin-3-2-302",
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Room: "302"},
			Lines:   []*supplierv1.ReservationLine{{ItemId: "rice", Quantity: 1}}},
		"bad-shape": &supplierv1.ReserveStockRequest{ParcelId: "p1", Address: &typesv1.Address{Compound: "elsewhere", Floor: -1},
			Lines: []*supplierv1.ReservationLine{{ItemId: "rice"}, {ItemId: "rice", Quantity: -3}}, CampaignId: "not a campaign"},
		"campaign": &supplierv1.ReserveStockRequest{ParcelId: fuzzParcelID, OrderId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02",
			SupplierId: "freshmart", HouseholdId: "haixin-3-2-302", CampaignId: "spring-disinfection",
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Lines:   []*supplierv1.ReservationLine{{ItemId: "masks", Quantity: 5}, {ItemId: "pork", Quantity: 50}}},
		"campaign-donated": &supplierv1.ReserveStockRequest{ParcelId: fuzzParcelID, OrderId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02",
			SupplierId: "donations", HouseholdId: "haixin-3-2-302", CampaignId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f09",
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Lines:   []*supplierv1.ReservationLine{{ItemId: "disinfectant", Quantity: 1}, {ItemId: "notice", Quantity: 1}}},
		"donated-without-campaign": &supplierv1.ReserveStockRequest{ParcelId: fuzzParcelID, OrderId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f02",
			SupplierId: "donations", HouseholdId: "haixin-3-2-302",
			Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Lines:   []*supplierv1.ReservationLine{{ItemId: "disinfectant", Quantity: 1}}},
	},
	"FuzzReleaseReservation": {
		"valid": &supplierv1.ReleaseReservationRequest{ParcelId: fuzzParcelID, Reason: "resident cancelled",
			Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: "haixin-3-2-302"}},
		"odd-role": &supplierv1.ReleaseReservationRequest{ParcelId: fuzzParcelID, Actor: &typesv1.Actor{Role: 99}},
	},
	"FuzzConfirmParcel": {
		"as-ordered":  &supplierv1.ConfirmParcelRequest{RequestId: "r1", SupplierId: "freshmart", ParcelId: fuzzParcelID},
		"past-cutoff": &supplierv1.ConfirmParcelRequest{SupplierId: "freshmart", ParcelId: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f03"},
		"partial": &supplierv1.ConfirmParcelRequest{SupplierId: "freshmart", ParcelId: fuzzParcelID, Lines: []*supplierv1.ConfirmLine{
			{ItemId: "rice", Quantity: proto.Int64(0)}, {ItemId: "pork", Quantity: proto.Int64(1100)}, {ItemId: "eggs"}}},
		"donated-pack": &supplierv1.ConfirmParcelRequest{SupplierId: "donations", ParcelId: packParcelID},
		"drop-counted": &supplierv1.ConfirmParcelRequest{SupplierId: "freshmart", ParcelId: fuzzParcelID, Lines: []*supplierv1.ConfirmLine{
			{ItemId: "rice", Quantity: proto.Int64(0)}, {ItemId: "eggs", Quantity: proto.Int64(0)}}},
		"out-of-range": &supplierv1.ConfirmParcelRequest{SupplierId: "freshmart", ParcelId: fuzzParcelID, Lines: []*supplierv1.ConfirmLine{
			{ItemId: "pork", Quantity: proto.Int64(0)}, {ItemId: "rice", Quantity: proto.Int64(-1)}, {ItemId: "rice", Quantity: proto.Int64(1 << 62)}}},
	},
	"FuzzRejectParcel": {
		"valid":     &supplierv1.RejectParcelRequest{RequestId: "r1", SupplierId: "freshmart", ParcelId: fuzzParcelID, Reason: "sold out"},
		"no-reason": &supplierv1.RejectParcelRequest{SupplierId: "freshmart", ParcelId: fuzzParcelID},
	},
	"FuzzMarkParcelReady": {
		"valid":          &supplierv1.MarkParcelReadyRequest{RequestId: "r1", SupplierId: "freshmart", ParcelId: readyParcelID},
		"other-supplier": &supplierv1.MarkParcelReadyRequest{SupplierId: "pharmacy", ParcelId: fuzzParcelID},
		"donated-pack":   &supplierv1.MarkParcelReadyRequest{RequestId: "r2", SupplierId: "donations", ParcelId: packParcelID},
	},
	"FuzzUpdateCredentials": {
		"valid": &supplierv1.UpdateCredentialsRequest{RequestId: "r1", SupplierId: "freshmart", Credentials: []*supplierv1.Credential{
			{Kind: "business_licence", Number: "91310000", ExpiresOn: "2030-12-31"}, {Kind: "food_permit", Number: "JY1310", ExpiresOn: "2027-06-30"}}},
		"bad": &supplierv1.UpdateCredentialsRequest{SupplierId: "freshmart", Credentials: []*supplierv1.Credential{
			{Kind: "food_permit", ExpiresOn: "2027-02-29"}, {Kind: "food_permit", Number: "x", ExpiresOn: "0000-01-01"},
			{Kind: "licence", Number: "y", ExpiresOn: "2027-1-1"}, {Kind: "drug_permit", Number: "z", ExpiresOn: "9999-12-31"}}},
	},
	"FuzzSetSupplierSuspended": {
		"suspend": &supplierv1.SetSupplierSuspendedRequest{RequestId: "r1", SupplierId: "freshmart", Suspended: true,
			Reason: "hygiene inspection", Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}},
		"reinstate-by-supplier": &supplierv1.SetSupplierSuspendedRequest{SupplierId: "freshmart",
			Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_SUPPLIER, Id: "freshmart"}},
	},
}

// corpusFile is a seed as `go test` reads testdata/fuzz files.
func corpusFile(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
}

// The committed corpus holds every seed above (run with -update-corpus to write it), so the
// plain test run covers them all.
func TestFuzzCorpusIsCommitted(t *testing.T) {
	targets := make([]string, 0, len(seeds))
	for target := range seeds {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	for _, target := range targets {
		for name, m := range seeds[target] {
			path := filepath.Join("testdata", "fuzz", target, name)
			want := corpusFile(m)
			if *updateCorpus {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != string(want) {
				t.Errorf("%s is missing or stale (go test -run TestFuzzCorpusIsCommitted -update-corpus): %v", path, err)
			}
		}
	}
}

// fuzzCallers are the identities each request is run as, where the policy lets their role call
// the method: a service, services acting for a resident and for a worker of the fuzz compound,
// FreshMart's staff and a worker of the compound (who keeps the donated stock).
var fuzzCallers = []auth.Identity{
	{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order"},
	{Role: typesv1.Role_ROLE_SYSTEM, Subject: "order",
		OnBehalfOf: &auth.Identity{Role: typesv1.Role_ROLE_RESIDENT, Subject: "haixin-3-2-302", Compound: "haixin"}},
	{Role: typesv1.Role_ROLE_SYSTEM, Subject: "gateway",
		OnBehalfOf: &auth.Identity{Role: typesv1.Role_ROLE_WORKER, Subject: "worker-li", Compound: "haixin"}},
	{Role: typesv1.Role_ROLE_SUPPLIER, Subject: "freshmart-staff", SupplierID: "freshmart", Compound: "haixin"},
	{Role: typesv1.Role_ROLE_WORKER, Subject: "worker-li", Compound: "haixin"},
}

// fuzzRPC runs one request type as every caller the policy admits to method: data that is not a
// valid message of the type is skipped, since gRPC would refuse it before the server sees it.
func fuzzRPC[Req proto.Message](f *testing.F, method string, newReq func() Req, call func(*Server, context.Context, Req) (proto.Message, error)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req := newReq()
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		for _, id := range fuzzCallers {
			if !slices.Contains(Policy[method], id.Role) {
				continue
			}
			repo := newFuzzRepo(t)
			srv := &Server{Svc: &supply.Service{Repo: repo, Now: func() time.Time { return fuzzNow }},
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			res, err := call(srv, auth.WithIdentity(context.Background(), id), req)
			switch status.Code(err) {
			case codes.OK:
				if res == nil {
					t.Fatal("no error and no response")
				}
				if _, err := proto.Marshal(res); err != nil {
					t.Fatalf("response cannot be sent: %v", err)
				}
			case codes.InvalidArgument:
				if len(grpcx.FieldViolations(err)) == 0 {
					t.Fatalf("INVALID_ARGUMENT naming no field: %v", err)
				}
			case codes.NotFound, codes.FailedPrecondition, codes.AlreadyExists, codes.PermissionDenied:
			default:
				t.Fatalf("unexpected %v for %v as %+v", err, req, id)
			}
		}
	})
}

func FuzzCreateSupplier(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_CreateSupplier_FullMethodName, func() *supplierv1.CreateSupplierRequest { return &supplierv1.CreateSupplierRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.CreateSupplierRequest) (proto.Message, error) {
			return s.CreateSupplier(ctx, r)
		})
}

func FuzzUpsertItem(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_UpsertItem_FullMethodName, func() *supplierv1.UpsertItemRequest { return &supplierv1.UpsertItemRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.UpsertItemRequest) (proto.Message, error) {
			return s.UpsertItem(ctx, r)
		})
}

func FuzzAdjustStock(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_AdjustStock_FullMethodName, func() *supplierv1.AdjustStockRequest { return &supplierv1.AdjustStockRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.AdjustStockRequest) (proto.Message, error) {
			return s.AdjustStock(ctx, r)
		})
}

func FuzzReserveStock(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_ReserveStock_FullMethodName, func() *supplierv1.ReserveStockRequest { return &supplierv1.ReserveStockRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.ReserveStockRequest) (proto.Message, error) {
			return s.ReserveStock(ctx, r)
		})
}

func FuzzReleaseReservation(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_ReleaseReservation_FullMethodName, func() *supplierv1.ReleaseReservationRequest { return &supplierv1.ReleaseReservationRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.ReleaseReservationRequest) (proto.Message, error) {
			return s.ReleaseReservation(ctx, r)
		})
}

func FuzzConfirmParcel(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_ConfirmParcel_FullMethodName, func() *supplierv1.ConfirmParcelRequest { return &supplierv1.ConfirmParcelRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.ConfirmParcelRequest) (proto.Message, error) {
			return s.ConfirmParcel(ctx, r)
		})
}

func FuzzRejectParcel(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_RejectParcel_FullMethodName, func() *supplierv1.RejectParcelRequest { return &supplierv1.RejectParcelRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.RejectParcelRequest) (proto.Message, error) {
			return s.RejectParcel(ctx, r)
		})
}

func FuzzMarkParcelReady(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_MarkParcelReady_FullMethodName, func() *supplierv1.MarkParcelReadyRequest { return &supplierv1.MarkParcelReadyRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.MarkParcelReadyRequest) (proto.Message, error) {
			return s.MarkParcelReady(ctx, r)
		})
}

func FuzzUpdateCredentials(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_UpdateCredentials_FullMethodName, func() *supplierv1.UpdateCredentialsRequest { return &supplierv1.UpdateCredentialsRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.UpdateCredentialsRequest) (proto.Message, error) {
			return s.UpdateCredentials(ctx, r)
		})
}

func FuzzSetSupplierSuspended(f *testing.F) {
	fuzzRPC(f, supplierv1.SupplierService_SetSupplierSuspended_FullMethodName, func() *supplierv1.SetSupplierSuspendedRequest { return &supplierv1.SetSupplierSuspendedRequest{} },
		func(s *Server, ctx context.Context, r *supplierv1.SetSupplierSuspendedRequest) (proto.Message, error) {
			return s.SetSupplierSuspended(ctx, r)
		})
}
