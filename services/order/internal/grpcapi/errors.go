package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus is the one place domain errors become status codes. Expected failures keep their
// message (which names the household, order, parcel or item); anything else is a bug or an
// outage of our own database, logged here and reported as INTERNAL without details.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	var fe *order.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return grpcx.InvalidField(fe.Field, fe.Reason)
	case errors.Is(err, order.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, order.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, order.ErrConflict):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, order.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, order.ErrIllegalTransition), errors.Is(err, order.ErrRefused), errors.Is(err, order.ErrNothingToCancel),
		errors.Is(err, order.ErrCampaignState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, order.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, order.ErrAborted):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		log.ErrorContext(ctx, "unexpected error", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}
