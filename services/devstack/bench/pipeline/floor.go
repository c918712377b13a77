package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// floorStream is a stream of its own on the same server, file-stored with the same duplicate
// window as the event stream, so the server does the same work per message (store, dedupe by
// Nats-Msg-Id) with nothing of the pipeline around it.
const floorStream = "BENCH_FLOOR"

// floor publishes payloads asynchronously, as fast as the client library's default window of
// outstanding publishes allows, and returns acknowledged messages per second.
func floor(ctx context.Context, url string, payloads []payload) (float64, error) {
	if len(payloads) == 0 {
		return 0, fmt.Errorf("no payloads to publish")
	}
	nc, js, err := natsx.Connect(url, "bench-floor", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: floorStream, Subjects: []string{"bench.floor.>"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Duplicates: natsx.DuplicateWindow}); err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), floorStream) }()

	msgs := make([]*nats.Msg, len(payloads))
	for i, p := range payloads {
		msgs[i] = &nats.Msg{Subject: "bench.floor." + p.subject, Data: p.data, Header: nats.Header{}}
		msgs[i].Header.Set(jetstream.MsgIDHeader, uuid.Must(uuid.NewV7()).String())
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	start := time.Now()
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return 0, err
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("%d publishes not acknowledged within a minute", js.PublishAsyncPending())
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	elapsed := time.Since(start)
	for _, f := range futures {
		select {
		case err := <-f.Err():
			return 0, fmt.Errorf("publish: %w", err)
		default:
		}
	}
	return float64(len(msgs)) / elapsed.Seconds(), nil
}
