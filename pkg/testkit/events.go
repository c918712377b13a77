package testkit

import (
	"context"
	"testing"

	"github.com/doorstep/doorstep/pkg/events"
	eventsv1 "github.com/doorstep/doorstep/proto/gen/doorstep/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Publish sends ev to the event stream as the outbox relay does, with msgID as its Nats-Msg-Id
// (normally the event id; another id makes the broker take a duplicate), and returns its sequence.
func Publish(t testing.TB, ctx context.Context, js jetstream.JetStream, ev *eventsv1.Event, msgID string) uint64 {
	t.Helper()
	subject, err := events.Subject(ev)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// DurableThatAcked creates durable on the event stream, reading every subject, and acknowledges
// its first n events: where a consumer that had applied them would stand.
func DurableThatAcked(t testing.TB, ctx context.Context, js jetstream.JetStream, durable string, n int) {
	t.Helper()
	c, err := js.CreateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{Durable: durable,
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{events.StreamSubjects}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(n)
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	if acked != n {
		t.Fatalf("durable %s acknowledged %d events, want %d", durable, acked, n)
	}
}
