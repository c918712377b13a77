// Package grpcapi is the tracking service's gRPC transport: it validates requests, checks who may
// see what, maps timelines and read models to protobuf, streams watches, and maps domain errors to
// status codes.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/notices"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/doorstep/doorstep/services/tracking/internal/views"
	"github.com/doorstep/doorstep/services/tracking/internal/watch"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Changes lets a watch hear that what it watches has changed (watch.Subscriber).
type Changes interface {
	// Subscribe returns a channel receiving after changes of subject, coalesced, and a function
	// ending the subscription. A change committed after Subscribe returns is not missed.
	Subscribe(subject string) (<-chan struct{}, func(), error)
}

// Server implements doorstep.tracking.v1.TrackingService.
type Server struct {
	trackingv1.UnimplementedTrackingServiceServer
	Timelines timeline.Reader
	Views     views.Reader
	Notices   notices.Reader
	Changes   Changes
	// Stopping closes when the service shuts down; watches then end with UNAVAILABLE so that
	// clients reconnect to another replica and the server's graceful stop does not wait for them.
	Stopping <-chan struct{}
	// Resync is how often a watch re-reads without being told of a change, in case an
	// announcement was lost (a broker reconnect); 0 means 30 seconds.
	Resync time.Duration
	Log    *slog.Logger
}

// GetOrderTimeline returns an order's entries, oldest first.
func (s *Server) GetOrderTimeline(ctx context.Context, req *trackingv1.GetOrderTimelineRequest) (*trackingv1.GetOrderTimelineResponse, error) {
	if err := validateOrderID(req.GetOrderId()); err != nil {
		return nil, err
	}
	if err := s.mayReadOrder(ctx, trackingv1.TrackingService_GetOrderTimeline_FullMethodName, req.GetOrderId()); err != nil {
		return nil, err
	}
	entries, err := s.Timelines.OrderTimeline(ctx, req.GetOrderId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &trackingv1.GetOrderTimelineResponse{OrderId: req.GetOrderId()}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, toProto(e))
	}
	return resp, nil
}

// WatchOrder sends every entry of the order so far, then each new one as it is applied (in the
// order they are applied, so an event that arrives late is sent late), until the client cancels.
func (s *Server) WatchOrder(req *trackingv1.WatchOrderRequest, stream grpc.ServerStreamingServer[trackingv1.WatchOrderResponse]) error {
	ctx := stream.Context()
	if err := validateOrderID(req.GetOrderId()); err != nil {
		return err
	}
	if err := s.mayReadOrder(ctx, trackingv1.TrackingService_WatchOrder_FullMethodName, req.GetOrderId()); err != nil {
		return err
	}
	sent := map[string]bool{}
	return s.follow(ctx, watch.OrderSubject(req.GetOrderId()), func() error {
		entries, err := s.Timelines.OrderTimeline(ctx, req.GetOrderId())
		if err != nil {
			return s.toStatus(ctx, err)
		}
		for _, e := range entries {
			if sent[e.EventID] {
				continue
			}
			if err := stream.Send(&trackingv1.WatchOrderResponse{Entry: toProto(e)}); err != nil {
				return err
			}
			sent[e.EventID] = true
		}
		return nil
	})
}

