package grpcapi

import (
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// The fuzzers feed arbitrary bytes, decoded as a request the way gRPC decodes it, through the
// edge's validation and mapping. Whatever comes in: no panic; a refusal is INVALID_ARGUMENT
// naming fields and can be sent; an accepted request keeps the promises the domain relies on,
// and its answer can be encoded. The seeds below are also committed as the corpus in testdata/fuzz, with inputs
// found while fuzzing.

func encode[M proto.Message](msgs ...M) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

func add(f *testing.F, seeds [][]byte) {
	for _, b := range seeds {
		f.Add(b)
	}
}

// wantRefusal checks that err is INVALID_ARGUMENT with field violations, and that the status
// survives encoding (a gRPC server sends it as a proto).
func wantRefusal(t *testing.T, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || len(grpcx.FieldViolations(err)) == 0 {
		t.Fatalf("refusal %v is not INVALID_ARGUMENT naming a field", err)
	}
	if _, err := proto.Marshal(st.Proto()); err != nil {
		t.Fatalf("refusal cannot be sent: %v", err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) {
	t.Helper()
	if _, err := proto.Marshal(m); err != nil {
		t.Fatalf("answer cannot be sent: %v", err)
	}
}

func placeOrderSeeds() [][]byte {
	return encode(
		&orderv1.PlaceOrderRequest{RequestId: "r1", HouseholdId: "haixin-3-2-302",
			Lines: []*orderv1.BasketLine{{ItemId: "rice-5kg", Quantity: 2}, {ItemId: "pork", Quantity: 500}}},
		&orderv1.PlaceOrderRequest{RequestId: "r2", HouseholdId: "haixin-3-2-302", Channel: orderv1.Channel_CHANNEL_WORKER,
			Lines:    []*orderv1.BasketLine{{ItemId: "masks-10", Quantity: 1}},
			PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}},
		&orderv1.PlaceOrderRequest{RequestId: "r3", HouseholdId: "h", Lines: []*orderv1.BasketLine{{ItemId: "a", Quantity: 1}, {ItemId: "a", Quantity: -1}},
			Channel: 99, PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_COURIER}},
		&orderv1.PlaceOrderRequest{},
	)
}

func FuzzPlaceOrderRequest(f *testing.F) {
	add(f, placeOrderSeeds())
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &orderv1.PlaceOrderRequest{}
		if proto.Unmarshal(data, req) != nil {
			return // gRPC would refuse to decode it
		}
		r, err := placeRequest(req)
		if err != nil {
			wantRefusal(t, err)
			return
		}
		if r.RequestID == "" || len(r.RequestID) > maxRequestID || r.HouseholdID == "" {
			t.Fatalf("accepted ids %q %q", r.RequestID, r.HouseholdID)
		}
		if len(r.Lines) < 1 || len(r.Lines) > maxLines {
			t.Fatalf("accepted %d lines", len(r.Lines))
		}
		seen := map[string]bool{}
		var lines []order.Line
		for _, l := range r.Lines {
			if l.ItemID == "" || seen[l.ItemID] || l.Quantity < 1 || l.Quantity > maxQuantity {
				t.Fatalf("accepted line %+v", l)
			}
			seen[l.ItemID] = true
			lines = append(lines, order.Line{ItemID: l.ItemID, Quantity: l.Quantity, AmountFen: l.Quantity})
		}
		switch r.PlacedBy.Role {
		case "", order.RoleResident, order.RoleWorker, order.RoleSystem:
		default:
			t.Fatalf("accepted actor %+v", r.PlacedBy)
		}
		if len(r.Hash()) == 0 {
			t.Fatal("no hash")
		}
		id := order.OrderID(r.HouseholdID, r.RequestID)
		p := order.Parcel{ID: order.ParcelID(id, "s", 1), OrderID: id, SupplierID: "s", HouseholdID: r.HouseholdID, State: order.Placed, Lines: lines}
		p.Totals()
		o := order.Order{ID: id, HouseholdID: r.HouseholdID, Channel: r.Channel, PlacedBy: r.PlacedBy, Parcels: []order.Parcel{p}}
		mustMarshal(t, &orderv1.PlaceOrderResponse{Order: pbconv.OrderProto(o)})
	})
}

