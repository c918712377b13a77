package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/doorstep/doorstep/pkg/grpcx"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"google.golang.org/protobuf/proto"
)

// The supplier console's endpoints. The supplier is always the one the staff account is bound
// to; no request names it, so no request can reach another supplier's parcels or prices.

// parseState reads a parcel state by its SPEC.md name ("READY"); empty means any.
func parseState(s string) (typesv1.ParcelState, bool) {
	if s == "" {
		return typesv1.ParcelState_PARCEL_STATE_UNSPECIFIED, true
	}
	v, ok := typesv1.ParcelState_value["PARCEL_STATE_"+strings.ToUpper(s)]
	return typesv1.ParcelState(v), ok && v != 0
}

// consolePage is how many parcels the supplier's console shows at a time: the READY list keeps
// every parcel handed over since the lockdown began, more than a tablet should draw at once.
const consolePage = 100

// supplierParcels is a page of the supplier's queue, oldest first, or newest first with
// newest_first=true (the console's view of what was handed over); next_page_token, when set, asks
// for the next page.
func (a *API) supplierParcels(w http.ResponseWriter, r *http.Request) {
	state, ok := parseState(r.URL.Query().Get("state"))
	if !ok {
		writeInvalid(w, &fieldError{Field: "state", Why: "must be a parcel state such as PLACED or CONFIRMED"})
		return
	}
	newestFirst := false
	if v := r.URL.Query().Get("newest_first"); v != "" {
		var err error
		if newestFirst, err = strconv.ParseBool(v); err != nil {
			writeInvalid(w, &fieldError{Field: "newest_first", Why: "must be true or false"})
			return
		}
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.supplier.ListParcels(ctx, &supplierv1.ListParcelsRequest{SupplierId: who(r).SupplierID, State: state,
		RoundId: r.URL.Query().Get("round_id"), NewestFirst: newestFirst, PageSize: consolePage,
		PageToken: r.URL.Query().Get("page_token")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"supplier_id": who(r).SupplierID, "parcels": supplierParcels(resp.GetParcels()),
		"next_page_token": resp.GetNextPageToken()})
}

// allParcels is every parcel of the listing req asks for, read a page (500) at a time.
func (a *API) allParcels(ctx context.Context, req *supplierv1.ListParcelsRequest) ([]*supplierv1.SupplierParcel, error) {
	return grpcx.Pages(func(token string) ([]*supplierv1.SupplierParcel, string, error) {
		req.PageToken = token
		resp, err := a.supplier.ListParcels(ctx, req)
		return resp.GetParcels(), resp.GetNextPageToken(), err
	})
}

type stateCountView struct {
	State   string `json:"state"`
	Parcels int32  `json:"parcels"`
}

func (a *API) supplierQueue(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.tracking.GetSupplierQueue(ctx, &trackingv1.GetSupplierQueueRequest{SupplierId: who(r).SupplierID})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	states := make([]stateCountView, 0, len(resp.GetStates()))
	for _, s := range resp.GetStates() {
		states = append(states, stateCountView{State: parcelState(s.GetState()), Parcels: s.GetParcels()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"supplier_id": resp.GetSupplierId(), "states": states})
}

// confirmBody confirms a parcel; lines name what differs from the order: the actual grams of a
// weighed line, or the units of a counted line the supplier can fill (0 drops it: a partial
// confirmation). Lines not named are confirmed as ordered.
type confirmBody struct {
	RequestID string            `json:"request_id"`
	Lines     []json.RawMessage `json:"lines"`
}

type confirmLineBody struct {
	ItemID   string `json:"item_id"`
	Quantity *int64 `json:"quantity"`
}

func (a *API) confirmParcel(w http.ResponseWriter, r *http.Request) {
	var body confirmBody
	if !a.decode(w, r, &body) {
		return
	}
	req := &supplierv1.ConfirmParcelRequest{RequestId: body.RequestID, SupplierId: who(r).SupplierID, ParcelId: r.PathValue("parcel_id")}
	for i, raw := range body.Lines {
		var l confirmLineBody
		if err := decodeStrict(raw, &l, fmt.Sprintf("lines[%d]", i)); err != nil {
			writeDecodeError(w, err)
			return
		}
		line := &supplierv1.ConfirmLine{ItemId: l.ItemID}
		if l.Quantity != nil {
			line.Quantity = proto.Int64(*l.Quantity)
		}
		req.Lines = append(req.Lines, line)
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.supplier.ConfirmParcel(ctx, req)
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, supplierParcel(resp.GetParcel()))
}

type rejectBody struct {
	RequestID string `json:"request_id"`
	Reason    string `json:"reason"`
}

func (a *API) rejectParcel(w http.ResponseWriter, r *http.Request) {
	var body rejectBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.supplier.RejectParcel(ctx, &supplierv1.RejectParcelRequest{RequestId: body.RequestID,
		SupplierId: who(r).SupplierID, ParcelId: r.PathValue("parcel_id"), Reason: body.Reason})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, supplierParcel(resp.GetParcel()))
}

type requestIDBody struct {
	RequestID string `json:"request_id"`
}

// hasRequestID answers 400 naming request_id when a change comes without one. The supplier
// service refuses such a change too; this check is for the gateway's own read before the change.
func hasRequestID(w http.ResponseWriter, id string) bool {
	if id == "" {
		writeInvalid(w, &fieldError{Field: "request_id", Why: "is required"})
		return false
	}
	return true
}

func (a *API) parcelReady(w http.ResponseWriter, r *http.Request) {
	var body requestIDBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.supplier.MarkParcelReady(ctx, &supplierv1.MarkParcelReadyRequest{RequestId: body.RequestID,
		SupplierId: who(r).SupplierID, ParcelId: r.PathValue("parcel_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, supplierParcel(resp.GetParcel()))
}

func (a *API) supplierItems(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	p := who(r)
	resp, err := a.supplier.ListItems(ctx, &supplierv1.ListItemsRequest{Compound: p.Compound, SupplierId: p.SupplierID})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	items := make([]itemView, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		if it.GetSupplierId() == p.SupplierID {
			items = append(items, itemOf(it))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"supplier_id": p.SupplierID, "items": items})
}

// itemPatch changes an item's price or ration; fields left out stay as they are. The supplier
// service refuses a price above the reference price (不加价). Stock is not here: it changes only
// by AdjustStock, so an edit from a stale screen cannot undo reservations made meanwhile.
type itemPatch struct {
	RequestID       string `json:"request_id"`
	CurrentPriceFen *int64 `json:"current_price_fen"`
	RationPerDay    *int64 `json:"ration_per_day"`
}

// ownItem gets one of the caller's supplier's items; another supplier's is "not found".
func (a *API) ownItem(ctx context.Context, w http.ResponseWriter, r *http.Request) (*supplierv1.Item, bool) {
	itemID := r.PathValue("item_id")
	got, err := a.supplier.BatchGetItems(ctx, &supplierv1.BatchGetItemsRequest{ItemIds: []string{itemID}})
	if err != nil {
		a.writeRPCError(w, r, err)
		return nil, false
	}
	if len(got.GetItems()) != 1 || got.GetItems()[0].GetSupplierId() != who(r).SupplierID {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("item %s not found", itemID))
		return nil, false
	}
	return got.GetItems()[0], true
}

func (a *API) updateItem(w http.ResponseWriter, r *http.Request) {
	var body itemPatch
	if !a.decode(w, r, &body) {
		return
	}
	if !hasRequestID(w, body.RequestID) {
		return
	}
	if body.CurrentPriceFen == nil && body.RationPerDay == nil {
		writeInvalid(w, &fieldError{Field: "body", Why: "must change current_price_fen or ration_per_day"})
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	got, ok := a.ownItem(ctx, w, r)
	if !ok {
		return
	}
	it := proto.Clone(got).(*supplierv1.Item)
	if body.CurrentPriceFen != nil {
		it.CurrentPriceFen = *body.CurrentPriceFen
	}
	if body.RationPerDay != nil {
		it.RationPerDay = *body.RationPerDay
	}
	// The service keeps an existing item's stock whatever the request says, and the request id's
	// key covers the whole request: sending the stock just read would make a retry, after orders
	// took some, a different request (ALREADY_EXISTS) instead of the same edit.
	it.Stock = 0
	resp, err := a.supplier.UpsertItem(ctx, &supplierv1.UpsertItemRequest{RequestId: body.RequestID, Item: it})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, itemOf(resp.GetItem()))
}

// stockBody adds (a delivery) or removes (spoilage, a recount) stock, atomically at the supplier.
type stockBody struct {
	RequestID string `json:"request_id"`
	Delta     int64  `json:"delta"`
	Reason    string `json:"reason"`
}

func (a *API) adjustStock(w http.ResponseWriter, r *http.Request) {
	var body stockBody
	if !a.decode(w, r, &body) {
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.supplier.AdjustStock(ctx, &supplierv1.AdjustStockRequest{RequestId: body.RequestID,
		SupplierId: who(r).SupplierID, ItemId: r.PathValue("item_id"), Delta: body.Delta, Reason: body.Reason})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, itemOf(resp.GetItem()))
}
