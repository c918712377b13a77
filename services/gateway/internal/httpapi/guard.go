package httpapi

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// SecurityHeaders sets the headers every response carries. Everything a page loads is its own
// (no CDN, no inline script), so the policy allows 'self' and nothing else; frame-ancestors
// 'none' keeps the pages out of other sites' frames (clickjacking a courier's "delivered").
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer") // a sign-in link's code never leaves in a Referer
		h.Set("X-Frame-Options", "DENY")        // frame-ancestors for browsers that predate it
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// CSRF refuses cross-origin state-changing requests. Sessions ride on a cookie, so a page on
// another site could otherwise post an order or a "delivered" in a signed-in person's name.
// Go's CrossOriginProtection reads Sec-Fetch-Site (and Origin for older browsers); requests with
// neither come from non-browser clients, which a forged page cannot be.
func CSRF(next http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "CSRF", "cross-origin request refused: use the Doorstep pages")
	}))
	return p.Handler(next)
}

// Limits are the request rates the gateway accepts.
type Limits struct {
	// SignInPerIP bounds sign-in attempts from one client address.
	SignInPerIP rate.Limit
	SignInBurst int
	// SignInPerAccount bounds attempts on one staff account from anywhere (a spread-out guess).
	SignInPerAccount rate.Limit
	AccountBurst     int
	// APIPerClient bounds API requests of one session (or, before sign-in, one address).
	APIPerClient rate.Limit
	APIBurst     int
}

// DefaultLimits: a person signs in a few times a day, so ten attempts a minute from one address
// is generous, and five an hour per account stops guessing; a page makes a handful of API calls
// a second at most.
var DefaultLimits = Limits{
	SignInPerIP: rate.Every(6 * time.Second), SignInBurst: 10,
	SignInPerAccount: rate.Every(12 * time.Minute), AccountBurst: 5,
	APIPerClient: 20, APIBurst: 60,
}

// keyedLimiter is one token bucket per key (an address, an account). Buckets idle for longer
// than it takes them to refill are dropped, so the map stays small however many clients come by.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(limit rate.Limit, burst int, now func() time.Time) *keyedLimiter {
	return &keyedLimiter{limit: limit, burst: burst, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket; when there is none it takes nothing and says how long
// until there is one.
func (k *keyedLimiter) allow(key string) (bool, time.Duration) {
	if k.limit <= 0 {
		return true, 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.bucket(key, now)
	if tokens := b.l.TokensAt(now); tokens < 1 {
		return false, time.Duration((1 - tokens) / float64(k.limit) * float64(time.Second))
	}
	b.l.AllowN(now, 1)
	return true, 0
}

// hold takes a token from key's bucket for an attempt whose outcome decides whether it counts
// (a sign-in: only failures do); refund gives it back (rate.Reservation.CancelAt). Taking it
// first, rather than spending it after the outcome, keeps concurrent attempts from all passing on
// the last token.
func (k *keyedLimiter) hold(key string) (ok bool, wait time.Duration, refund func()) {
	if k.limit <= 0 {
		return true, 0, func() {}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	b := k.bucket(key, now)
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, func() {}
	}
	return true, 0, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		r.CancelAt(k.now())
	}
}

// bucket is key's bucket, made when new; k.mu is held. Buckets idle for longer than a full refill
// are dropped once a minute.
func (k *keyedLimiter) bucket(key string, now time.Time) *bucket {
	if now.Sub(k.lastSweep) > time.Minute {
		// A bucket idle for longer than a full refill is as good as a new one.
		idle := time.Duration(float64(k.burst)/float64(k.limit)*float64(time.Second)) + time.Minute
		for key, b := range k.buckets {
			if now.Sub(b.seen) > idle {
				delete(k.buckets, key)
			}
		}
		k.lastSweep = now
	}
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{l: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	return b
}

// ClientIP is the address a request came from: the connection's peer, or, behind a proxy the
// operator names (GATEWAY_CLIENT_IP_HEADER, e.g. X-Real-IP), that header. Trusting a header
// only when told to keeps a client from choosing its own rate-limit bucket.
func ClientIP(header string) func(*http.Request) string {
	return func(r *http.Request) string {
		if header != "" {
			if v := strings.TrimSpace(strings.Split(r.Header.Get(header), ",")[0]); v != "" {
				return v
			}
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
}

// writeTooMany refuses a request over a limit, saying in Retry-After when to try again (whole
// seconds, at least one).
func writeTooMany(w http.ResponseWriter, what string, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", what)
}