func upsertHouseholdSeeds() [][]byte {
	addr := &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}
	return encode(
		&orderv1.UpsertHouseholdRequest{RequestId: "hh-1", Household: &orderv1.Household{Address: addr, Residents: 2,
			Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED, Phone: "+86 138-0013-8000", Over_80: true, QuarantinedUntil: "2022-04-20"}},
		&orderv1.UpsertHouseholdRequest{Household: &orderv1.Household{HouseholdId: "custom-1", Address: &typesv1.Address{
			Compound: "haixin", Building: "三号楼", Unit: "A", Floor: 60, Room: "6001"}, Occupancy: orderv1.Occupancy_OCCUPANCY_EMPTY,
			LivesAlone: true, ChronicallyIll: true, Priority: true, Quarantined: true, Occupied: true}},
		&orderv1.UpsertHouseholdRequest{Household: &orderv1.Household{Address: &typesv1.Address{Compound: "Hai Xin", Room: "1-01"},
			Residents: -1, Occupancy: 7, Phone: "1.38E+10", QuarantinedUntil: "2022/04/20"}},
		&orderv1.UpsertHouseholdRequest{},
	)
}

func FuzzUpsertHouseholdRequest(f *testing.F) {
	add(f, upsertHouseholdSeeds())
	now := time.Date(2022, 4, 10, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &orderv1.UpsertHouseholdRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		h, err := upsertRequest(req)
		if err != nil {
			wantRefusal(t, err)
			return
		}
		if fes := order.CheckHousehold(h); len(fes) > 0 {
			t.Fatalf("accepted a household the domain refuses: %v", fes)
		}
		out := pbconv.HouseholdProto(h, now)
		mustMarshal(t, &orderv1.UpsertHouseholdResponse{Household: out})
		if back := pbconv.Household(out); back != h {
			t.Fatalf("mapping does not round-trip:\n%+v\n%+v", h, back)
		}
		// The roster spreadsheet carries an accepted household unchanged: the edge and the import
		// judge households by the same rules.
		r := order.ParseRoster(h.Address.Compound, order.FormatRoster([]order.Household{h}))
		if len(r.Errors) > 0 || len(r.Rows) != 1 {
			t.Fatalf("export of %+v does not import: %v", h, r.Errors)
		}
		got := r.Rows[0].Household
		got.ID = h.ID
		if got != h {
			t.Fatalf("spreadsheet round trip:\n%+v\n%+v", h, got)
		}
	})
}

func cancelOrderSeeds() [][]byte {
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("order")).String()
	return encode(
		&orderv1.CancelOrderRequest{RequestId: "c1", OrderId: id, Reason: "ordered twice"},
		&orderv1.CancelOrderRequest{RequestId: "c2", OrderId: id, Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_WORKER, Id: "worker-li"}},
		&orderv1.CancelOrderRequest{OrderId: "not-a-uuid", Actor: &typesv1.Actor{Role: typesv1.Role_ROLE_SUPPLIER}},
		&orderv1.CancelOrderRequest{},
	)
}

func FuzzCancelOrderRequest(f *testing.F) {
	add(f, cancelOrderSeeds())
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &orderv1.CancelOrderRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		r, err := cancelRequest(req)
		if err != nil {
			wantRefusal(t, err)
			return
		}
		if r.RequestID == "" || len(r.RequestID) > maxRequestID || uuid.Validate(r.OrderID) != nil || len(r.Reason) > maxReason {
			t.Fatalf("accepted %+v", r)
		}
		if len(r.Hash()) == 0 {
			t.Fatal("no hash")
		}
	})
}
