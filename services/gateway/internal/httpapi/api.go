// Package httpapi is the resident-facing HTTP/JSON API under /api/v1/. It parses and checks
// what only HTTP can get wrong (malformed JSON, unknown fields, wrong types, oversized bodies),
// calls the services over gRPC with a deadline, and maps their status codes to HTTP in one
// function. Business rules stay in the services; their field violations pass through unchanged.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"golang.org/x/sync/errgroup"
)

// API serves /api/v1/ and /healthz.
type API struct {
	order    orderv1.OrderServiceClient
	supplier supplierv1.SupplierServiceClient
	tracking trackingv1.TrackingServiceClient
	compound string
	timeout  time.Duration
	log      *slog.Logger
}

// Options configure an API.
type Options struct {
	Order    orderv1.OrderServiceClient
	Supplier supplierv1.SupplierServiceClient
	Tracking trackingv1.TrackingServiceClient
	// Compound is the catalog shown when the request names none.
	Compound string
	// CallTimeout bounds every call to a service.
	CallTimeout time.Duration
	Log         *slog.Logger
}

// New builds the API.
func New(o Options) *API {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	return &API{order: o.Order, supplier: o.Supplier, tracking: o.Tracking, compound: o.Compound,
		timeout: o.CallTimeout, log: o.Log}
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /api/v1/catalog", a.getCatalog)
	mux.HandleFunc("POST /api/v1/orders", a.placeOrder)
	mux.HandleFunc("GET /api/v1/orders/{order_id}", a.getOrder)
	mux.HandleFunc("GET /api/v1/orders/{order_id}/timeline", a.getTimeline)
	mux.HandleFunc("POST /api/v1/orders/{order_id}/cancel", a.cancelOrder)
	mux.HandleFunc("GET /api/v1/households/{household_id}/orders", a.listOrders)
	// Anything else under /api/ answers in JSON too, rather than with the page or plain text.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
}

// call is the context of one outbound RPC: the request's, bounded by the call timeout.
func (a *API) call(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) getCatalog(w http.ResponseWriter, r *http.Request) {
	compound := r.URL.Query().Get("compound")
	if compound == "" {
		compound = a.compound
	}
	if !events.ValidCompound(compound) {
		writeInvalid(w, &fieldError{Field: "compound", Why: "must be a compound slug such as haixin"})
		return
	}
	ctx, cancel := a.call(r)
	defer cancel()
	var suppliers *supplierv1.ListSuppliersResponse
	var items *supplierv1.ListItemsResponse
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		suppliers, err = a.supplier.ListSuppliers(gctx, &supplierv1.ListSuppliersRequest{Compound: compound})
		return err
	})
	g.Go(func() (err error) {
		items, err = a.supplier.ListItems(gctx, &supplierv1.ListItemsRequest{Compound: compound})
		return err
	})
	if err := g.Wait(); err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, catalog(compound, suppliers.GetSuppliers(), items.GetItems()))
}

// placeOrderBody is POST /api/v1/orders. Lines stay raw at first so that an error in one of them
// is reported with its index ("lines[1].quantity").
type placeOrderBody struct {
	RequestID   string            `json:"request_id"`
	HouseholdID string            `json:"household_id"`
	Lines       []json.RawMessage `json:"lines"`
}

type lineBody struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
}

func (a *API) placeOrder(w http.ResponseWriter, r *http.Request) {
	var body placeOrderBody
	if !a.decode(w, r, &body) {
		return
	}
	req := &orderv1.PlaceOrderRequest{
		RequestId:   body.RequestID,
		HouseholdId: body.HouseholdID,
		Channel:     orderv1.Channel_CHANNEL_APP,
		// Until residents sign in (a later issue), the page speaks for the household it names.
		PlacedBy: &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: body.HouseholdID},
	}
	for i, raw := range body.Lines {
		var l lineBody
		if err := decodeStrict(raw, &l, fmt.Sprintf("lines[%d]", i)); err != nil {
			writeDecodeError(w, err)
			return
		}
		req.Lines = append(req.Lines, &orderv1.BasketLine{ItemId: l.ItemID, Quantity: l.Quantity})
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.PlaceOrder(ctx, req)
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/orders/"+resp.GetOrder().GetOrderId())
	writeJSON(w, http.StatusCreated, order(resp.GetOrder()))
}

func (a *API) getOrder(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: r.PathValue("order_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, order(resp.GetOrder()))
}

func (a *API) getTimeline(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.tracking.GetOrderTimeline(ctx, &trackingv1.GetOrderTimelineRequest{OrderId: r.PathValue("order_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, timelineOf(resp))
}

func (a *API) listOrders(w http.ResponseWriter, r *http.Request) {
	householdID := r.PathValue("household_id")
	var pageSize int32
	if s := r.URL.Query().Get("page_size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 0 {
			writeInvalid(w, &fieldError{Field: "page_size", Why: "must be a non-negative integer"})
			return
		}
		pageSize = int32(n)
	}
	ctx, cancel := a.call(r)
	defer cancel()
	resp, err := a.order.ListOrders(ctx, &orderv1.ListOrdersRequest{HouseholdId: householdID, PageSize: pageSize})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, orders(householdID, resp.GetOrders()))
}

type cancelBody struct {
	RequestID string `json:"request_id"`
	Reason    string `json:"reason"`
}

func (a *API) cancelOrder(w http.ResponseWriter, r *http.Request) {
	var body cancelBody
	if !a.decode(w, r, &body) {
		return
	}
	orderID := r.PathValue("order_id")
	ctx, cancel := a.call(r)
	defer cancel()
	// The cancellation is recorded as the household's own; until sign-in exists the order's
	// household is the only honest actor the gateway can name.
	got, err := a.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	resp, err := a.order.CancelOrder(ctx, &orderv1.CancelOrderRequest{
		RequestId: body.RequestID,
		OrderId:   orderID,
		Reason:    body.Reason,
		Actor:     &typesv1.Actor{Role: typesv1.Role_ROLE_RESIDENT, Id: got.GetOrder().GetHouseholdId()},
	})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, order(resp.GetOrder()))
}

// decode reads and strictly decodes the body into v, answering 400 or 413 itself when it cannot.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := readBody(w, r)
	if err == nil {
		err = decodeStrict(data, v, "")
	}
	if err != nil {
		writeDecodeError(w, err)
		return false
	}
	return true
}

func writeDecodeError(w http.ResponseWriter, err error) {
	var fe *fieldError
	switch {
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", err.Error())
	case errors.As(err, &fe):
		writeInvalid(w, fe)
	default:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
