package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
)

// The courier's endpoints. The courier is the one the account is bound to; no request names it.

func (a *API) myRoute(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.courier.GetRoute(ctx, &courierv1.GetRouteRequest{CourierId: who(r).CourierID, RoundId: r.URL.Query().Get("round_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, courierRoute(resp.GetRoute()))
}

type pickUpBody struct {
	RequestID string `json:"request_id"`
	RouteID   string `json:"route_id"`
}

func (a *API) pickUp(w http.ResponseWriter, r *http.Request) {
	var body pickUpBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.courier.PickUp(ctx, &courierv1.PickUpRequest{RequestId: body.RequestID, CourierId: who(r).CourierID, RouteId: body.RouteID})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, courierRoute(resp.GetRoute()))
}

// Delivery methods and failure reasons by their JSON names.
var (
	methods = map[string]courierv1.DeliveryMethod{
		"LEFT_AT_DOOR": courierv1.DeliveryMethod_DELIVERY_METHOD_LEFT_AT_DOOR,
		"HANDED_OVER":  courierv1.DeliveryMethod_DELIVERY_METHOD_HANDED_OVER,
	}
	reasons = map[string]courierv1.FailureReason{
		"NOT_HOME":      courierv1.FailureReason_FAILURE_REASON_NOT_HOME,
		"REFUSED":       courierv1.FailureReason_FAILURE_REASON_REFUSED,
		"WRONG_ADDRESS": courierv1.FailureReason_FAILURE_REASON_WRONG_ADDRESS,
		"OTHER":         courierv1.FailureReason_FAILURE_REASON_OTHER,
	}
)

type deliveredBody struct {
	RequestID string `json:"request_id"`
	Method    string `json:"method"`
	PhotoRef  string `json:"photo_ref"`
}

func (a *API) delivered(w http.ResponseWriter, r *http.Request) {
	var body deliveredBody
	if !a.decode(w, r, &body) {
		return
	}
	method, ok := methods[strings.ToUpper(body.Method)]
	if !ok {
		writeInvalid(w, &fieldError{Field: "method", Why: "must be LEFT_AT_DOOR or HANDED_OVER"})
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.courier.MarkDelivered(ctx, &courierv1.MarkDeliveredRequest{RequestId: body.RequestID, CourierId: who(r).CourierID,
		ParcelId: r.PathValue("parcel_id"), Method: method, PhotoRef: body.PhotoRef})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, courierParcel(resp.GetParcel()))
}

type failedBody struct {
	RequestID string `json:"request_id"`
	Reason    string `json:"reason"`
	Note      string `json:"note"`
}

func (a *API) failed(w http.ResponseWriter, r *http.Request) {
	var body failedBody
	if !a.decode(w, r, &body) {
		return
	}
	reason, ok := reasons[strings.ToUpper(body.Reason)]
	if !ok {
		writeInvalid(w, &fieldError{Field: "reason", Why: "must be NOT_HOME, REFUSED, WRONG_ADDRESS or OTHER"})
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.courier.MarkFailed(ctx, &courierv1.MarkFailedRequest{RequestId: body.RequestID, CourierId: who(r).CourierID,
		ParcelId: r.PathValue("parcel_id"), Reason: reason, Note: body.Note})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, courierParcel(resp.GetParcel()))
}

// completeBody records several parcels at once: a courier back in signal after a floor without.
type completeBody struct {
	RequestID string            `json:"request_id"`
	Outcomes  []json.RawMessage `json:"outcomes"`
}

type outcomeBody struct {
	ParcelID string `json:"parcel_id"`
	// Outcome is "DELIVERED" (with method) or "FAILED" (with reason, and note for OTHER).
	Outcome  string `json:"outcome"`
	Method   string `json:"method"`
	PhotoRef string `json:"photo_ref"`
	Reason   string `json:"reason"`
	Note     string `json:"note"`
}

func (a *API) completeStops(w http.ResponseWriter, r *http.Request) {
	var body completeBody
	if !a.decode(w, r, &body) {
		return
	}
	req := &courierv1.CompleteStopsRequest{RequestId: body.RequestID, CourierId: who(r).CourierID}
	for i, raw := range body.Outcomes {
		at := fmt.Sprintf("outcomes[%d]", i)
		var o outcomeBody
		if err := decodeStrict(raw, &o, at); err != nil {
			writeDecodeError(w, err)
			return
		}
		out := &courierv1.StopOutcome{ParcelId: o.ParcelID}
		switch strings.ToUpper(o.Outcome) {
		case "DELIVERED":
			m, ok := methods[strings.ToUpper(o.Method)]
			if !ok {
				writeInvalid(w, &fieldError{Field: at + ".method", Why: "must be LEFT_AT_DOOR or HANDED_OVER"})
				return
			}
			out.Outcome = &courierv1.StopOutcome_Delivered{Delivered: &courierv1.DeliveredOutcome{Method: m, PhotoRef: o.PhotoRef}}
		case "FAILED":
			reason, ok := reasons[strings.ToUpper(o.Reason)]
			if !ok {
				writeInvalid(w, &fieldError{Field: at + ".reason", Why: "must be NOT_HOME, REFUSED, WRONG_ADDRESS or OTHER"})
				return
			}
			out.Outcome = &courierv1.StopOutcome_Failed{Failed: &courierv1.FailedOutcome{Reason: reason, Note: o.Note}}
		default:
			writeInvalid(w, &fieldError{Field: at + ".outcome", Why: "must be DELIVERED or FAILED"})
			return
		}
		req.Outcomes = append(req.Outcomes, out)
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.courier.CompleteStops(ctx, req)
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	results := make([]outcomeView, 0, len(resp.GetResults()))
	for _, res := range resp.GetResults() {
		results = append(results, outcomeView{ParcelID: res.GetParcelId(), Recorded: res.GetRecorded(), Error: res.GetError(),
			Parcel: courierParcel(res.GetParcel())})
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}
