package app_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
)

// fakeDispatch is a peer serving the site plan (the buildings of each compound) and withdrawing
// failed parcels, to the order service's own identity only.
type fakeDispatch struct {
	dispatchv1.UnimplementedDispatchServiceServer
	*peerAuth

	mu        sync.Mutex
	buildings map[string][]*dispatchv1.Building // by compound
	down      bool                              // answer UNAVAILABLE
	// withdrawAnswer is what WithdrawParcel answers for a parcel (OK when not set); withdrawals
	// are the requests it was sent.
	withdrawAnswer map[string]codes.Code
	withdrawals    []*dispatchv1.WithdrawParcelRequest
}

func newFakeDispatch(t *testing.T, clk *clock) (*fakeDispatch, string) {
	f := &fakeDispatch{peerAuth: newPeerAuth(t, clk), buildings: map[string][]*dispatchv1.Building{},
		withdrawAnswer: map[string]codes.Code{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.interceptor))
	dispatchv1.RegisterDispatchServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

// seed gives haixin three walk-ups of six floors and a tower of eighteen.
func (f *fakeDispatch) seed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buildings["haixin"] = []*dispatchv1.Building{
		{Compound: "haixin", Building: "1", Units: []string{"1", "2"}, Floors: 6, DistanceM: 80},
		{Compound: "haixin", Building: "2", Units: []string{"1", "2"}, Floors: 6, DistanceM: 120},
		{Compound: "haixin", Building: "3", Units: []string{"1", "2"}, Floors: 6, DistanceM: 160},
		{Compound: "haixin", Building: "A", Units: []string{"1"}, Floors: 18, HasLift: true, DistanceM: 40},
	}
}

func (f *fakeDispatch) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeDispatch) ListBuildings(_ context.Context, req *dispatchv1.ListBuildingsRequest) (*dispatchv1.ListBuildingsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, status.Error(codes.Unavailable, "dispatch is restarting")
	}
	resp := &dispatchv1.ListBuildingsResponse{}
	for _, b := range f.buildings[req.Compound] {
		resp.Buildings = append(resp.Buildings, proto.Clone(b).(*dispatchv1.Building))
	}
	return resp, nil
}

// answerWithdraw makes WithdrawParcel answer code for parcelID from now on.
func (f *fakeDispatch) answerWithdraw(parcelID string, code codes.Code) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdrawAnswer[parcelID] = code
}

// withdrawn returns the WithdrawParcel requests received so far.
func (f *fakeDispatch) withdrawn() []*dispatchv1.WithdrawParcelRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.withdrawals)
}

func (f *fakeDispatch) WithdrawParcel(_ context.Context, req *dispatchv1.WithdrawParcelRequest) (*dispatchv1.WithdrawParcelResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdrawals = append(f.withdrawals, proto.Clone(req).(*dispatchv1.WithdrawParcelRequest))
	if code := f.withdrawAnswer[req.GetParcelId()]; code != codes.OK {
		return nil, status.Errorf(code, "parcel %s: %s", req.GetParcelId(), code)
	}
	return &dispatchv1.WithdrawParcelResponse{ParcelId: req.GetParcelId(), RoundId: "r2", EventId: cancelledEventID(req.GetParcelId())}, nil
}

// cancelledEventID is the id of the fake dispatch's parcel.cancelled for a withdrawn parcel: one per
// parcel, as dispatch's.
func cancelledEventID(parcelID string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte("cancelled/"+parcelID)).String()
}
