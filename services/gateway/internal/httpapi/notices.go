package httpapi

import (
	"net/http"
	"slices"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
)

// Notices: a worker posts and withdraws them at the order service, which publishes them;
// residents read the ones in force from tracking, which keeps them from those events.

// listNotices answers with the notices in force: for a resident, those to every building and
// those to the household's own building (from the roster, never from the request); for a
// worker, every notice in force in the compound, or those reaching ?building=.
func (a *API) listNotices(w http.ResponseWriter, r *http.Request) {
	p := who(r)
	ctx, cancel := a.call(r)
	defer cancel()
	building := ""
	switch p.Role {
	case resident:
		h, err := a.order.GetHousehold(ctx, &orderv1.GetHouseholdRequest{HouseholdId: p.HouseholdID})
		if err != nil {
			a.writeRPCError(w, r, err)
			return
		}
		building = h.GetHousehold().GetAddress().GetBuilding()
	case worker:
		building = r.URL.Query().Get("building")
	}
	resp, err := a.tracking.ListNotices(ctx, &trackingv1.ListNoticesRequest{Compound: p.Compound, Building: building})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	out := make([]noticeInForceView, 0, len(resp.GetNotices()))
	for _, n := range resp.GetNotices() {
		// Tracking narrows by building already; a resident's list is narrowed again here, so
		// a household never reads another building's notice, even one with no building on record.
		if p.Role == resident && len(n.GetBuildings()) > 0 && !slices.Contains(n.GetBuildings(), building) {
			continue
		}
		out = append(out, noticeInForce(n))
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": p.Compound, "building": building, "notices": out})
}

// listAllNotices is the worker's list: every notice of the compound, withdrawn ones included.
func (a *API) listAllNotices(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.ListNotices(ctx, &orderv1.ListNoticesRequest{Compound: who(r).Compound})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	out := make([]noticeView, 0, len(resp.GetNotices()))
	for _, n := range resp.GetNotices() {
		out = append(out, notice(n))
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": who(r).Compound, "notices": out})
}

// postNoticeBody posts a notice to the worker's compound; no buildings means every building.
type postNoticeBody struct {
	RequestID string   `json:"request_id"`
	Title     string   `json:"title"`
	Text      string   `json:"text"`
	Buildings []string `json:"buildings"`
}

func (a *API) postNotice(w http.ResponseWriter, r *http.Request) {
	var body postNoticeBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.PostNotice(ctx, &orderv1.PostNoticeRequest{RequestId: body.RequestID, Compound: who(r).Compound,
		Title: body.Title, Text: body.Text, Buildings: body.Buildings})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, notice(resp.GetNotice()))
}

// withdrawNotice takes a notice down. There is no reading one notice to check its compound
// first: the order service withdraws only notices of the caller's compound, and answers
// NOT_FOUND for another's.
func (a *API) withdrawNotice(w http.ResponseWriter, r *http.Request) {
	var body requestIDBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.WithdrawNotice(ctx, &orderv1.WithdrawNoticeRequest{RequestId: body.RequestID, NoticeId: r.PathValue("notice_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, notice(resp.GetNotice()))
}
