package app_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"github.com/doorstep/doorstep/services/gateway/app"
	"github.com/doorstep/doorstep/services/gateway/internal/httpapi"
	"golang.org/x/time/rate"
)

func sessionCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == httpapi.CookieName {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", r.header)
	return nil
}

func TestSignInAndOut(t *testing.T) {
	g := start(t, nil)
	ctx := context.Background()
	anon := g.anon(t)
	expectError(t, anon.do(t, "GET", "/api/v1/session", ""), 401, "UNAUTHENTICATED", "")
	expectError(t, anon.do(t, "GET", "/api/v1/catalog", ""), 401, "UNAUTHENTICATED", "")

	code, err := g.store.IssueHouseholdCode(ctx, "haixin-3-2-302", "test")
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, anon.do(t, "POST", "/api/v1/session/code", `{"code":"2222-3333-4444-5555"}`), 401, "UNAUTHENTICATED", "")
	expectError(t, anon.do(t, "POST", "/api/v1/session/code", `{}`), 400, "INVALID_ARGUMENT", "code")
	expectError(t, anon.do(t, "POST", "/api/v1/session/code", `{"code":"x","household_id":"haixin-3-2-302"}`), 400, "INVALID_ARGUMENT", "household_id")

	// Typed as people type it: lower case, spaces.
	r := anon.do(t, "POST", "/api/v1/session/code", `{"code":"`+strings.ToLower(strings.ReplaceAll(code.Formatted, "-", " "))+`"}`)
	if r.status != 200 || get(r.body, "role") != "RESIDENT" || get(r.body, "household_id") != "haixin-3-2-302" ||
		get(r.body, "compound") != "haixin" || get(r.body, "page") != "/" {
		t.Fatalf("sign in = %d %s", r.status, r.raw)
	}
	c := sessionCookie(t, r)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || len(c.Value) < 40 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure over plain http, a long token", c)
	}
	if got := c.Expires.Sub(g.clock.Now()); got < 29*24*time.Hour || got > 31*24*time.Hour {
		t.Errorf("resident cookie expires in %v, want 30 days", got)
	}
	if me := anon.do(t, "GET", "/api/v1/session", ""); me.status != 200 || get(me.body, "household_id") != "haixin-3-2-302" {
		t.Fatalf("session = %d %s", me.status, me.raw)
	}

	// Sign-out ends the session on the server, not only in this browser.
	if out := anon.do(t, "DELETE", "/api/v1/session", ""); out.status != 204 || sessionCookie(t, out).MaxAge >= 0 {
		t.Fatalf("sign out = %d %v", out.status, out.header)
	}
	replay := g.anon(t)
	replay.header.Set("Cookie", httpapi.CookieName+"="+c.Value)
	expectError(t, replay.do(t, "GET", "/api/v1/session", ""), 401, "UNAUTHENTICATED", "")
	expectError(t, anon.do(t, "GET", "/api/v1/orders", ""), 401, "UNAUTHENTICATED", "")

	// Staff sign in by name and password; a wrong password and an unknown name read the same.
	if _, err := g.store.CreateStaff(ctx, accounts.Staff{ID: "gate", Role: typesv1.Role_ROLE_DISPATCHER, Compound: "haixin",
		Name: "门岗", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	wrong := anon.do(t, "POST", "/api/v1/session/password", `{"account_id":"gate","password":"wrong horse battery"}`)
	unknown := anon.do(t, "POST", "/api/v1/session/password", `{"account_id":"nobody","password":"correct horse battery"}`)
	expectError(t, wrong, 401, "UNAUTHENTICATED", "")
	expectError(t, unknown, 401, "UNAUTHENTICATED", "")
	if !bytes.Equal(wrong.raw, unknown.raw) {
		t.Errorf("wrong password %s and unknown account %s answer differently", wrong.raw, unknown.raw)
	}
	expectError(t, anon.do(t, "POST", "/api/v1/session/password", `{"password":"x"}`), 400, "INVALID_ARGUMENT", "account_id")
	expectError(t, anon.do(t, "POST", "/api/v1/session/password", `{"account_id":"gate"}`), 400, "INVALID_ARGUMENT", "password")
	staff := anon.do(t, "POST", "/api/v1/session/password", `{"account_id":"Gate","password":"correct horse battery"}`)
	if staff.status != 200 || get(staff.body, "role") != "DISPATCHER" || get(staff.body, "page") != "/dispatch" || get(staff.body, "name") != "门岗" {
		t.Fatalf("staff sign in = %d %s", staff.status, staff.raw)
	}
	if got := sessionCookie(t, staff).Expires.Sub(g.clock.Now()); got < 11*time.Hour || got > 13*time.Hour {
		t.Errorf("staff cookie expires in %v, want 12 h", got)
	}
}

func TestSecureCookieBehindTLS(t *testing.T) {
	g := start(t, func(c *app.Config) { c.SecureCookies = true })
	code, err := g.store.IssueHouseholdCode(context.Background(), "haixin-3-2-302", "test")
	if err != nil {
		t.Fatal(err)
	}
	r := g.anon(t).do(t, "POST", "/api/v1/session/code", `{"code":"`+code.Code+`"}`)
	if r.status != 200 || !sessionCookie(t, r).Secure {
		t.Fatalf("sign in = %d, cookie %+v: want Secure", r.status, sessionCookie(t, r))
	}
}

func TestSessionsExpire(t *testing.T) {
	g := start(t, nil)
	res := g.resident(t, "haixin-1-1-101")
	staff := g.dispatcher(t)
	g.clock.Add(12*time.Hour + time.Second)
	expectError(t, staff.do(t, "GET", "/api/v1/session", ""), 401, "UNAUTHENTICATED", "")
	if r := res.do(t, "GET", "/api/v1/session", ""); r.status != 200 {
		t.Fatalf("resident after 12 h = %d %s", r.status, r.raw)
	}
	g.clock.Add(30 * 24 * time.Hour)
	expectError(t, res.do(t, "GET", "/api/v1/session", ""), 401, "UNAUTHENTICATED", "")
}

func TestWorkerReissuesASignInCode(t *testing.T) {
	g := start(t, func(c *app.Config) { c.PublicURL = "http://doorstep.haixin.example" })
	ctx := context.Background()
	old, err := g.store.IssueHouseholdCode(ctx, "haixin-3-2-302", "seed")
	if err != nil {
		t.Fatal(err)
	}
	res := g.anon(t)
	if r := res.do(t, "POST", "/api/v1/session/code", `{"code":"`+old.Code+`"}`); r.status != 200 {
		t.Fatalf("sign in = %d", r.status)
	}
	w := g.worker(t)
	r := w.do(t, "POST", "/api/v1/worker/households/haixin-3-2-302/code", "")
	if r.status != 201 {
		t.Fatalf("issue = %d %s", r.status, r.raw)
	}
	code, _ := get(r.body, "code").(string)
	if len(code) != 19 || code == old.Formatted || get(r.body, "link") != "http://doorstep.haixin.example/signin?code="+code {
		t.Fatalf("issued %s", r.raw)
	}
	// The old code and the phone signed in with it are out; the new code works.
	expectError(t, res.do(t, "GET", "/api/v1/orders", ""), 401, "UNAUTHENTICATED", "")
	expectError(t, g.anon(t).do(t, "POST", "/api/v1/session/code", `{"code":"`+old.Code+`"}`), 401, "UNAUTHENTICATED", "")
	if r := g.anon(t).do(t, "POST", "/api/v1/session/code", `{"code":"`+code+`"}`); r.status != 200 || get(r.body, "household_id") != "haixin-3-2-302" {
		t.Fatalf("new code = %d %s", r.status, r.raw)
	}
	if d := w.do(t, "GET", "/api/v1/worker/households/haixin-3-2-302", ""); d.status != 200 || get(d.body, "code_issued_by") != "wang.li" ||
		get(d.body, "over_80") != true || get(d.body, "address", "room") != "302" {
		t.Errorf("household = %d %s", d.status, d.raw)
	}

	// The QR code of the link, for the notice under the door.
	qr := w.do(t, "GET", get(r.body, "qr_url").(string), "")
	if qr.status != 200 || qr.header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr = %d %s", qr.status, qr.header.Get("Content-Type"))
	}
	if _, err := png.Decode(bytes.NewReader(qr.raw)); err != nil {
		t.Errorf("qr is not a PNG: %v", err)
	}
	expectError(t, w.do(t, "GET", "/api/v1/worker/signin-qr.png?code=nope", ""), 400, "INVALID_ARGUMENT", "code")
	expectError(t, w.do(t, "GET", "/api/v1/worker/signin-qr.png?code="+code+"&size=5", ""), 400, "INVALID_ARGUMENT", "size")

	// Households the order service does not know, or of another compound, get no code.
	expectError(t, w.do(t, "POST", "/api/v1/worker/households/haixin-99-1-101/code", ""), 404, "NOT_FOUND", "")
	expectError(t, w.do(t, "POST", "/api/v1/worker/households/elsewhere-1-1-101/code", ""), 404, "NOT_FOUND", "")
	// Nobody but a worker issues codes.
	expectError(t, g.resident(t, "haixin-1-1-101").do(t, "POST", "/api/v1/worker/households/haixin-1-1-101/code", ""), 403, "PERMISSION_DENIED", "")
}

