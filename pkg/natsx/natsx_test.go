package natsx_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every service provisions the streams as it starts. Replicas starting together all succeed; a
// stream whose settings differ is updated; one that already has them is left alone, because an
// update that changes nothing still rewrites the stream's metadata, which nats-server reads
// without its lock while creating consumers.
func TestEnsureStreamsUpdatesOnlyWhatDiffers(t *testing.T) {
	s, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// JetStream announces every stream it creates and updates, in order.
	advisories := make(chan string, 100)
	if _, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.>", func(m *nats.Msg) {
		advisories <- strings.TrimPrefix(m.Subject, "$JS.EVENT.ADVISORY.STREAM.")
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// until returns the advisories up to the one a new stream named sentinel causes.
	until := func(sentinel string) []string {
		t.Helper()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: sentinel, Subjects: []string{"sentinel." + sentinel}}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			select {
			case a := <-advisories:
				if a == "CREATED."+sentinel {
					return got
				}
				got = append(got, a)
			case <-ctx.Done():
				t.Fatalf("no advisory for %s; got %v", sentinel, got)
			}
		}
	}

	// The event stream exists with a shorter retention; the dead-letter stream does not.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.Stream, Subjects: []string{events.StreamSubjects},
		Storage: jetstream.FileStorage, MaxAge: time.Hour, Duplicates: natsx.DuplicateWindow}); err != nil {
		t.Fatal(err)
	}
	until("S1")

	// Four replicas start at once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = natsx.EnsureStreams(ctx, js, 1) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	got := until("S2")
	want := map[string]bool{"UPDATED." + events.Stream: true, "CREATED." + events.DeadLetterStream: true}
	for _, a := range got {
		if !want[a] {
			t.Errorf("unexpected advisory %s (all: %v)", a, got)
		}
	}
	if len(got) < 2 {
		t.Errorf("want the event stream updated and the dead-letter stream created, got %v", got)
	}
	info, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if age := info.CachedInfo().Config.MaxAge; age != 30*24*time.Hour {
		t.Errorf("event stream keeps events %s, want 30 days", age)
	}

	// Started again, nothing is updated.
	if err := natsx.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if got := until("S3"); len(got) != 0 {
		t.Errorf("streams with Doorstep's settings changed again: %v", got)
	}
}
