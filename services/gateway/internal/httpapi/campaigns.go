package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Free-distribution campaigns, run by the community workers of a compound: a pack of one
// supplier's items, the households it goes to, the launch that makes one free parcel per
// household, the roster of where each pack stands, and handing the community's donated packs
// over at the gate. The compound is always the worker's own.

// DonationsKind is the kind of the supplier that holds the community's donated stock; its packs
// are handed over at the gate by the workers themselves.
const DonationsKind = "donations"

// createCampaignBody is POST /api/v1/worker/campaigns. Pack lines and the target stay raw at
// first so that an error in one is named where it is ("pack[1].quantity", "target.flags[0]").
type createCampaignBody struct {
	RequestID string            `json:"request_id"`
	Name      string            `json:"name"`
	Pack      []json.RawMessage `json:"pack"`
	Target    json.RawMessage   `json:"target"`
}

type packLineBody struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
}

// targetBody chooses the households: occupied ones, narrowed to some buildings and to those with
// any of the flags; include_unknown_occupancy adds households nobody has confirmed as occupied.
type targetBody struct {
	Buildings               []string `json:"buildings"`
	Flags                   []string `json:"flags"`
	IncludeUnknownOccupancy bool     `json:"include_unknown_occupancy"`
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request) {
	var body createCampaignBody
	if !a.decode(w, r, &body) {
		return
	}
	req := &orderv1.CreateCampaignRequest{RequestId: body.RequestID, Compound: who(r).Compound, Name: body.Name,
		Target: &orderv1.CampaignTarget{}}
	for i, raw := range body.Pack {
		var l packLineBody
		if err := decodeStrict(raw, &l, fmt.Sprintf("pack[%d]", i)); err != nil {
			writeDecodeError(w, err)
			return
		}
		req.Pack = append(req.Pack, &orderv1.PackLine{ItemId: l.ItemID, Quantity: l.Quantity})
	}
	if len(body.Target) > 0 {
		var t targetBody
		if err := decodeStrict(body.Target, &t, "target"); err != nil {
			writeDecodeError(w, err)
			return
		}
		req.Target.Buildings, req.Target.IncludeUnknownOccupancy = t.Buildings, t.IncludeUnknownOccupancy
		for i, f := range t.Flags {
			flag, ok := parseFlag(f)
			if !ok {
				writeInvalid(w, &fieldError{Field: fmt.Sprintf("target.flags[%d]", i),
					Why: "must be OVER_80, LIVES_ALONE, CHRONICALLY_ILL or QUARANTINED"})
				return
			}
			req.Target.Flags = append(req.Target.Flags, flag)
		}
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.CreateCampaign(ctx, req)
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/worker/campaigns/"+resp.GetCampaign().GetCampaignId())
	writeJSON(w, http.StatusCreated, campaign(resp.GetCampaign()))
}

func parseFlag(s string) (orderv1.HouseholdFlag, bool) {
	v, ok := orderv1.HouseholdFlag_value["HOUSEHOLD_FLAG_"+strings.ToUpper(s)]
	return orderv1.HouseholdFlag(v), ok && v != 0
}

func (a *API) listCampaigns(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.ListCampaigns(ctx, &orderv1.ListCampaignsRequest{Compound: who(r).Compound})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	out := make([]campaignView, 0, len(resp.GetCampaigns()))
	for _, c := range resp.GetCampaigns() {
		out = append(out, campaign(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"compound": who(r).Compound, "campaigns": out})
}

// fetchCampaign gets a campaign of the worker's compound; another compound's is "not found",
// exactly like one that does not exist. The order service checks the compound as well.
func (a *API) fetchCampaign(ctx context.Context, w http.ResponseWriter, r *http.Request) (*orderv1.Campaign, bool) {
	id := r.PathValue("campaign_id")
	resp, err := a.order.GetCampaign(ctx, &orderv1.GetCampaignRequest{CampaignId: id})
	if err == nil && resp.GetCampaign().GetCompound() != who(r).Compound {
		err = status.Errorf(codes.NotFound, "campaign %s not found", id)
	}
	if err != nil {
		a.writeRPCError(w, r, err)
		return nil, false
	}
	return resp.GetCampaign(), true
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	c, ok := a.fetchCampaign(ctx, w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, campaign(c))
}

// launchCampaign starts making the packs; the campaign answers LAUNCHING until every pack is
// made, and the page follows its counts.
func (a *API) launchCampaign(w http.ResponseWriter, r *http.Request) {
	var body requestIDBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	if _, ok := a.fetchCampaign(ctx, w, r); !ok {
		return
	}
	resp, err := a.order.LaunchCampaign(ctx, &orderv1.LaunchCampaignRequest{RequestId: body.RequestID, CampaignId: r.PathValue("campaign_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, campaign(resp.GetCampaign()))
}

func (a *API) retryMissed(w http.ResponseWriter, r *http.Request) {
	var body requestIDBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	if _, ok := a.fetchCampaign(ctx, w, r); !ok {
		return
	}
	resp, err := a.order.RetryMissedHouseholds(ctx, &orderv1.RetryMissedHouseholdsRequest{RequestId: body.RequestID,
		CampaignId: r.PathValue("campaign_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaign": campaign(resp.GetCampaign()), "retried": resp.GetRetried()})
}

// parseRosterStatuses reads ?status=MISSED&status=FAILED or ?status=MISSED,FAILED.
func parseRosterStatuses(values []string) ([]orderv1.RosterStatus, bool) {
	var out []orderv1.RosterStatus
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			n, ok := orderv1.RosterStatus_value["ROSTER_STATUS_"+strings.ToUpper(s)]
			if !ok || n == 0 {
				return nil, false
			}
			out = append(out, orderv1.RosterStatus(n))
		}
	}
	return out, true
}

// parsePageSize reads a page size; the services bound it and say so by field.
func parsePageSize(s string) (int32, bool) {
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 32)
	return int32(n), err == nil && n >= 0
}

// campaignRoster pages through the targeted households, narrowed by ?status= and ?building=,
// with the counts of the whole campaign by building.
func (a *API) campaignRoster(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	statuses, ok := parseRosterStatuses(q["status"])
	if !ok {
		writeInvalid(w, &fieldError{Field: "status", Why: "must be PACKING, ON_THE_WAY, DELIVERED, FAILED or MISSED"})
		return
	}
	pageSize, ok := parsePageSize(q.Get("page_size"))
	if !ok {
		writeInvalid(w, &fieldError{Field: "page_size", Why: "must be a non-negative integer"})
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	if _, ok := a.fetchCampaign(ctx, w, r); !ok {
		return
	}
	resp, err := a.order.GetCampaignRoster(ctx, &orderv1.GetCampaignRosterRequest{CampaignId: r.PathValue("campaign_id"),
		Statuses: statuses, Building: q.Get("building"), PageSize: pageSize, PageToken: q.Get("page_token")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, roster(r.PathValue("campaign_id"), resp))
}

// exportRoster downloads the whole roster as the order service writes it (CSV, UTF-8 with a
// byte-order mark, so a spreadsheet opens the Chinese names right).
func (a *API) exportRoster(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	c, ok := a.fetchCampaign(ctx, w, r)
	if !ok {
		return
	}
	resp, err := a.order.ExportCampaignRoster(ctx, &orderv1.ExportCampaignRosterRequest{CampaignId: c.GetCampaignId()})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+csvFileName(c.GetCampaignId())+`"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(resp.GetCsv())
}

// csvFileName keeps only characters that need no quoting in a header, whatever the id holds.
func csvFileName(campaignID string) string {
	safe := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return -1
	}, campaignID)
	return "campaign-" + safe + "-roster.csv"
}

// Handing over at the gate. A campaign's packs are confirmed at their supplier as they are made;
// a supermarket's or pharmacy's staff then hand them over like any parcel (their own console),
// but the community's donated stock has no staff but the workers, so a worker hands the donated
// packs over here, all at once.
const (
	// handOverConcurrency bounds the MarkParcelReady calls in flight: enough to hand over a
	// compound's packs in seconds, few enough not to crowd out the supplier's other callers.
	handOverConcurrency = 8
	// handOverBudget bounds one hand-over; packs not reached by then are reported as remaining,
	// and asking again carries on where it stopped.
	handOverBudget = 60 * time.Second
	// maxFailuresListed keeps the answer small when a whole batch fails alike.
	maxFailuresListed = 20
)

// handOverRequestID is the request id of one pack's hand-over: derived from the parcel, so a
// hand-over asked for twice (a double tap, a retry after a timeout) marks each pack once.
func handOverRequestID(parcelID string) string { return "campaign-hand-over-" + parcelID }

func (a *API) handOver(w http.ResponseWriter, r *http.Request) {
	// Nothing to say but which campaign: the body may be empty or an empty object.
	if data, err := readBody(w, r); err != nil {
		writeDecodeError(w, err)
		return
	} else if len(strings.TrimSpace(string(data))) > 0 {
		var none struct{}
		if err := decodeStrict(data, &none, ""); err != nil {
			writeDecodeError(w, err)
			return
		}
	}
	ctx, cancel := a.call(r)
	c, ok := a.fetchCampaign(ctx, w, r)
	if !ok {
		cancel()
		return
	}
	sups, err := a.supplier.ListSuppliers(ctx, &supplierv1.ListSuppliersRequest{Compound: who(r).Compound})
	if err != nil {
		cancel()
		a.writeRPCError(w, r, err)
		return
	}
	donations := false
	for _, s := range sups.GetSuppliers() {
		if s.GetSupplierId() == c.GetSupplierId() {
			donations = s.GetKind() == DonationsKind
			break
		}
	}
	if !donations {
		cancel()
		writeError(w, http.StatusConflict, "FAILED_PRECONDITION",
			fmt.Sprintf("the packs of %s are handed over by its own staff; only donated packs are handed over here", c.GetSupplierId()))
		return
	}
	waiting, err := a.allParcels(ctx, &supplierv1.ListParcelsRequest{SupplierId: c.GetSupplierId(),
		CampaignId: c.GetCampaignId(), State: typesv1.ParcelState_PARCEL_STATE_CONFIRMED})
	cancel()
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	// Thousands of packs take longer than the server's write timeout allows an ordinary answer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(handOverBudget + a.timeout + 10*time.Second))
	out, err := a.markReady(r, c, waiting)
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type handOverFailureView struct {
	ParcelID    string `json:"parcel_id"`
	HouseholdID string `json:"household_id"`
	Code        string `json:"code"`
	Message     string `json:"message"`
}

type handOverView struct {
	CampaignID string `json:"campaign_id"`
	SupplierID string `json:"supplier_id"`
	// Waiting is how many packs were confirmed and not yet handed over when asked.
	Waiting    int `json:"waiting"`
	HandedOver int `json:"handed_over"`
	Failed     int `json:"failed"`
	// Remaining were not reached: the time ran out, or the supplier refused the worker or was
	// down. Asking again carries on.
	Remaining int                   `json:"remaining"`
	Failures  []handOverFailureView `json:"failures"`
}

// stopsHandOver says whether an error is about every pack rather than one: there is no point
// asking for the rest, and if none went through, it is the answer.
func stopsHandOver(c codes.Code) bool {
	switch c {
	case codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented, codes.Unavailable, codes.ResourceExhausted:
		return true
	}
	return false
}

// markReady marks each pack READY at the supplier, a few at a time, each with its own deadline
// and a request id derived from the parcel. A pack refused alone (no longer CONFIRMED, say) is
// counted failed with the reason; an error that would refuse them all stops the rest, and is
// returned if nothing was handed over.
func (a *API) markReady(r *http.Request, c *orderv1.Campaign, parcels []*supplierv1.SupplierParcel) (handOverView, error) {
	out := handOverView{CampaignID: c.GetCampaignId(), SupplierID: c.GetSupplierId(), Waiting: len(parcels),
		Failures: []handOverFailureView{}}
	budget, cancel := context.WithTimeout(r.Context(), handOverBudget)
	defer cancel()
	stop, stopAll := context.WithCancel(budget)
	defer stopAll()
	var mu sync.Mutex
	var fatal error
	g := new(errgroup.Group)
	g.SetLimit(handOverConcurrency)
	for _, p := range parcels {
		g.Go(func() error {
			if stop.Err() != nil {
				mu.Lock()
				out.Remaining++
				mu.Unlock()
				return nil
			}
			ctx, done := context.WithTimeout(stop, a.timeout)
			_, err := a.supplier.MarkParcelReady(ctx, &supplierv1.MarkParcelReadyRequest{
				RequestId: handOverRequestID(p.GetParcelId()), SupplierId: c.GetSupplierId(), ParcelId: p.GetParcelId()})
			done()
			mu.Lock()
			defer mu.Unlock()
			st, _ := status.FromError(err)
			switch {
			case err == nil:
				out.HandedOver++
			case stop.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
				st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded):
				out.Remaining++ // cut short by the budget or by another pack's fatal error
			case stopsHandOver(st.Code()):
				out.Remaining++
				if fatal == nil {
					fatal = err
				}
				stopAll()
			default:
				out.Failed++
				msg := st.Message()
				if st.Code() == codes.Internal || st.Code() == codes.Unknown || st.Code() == codes.DataLoss {
					a.log.ErrorContext(r.Context(), "gateway: hand over a pack", "parcel_id", p.GetParcelId(), "err", err)
					msg = "internal error" // for operators, not for the page; as writeRPCError
				}
				if len(out.Failures) < maxFailuresListed {
					out.Failures = append(out.Failures, handOverFailureView{ParcelID: p.GetParcelId(), HouseholdID: p.GetHouseholdId(),
						Code: codeName(st.Code()), Message: msg})
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	if fatal != nil && out.HandedOver == 0 {
		return out, fatal
	}
	return out, nil
}

func codeName(c codes.Code) string {
	if n := codeNames[c]; n != "" {
		return n
	}
	return "UNKNOWN"
}
