// Package httpapi is the gateway's HTTP/JSON API under /api/v1/: sign-in and sessions, and one
// set of endpoints per role (resident, worker, supplier, dispatcher, courier). It parses and
// checks what only HTTP can get wrong (malformed JSON, unknown fields, wrong types, oversized
// bodies), checks the caller's role and ownership, calls the services over gRPC with a deadline
// and the caller's signed identity, and maps their status codes to HTTP in one function. Business
// rules stay in the services, which check identity again; their field violations pass through.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
)

// API serves /api/v1/ and /healthz.
type API struct {
	order         orderv1.OrderServiceClient
	supplier      supplierv1.SupplierServiceClient
	tracking      trackingv1.TrackingServiceClient
	dispatch      dispatchv1.DispatchServiceClient
	courier       courierv1.CourierServiceClient
	accounts      *accounts.Store
	compound      string
	timeout       time.Duration
	log           *slog.Logger
	secureCookies bool
	publicURL     string
	clientIP      func(*http.Request) string
	signInIP      *keyedLimiter
	signInAccount *keyedLimiter
	perClient     *keyedLimiter
	routes        []Route
	streams       streams
}

// Options configure an API.
type Options struct {
	Order    orderv1.OrderServiceClient
	Supplier supplierv1.SupplierServiceClient
	Tracking trackingv1.TrackingServiceClient
	Dispatch dispatchv1.DispatchServiceClient
	Courier  courierv1.CourierServiceClient
	Accounts *accounts.Store
	// Compound is the catalog shown when neither the request nor the session names one.
	Compound string
	// CallTimeout bounds every call to a service.
	CallTimeout time.Duration
	// SecureCookies marks the session cookie Secure even when TLS ends before the gateway.
	SecureCookies bool
	// PublicURL is the gateway as residents reach it, for printed sign-in links; empty means
	// the address the worker's own request came to.
	PublicURL string
	// ClientIPHeader names a header set by a trusted proxy with the client's address.
	ClientIPHeader string
	// Limits; the zero value means DefaultLimits.
	Limits Limits
	// Now is the clock of the rate limits; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// New builds the API.
func New(o Options) *API {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &API{order: o.Order, supplier: o.Supplier, tracking: o.Tracking, dispatch: o.Dispatch, courier: o.Courier,
		accounts: o.Accounts, compound: o.Compound, timeout: o.CallTimeout, log: o.Log,
		secureCookies: o.SecureCookies, publicURL: o.PublicURL, clientIP: ClientIP(o.ClientIPHeader),
		signInIP:      newKeyedLimiter(o.Limits.SignInPerIP, o.Limits.SignInBurst, o.Now),
		signInAccount: newKeyedLimiter(o.Limits.SignInPerAccount, o.Limits.AccountBurst, o.Now),
		perClient:     newKeyedLimiter(o.Limits.APIPerClient, o.Limits.APIBurst, o.Now),
		streams:       streams{closing: make(chan struct{}), open: map[string]int{}}}
}

// Route is one endpoint and the roles that may call it; no roles means anyone, signed in or not.
type Route struct {
	Pattern string
	Roles   []typesv1.Role
}

// Routes lists the endpoints with their roles (for the role table test and the README).
func (a *API) Routes() []Route { return a.routes }

var (
	resident   = typesv1.Role_ROLE_RESIDENT
	worker     = typesv1.Role_ROLE_WORKER
	supplier   = typesv1.Role_ROLE_SUPPLIER
	dispatcher = typesv1.Role_ROLE_DISPATCHER
	courier    = typesv1.Role_ROLE_COURIER
)

// Handler is the API behind its guards: security headers on everything, cross-origin
// protection for cookie sessions, then the session lookup.
func (a *API) Handler(pages http.Handler) http.Handler {
	mux := http.NewServeMux()
	a.register(mux)
	mux.Handle("/", pages)
	return SecurityHeaders(CSRF(a.withSession(mux)))
}

func (a *API) register(mux *http.ServeMux) {
	public := []typesv1.Role(nil)
	mux.HandleFunc("GET /healthz", a.healthz)
	a.handle(mux, "GET /api/v1/session", public, a.getSession)
	a.handle(mux, "POST /api/v1/session/code", public, a.signInWithCode)
	a.handle(mux, "POST /api/v1/session/password", public, a.signInWithPassword)
	a.handle(mux, "DELETE /api/v1/session", public, a.signOut)

	a.handle(mux, "GET /api/v1/catalog", roles(resident, worker, supplier, dispatcher), a.getCatalog)
	a.handle(mux, "GET /api/v1/notices", roles(resident, worker), a.listNotices)
	a.handle(mux, "POST /api/v1/orders", roles(resident, worker), a.placeOrder)
	a.handle(mux, "GET /api/v1/orders", roles(resident), a.listMyOrders)
	a.handle(mux, "GET /api/v1/orders/{order_id}", roles(resident, worker), a.getOrder)
	a.handle(mux, "GET /api/v1/orders/{order_id}/timeline", roles(resident, worker), a.getTimeline)
	a.handle(mux, "GET /api/v1/orders/{order_id}/events", roles(resident, worker), a.watchOrder)
	a.handle(mux, "POST /api/v1/orders/{order_id}/cancel", roles(resident, worker), a.cancelOrder)
	a.handle(mux, "GET /api/v1/households/{household_id}/orders", roles(resident, worker), a.listOrders)

	a.handle(mux, "GET /api/v1/supplier/parcels", roles(supplier), a.supplierParcels)
	a.handle(mux, "GET /api/v1/supplier/queue", roles(supplier), a.supplierQueue)
	a.handle(mux, "POST /api/v1/supplier/parcels/{parcel_id}/confirm", roles(supplier), a.confirmParcel)
	a.handle(mux, "POST /api/v1/supplier/parcels/{parcel_id}/reject", roles(supplier), a.rejectParcel)
	a.handle(mux, "POST /api/v1/supplier/parcels/{parcel_id}/ready", roles(supplier), a.parcelReady)
	a.handle(mux, "GET /api/v1/supplier/items", roles(supplier), a.supplierItems)
	a.handle(mux, "PATCH /api/v1/supplier/items/{item_id}", roles(supplier), a.updateItem)
	a.handle(mux, "POST /api/v1/supplier/items/{item_id}/stock", roles(supplier), a.adjustStock)

	a.handle(mux, "GET /api/v1/dispatch/rounds", roles(dispatcher), a.listRounds)
	a.handle(mux, "GET /api/v1/dispatch/gate", roles(dispatcher), a.gateParcels)
	a.handle(mux, "POST /api/v1/dispatch/checkin", roles(dispatcher), a.checkIn)
	a.handle(mux, "POST /api/v1/dispatch/rounds/{round_id}/plan", roles(dispatcher), a.planRound)
	a.handle(mux, "GET /api/v1/dispatch/rounds/{round_id}/routes", roles(dispatcher), a.listRoutes)
	a.handle(mux, "GET /api/v1/dispatch/rounds/{round_id}/progress", roles(dispatcher), a.roundProgress)
	a.handle(mux, "GET /api/v1/rounds/{round_id}/events", roles(dispatcher), a.watchRound)
	a.handle(mux, "POST /api/v1/dispatch/rounds/{round_id}/reassign", roles(dispatcher), a.reassignCourier)
	a.handle(mux, "POST /api/v1/dispatch/rounds/{round_id}/move-stop", roles(dispatcher), a.moveStop)
	a.handle(mux, "GET /api/v1/dispatch/couriers", roles(dispatcher), a.listCouriers)

	a.handle(mux, "GET /api/v1/courier/route", roles(courier), a.myRoute)
	a.handle(mux, "GET /api/v1/courier/route/events", roles(courier), a.watchRoute)
	a.handle(mux, "POST /api/v1/courier/pickup", roles(courier), a.pickUp)
	a.handle(mux, "POST /api/v1/courier/parcels/{parcel_id}/delivered", roles(courier), a.delivered)
	a.handle(mux, "POST /api/v1/courier/parcels/{parcel_id}/failed", roles(courier), a.failed)
	a.handle(mux, "POST /api/v1/courier/complete", roles(courier), a.completeStops)

	a.handle(mux, "GET /api/v1/worker/households", roles(worker), a.listHouseholds)
	a.handle(mux, "GET /api/v1/worker/households/{household_id}", roles(worker), a.getHousehold)
	a.handle(mux, "POST /api/v1/worker/households/{household_id}/code", roles(worker), a.issueCode)
	a.handle(mux, "GET /api/v1/worker/signin-qr.png", roles(worker), a.signInQR)
	a.handle(mux, "GET /api/v1/worker/notices", roles(worker), a.listAllNotices)
	a.handle(mux, "POST /api/v1/worker/notices", roles(worker), a.postNotice)
	a.handle(mux, "POST /api/v1/worker/notices/{notice_id}/withdraw", roles(worker), a.withdrawNotice)
	a.handle(mux, "GET /api/v1/worker/campaigns", roles(worker), a.listCampaigns)
	a.handle(mux, "POST /api/v1/worker/campaigns", roles(worker), a.createCampaign)
	a.handle(mux, "GET /api/v1/worker/campaigns/{campaign_id}", roles(worker), a.getCampaign)
	a.handle(mux, "POST /api/v1/worker/campaigns/{campaign_id}/launch", roles(worker), a.launchCampaign)
	a.handle(mux, "POST /api/v1/worker/campaigns/{campaign_id}/retry-missed", roles(worker), a.retryMissed)
	a.handle(mux, "GET /api/v1/worker/campaigns/{campaign_id}/roster", roles(worker), a.campaignRoster)
	a.handle(mux, "GET /api/v1/worker/campaigns/{campaign_id}/roster.csv", roles(worker), a.exportRoster)
	a.handle(mux, "POST /api/v1/worker/campaigns/{campaign_id}/hand-over", roles(worker), a.handOver)

	// Anything else under /api/ answers in JSON too, rather than with a page or plain text.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
}

func roles(rs ...typesv1.Role) []typesv1.Role { return rs }

// handle registers an endpoint behind the per-client rate limit and, unless it is public, the
// role check. The services check identity again (defence in depth); checking here as well keeps
// a resident's page from even reaching dispatch, and answers with a clear 401 or 403.
func (a *API) handle(mux *http.ServeMux, pattern string, allowed []typesv1.Role, h http.HandlerFunc) {
	a.routes = append(a.routes, Route{Pattern: pattern, Roles: allowed})
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, signedIn := principalOf(r.Context())
		if ok, wait := a.perClient.allow(a.clientKey(r)); !ok {
			writeTooMany(w, "too many requests; slow down", wait)
			return
		}
		if allowed != nil {
			if !signedIn {
				writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "sign in first")
				return
			}
			if !slices.Contains(allowed, p.Role) {
				writeError(w, http.StatusForbidden, "PERMISSION_DENIED",
					fmt.Sprintf("a %s may not use %s", enumName(p.Role.String(), "ROLE_"), pattern))
				return
			}
		}
		h(w, r)
	})
}

// clientKey names whoever is asking, for per-client limits: the signed-in person, else the address.
func (a *API) clientKey(r *http.Request) string {
	if p, ok := principalOf(r.Context()); ok {
		return "who:" + p.Role.String() + ":" + p.Identity().Subject
	}
	return "ip:" + a.clientIP(r)
}

// call is the context of one outbound RPC: the request's (which carries the caller's identity),
// bounded by the call timeout.
func (a *API) call(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}

// who is the signed-in caller; handle has made sure there is one.
func who(r *http.Request) accounts.Principal {
	p, _ := principalOf(r.Context())
	return p
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