// GetRoundProgress is a round's progress by building and by courier. A round nobody has planned
// yet has zero progress.
func (s *Server) GetRoundProgress(ctx context.Context, req *trackingv1.GetRoundProgressRequest) (*trackingv1.GetRoundProgressResponse, error) {
	if err := validateRoundID(req.GetRoundId()); err != nil {
		return nil, err
	}
	if err := s.mayReadRound(ctx, trackingv1.TrackingService_GetRoundProgress_FullMethodName, req.GetRoundId()); err != nil {
		return nil, err
	}
	rp, err := s.Views.RoundProgress(ctx, req.GetRoundId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &trackingv1.GetRoundProgressResponse{Progress: roundProgressProto(rp)}, nil
}

// WatchRound sends the round's progress now, then again after every change, until the client
// cancels.
func (s *Server) WatchRound(req *trackingv1.WatchRoundRequest, stream grpc.ServerStreamingServer[trackingv1.WatchRoundResponse]) error {
	ctx := stream.Context()
	if err := validateRoundID(req.GetRoundId()); err != nil {
		return err
	}
	if err := s.mayReadRound(ctx, trackingv1.TrackingService_WatchRound_FullMethodName, req.GetRoundId()); err != nil {
		return err
	}
	var last *trackingv1.RoundProgress
	return s.follow(ctx, watch.RoundSubject(req.GetRoundId()), func() error {
		rp, err := s.Views.RoundProgress(ctx, req.GetRoundId())
		if err != nil {
			return s.toStatus(ctx, err)
		}
		p := roundProgressProto(rp)
		if last != nil && proto.Equal(p, last) {
			return nil // a change elsewhere in the round's events that moved no count
		}
		if err := stream.Send(&trackingv1.WatchRoundResponse{Progress: p}); err != nil {
			return err
		}
		last = p
		return nil
	})
}

// follow runs send now and again after every announced change of subject until the client
// leaves or the service stops. It subscribes before the first read, so nothing committed between
// the two is missed.
func (s *Server) follow(ctx context.Context, subject string, send func() error) error {
	changed, stop, err := s.Changes.Subscribe(subject)
	if err != nil {
		s.Log.WarnContext(ctx, "tracking: watch cannot subscribe", "subject", subject, "err", err)
		return status.Error(codes.Unavailable, "watching is unavailable right now; try again")
	}
	defer stop()
	every := s.Resync
	if every <= 0 {
		every = 30 * time.Second
	}
	resync := time.NewTicker(every)
	defer resync.Stop()
	for {
		if err := send(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.Stopping:
			return status.Error(codes.Unavailable, "tracking service is stopping; watch again")
		case <-changed:
		case <-resync.C:
		}
	}
}

// GetSupplierQueue counts a supplier's parcels by state, in the order of a parcel's life.
func (s *Server) GetSupplierQueue(ctx context.Context, req *trackingv1.GetSupplierQueueRequest) (*trackingv1.GetSupplierQueueResponse, error) {
	var v grpcx.Violations
	v.Required(req.GetSupplierId(), "supplier_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.mayReadSupplier(ctx, req.GetSupplierId()); err != nil {
		return nil, err
	}
	counts, err := s.Views.SupplierQueue(ctx, req.GetSupplierId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &trackingv1.GetSupplierQueueResponse{SupplierId: req.GetSupplierId()}
	for _, c := range counts {
		resp.States = append(resp.States, &trackingv1.StateCount{State: parcelState(c.State), Parcels: int32(c.Parcels)})
	}
	slices.SortStableFunc(resp.States, func(a, b *trackingv1.StateCount) int { return int(a.GetState()) - int(b.GetState()) })
	return resp, nil
}

// ListNotices returns the compound's notices in force that reach the building (every one in
// force when no building is given), newest first. A compound without notices has none.
func (s *Server) ListNotices(ctx context.Context, req *trackingv1.ListNoticesRequest) (*trackingv1.ListNoticesResponse, error) {
	var v grpcx.Violations
	v.Required(req.GetCompound(), "compound")
	if !v.Any() {
		v.Check(events.ValidCompound(req.GetCompound()), "compound", "must be a compound slug such as haixin")
	}
	v.Check(len(req.GetBuilding()) <= maxBuilding && strings.TrimSpace(req.GetBuilding()) == req.GetBuilding(),
		"building", fmt.Sprintf("must be a building such as 3, at most %d bytes", maxBuilding))
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.mayReadNotices(ctx, req.GetCompound()); err != nil {
		return nil, err
	}
	list, err := s.Notices.Notices(ctx, req.GetCompound(), req.GetBuilding())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &trackingv1.ListNoticesResponse{}
	for _, n := range list {
		resp.Notices = append(resp.Notices, &trackingv1.Notice{NoticeId: n.NoticeID, Title: n.Title, Text: n.Text,
			Buildings: n.Buildings, PostedAt: timestamppb.New(n.PostedAt),
			PostedBy: &typesv1.Actor{Role: role(n.PostedBy.Role), Id: n.PostedBy.ID}})
	}
	return resp, nil
}

// maxBuilding bounds a building name in a request; real ones are a number or a short name.
const maxBuilding = 64

func validateOrderID(id string) error {
	var v grpcx.Violations
	v.Required(id, "order_id")
	if !v.Any() {
		_, err := uuid.Parse(id)
		v.Check(err == nil, "order_id", "must be a UUID")
	}
	return v.Err()
}

func validateRoundID(id string) error {
	var v grpcx.Violations
	v.Required(id, "round_id")
	if !v.Any() {
		v.Check(len(id) <= 200 && strings.TrimSpace(id) == id, "round_id", "must be a round id such as haixin-2022-04-10-am")
	}
	return v.Err()
}

func toProto(e timeline.Entry) *trackingv1.TimelineEntry {
	return &trackingv1.TimelineEntry{
		EventId:    e.EventID,
		OccurredAt: timestamppb.New(e.OccurredAt),
		Kind:       e.Kind,
		ParcelId:   e.ParcelID,
		State:      parcelState(e.State),
		Actor:      &typesv1.Actor{Role: role(e.Actor.Role), Id: e.Actor.ID},
		Detail:     e.Detail,
	}
}

func roundProgressProto(rp views.RoundProgress) *trackingv1.RoundProgress {
	out := &trackingv1.RoundProgress{RoundId: rp.RoundID, Total: progressProto(rp.Total)}
	for _, b := range rp.Buildings {
		out.Buildings = append(out.Buildings, &trackingv1.BuildingProgress{Building: b.Key, Progress: progressProto(b.Progress)})
	}
	for _, c := range rp.Couriers {
		out.Couriers = append(out.Couriers, &trackingv1.CourierProgress{CourierId: c.Key, Progress: progressProto(c.Progress)})
	}
	return out
}

func progressProto(p views.Progress) *trackingv1.Progress {
	return &trackingv1.Progress{Parcels: int32(p.Parcels), Assigned: int32(p.Assigned),
		OutForDelivery: int32(p.OutForDelivery), Delivered: int32(p.Delivered), Failed: int32(p.Failed)}
}

// parcelState maps a stored state name back to the enum; unknown names (from a newer publisher)
// become UNSPECIFIED rather than failing the whole answer.
func parcelState(name string) typesv1.ParcelState {
	if name == "" {
		return typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED
	}
	return typesv1.ParcelState(typesv1.ParcelState_value["PARCEL_STATE_"+strings.ToUpper(name)])
}

func role(name string) typesv1.Role {
	if name == "" {
		return typesv1.Role_ROLE_UNSPECIFIED
	}
	return typesv1.Role(typesv1.Role_value["ROLE_"+strings.ToUpper(name)])
}

// toStatus is the one place domain errors become status codes.
func (s *Server) toStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, timeline.ErrNotFound), errors.Is(err, views.ErrNotFound), errors.Is(err, notices.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errNoIdentity):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, errForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		s.Log.ErrorContext(ctx, "tracking: unexpected error", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}
