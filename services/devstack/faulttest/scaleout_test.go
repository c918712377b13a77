package faulttest

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
)

// TestScaleOut runs two processes each of the order and the tracking service against one database
// and one stream. Orders go to both order replicas; the replicas of each service share one
// durable consumer (and the order replicas one outbox), so each event must be applied by exactly
// one of them: the per-process applied counters add up to the stream, and both did some of it.
func TestScaleOut(t *testing.T) {
	sys := startSystem(t, "supplier", "order", "order", "tracking", "tracking")
	w := seed(t, sys)
	js := connect(t, sys)

	l := newLoad(t, sys, w, "scale-out", 400)
	start := time.Now()
	if err := l.run(context.Background()); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("load: %d orders acknowledged in %s through %d order replicas; %d calls retried",
		l.acked.Load(), time.Since(start).Round(time.Millisecond), len(l.orders), l.retried.Load())
	requireRunning(t, sys, "supplier", "order", "tracking")
	settle(t, sys, js)
	verify(t, sys, js, l.acknowledged())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := readStream(ctx, js, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var parcelEvents, fromOrder int
	for _, m := range msgs {
		if strings.HasPrefix(m.name, "parcel.") && m.name != "parcel.placed" {
			parcelEvents++ // what order-parcels takes: the other services' transitions, and cancellations
		}
		if m.name == "order.placed" || m.name == "parcel.placed" {
			fromOrder++
		}
	}
	shared(t, sys, "tracking", `doorstep_consumer_applied_total{consumer="tracking-deliveries"`, len(msgs), true)
	shared(t, sys, "order", `doorstep_consumer_applied_total{consumer="order-parcels"`, parcelEvents, true)
	// The relays take turns (one advisory lock per batch), so one replica may well publish
	// everything; what matters is that nothing is published twice.
	shared(t, sys, "order", `doorstep_outbox_published_total{`, fromOrder, false)
}

// shared checks that a counter summed over kind's replicas equals want, and, when bothWork, that
// every replica counted some.
func shared(t *testing.T, sys *System, kind, series string, want int, bothWork bool) {
	t.Helper()
	var per []int
	sum := 0
	for _, svc := range sys.Replicas(kind) {
		v, err := scrape(svc.MetricsAddr, series)
		if err != nil {
			t.Fatalf("%s: %v", svc.Name, err)
		}
		per = append(per, int(v))
		sum += int(v)
		if bothWork && v == 0 {
			t.Errorf("%s did none of the work (%s)", svc.Name, series)
		}
	}
	name := strings.TrimSuffix(series, "{")
	if strings.Contains(name, "{") {
		name += "}"
	}
	if sum != want {
		t.Errorf("%s over %s replicas: %v, sum %d; want %d (each event once)", name, kind, per, sum, want)
	}
	t.Logf("%s per %s replica: %v, sum %d = %d expected", name, kind, per, sum, want)
}

// scrape reads one series (name and the start of its labels) from a Prometheus endpoint; an
// absent series is zero.
func scrape(addr, series string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, series) {
			continue
		}
		f := strings.Fields(line)
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil // a counter vector shows a label only once it has counted something
}
