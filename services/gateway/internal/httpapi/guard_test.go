package httpapi

import (
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestKeyedLimiter(t *testing.T) {
	now := time.Date(2022, 4, 10, 8, 0, 0, 0, time.UTC)
	l := newKeyedLimiter(rate.Every(time.Minute), 2, func() time.Time { return now })
	allow := func(key string) bool { ok, _ := l.allow(key); return ok }
	if !allow("a") || !allow("a") || allow("a") {
		t.Fatal("a bucket of 2 must allow exactly 2 at once")
	}
	if ok, wait := l.allow("a"); ok || wait != time.Minute {
		t.Errorf("an empty bucket says to wait %s, want the minute until its next token", wait)
	}
	if !allow("b") {
		t.Fatal("another key has its own bucket")
	}
	now = now.Add(40 * time.Second)
	if _, wait := l.allow("a"); wait != 20*time.Second {
		t.Errorf("40 s later the wait is %s, want 20s", wait)
	}
	now = now.Add(20 * time.Second)
	if !allow("a") || allow("a") {
		t.Fatal("one token a minute must come back after a minute")
	}
	// hold takes a token at once, so concurrent attempts cannot all pass on the last one; a
	// refund gives it back.
	ok1, _, refund := l.hold("d")
	ok2, _, _ := l.hold("d")
	if ok3, wait, _ := l.hold("d"); !ok1 || !ok2 || ok3 || wait != time.Minute {
		t.Fatalf("holds of a bucket of 2: %v %v %v (wait %s)", ok1, ok2, ok3, wait)
	}
	refund()
	if ok, _, _ := l.hold("d"); !ok {
		t.Error("a refunded token must be there again")
	}
	// Idle buckets are dropped once they would be full again, so the map does not grow forever.
	now = now.Add(time.Hour)
	l.allow("c")
	if _, ok := l.buckets["b"]; ok || len(l.buckets) != 1 {
		t.Errorf("idle buckets kept: %d", len(l.buckets))
	}
	if ok, _ := newKeyedLimiter(0, 0, time.Now).allow("x"); !ok {
		t.Error("a zero limit means no limit")
	}
}

func TestClientIP(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.7:51234"
	r.Header.Set("X-Real-IP", "198.51.100.9")
	if got := ClientIP("")(r); got != "192.0.2.7" {
		t.Errorf("without a trusted header: %s (a client must not choose its own bucket)", got)
	}
	if got := ClientIP("X-Real-IP")(r); got != "198.51.100.9" {
		t.Errorf("with the proxy's header: %s", got)
	}
	r.Header.Set("X-Forwarded-For", "203.0.113.1, 10.0.0.1")
	if got := ClientIP("X-Forwarded-For")(r); got != "203.0.113.1" {
		t.Errorf("first of a list: %s", got)
	}
	r.Header.Del("X-Real-IP")
	if got := ClientIP("X-Real-IP")(r); got != "192.0.2.7" {
		t.Errorf("header missing: %s", got)
	}
}
