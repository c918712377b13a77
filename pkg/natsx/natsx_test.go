package natsx_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// countingJS counts the stream writes EnsureStreams asks of JetStream.
type countingJS struct {
	jetstream.JetStream
	creates, updates atomic.Int32
}

func (c *countingJS) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	c.creates.Add(1)
	return c.JetStream.CreateStream(ctx, cfg)
}

func (c *countingJS) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	c.updates.Add(1)
	return c.JetStream.UpdateStream(ctx, cfg)
}

func (c *countingJS) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	c.creates.Add(1)
	c.updates.Add(1)
	return c.JetStream.CreateOrUpdateStream(ctx, cfg)
}

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

	// The event stream exists with a shorter retention; the dead-letter stream does not.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.Stream, Subjects: []string{events.StreamSubjects},
		Storage: jetstream.FileStorage, MaxAge: time.Hour, Duplicates: natsx.DuplicateWindow}); err != nil {
		t.Fatal(err)
	}

	// Four replicas start at once. A replica that reads the event stream before another has fixed
	// its retention updates it, once; one that finds the dead-letter stream missing creates it.
	replicas := make([]*countingJS, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(replicas))
	for i := range replicas {
		replicas[i] = &countingJS{JetStream: js}
		wg.Go(func() { errs[i] = natsx.EnsureStreams(ctx, replicas[i], 1) })
	}
	wg.Wait()
	var creates, updates int32
	for i, r := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		c, u := r.creates.Load(), r.updates.Load()
		if c > 1 || u > 1 {
			t.Errorf("replica %d: %d creates and %d updates, want at most the dead-letter stream's and the event stream's", i, c, u)
		}
		creates, updates = creates+c, updates+u
	}
	if creates == 0 || updates == 0 {
		t.Errorf("%d creates and %d updates in all, want the dead-letter stream created and the event stream updated", creates, updates)
	}
	for name, age := range map[string]time.Duration{events.Stream: 30 * 24 * time.Hour, events.DeadLetterStream: 90 * 24 * time.Hour} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if got := st.CachedInfo().Config.MaxAge; got != age {
			t.Errorf("stream %s keeps events %s, want %s", name, got, age)
		}
	}

	// Started again, it writes nothing.
	again := &countingJS{JetStream: js}
	if err := natsx.EnsureStreams(ctx, again, 1); err != nil {
		t.Fatal(err)
	}
	if c, u := again.creates.Load(), again.updates.Load(); c != 0 || u != 0 {
		t.Errorf("streams with Doorstep's settings: %d creates and %d updates on a restart, want none", c, u)
	}
}
