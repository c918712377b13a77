package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	courierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/courier/v1"
	trackingv1 "github.com/doorstep/doorstep/proto/gen/doorstep/tracking/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Live updates are Server-Sent Events relaying tracking's watch streams: the browser's
// EventSource reconnects by itself, and each watch starts with everything so far, so a page that
// reconnects after a tunnel or a lift misses nothing (it drops entries it has by event id).

// heartbeat keeps idle streams open through proxies that close silent connections.
const heartbeat = 20 * time.Second

// MaxStreamsPerClient bounds the event streams one session (or address) holds open at once:
// each holds a connection, a goroutine and a watch at tracking, and the rate limit, which
// counts requests, does not see a stream that stays.
const MaxStreamsPerClient = 8

// streams ends every open stream when the server shuts down (http.Server.Shutdown waits for
// handlers to return but does not cancel their contexts, and a watch never returns by itself),
// and counts each client's open streams.
type streams struct {
	once    sync.Once
	closing chan struct{}

	mu   sync.Mutex
	open map[string]int
}

// acquire counts a stream of the client's; false when it holds too many already.
func (s *streams) acquire(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= MaxStreamsPerClient {
		return false
	}
	s.open[key]++
	return true
}

func (s *streams) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key]--; s.open[key] <= 0 {
		delete(s.open, key)
	}
}

// StopStreams ends the open event streams; register it with http.Server.RegisterOnShutdown.
func (a *API) StopStreams() {
	a.streams.once.Do(func() { close(a.streams.closing) })
}

func (a *API) watchOrder(w http.ResponseWriter, r *http.Request) {
	orderID := r.PathValue("order_id")
	check, cancel := a.call(r)
	_, ok := a.fetchOrder(check, w, r, orderID)
	cancel()
	if !ok {
		return
	}
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	// Tracking learns of an order from its events, a moment after the order service has it: a
	// page that opens the stream right after placing may find tracking without the order. The
	// order is known to exist and to be the caller's, so "not found" then means "not yet": ask
	// again, for a while, before giving up.
	var stream grpc.ServerStreamingClient[trackingv1.WatchOrderResponse]
	received, attempts := false, 0
	relay(a, w, r, stop, func() (sseEvent, error) {
		for {
			var err error
			if stream == nil {
				stream, err = a.tracking.WatchOrder(ctx, &trackingv1.WatchOrderRequest{OrderId: orderID})
			}
			var m *trackingv1.WatchOrderResponse
			if err == nil {
				if m, err = stream.Recv(); err == nil {
					received = true
					e := entry(m.GetEntry())
					return sseEvent{name: "entry", id: e.EventID, data: e}, nil
				}
			}
			if received || status.Code(err) != codes.NotFound || attempts >= trackingLagRetries {
				return sseEvent{}, err
			}
			attempts++
			stream = nil
			select {
			case <-time.After(trackingLagWait):
			case <-ctx.Done():
				return sseEvent{}, ctx.Err()
			}
		}
	})
}

// How long a watch waits for tracking to learn of a new order: 20 × 250 ms.
const (
	trackingLagRetries = 20
	trackingLagWait    = 250 * time.Millisecond
)

func (a *API) watchRound(w http.ResponseWriter, r *http.Request) {
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	stream, err := a.tracking.WatchRound(ctx, &trackingv1.WatchRoundRequest{RoundId: r.PathValue("round_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	relay(a, w, r, stop, func() (sseEvent, error) {
		m, err := stream.Recv()
		if err != nil {
			return sseEvent{}, err
		}
		return sseEvent{name: "progress", data: progressOf(m.GetProgress())}, nil
	})
}

// watchRoute relays the courier's route: the current one, then every change (a stop moved to or
// from them, a re-plan), so the page in a stairwell shows the route the dispatcher just changed.
func (a *API) watchRoute(w http.ResponseWriter, r *http.Request) {
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	stream, err := a.courier.WatchRoute(ctx, &courierv1.WatchRouteRequest{CourierId: who(r).CourierID, RoundId: r.URL.Query().Get("round_id")})
	if err != nil {
		a.writeRPCError(w, r, err)
		return
	}
	relay(a, w, r, stop, func() (sseEvent, error) {
		m, err := stream.Recv()
		if err != nil {
			return sseEvent{}, err
		}
		return sseEvent{name: "route", data: courierRoute(m.GetRoute())}, nil
	})
}

type sseEvent struct {
	name, id string
	data     any
}

// relay waits for the stream's first message before answering, so a watch the service refuses
// (not found, not yours, not implemented yet) is an ordinary JSON error with its status; after
// that it writes each message as an event until the client leaves, the stream ends or the
// server shuts down.
func relay(a *API, w http.ResponseWriter, r *http.Request, stop context.CancelFunc, next func() (sseEvent, error)) {
	key := a.clientKey(r)
	if !a.streams.acquire(key) {
		stop()
		writeTooMany(w, fmt.Sprintf("too many live updates open (at most %d); close another page", MaxStreamsPerClient), 30*time.Second)
		return
	}
	defer a.streams.release(key)
	type result struct {
		ev  sseEvent
		err error
	}
	results := make(chan result)
	go func() {
		defer close(results)
		for {
			ev, err := next()
			select {
			case results <- result{ev, err}:
			case <-r.Context().Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer stop() // unblocks next() when the handler returns first

	var first result
	select {
	case first = <-results:
	case <-r.Context().Done():
		return
	case <-a.streams.closing:
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the gateway is shutting down")
		return
	}
	if first.err != nil {
		a.writeRPCError(w, r, first.err)
		return
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	if !writeEvent(w, rc, first.ev) {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case res, ok := <-results:
			if !ok {
				return
			}
			if res.err != nil {
				// The page's EventSource reconnects and the watch replays from the start.
				if r.Context().Err() == nil {
					a.log.WarnContext(r.Context(), "gateway: watch ended", "path", r.URL.Path, "err", res.err)
					writeEvent(w, rc, sseEvent{name: "error", data: map[string]string{"message": "stream interrupted, reconnecting"}})
				}
				return
			}
			if !writeEvent(w, rc, res.ev) {
				return
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-a.streams.closing:
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, rc *http.ResponseController, ev sseEvent) bool {
	data, err := json.Marshal(ev.data)
	if err != nil {
		return false
	}
	if ev.id != "" {
		fmt.Fprintf(w, "id: %s\n", ev.id)
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, data); err != nil {
		return false
	}
	return rc.Flush() == nil
}
