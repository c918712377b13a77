package grpcx_test

import (
	"testing"

	"github.com/doorstep/doorstep/pkg/grpcx"
)

// A field wrong in two ways keeps both reasons: a client showing them by field loses neither.
func TestFieldViolationsKeepEveryReasonOfAField(t *testing.T) {
	var v grpcx.Violations
	v.Add("shortages[0].missing_quantity", "must not be negative")
	v.Add("shortages[0].missing_quantity", "missing_quantity or damaged_quantity must be positive")
	v.Add("shortages[0].item_id", "is required")
	got := grpcx.FieldViolations(v.Err())
	want := map[string]string{
		"shortages[0].missing_quantity": "must not be negative; missing_quantity or damaged_quantity must be positive",
		"shortages[0].item_id":          "is required",
	}
	if len(got) != len(want) || got["shortages[0].missing_quantity"] != want["shortages[0].missing_quantity"] ||
		got["shortages[0].item_id"] != want["shortages[0].item_id"] {
		t.Errorf("violations %v\nwant %v", got, want)
	}
}
