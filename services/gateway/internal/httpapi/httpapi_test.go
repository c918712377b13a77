package httpapi

import (
	"errors"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestHTTPStatus(t *testing.T) {
	for c, want := range map[codes.Code]int{
		codes.OK:                 200,
		codes.InvalidArgument:    400,
		codes.OutOfRange:         400,
		codes.NotFound:           404,
		codes.FailedPrecondition: 409,
		codes.AlreadyExists:      409,
		codes.Aborted:            409,
		codes.PermissionDenied:   403,
		codes.Unauthenticated:    401,
		codes.ResourceExhausted:  429,
		codes.Unavailable:        503,
		codes.DeadlineExceeded:   504,
		codes.Unimplemented:      501,
		codes.Canceled:           499,
		codes.Internal:           500,
		codes.Unknown:            500,
		codes.DataLoss:           500,
	} {
		if got := httpStatus(c); got != want {
			t.Errorf("httpStatus(%v) = %d, want %d", c, got, want)
		}
		if codeNames[c] == "" {
			t.Errorf("code %v has no name", c)
		}
	}
	if http.StatusText(httpStatus(codes.FailedPrecondition)) != "Conflict" {
		t.Error("FAILED_PRECONDITION must be a conflict")
	}
}

func TestDecodeStrictNamesTheField(t *testing.T) {
	type line struct {
		ItemID   string `json:"item_id"`
		Quantity int64  `json:"quantity"`
	}
	for _, tc := range []struct {
		data, at, field, why string
	}{
		{`{"quantity":"2"}`, "lines[3]", "lines[3].quantity", "must be an integer"},
		{`{"quantity":1.5}`, "", "quantity", "must be an integer"},
		{`{"quantity":99999999999999999999}`, "", "quantity", "must be an integer"},
		{`{"item_id":false}`, "lines[0]", "lines[0].item_id", "must be a string"},
		{`{"sku":"x"}`, "lines[1]", "lines[1].sku", "is not a known field"},
		{`"masks"`, "lines[2]", "lines[2]", "must be an object"},
		{`[]`, "", "body", "must be an object"},
		{``, "", "body", "is required (a JSON object)"},
		{`{"item_id":"a"`, "", "body", "is not valid JSON (it ends too early)"},
		{`{"item_id":}`, "", "body", "is not valid JSON (at byte 12)"},
		{`{} x`, "", "body", "must be a single JSON value"},
	} {
		var l line
		err := decodeStrict([]byte(tc.data), &l, tc.at)
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Why != tc.why {
			t.Errorf("decodeStrict(%s, %q) = %v, want %s: %s", tc.data, tc.at, err, tc.field, tc.why)
		}
	}
	var l line
	if err := decodeStrict([]byte(" {\"item_id\":\"masks\",\"quantity\":2}\n"), &l, ""); err != nil || l.Quantity != 2 {
		t.Errorf("valid line: %v %+v", err, l)
	}
}