func TestCrossOriginRequestsAreRefused(t *testing.T) {
	g := start(t, nil)
	c := g.resident(t, "haixin-1-1-101")
	for name, h := range map[string][2]string{
		"fetch metadata": {"Sec-Fetch-Site", "cross-site"},
		"origin":         {"Origin", "http://evil.example"},
	} {
		t.Run(name, func(t *testing.T) {
			c.header = http.Header{h[0]: {h[1]}}
			expectError(t, c.do(t, "POST", "/api/v1/orders", placeBody), 403, "CSRF", "")
			expectError(t, c.do(t, "DELETE", "/api/v1/session", ""), 403, "CSRF", "")
			// Signing someone in to the attacker's household is refused too.
			expectError(t, g.anon(t).withHeader(h[0], h[1]).do(t, "POST", "/api/v1/session/code", `{"code":"x"}`), 403, "CSRF", "")
			// Reading is not state-changing: a cross-site GET is answered (the cookie is Lax anyway).
			if r := c.do(t, "GET", "/api/v1/session", ""); r.status != 200 {
				t.Errorf("cross-site GET = %d", r.status)
			}
		})
	}
	c.header = http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {g.url}}
	if r := c.do(t, "POST", "/api/v1/orders", placeBody); r.status != 201 {
		t.Fatalf("same-origin POST = %d %s", r.status, r.raw)
	}
}

