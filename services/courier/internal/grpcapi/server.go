// Package grpcapi is the courier service's gRPC transport: it decides what each verified caller
// may reach (policy.go), validates requests at the edge (INVALID_ARGUMENT naming each bad field),
// maps proto to the domain and back, and turns domain errors into status codes in one place.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/doorstep/doorstep/pkg/grpcx"
	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/courier/internal/route"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits on free-form input, so a request cannot fill the database.
const (
	maxID       = 128
	maxNote     = 500
	maxPhotoRef = 512
	// maxOutcomes bounds one CompleteStops call: a floor or two of doors, not a whole round.
	maxOutcomes = 200
)

// Server implements doorstep.courier.v1.CourierService.
type Server struct {
	courierv1.UnimplementedCourierServiceServer
	svc *route.Service
	// stopping closes when the server shuts down. Graceful stop waits for open streams, and a
	// watch never ends by itself, so watches end on it and clients reconnect elsewhere.
	stopping <-chan struct{}
}

// New returns the transport over svc; open watches end when stopping closes.
func New(svc *route.Service, stopping <-chan struct{}) *Server {
	return &Server{svc: svc, stopping: stopping}
}

// GetRoute implements CourierService.
func (s *Server) GetRoute(ctx context.Context, req *courierv1.GetRouteRequest) (*courierv1.GetRouteResponse, error) {
	scope, err := scopeOf(ctx, courierv1.CourierService_GetRoute_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	id(&v, req.GetCourierId(), "courier_id", true)
	id(&v, req.GetRoundId(), "round_id", false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, err := s.svc.Route(ctx, scope, req.GetCourierId(), req.GetRoundId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &courierv1.GetRouteResponse{Route: routeToProto(r)}, nil
}

// PickUp implements CourierService.
func (s *Server) PickUp(ctx context.Context, req *courierv1.PickUpRequest) (*courierv1.PickUpResponse, error) {
	scope, err := scopeOf(ctx, courierv1.CourierService_PickUp_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	id(&v, req.GetRequestId(), "request_id", true)
	id(&v, req.GetCourierId(), "courier_id", true)
	id(&v, req.GetRouteId(), "route_id", true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, err := s.svc.PickUp(ctx, scope, req.GetRequestId(), req.GetCourierId(), req.GetRouteId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &courierv1.PickUpResponse{Route: routeToProto(r)}, nil
}

// MarkDelivered implements CourierService.
func (s *Server) MarkDelivered(ctx context.Context, req *courierv1.MarkDeliveredRequest) (*courierv1.MarkDeliveredResponse, error) {
	scope, err := scopeOf(ctx, courierv1.CourierService_MarkDelivered_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	id(&v, req.GetRequestId(), "request_id", true)
	id(&v, req.GetCourierId(), "courier_id", true)
	id(&v, req.GetParcelId(), "parcel_id", true)
	method, ok := methods[req.GetMethod()]
	switch {
	case req.GetMethod() == courierv1.DeliveryMethod_DELIVERY_METHOD_UNSPECIFIED:
		v.Add("method", "is required (LEFT_AT_DOOR or HANDED_OVER)")
	case !ok:
		v.Add("method", "is not a known delivery method")
	}
	text(&v, req.GetPhotoRef(), "photo_ref", maxPhotoRef)
	if err := v.Err(); err != nil {
		return nil, err
	}
	p, err := s.svc.Deliver(ctx, scope, req.GetRequestId(), req.GetCourierId(), req.GetParcelId(), method, req.GetPhotoRef())
	if err != nil {
		return nil, toStatus(err)
	}
	return &courierv1.MarkDeliveredResponse{Parcel: parcelToProto(p)}, nil
}

// MarkFailed implements CourierService.
func (s *Server) MarkFailed(ctx context.Context, req *courierv1.MarkFailedRequest) (*courierv1.MarkFailedResponse, error) {
	scope, err := scopeOf(ctx, courierv1.CourierService_MarkFailed_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	id(&v, req.GetRequestId(), "request_id", true)
	id(&v, req.GetCourierId(), "courier_id", true)
	id(&v, req.GetParcelId(), "parcel_id", true)
	reason, ok := reasons[req.GetReason()]
	switch {
	case req.GetReason() == courierv1.FailureReason_FAILURE_REASON_UNSPECIFIED:
		v.Add("reason", "is required")
	case !ok:
		v.Add("reason", "is not a known failure reason")
	}
	text(&v, req.GetNote(), "note", maxNote)
	if reason == route.Other {
		v.Required(req.GetNote(), "note")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	f := route.Failure{Reason: reason, Note: req.GetNote()}
	p, err := s.svc.Fail(ctx, scope, req.GetRequestId(), req.GetCourierId(), req.GetParcelId(), f)
	if err != nil {
		return nil, toStatus(err)
	}
	return &courierv1.MarkFailedResponse{Parcel: parcelToProto(p)}, nil
}

// CompleteStops implements CourierService.
func (s *Server) CompleteStops(ctx context.Context, req *courierv1.CompleteStopsRequest) (*courierv1.CompleteStopsResponse, error) {
	scope, err := scopeOf(ctx, courierv1.CourierService_CompleteStops_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	id(&v, req.GetRequestId(), "request_id", true)
	id(&v, req.GetCourierId(), "courier_id", true)
	v.Check(len(req.GetOutcomes()) > 0, "outcomes", "is required")
	v.Check(len(req.GetOutcomes()) <= maxOutcomes, "outcomes", fmt.Sprintf("has more than %d entries", maxOutcomes))
	outcomes := make([]route.Outcome, 0, len(req.GetOutcomes()))
	for i, o := range req.GetOutcomes() {
		outcomes = append(outcomes, outcomeFromProto(&v, fmt.Sprintf("outcomes[%d]", i), o))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	results, err := s.svc.CompleteStops(ctx, scope, req.GetRequestId(), req.GetCourierId(), outcomes)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &courierv1.CompleteStopsResponse{Results: make([]*courierv1.OutcomeResult, 0, len(results))}
	for _, r := range results {
		out := &courierv1.OutcomeResult{ParcelId: r.ParcelID, Recorded: r.Recorded, Error: r.Refusal}
		if r.Parcel != nil {
			out.Parcel = parcelToProto(*r.Parcel)
		}
		resp.Results = append(resp.Results, out)
	}
	return resp, nil
}

func outcomeFromProto(v *grpcx.Violations, field string, o *courierv1.StopOutcome) route.Outcome {
	id(v, o.GetParcelId(), field+".parcel_id", true)
	out := route.Outcome{ParcelID: o.GetParcelId()}
	switch x := o.GetOutcome().(type) {
	case *courierv1.StopOutcome_Delivered:
		m, ok := methods[x.Delivered.GetMethod()]
		switch {
		case x.Delivered.GetMethod() == courierv1.DeliveryMethod_DELIVERY_METHOD_UNSPECIFIED:
			v.Add(field+".delivered.method", "is required (LEFT_AT_DOOR or HANDED_OVER)")
		case !ok:
			v.Add(field+".delivered.method", "is not a known delivery method")
		}
		text(v, x.Delivered.GetPhotoRef(), field+".delivered.photo_ref", maxPhotoRef)
		out.Method, out.PhotoRef = m, x.Delivered.GetPhotoRef()
	case *courierv1.StopOutcome_Failed:
		r, ok := reasons[x.Failed.GetReason()]
		switch {
		case x.Failed.GetReason() == courierv1.FailureReason_FAILURE_REASON_UNSPECIFIED:
			v.Add(field+".failed.reason", "is required")
		case !ok:
			v.Add(field+".failed.reason", "is not a known failure reason")
		}
		text(v, x.Failed.GetNote(), field+".failed.note", maxNote)
		if r == route.Other {
			v.Required(x.Failed.GetNote(), field+".failed.note")
		}
		out.Failure = route.Failure{Reason: r, Note: x.Failed.GetNote()}
	default:
		v.Add(field, "needs delivered or failed")
	}
	return out
}

// errStopping ends watches when the server shuts down.
var errStopping = errors.New("server shutting down")

// WatchRoute implements CourierService.
func (s *Server) WatchRoute(req *courierv1.WatchRouteRequest, stream grpc.ServerStreamingServer[courierv1.WatchRouteResponse]) error {
	scope, err := scopeOf(stream.Context(), courierv1.CourierService_WatchRoute_FullMethodName)
	if err != nil {
		return err
	}
	var v grpcx.Violations
	id(&v, req.GetCourierId(), "courier_id", true)
	id(&v, req.GetRoundId(), "round_id", false)
	if err := v.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-s.stopping:
			cancel(errStopping)
		case <-ctx.Done():
		}
	}()
	err = s.svc.Watch(ctx, scope, req.GetCourierId(), req.GetRoundId(), func(r route.Route) error {
		return stream.Send(&courierv1.WatchRouteResponse{Route: routeToProto(r)})
	})
	if errors.Is(context.Cause(ctx), errStopping) {
		return status.Error(codes.Unavailable, "server shutting down: watch again")
	}
	if err == nil {
		return nil
	}
	return toStatus(err)
}

func id(v *grpcx.Violations, s, field string, required bool) {
	if required {
		v.Required(s, field)
	}
	v.Check(len(s) <= maxID, field, "is longer than 128 bytes")
	v.Check(utf8.ValidString(s), field, "is not valid UTF-8")
}

func text(v *grpcx.Violations, s, field string, limit int) {
	v.Check(len(s) <= limit, field, "is too long")
	v.Check(utf8.ValidString(s), field, "is not valid UTF-8")
}

// toStatus is the one place domain errors become status codes. Anything unrecognised is a bug or
// an outage, and only that becomes INTERNAL.
func toStatus(err error) error {
	switch {
	case errors.Is(err, route.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, route.ErrIllegalTransition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, route.ErrRequestReused):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, route.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, route.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

var methods = map[courierv1.DeliveryMethod]route.Method{
	courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR: route.LeftAtDoor,
	courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER:  route.HandedOver,
}

var reasons = map[courierv1.FailureReason]route.Reason{
	courierv1.FailureReason_FAILURE_REASON_NOT_HOME:      route.NotHome,
	courierv1.FailureReason_FAILURE_REASON_REFUSED:       route.Refused,
	courierv1.FailureReason_FAILURE_REASON_WRONG_ADDRESS: route.WrongAddress,
	courierv1.FailureReason_FAILURE_REASON_OTHER:         route.Other,
}

var statuses = map[route.Status]courierv1.StopStatus{
	route.StatusPending:        courierv1.StopStatus_STOP_STATUS_PENDING,
	route.StatusOutForDelivery: courierv1.StopStatus_STOP_STATUS_OUT_FOR_DELIVERY,
	route.StatusDelivered:      courierv1.StopStatus_STOP_STATUS_DELIVERED,
	route.StatusFailed:         courierv1.StopStatus_STOP_STATUS_FAILED,
}

func routeToProto(r route.Route) *courierv1.CourierRoute {
	out := &courierv1.CourierRoute{RouteId: r.ID, RoundId: r.RoundID, CourierId: r.CourierID, Version: int32(r.Version)}
	for _, s := range r.Stops {
		a := s.Address
		stop := &courierv1.CourierStop{
			Sequence:    int32(s.Sequence),
			Trip:        int32(s.Trip),
			HouseholdId: s.HouseholdID,
			Address: &typesv1.Address{Compound: a.Compound, Building: a.Building, Unit: a.Unit,
				Floor: int32(a.Floor), Room: a.Room},
			Priority:    s.Priority,
			Contactless: s.Contactless,
		}
		for _, p := range s.Parcels {
			stop.Parcels = append(stop.Parcels, parcelToProto(p))
		}
		out.Stops = append(out.Stops, stop)
	}
	return out
}

func parcelToProto(p route.Parcel) *courierv1.CourierParcel {
	return &courierv1.CourierParcel{ParcelId: p.ID, OrderId: p.OrderID, Status: statuses[p.Status]}
}
