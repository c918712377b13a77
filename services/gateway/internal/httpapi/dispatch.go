package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/doorstep/doorstep/pkg/grpcx"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
)

// The dispatcher console's endpoints: rounds of the dispatcher's own compound, the gate,
// planning, routes, progress and the overrides.

func (a *API) listRounds(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.dispatch.ListRounds(ctx, &dispatchv1.ListRoundsRequest{Compound: who(r).Compound, Date: r.URL.Query().Get("date")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	rounds := make([]roundView, 0, len(resp.GetRounds()))
	for _, rd := range resp.GetRounds() {
		rounds = append(rounds, round(rd))
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": who(r).Compound, "rounds": rounds})
}

// gateParcels lists what waits at the gate: the parcels the suppliers handed over (READY) that
// nobody has checked in yet, as the order service knows them, every page of them. Its cost is
// what waits, not every parcel a supplier ever handed over.
func (a *API) gateParcels(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	req := &orderv1.ListParcelsToCheckInRequest{Compound: who(r).Compound}
	waiting, err := grpcx.Pages(func(token string) ([]*orderv1.Parcel, string, error) {
		req.PageToken = token
		resp, err := a.order.ListParcelsToCheckIn(ctx, req)
		return resp.GetParcels(), resp.GetNextPageToken(), err
	})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	parcels := make([]supplierParcelView, 0, len(waiting))
	for _, p := range waiting {
		parcels = append(parcels, gateParcel(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": who(r).Compound, "parcels": parcels})
}

type checkInBody struct {
	RequestID string            `json:"request_id"`
	ParcelIDs []string          `json:"parcel_ids"`
	Shortages []json.RawMessage `json:"shortages"`
}

type shortageBody struct {
	ParcelID        string `json:"parcel_id"`
	ItemID          string `json:"item_id"`
	MissingQuantity int64  `json:"missing_quantity"`
	DamagedQuantity int64  `json:"damaged_quantity"`
	Note            string `json:"note"`
}

func (a *API) checkIn(w http.ResponseWriter, r *http.Request) {
	var body checkInBody
	if !a.decode(w, r, &body) {
		return
	}
	req := &dispatchv1.CheckInParcelsRequest{RequestId: body.RequestID, Compound: who(r).Compound, ParcelIds: body.ParcelIDs}
	for i, raw := range body.Shortages {
		var s shortageBody
		if err := decodeStrict(raw, &s, fmt.Sprintf("shortages[%d]", i)); err != nil {
			writeDecodeError(w, err)
			return
		}
		req.Shortages = append(req.Shortages, &dispatchv1.Shortage{ParcelId: s.ParcelID, ItemId: s.ItemID,
			MissingQuantity: s.MissingQuantity, DamagedQuantity: s.DamagedQuantity, Note: s.Note})
	}
	if len(req.GetParcelIds()) > checkInPart {
		// Dispatch checks one part at a time; what only the whole request shows is checked here.
		if err := checkWholeCheckIn(req); err != nil {
			writeInvalid(w, err)
			return
		}
	}
	var results []*dispatchv1.CheckInResult
	for _, part := range checkInParts(req) {
		ctx, cancel := a.call(r)
		resp, err := a.dispatch.CheckInParcels(ctx, part)
		cancel()
		if err != nil {
			// The parts before were checked in; a retry of the request repeats them harmlessly
			// (their request ids derive from the request's) and goes on with the rest.
			a.writeRPCError(w, r, err)
			return
		}
		results = append(results, resp.GetResults()...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": checkIns(results)})
}

// checkInPart is how many parcels one CheckInParcels call carries; dispatch takes up to 1,000,
// and a campaign brings a pack for every household to the gate at once.
const checkInPart = 500

// maxCheckIn bounds one check-in through the gateway: a compound's every household, twice over.
const maxCheckIn = 20000

// checkWholeCheckIn checks what the parts of a split check-in cannot: a request id to derive
// theirs from, no parcel twice, every shortage for a parcel of the request, and the size.
func checkWholeCheckIn(req *dispatchv1.CheckInParcelsRequest) *fieldError {
	switch id := req.GetRequestId(); {
	case id == "":
		return &fieldError{Field: "request_id", Why: "is required"}
	case len(id) > 100:
		return &fieldError{Field: "request_id", Why: "must be at most 100 characters for a check-in of more than 500 parcels"}
	case len(req.GetParcelIds()) > maxCheckIn:
		return &fieldError{Field: "parcel_ids", Why: fmt.Sprintf("at most %d parcels per check-in", maxCheckIn)}
	}
	seen := make(map[string]int, len(req.GetParcelIds()))
	for i, id := range req.GetParcelIds() {
		if first, dup := seen[id]; dup {
			return &fieldError{Field: fmt.Sprintf("parcel_ids[%d]", i), Why: fmt.Sprintf("repeats parcel_ids[%d]", first)}
		}
		seen[id] = i
	}
	for i, sh := range req.GetShortages() {
		if _, ok := seen[sh.GetParcelId()]; !ok {
			return &fieldError{Field: fmt.Sprintf("shortages[%d].parcel_id", i), Why: "must be one of parcel_ids"}
		}
	}
	return nil
}

// checkInParts splits a check-in into calls dispatch accepts, each with the shortages of its own
// parcels and a request id derived from the request's. A check-in of one part keeps its id.
func checkInParts(req *dispatchv1.CheckInParcelsRequest) []*dispatchv1.CheckInParcelsRequest {
	if len(req.GetParcelIds()) <= checkInPart {
		return []*dispatchv1.CheckInParcelsRequest{req}
	}
	var parts []*dispatchv1.CheckInParcelsRequest
	for i := 0; i < len(req.GetParcelIds()); i += checkInPart {
		ids := req.GetParcelIds()[i:min(i+checkInPart, len(req.GetParcelIds()))]
		part := &dispatchv1.CheckInParcelsRequest{RequestId: fmt.Sprintf("%s/%d", req.GetRequestId(), i/checkInPart),
			Compound: req.GetCompound(), ParcelIds: ids}
		for _, s := range req.GetShortages() {
			if slices.Contains(ids, s.GetParcelId()) {
				part.Shortages = append(part.Shortages, s)
			}
		}
		parts = append(parts, part)
	}
	return parts
}

func (a *API) planRound(w http.ResponseWriter, r *http.Request) {
	var body requestIDBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.dispatch.PlanRound(ctx, &dispatchv1.PlanRoundRequest{RequestId: body.RequestID, RoundId: r.PathValue("round_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, planView{Round: round(resp.GetRound()), Routes: routes(resp.GetRoutes()),
		Cost: cost(resp.GetCost()), LowerBound: cost(resp.GetLowerBound())})
}

func (a *API) listRoutes(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.dispatch.ListRoutes(ctx, &dispatchv1.ListRoutesRequest{RoundId: r.PathValue("round_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"round_id": r.PathValue("round_id"), "routes": routes(resp.GetRoutes())})
}

func (a *API) roundProgress(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.tracking.GetRoundProgress(ctx, &trackingv1.GetRoundProgressRequest{RoundId: r.PathValue("round_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, progressOf(resp.GetProgress()))
}

type reassignBody struct {
	RequestID     string `json:"request_id"`
	FromCourierID string `json:"from_courier_id"`
	ToCourierID   string `json:"to_courier_id"`
	Reason        string `json:"reason"`
}

func (a *API) reassignCourier(w http.ResponseWriter, r *http.Request) {
	var body reassignBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.dispatch.ReassignCourier(ctx, &dispatchv1.ReassignCourierRequest{RequestId: body.RequestID,
		RoundId: r.PathValue("round_id"), FromCourierId: body.FromCourierID, ToCourierId: body.ToCourierID, Reason: body.Reason})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": routes(resp.GetRoutes())})
}

type moveStopBody struct {
	RequestID   string `json:"request_id"`
	HouseholdID string `json:"household_id"`
	ToCourierID string `json:"to_courier_id"`
}

func (a *API) moveStop(w http.ResponseWriter, r *http.Request) {
	var body moveStopBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.dispatch.MoveStop(ctx, &dispatchv1.MoveStopRequest{RequestId: body.RequestID, RoundId: r.PathValue("round_id"),
		HouseholdId: body.HouseholdID, ToCourierId: body.ToCourierID})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": routes(resp.GetRoutes())})
}

func (a *API) listCouriers(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.dispatch.ListCouriers(ctx, &dispatchv1.ListCouriersRequest{Compound: who(r).Compound})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	out := make([]courierView, 0, len(resp.GetCouriers()))
	for _, c := range resp.GetCouriers() {
		out = append(out, courierView{CourierID: c.GetCourierId(), Name: c.GetName(), Buildings: nonNil(c.GetBuildings()),
			MaxParcels: c.GetMaxParcels(), MaxGrams: c.GetMaxGrams(), OnDuty: c.GetOnDuty()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": who(r).Compound, "couriers": out})
}