func (c *client) withHeader(k, v string) *client {
	c.header.Set(k, v)
	return c
}

func TestSecurityHeaders(t *testing.T) {
	g := start(t, nil)
	for _, path := range []string{"/", "/api/v1/session", "/healthz", "/app.css"} {
		r := g.anon(t).do(t, "GET", path, "")
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "data:") || strings.Contains(csp, "*") {
			t.Errorf("%s: Content-Security-Policy %q allows more than 'self'", path, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Referrer-Policy") != "no-referrer" ||
			r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, r.header)
		}
	}
}

func TestSignInIsRateLimited(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		g := start(t, func(c *app.Config) {
			c.Limits = testLimits
			c.Limits.SignInPerIP, c.Limits.SignInBurst = rate.Every(time.Hour), 3
		})
		code, err := g.store.IssueHouseholdCode(context.Background(), "haixin-1-1-101", "test")
		if err != nil {
			t.Fatal(err)
		}
		c := g.anon(t)
		for range 3 {
			expectError(t, c.do(t, "POST", "/api/v1/session/code", `{"code":"2222-3333-4444-5555"}`), 401, "UNAUTHENTICATED", "")
		}
		// The fourth attempt is refused before the code is even looked at, right or wrong.
		r := c.do(t, "POST", "/api/v1/session/code", `{"code":"`+code.Code+`"}`)
		expectError(t, r, 429, "RESOURCE_EXHAUSTED", "")
		// One attempt an hour comes back: the client is told to wait the hour, not a made-up minute.
		if got := r.header.Get("Retry-After"); got != "3600" {
			t.Errorf("Retry-After %q, want 3600", got)
		}
		expectError(t, c.do(t, "POST", "/api/v1/session/password", `{"account_id":"a","password":"b"}`), 429, "RESOURCE_EXHAUSTED", "")
	})
	t.Run("per account, from any address", func(t *testing.T) {
		g := start(t, func(c *app.Config) {
			c.Limits = testLimits
			c.Limits.SignInPerAccount, c.Limits.AccountBurst = rate.Every(time.Hour), 2
			c.ClientIPHeader = "X-Real-IP"
		})
		ctx := context.Background()
		for _, id := range []string{"gate", "gate2"} {
			if _, err := g.store.CreateStaff(ctx, accounts.Staff{ID: id, Role: typesv1.Role_ROLE_DISPATCHER, Compound: "haixin",
				Password: "correct horse battery"}); err != nil {
				t.Fatal(err)
			}
		}
		// Signing in successfully, however often, does not count against the account.
		for i := range 4 {
			if r := g.anon(t).withHeader("X-Real-IP", fmt.Sprintf("10.2.0.%d", i)).do(t, "POST", "/api/v1/session/password",
				`{"account_id":"gate","password":"correct horse battery"}`); r.status != 200 {
				t.Fatalf("sign-in %d = %d %s", i, r.status, r.raw)
			}
		}
		for i, ip := range []string{"10.1.0.1", "10.1.0.2"} {
			expectError(t, g.anon(t).withHeader("X-Real-IP", ip).do(t, "POST", "/api/v1/session/password",
				`{"account_id":"gate","password":"guess `+string(rune('a'+i))+`"}`), 401, "UNAUTHENTICATED", "")
		}
		expectError(t, g.anon(t).withHeader("X-Real-IP", "10.1.0.3").do(t, "POST", "/api/v1/session/password",
			`{"account_id":"GATE","password":"correct horse battery"}`), 429, "RESOURCE_EXHAUSTED", "")
		if r := g.anon(t).withHeader("X-Real-IP", "10.1.0.3").do(t, "POST", "/api/v1/session/password",
			`{"account_id":"gate2","password":"correct horse battery"}`); r.status != 200 {
			t.Errorf("another account = %d %s", r.status, r.raw)
		}
	})
}

