package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/doorstep/doorstep/pkg/events"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The resident's endpoints, shared with community workers, who order and look on behalf of a
// household. A resident acts only for the household of their session: the household never comes
// from the request, and another household's order is "not found", exactly like one that does
// not exist, so ids cannot be probed.

func (a *API) getCatalog(w http.ResponseWriter, r *http.Request) {
	compound := r.URL.Query().Get("compound")
	if compound == "" {
		compound = who(r).Compound
	}
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
	// Donated stock is handed out only by campaigns: only the workers who make the packs see it;
	// its items go with it (catalog drops items of suppliers it is not given).
	sups := suppliers.GetSuppliers()
	if who(r).Role != worker {
		sups = slices.DeleteFunc(slices.Clone(sups), func(s *supplierv1.Supplier) bool { return s.GetKind() == DonationsKind })
	}
	writeJSON(w, http.StatusOK, catalog(compound, sups, items.GetItems()))
}

// placeOrderBody is POST /api/v1/orders. Lines stay raw at first so that an error in one of them
// is reported with its index ("lines[1].quantity").
type placeOrderBody struct {
	RequestID string `json:"request_id"`
	// HouseholdID is required from a worker ordering for a household; a resident may leave it out
	// (the session says which household), and may not name another.
	HouseholdID string `json:"household_id"`
	// Channel is how a worker took the order: "WORKER" (the default: at the door, on a round) or
	// "PHONE" (the household called). A resident's order is "APP", the only one they may name.
	Channel string            `json:"channel"`
	Lines   []json.RawMessage `json:"lines"`
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
	p := who(r)
	req := &orderv1.PlaceOrderRequest{RequestId: body.RequestID, PlacedBy: p.Identity().Actor()}
	switch p.Role {
	case resident:
		if body.HouseholdID != "" && body.HouseholdID != p.HouseholdID {
			writeForbiddenField(w, "household_id", "is your own household's; leave it out")
			return
		}
		if body.Channel != "" && body.Channel != "APP" {
			writeInvalid(w, &fieldError{Field: "channel", Why: `must be "APP" (or left out) for your own order`})
			return
		}
		req.HouseholdId, req.Channel = p.HouseholdID, orderv1.Channel_CHANNEL_APP
	case worker:
		if body.HouseholdID == "" {
			writeInvalid(w, &fieldError{Field: "household_id", Why: "is required for a proxy order"})
			return
		}
		if c, _ := accounts.CompoundOf(body.HouseholdID); c != p.Compound {
			writeForbiddenField(w, "household_id", "must be a household of your compound")
			return
		}
		switch body.Channel {
		case "", "WORKER":
			req.Channel = orderv1.Channel_CHANNEL_WORKER
		case "PHONE":
			req.Channel = orderv1.Channel_CHANNEL_PHONE
		default:
			writeInvalid(w, &fieldError{Field: "channel", Why: `must be "WORKER" or "PHONE" for a proxy order`})
			return
		}
		req.HouseholdId = body.HouseholdID
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

// mayActFor reports whether the caller may see and act on a household's orders: a resident only
// on their own, a worker on any household of their compound.
func mayActFor(p accounts.Principal, householdID string) bool {
	switch p.Role {
	case resident:
		return householdID == p.HouseholdID
	case worker:
		c, _ := accounts.CompoundOf(householdID)
		return c == p.Compound
	}
	return false
}

// fetchOrder gets an order the caller may see; anything else is answered (404 for another
// household's order) and reported as false.
func (a *API) fetchOrder(ctx context.Context, w http.ResponseWriter, r *http.Request, orderID string) (*orderv1.Order, bool) {
	resp, err := a.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID})
	if err == nil && !mayActFor(who(r), resp.GetOrder().GetHouseholdId()) {
		err = status.Errorf(codes.NotFound, "order %s not found", orderID)
	}
	if err != nil {
		a.writeRPCError(w, r, err)
		return nil, false
	}
	return resp.GetOrder(), true
}

func (a *API) getOrder(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	o, ok := a.fetchOrder(ctx, w, r, r.PathValue("order_id"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, order(o))
}

func (a *API) getTimeline(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.call(r)
	defer cancel()
	if _, ok := a.fetchOrder(ctx, w, r, r.PathValue("order_id")); !ok {
		return
	}
	resp, err := a.tracking.GetOrderTimeline(ctx, &trackingv1.GetOrderTimelineRequest{OrderId: r.PathValue("order_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, timelineOf(resp))
}

func (a *API) listMyOrders(w http.ResponseWriter, r *http.Request) {
	a.writeOrders(w, r, who(r).HouseholdID)
}

func (a *API) listOrders(w http.ResponseWriter, r *http.Request) {
	householdID := r.PathValue("household_id")
	if !mayActFor(who(r), householdID) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("household %s not found", householdID))
		return
	}
	a.writeOrders(w, r, householdID)
}

func (a *API) writeOrders(w http.ResponseWriter, r *http.Request, householdID string) {
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
	if _, ok := a.fetchOrder(ctx, w, r, orderID); !ok {
		return
	}
	resp, err := a.order.CancelOrder(ctx, &orderv1.CancelOrderRequest{
		RequestId: body.RequestID, OrderId: orderID, Reason: body.Reason, Actor: who(r).Identity().Actor(),
	})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, order(resp.GetOrder()))
}
