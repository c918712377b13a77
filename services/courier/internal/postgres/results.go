package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/doorstep/doorstep/services/courier/internal/route"
)

// storedResult is one CompleteStops result as the requests table keeps it for retries.
type storedResult struct {
	ParcelID string        `json:"parcel_id"`
	Recorded bool          `json:"recorded"`
	Refusal  string        `json:"refusal,omitempty"`
	Parcel   *storedParcel `json:"parcel,omitempty"`
}

type storedParcel struct {
	ID       string `json:"id"`
	OrderID  string `json:"order_id"`
	Status   string `json:"status"`
	Method   string `json:"method,omitempty"`
	Reason   string `json:"reason,omitempty"`
	PhotoRef string `json:"photo_ref,omitempty"`
}

func encodeResults(results []route.Result) ([]byte, error) {
	out := make([]storedResult, 0, len(results))
	for _, r := range results {
		s := storedResult{ParcelID: r.ParcelID, Recorded: r.Recorded, Refusal: r.Refusal}
		if p := r.Parcel; p != nil {
			s.Parcel = &storedParcel{ID: p.ID, OrderID: p.OrderID, Status: p.Status.String(), Method: p.Method.String(),
				Reason: p.Reason, PhotoRef: p.PhotoRef}
		}
		out = append(out, s)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	return data, nil
}

func decodeResults(data []byte) ([]route.Result, error) {
	var stored []storedResult
	if err := json.Unmarshal(data, &stored); err != nil {
		return nil, fmt.Errorf("decode stored results: %w", err)
	}
	out := make([]route.Result, 0, len(stored))
	for _, s := range stored {
		r := route.Result{ParcelID: s.ParcelID, Recorded: s.Recorded, Refusal: s.Refusal}
		if sp := s.Parcel; sp != nil {
			p := route.Parcel{ID: sp.ID, OrderID: sp.OrderID, Reason: sp.Reason, PhotoRef: sp.PhotoRef}
			var err error
			if p.Status, err = route.ParseStatus(sp.Status); err != nil {
				return nil, err
			}
			if p.Method, err = route.ParseMethod(sp.Method); err != nil {
				return nil, err
			}
			r.Parcel = &p
		}
		out = append(out, r)
	}
	return out, nil
}