func TestAPIIsRateLimitedPerClient(t *testing.T) {
	g := start(t, func(c *app.Config) {
		c.Limits = testLimits
		c.Limits.APIPerClient, c.Limits.APIBurst = rate.Every(time.Hour), 4
	})
	// Signing in takes one request of the address's allowance; a session has its own.
	busy := g.resident(t, "haixin-1-1-101")
	for range 4 {
		if r := busy.do(t, "GET", "/api/v1/orders", ""); r.status != 200 {
			t.Fatalf("within the limit = %d %s", r.status, r.raw)
		}
	}
	expectError(t, busy.do(t, "GET", "/api/v1/orders", ""), 429, "RESOURCE_EXHAUSTED", "")
	if r := g.worker(t).do(t, "GET", "/api/v1/households/haixin-1-1-101/orders", ""); r.status != 200 {
		t.Errorf("another session = %d %s", r.status, r.raw)
	}
}

func TestRunRefusesWithoutKeyOrDatabase(t *testing.T) {
	db := testkit.Postgres(t)
	for name, cfg := range map[string]app.Config{
		"no auth key":    {DatabaseURL: db},
		"short auth key": {DatabaseURL: db, AuthKey: "too short"},
		"no database":    {AuthKey: string(testkit.AuthKey)},
	} {
		t.Run(name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer lis.Close()
			cfg.Listener = lis
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
				t.Fatal("Run started")
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("DOORSTEP_AUTH_KEY", string(testkit.AuthKey))
	t.Setenv("DATABASE_URL", "postgres://x")
	t.Setenv("GATEWAY_SECURE_COOKIES", "true")
	t.Setenv("DISPATCH_ADDR", "dispatch:50053")
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthKey != string(testkit.AuthKey) || cfg.DatabaseURL != "postgres://x" || !cfg.SecureCookies ||
		cfg.DispatchAddr != "dispatch:50053" || cfg.CourierAddr != "127.0.0.1:50054" || cfg.Port != 8080 {
		t.Errorf("config %+v", cfg)
	}
}
