package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

// The community worker's endpoints: the roster of the worker's compound and the households'
// sign-in codes. Proxy orders go through POST /api/v1/orders with a household_id.

func (a *API) listHouseholds(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var pageSize int32
	if s := q.Get("page_size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 0 {
			writeInvalid(w, &fieldError{Field: "page_size", Why: "must be a non-negative integer"})
			return
		}
		pageSize = int32(n)
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.ListHouseholds(ctx, &orderv1.ListHouseholdsRequest{Compound: who(r).Compound, PageSize: pageSize,
		PageToken: q.Get("page_token")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	out := make([]householdView, 0, len(resp.GetHouseholds()))
	for _, h := range resp.GetHouseholds() {
		out = append(out, household(h))
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": who(r).Compound, "households": out, "next_page_token": resp.GetNextPageToken()})
}

type householdDetailView struct {
	householdView
	// CodeIssuedAt is when the household's current sign-in code was issued (null: never).
	CodeIssuedAt *time.Time `json:"code_issued_at"`
	CodeIssuedBy string     `json:"code_issued_by"`
}

// fetchHousehold gets a household of the worker's compound; another compound's is "not found".
func (a *API) fetchHousehold(w http.ResponseWriter, r *http.Request) (*orderv1.Household, bool) {
	householdID := r.PathValue("household_id")
	if !mayActFor(who(r), householdID) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("household %s not found", householdID))
		return nil, false
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.GetHousehold(ctx, &orderv1.GetHouseholdRequest{HouseholdId: householdID})
	if err != nil {
		a.writeRPCError(w, r, err)
		return nil, false
	}
	return resp.GetHousehold(), true
}

func (a *API) getHousehold(w http.ResponseWriter, r *http.Request) {
	h, ok := a.fetchHousehold(w, r)
	if !ok {
		return
	}
	v := householdDetailView{householdView: household(h)}
	at, by, issued, err := a.accounts.CodeIssued(r.Context(), h.GetHouseholdId())
	if err != nil {
		a.log.ErrorContext(r.Context(), "gateway: code issued", "err", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "accounts are unavailable, please retry")
		return
	}
	if issued {
		v.CodeIssuedAt, v.CodeIssuedBy = &at, by
	}
	writeJSON(w, http.StatusOK, v)
}

type issuedCodeView struct {
	HouseholdID string    `json:"household_id"`
	Code        string    `json:"code"`
	IssuedAt    time.Time `json:"issued_at"`
	// Link signs a phone in when opened; QRURL is the link as a QR code for the printed notice.
	Link  string `json:"link"`
	QRURL string `json:"qr_url"`
}

// issueCode gives a household a new sign-in code; the old code and its sessions stop working.
// The code is shown this once: only its hash is kept.
func (a *API) issueCode(w http.ResponseWriter, r *http.Request) {
	h, ok := a.fetchHousehold(w, r)
	if !ok {
		return
	}
	issued, err := a.accounts.IssueHouseholdCode(r.Context(), h.GetHouseholdId(), who(r).AccountID)
	var invalid *accounts.InvalidError
	switch {
	case errors.As(err, &invalid):
		writeInvalid(w, &fieldError{Field: invalid.Field, Why: invalid.Why})
		return
	case err != nil:
		a.log.ErrorContext(r.Context(), "gateway: issue code", "err", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "accounts are unavailable, please retry")
		return
	}
	writeJSON(w, http.StatusCreated, issuedCodeView{HouseholdID: issued.HouseholdID, Code: issued.Formatted, IssuedAt: issued.IssuedAt,
		Link: accounts.SignInLink(a.baseURL(r), issued.Code), QRURL: "/api/v1/worker/signin-qr.png?code=" + url.QueryEscape(issued.Formatted)})
}

// baseURL is where residents reach the gateway: the configured public URL, else the address the
// worker's own browser used.
func (a *API) baseURL(r *http.Request) string {
	if a.publicURL != "" {
		return a.publicURL
	}
	scheme := "http"
	if r.TLS != nil || a.secureCookies {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// signInQR draws a sign-in link as a QR code. It takes the code, not the household: codes are
// kept hashed, so only the worker who just issued one can have it.
func (a *API) signInQR(w http.ResponseWriter, r *http.Request) {
	code, ok := accounts.NormalizeCode(r.URL.Query().Get("code"))
	if !ok {
		writeInvalid(w, &fieldError{Field: "code", Why: "must be a 16-symbol sign-in code"})
		return
	}
	size := 320
	if s := r.URL.Query().Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 64 || n > 1024 {
			writeInvalid(w, &fieldError{Field: "size", Why: "must be 64 to 1024 pixels"})
			return
		}
		size = n
	}
	png, err := accounts.QRCode(accounts.SignInLink(a.baseURL(r), code), size)
	if err != nil {
		a.log.ErrorContext(r.Context(), "gateway: QR code", "err", err)
		writeError(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}
