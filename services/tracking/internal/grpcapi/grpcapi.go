// Package grpcapi is the tracking service's gRPC transport: it validates requests, maps timeline
// entries to protobuf and domain errors to status codes.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/doorstep/doorstep/pkg/grpcx"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/tracking/internal/timeline"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server implements doorstep.tracking.v1.TrackingService.
type Server struct {
	trackingv1.UnimplementedTrackingServiceServer
	Timelines timeline.Reader
	Log       *slog.Logger
}

// GetOrderTimeline returns an order's entries, oldest first.
func (s *Server) GetOrderTimeline(ctx context.Context, req *trackingv1.GetOrderTimelineRequest) (*trackingv1.GetOrderTimelineResponse, error) {
	var v grpcx.Violations
	v.Required(req.GetOrderId(), "order_id")
	if !v.Any() {
		_, err := uuid.Parse(req.GetOrderId())
		v.Check(err == nil, "order_id", "must be a UUID")
	}
	if err := v.Err(); err != nil {
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

// parcelState maps a stored state name back to the enum; unknown names (from a newer publisher)
// become UNSPECIFIED rather than failing the whole timeline.
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
	case errors.Is(err, timeline.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		s.Log.ErrorContext(ctx, "tracking: unexpected error", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}
