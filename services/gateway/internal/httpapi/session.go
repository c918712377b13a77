package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"google.golang.org/grpc"
)

// CookieName is the session cookie. Not "__Host-": that prefix demands Secure, and the compound's
// Wi-Fi may serve the pages over plain http.
const CookieName = "doorstep_session"

type principalKey struct{}

// principalOf is the signed-in person of a request, if any.
func principalOf(ctx context.Context) (accounts.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(accounts.Principal)
	return p, ok
}

// withSession resolves the session cookie into a principal on the request's context, and puts
// the principal's identity there too, where the gRPC client interceptors find it. Requests
// without a (live) session pass on anonymous; the route decides whether that is enough.
func (a *API) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value == "" {
			next.ServeHTTP(w, r)
			return
		}
		p, err := a.accounts.Session(r.Context(), c.Value)
		switch {
		case errors.Is(err, accounts.ErrNoSession):
			// Ended, expired or re-issued: forget the cookie so the page shows sign-in.
			http.SetCookie(w, a.cookie(r, "", time.Unix(0, 0)))
		case err != nil:
			a.log.ErrorContext(r.Context(), "gateway: session lookup", "err", err)
			writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "sign-in is unavailable, please retry")
			return
		default:
			ctx := context.WithValue(r.Context(), principalKey{}, p)
			r = r.WithContext(auth.WithIdentity(ctx, p.Identity()))
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) cookie(r *http.Request, token string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: CookieName, Value: token, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.secureCookies || r.TLS != nil}
	if token == "" {
		c.MaxAge = -1
	}
	return c
}

// ClientInterceptors give every call the gateway makes the signed identity of the person whose
// request it serves (a two-minute identity, reused while it has a minute left: auth.Outgoing). A
// call with no person behind it goes without one, and the service refuses it.
func ClientInterceptors(keys *auth.Keys) []grpc.DialOption {
	outgoing := func(ctx context.Context) (context.Context, error) {
		id, ok := auth.FromContext(ctx)
		if !ok {
			return ctx, nil
		}
		return keys.Outgoing(ctx, id)
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx, err := outgoing(ctx)
			if err != nil {
				return err
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			ctx, err := outgoing(ctx)
			if err != nil {
				return nil, err
			}
			return streamer(ctx, desc, cc, method, opts...)
		}),
	}
}

// meView is the signed-in person as the pages see them.
type meView struct {
	Role        string    `json:"role"`
	AccountID   string    `json:"account_id"`
	HouseholdID string    `json:"household_id"`
	Compound    string    `json:"compound"`
	Name        string    `json:"name"`
	SupplierID  string    `json:"supplier_id"`
	CourierID   string    `json:"courier_id"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Page is where this role works.
	Page string `json:"page"`
}

var rolePages = map[typesv1.Role]string{
	typesv1.Role_ROLE_RESIDENT: "/", typesv1.Role_ROLE_WORKER: "/worker", typesv1.Role_ROLE_SUPPLIER: "/supplier",
	typesv1.Role_ROLE_DISPATCHER: "/dispatch", typesv1.Role_ROLE_COURIER: "/courier",
}

func me(p accounts.Principal) meView {
	return meView{Role: enumName(p.Role.String(), "ROLE_"), AccountID: p.AccountID, HouseholdID: p.HouseholdID,
		Compound: p.Compound, Name: p.Name, SupplierID: p.SupplierID, CourierID: p.CourierID,
		ExpiresAt: p.ExpiresAt, Page: rolePages[p.Role]}
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	p, ok := principalOf(r.Context())
	if !ok {
		writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "not signed in")
		return
	}
	writeJSON(w, http.StatusOK, me(p))
}

type codeSignInBody struct {
	Code string `json:"code"`
}

// signInWithCode signs a household in with the code from its notice.
func (a *API) signInWithCode(w http.ResponseWriter, r *http.Request) {
	if ok, wait := a.signInIP.allow(a.clientIP(r)); !ok {
		writeTooMany(w, "too many sign-in attempts from this address; wait a minute", wait)
		return
	}
	var body codeSignInBody
	if !a.decode(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Code) == "" {
		writeInvalid(w, &fieldError{Field: "code", Why: "is required"})
		return
	}
	p, err := a.accounts.SignInHousehold(r.Context(), body.Code)
	a.startSession(w, r, p, err)
}

type passwordSignInBody struct {
	AccountID string `json:"account_id"`
	Password  string `json:"password"`
}

// signInWithPassword signs a staff member in.
func (a *API) signInWithPassword(w http.ResponseWriter, r *http.Request) {
	if ok, wait := a.signInIP.allow(a.clientIP(r)); !ok {
		writeTooMany(w, "too many sign-in attempts from this address; wait a minute", wait)
		return
	}
	var body passwordSignInBody
	if !a.decode(w, r, &body) {
		return
	}
	account := strings.ToLower(strings.TrimSpace(body.AccountID))
	if account == "" {
		writeInvalid(w, &fieldError{Field: "account_id", Why: "is required"})
		return
	}
	if body.Password == "" {
		writeInvalid(w, &fieldError{Field: "password", Why: "is required"})
		return
	}
	// Per account as well as per address: guessing one account's password from many addresses
	// is stopped here, at the price of the owner waiting too while it goes on. Only failed
	// attempts count, so signing in on several devices never locks the owner out.
	ok, wait, refund := a.signInAccount.hold(account)
	if !ok {
		writeTooMany(w, "too many failed sign-ins for this account; wait and try again", wait)
		return
	}
	p, err := a.accounts.SignInStaff(r.Context(), account, body.Password)
	if err == nil {
		refund()
	}
	a.startSession(w, r, p, err)
}

func (a *API) startSession(w http.ResponseWriter, r *http.Request, p accounts.Principal, err error) {
	if errors.Is(err, accounts.ErrBadCredentials) {
		writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "sign-in not accepted: check the code, name or password")
		return
	}
	if err != nil {
		a.log.ErrorContext(r.Context(), "gateway: sign in", "err", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "sign-in is unavailable, please retry")
		return
	}
	// A session cookie the browser already holds is replaced, never reused (no session fixation).
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		_ = a.accounts.EndSession(r.Context(), c.Value)
	}
	token, expires, err := a.accounts.StartSession(r.Context(), p)
	if err != nil {
		a.log.ErrorContext(r.Context(), "gateway: start session", "err", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "sign-in is unavailable, please retry")
		return
	}
	p.ExpiresAt = expires
	http.SetCookie(w, a.cookie(r, token, expires))
	writeJSON(w, http.StatusOK, me(p))
}

// signOut ends the session and clears the cookie; signing out twice is fine.
func (a *API) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		if err := a.accounts.EndSession(r.Context(), c.Value); err != nil {
			a.log.ErrorContext(r.Context(), "gateway: sign out", "err", err)
			writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "sign-out is unavailable, please retry")
			return
		}
	}
	http.SetCookie(w, a.cookie(r, "", time.Unix(0, 0)))
	w.WriteHeader(http.StatusNoContent)
}
