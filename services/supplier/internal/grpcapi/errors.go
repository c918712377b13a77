package grpcapi

import (
	"context"
	"errors"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Precondition failure types, for clients that tell the resident which item of a basket failed.
const (
	FailureOutOfStock        = "OUT_OF_STOCK"
	FailureRationExceeded    = "RATION_EXCEEDED"
	FailureNotInCatalog      = "NOT_IN_CATALOG"
	FailureIllegalTransition = "ILLEGAL_TRANSITION"
	FailureNotAccepting      = "NOT_ACCEPTING_ORDERS"
	FailurePastCutoff        = "PAST_CUTOFF"
	FailureDonatedStock      = "DONATED_STOCK"
)

// status is the one place domain errors become status codes. Expected refusals keep their
// messages (which name the item or field); anything else is a bug or an outage, logged here and
// answered without internals.
func (s *Server) status(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status, from the edge
	}
	var invalid *supply.InvalidError
	switch {
	case errors.As(err, &invalid):
		var v grpcx.Violations
		for _, f := range invalid.Violations {
			v.Add(f.Field, f.Reason)
		}
		return v.Err()
	case errors.Is(err, supply.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, supply.ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, supply.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, supply.ErrOutOfStock), errors.Is(err, supply.ErrRationExceeded),
		errors.Is(err, supply.ErrNotInCatalog), errors.Is(err, supply.ErrIllegalTransition),
		errors.Is(err, supply.ErrNotAcceptingOrders), errors.Is(err, supply.ErrPastCutoff),
		errors.Is(err, supply.ErrDonatedStock):
		return preconditionFailed(err)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		s.Log.ErrorContext(ctx, "supplier request failed", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}

// preconditionFailed is FAILED_PRECONDITION with one google.rpc.PreconditionFailure violation
// per refused item (subject: the item id; type OUT_OF_STOCK, RATION_EXCEEDED, NOT_IN_CATALOG or
// DONATED_STOCK), or for a supplier not accepting orders (subject: the
// supplier id, description: why).
func preconditionFailed(err error) error {
	st := status.New(codes.FailedPrecondition, err.Error())
	detail := &errdetails.PreconditionFailure{}
	for _, ie := range supply.ItemErrors(err) {
		kind := FailureOutOfStock
		switch {
		case errors.Is(ie, supply.ErrRationExceeded):
			kind = FailureRationExceeded
		case errors.Is(ie, supply.ErrNotInCatalog):
			kind = FailureNotInCatalog
		case errors.Is(ie, supply.ErrDonatedStock):
			kind = FailureDonatedStock
		}
		detail.Violations = append(detail.Violations, &errdetails.PreconditionFailure_Violation{
			Type: kind, Subject: ie.ItemID, Description: ie.Error()})
	}
	var se *supply.SupplierError
	if errors.As(err, &se) {
		detail.Violations = append(detail.Violations, &errdetails.PreconditionFailure_Violation{
			Type: FailureNotAccepting, Subject: se.SupplierID, Description: se.Detail})
	}
	if errors.Is(err, supply.ErrPastCutoff) {
		detail.Violations = append(detail.Violations, &errdetails.PreconditionFailure_Violation{
			Type: FailurePastCutoff, Description: err.Error()})
	}
	if errors.Is(err, supply.ErrIllegalTransition) {
		detail.Violations = append(detail.Violations, &errdetails.PreconditionFailure_Violation{
			Type: FailureIllegalTransition, Description: err.Error()})
	}
	if withDetails, derr := st.WithDetails(detail); derr == nil {
		st = withDetails
	}
	return st.Err()
}
