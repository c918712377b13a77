package app_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeSupplier is a peer, not a database: an in-memory SupplierService that reserves stock per
// parcel id (idempotently, like the real one) and records what it was asked, and for whom. It
// serves the order service's own identity only.
type fakeSupplier struct {
	supplierv1.UnimplementedSupplierServiceServer
	*peerAuth

	mu       sync.Mutex
	items    map[string]*supplierv1.Item
	parcels  map[string]*supplierv1.SupplierParcel
	calls    map[string]int // by method
	released []string       // parcel ids, in call order
	// failReserve makes ReserveStock at a supplier fail with this error.
	failReserve map[string]error
	// chaos, when set, is asked on every ReserveStock: before fails the call untouched, after
	// reserves and then fails it (an answer lost on the way back).
	chaos func(supplierID string) (before, after error)
	// hangRelease makes ReleaseReservation at these suppliers answer nothing until the caller
	// gives up.
	hangRelease map[string]bool
	// unhang, when closed, lets the hanging releases go on.
	unhang chan struct{}
}

func newFakeSupplier(t *testing.T, clk *clock) (*fakeSupplier, string) {
	f := &fakeSupplier{peerAuth: newPeerAuth(t, clk), items: map[string]*supplierv1.Item{},
		parcels: map[string]*supplierv1.SupplierParcel{}, calls: map[string]int{}, failReserve: map[string]error{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.interceptor))
	supplierv1.RegisterSupplierServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

func (f *fakeSupplier) addItem(it *supplierv1.Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[it.ItemId] = it
}

func (f *fakeSupplier) stock(itemID string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.items[itemID].Stock
}

func (f *fakeSupplier) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeSupplier) reservations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parcels)
}

func (f *fakeSupplier) parcelState(id string) typesv1.ParcelState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.parcels[id]; p != nil {
		return p.State
	}
	return typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED
}

func (f *fakeSupplier) releasedParcels() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.released...)
}

// confirm is the supplier's staff confirming a parcel: from now on it refuses to release it.
func (f *fakeSupplier) confirm(parcelID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parcels[parcelID].State = typesv1.ParcelState_PARCEL_STATE_CONFIRMED
}

func (f *fakeSupplier) BatchGetItems(_ context.Context, req *supplierv1.BatchGetItemsRequest) (*supplierv1.BatchGetItemsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["BatchGetItems"]++
	resp := &supplierv1.BatchGetItemsResponse{}
	for _, id := range req.ItemIds {
		it, ok := f.items[id]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "item %s not found", id)
		}
		resp.Items = append(resp.Items, proto.Clone(it).(*supplierv1.Item))
	}
	return resp, nil
}

func (f *fakeSupplier) ReserveStock(_ context.Context, req *supplierv1.ReserveStockRequest) (*supplierv1.ReserveStockResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ReserveStock"]++
	if p, ok := f.parcels[req.ParcelId]; ok {
		return &supplierv1.ReserveStockResponse{Parcel: proto.Clone(p).(*supplierv1.SupplierParcel)}, nil
	}
	if err := f.failReserve[req.SupplierId]; err != nil {
		return nil, err
	}
	var after error
	if f.chaos != nil {
		var before error
		if before, after = f.chaos(req.SupplierId); before != nil {
			return nil, before
		}
	}
	p := &supplierv1.SupplierParcel{ParcelId: req.ParcelId, OrderId: req.OrderId, SupplierId: req.SupplierId,
		HouseholdId: req.HouseholdId, Address: req.Address, State: typesv1.ParcelState_PARCEL_STATE_PLACED}
	for _, l := range req.Lines {
		it := f.items[l.ItemId]
		if it == nil || it.SupplierId != req.SupplierId {
			return nil, status.Errorf(codes.NotFound, "item %s not found at supplier %s", l.ItemId, req.SupplierId)
		}
		if it.Stock < l.Quantity {
			return nil, status.Errorf(codes.FailedPrecondition, "item %s: out of stock (%d left, %d asked)", l.ItemId, it.Stock, l.Quantity)
		}
	}
	for _, l := range req.Lines {
		it := f.items[l.ItemId]
		it.Stock -= l.Quantity
		price := it.CurrentPriceFen
		if req.CampaignId != "" {
			price = 0 // a campaign's pack is free, and confirmed at once
			p.State, p.CampaignId = typesv1.ParcelState_PARCEL_STATE_CONFIRMED, req.CampaignId
		}
		amount := price * l.Quantity
		if it.Weighed {
			amount = (price*l.Quantity + 500) / 1000
		}
		p.Lines = append(p.Lines, &supplierv1.ParcelLine{ItemId: it.ItemId, Name: it.Name, Unit: it.Unit, Weighed: it.Weighed,
			Quantity: l.Quantity, UnitPriceFen: price, AmountFen: amount, UnitWeightGrams: it.UnitWeightGrams})
		p.TotalFen += amount
	}
	f.parcels[req.ParcelId] = p
	if after != nil {
		return nil, after
	}
	return &supplierv1.ReserveStockResponse{Parcel: proto.Clone(p).(*supplierv1.SupplierParcel)}, nil
}

