package natsx

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A client that sends JetStream API requests and closes at once leaves them queued in the
// server. StopEmbedded waits until the server's API workers have handled every one, so none is
// still reading a stream while Shutdown removes it.
func TestStopEmbeddedWaitsForQueuedAPIRequests(t *testing.T) {
	s, err := RunEmbedded(EmbeddedOptions{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(context.Background(), js, 1); err != nil {
		t.Fatal(err)
	}
	before := jsz(t, s).API.Total

	const requests = 300
	for range requests {
		if err := nc.PublishRequest(fmt.Sprintf("$JS.API.STREAM.INFO.%s", events.Stream), nc.NewRespInbox(), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Flush returns once the server has read (and queued) every request; Close does not wait
	// for their answers.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	if !waitJetStreamAPIIdle(s, 10*time.Second) {
		t.Fatal("JetStream API still busy after 10s")
	}
	info := jsz(t, s)
	if info.API.Inflight != 0 || info.API.Total-before != requests {
		t.Fatalf("after the wait: %d in flight, %d of %d requests handled", info.API.Inflight, info.API.Total-before, requests)
	}

	StopEmbedded(s)
	if s.Running() {
		t.Fatal("server still running after StopEmbedded")
	}
}

func jsz(t *testing.T, s *server.Server) *server.JSInfo {
	t.Helper()
	info, err := s.Jsz(&server.JSzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info
}
