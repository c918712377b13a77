package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// apiError is the body of every error response: {"error": {...}}.
type apiError struct {
	// Code is the canonical gRPC code name, e.g. "INVALID_ARGUMENT", or "PAYLOAD_TOO_LARGE".
	Code    string `json:"code"`
	Message string `json:"message"`
	// Fields names each bad field of the request and what is wrong with it.
	Fields map[string]string `json:"fields,omitempty"`
}

type errorBody struct {
	Error apiError `json:"error"`
}

// codeNames are the canonical names clients see; codes.Code.String() gives CamelCase instead.
var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// httpStatus is the one place a gRPC code becomes an HTTP status. FAILED_PRECONDITION is 409,
// not 400: the request was well formed, the world (stock, a parcel's state) refused it.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Canceled:
		return 499 // the client went away; nobody reads this, but logs should not say 500
	default:
		return http.StatusInternalServerError
	}
}

// writeRPCError answers with a peer's error. Field violations pass through as fields; internal
// errors are logged and hidden, since their text is for operators, not residents.
func (a *API) writeRPCError(w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if !ok {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			st = status.New(codes.DeadlineExceeded, err.Error())
		case errors.Is(err, context.Canceled):
			st = status.New(codes.Canceled, err.Error())
		default:
			st = status.New(codes.Internal, err.Error())
		}
	}
	body := apiError{Code: codeNames[st.Code()], Message: st.Message()}
	if body.Code == "" {
		body.Code = "UNKNOWN"
	}
	switch st.Code() {
	case codes.InvalidArgument:
		if f := grpcx.FieldViolations(err); len(f) > 0 {
			body.Fields = f
		}
	case codes.Internal, codes.Unknown, codes.DataLoss:
		a.log.ErrorContext(r.Context(), "gateway: peer failed", "method", r.Method, "path", r.URL.Path, "err", err)
		body.Message = "internal error"
	}
	writeJSON(w, httpStatus(st.Code()), errorBody{Error: body})
}

// writeInvalid answers 400 naming the bad field of a request the gateway itself parsed.
func writeInvalid(w http.ResponseWriter, fe *fieldError) {
	writeJSON(w, http.StatusBadRequest, errorBody{Error: apiError{
		Code:    "INVALID_ARGUMENT",
		Message: "invalid request: " + fe.Field + ": " + fe.Why,
		Fields:  map[string]string{fe.Field: fe.Why},
	}})
}

func writeError(w http.ResponseWriter, httpStatus int, code, msg string) {
	writeJSON(w, httpStatus, errorBody{Error: apiError{Code: code, Message: msg}})
}

// writeForbiddenField answers 403 naming the field the caller may not set as they did.
func writeForbiddenField(w http.ResponseWriter, field, why string) {
	writeJSON(w, http.StatusForbidden, errorBody{Error: apiError{
		Code:    "PERMISSION_DENIED",
		Message: "not allowed: " + field + " " + why,
		Fields:  map[string]string{field: why},
	}})
}