func (f *fakeSupplier) ReleaseReservation(ctx context.Context, req *supplierv1.ReleaseReservationRequest) (*supplierv1.ReleaseReservationResponse, error) {
	f.mu.Lock()
	if p, ok := f.parcels[req.ParcelId]; ok && f.hangRelease[p.SupplierId] {
		unhang := f.unhang
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-unhang:
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	f.calls["ReleaseReservation"]++
	p, ok := f.parcels[req.ParcelId]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "parcel %s not found", req.ParcelId)
	}
	switch p.State {
	case typesv1.ParcelState_PARCEL_STATE_PLACED:
		for _, l := range p.Lines {
			f.items[l.ItemId].Stock += l.Quantity
		}
		p.State = typesv1.ParcelState_PARCEL_STATE_CANCELLED
		p.Reason = req.Reason
		f.released = append(f.released, req.ParcelId)
	case typesv1.ParcelState_PARCEL_STATE_CANCELLED:
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "parcel %s is %s and can no longer be released", req.ParcelId, p.State)
	}
	return &supplierv1.ReleaseReservationResponse{Parcel: proto.Clone(p).(*supplierv1.SupplierParcel)}, nil
}

// seed stocks two suppliers of haixin: a supermarket selling counted and weighed goods, and a
// pharmacy; and the compound's donated stock.
func (f *fakeSupplier) seed() {
	f.addItem(&supplierv1.Item{Compound: "haixin", ItemId: "rice-5kg", SupplierId: "freshmart", Name: "Rice 5 kg", Unit: "bag",
		ReferencePriceFen: 3500, CurrentPriceFen: 3000, Stock: 100, UnitWeightGrams: 5000})
	f.addItem(&supplierv1.Item{Compound: "haixin", ItemId: "pork", SupplierId: "freshmart", Name: "Pork belly", Unit: "kg", Weighed: true,
		ReferencePriceFen: 3600, CurrentPriceFen: 3600, Stock: 20000, UnitWeightGrams: 1000})
	f.addItem(&supplierv1.Item{Compound: "haixin", ItemId: "masks-10", SupplierId: "pharmacy", Name: "Masks (10)", Unit: "box",
		ReferencePriceFen: 1500, CurrentPriceFen: 1500, Stock: 50, UnitWeightGrams: 40})
	// The community's donated stock, handed out by campaigns.
	f.addItem(&supplierv1.Item{Compound: "haixin", ItemId: "disinfectant-84", SupplierId: "donations", Name: "84 disinfectant 500 ml", Unit: "bottle",
		Stock: 1000, UnitWeightGrams: 600})
	f.addItem(&supplierv1.Item{Compound: "haixin", ItemId: "notice-print", SupplierId: "donations", Name: "Printed notice", Unit: "sheet",
		Stock: 1000, UnitWeightGrams: 10})
}

// setStock sets an item's stock.
func (f *fakeSupplier) setStock(itemID string, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[itemID].Stock = n
}

// parcel returns the supplier's parcel.
func (f *fakeSupplier) parcel(id string) *supplierv1.SupplierParcel {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.parcels[id]; p != nil {
		return proto.Clone(p).(*supplierv1.SupplierParcel)
	}
	return nil
}

// placedParcels are the parcel ids the supplier holds stock for.
func (f *fakeSupplier) placedParcels() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, p := range f.parcels {
		if p.State == typesv1.ParcelState_PARCEL_STATE_PLACED {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeSupplier) String() string {
	return fmt.Sprintf("fakeSupplier(%d parcels)", f.reservations())
}
