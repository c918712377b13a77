package grpcx

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// recorder keeps every byte one end of a connection writes.
type recorder struct {
	net.Conn
	mu      sync.Mutex
	written bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.written.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// pings counts the HTTP/2 PING frames an end sent on its own (not acknowledgements) in what it
// wrote, after skip bytes (the client's connection preface).
func (r *recorder) pings(t *testing.T, skip int) int {
	r.mu.Lock()
	b := append([]byte(nil), r.written.Bytes()...)
	r.mu.Unlock()
	if len(b) < skip {
		t.Fatalf("%d bytes written, fewer than the %d-byte preface", len(b), skip)
	}
	b = b[skip:]
	const pingType, ackFlag = 0x6, 0x1
	n := 0
	for len(b) >= 9 {
		length := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		if b[3] == pingType && b[4]&ackFlag == 0 {
			n++
		}
		if len(b) < 9+length {
			t.Fatalf("frame of %d bytes cut short", length)
		}
		b = b[9+length:]
	}
	return n
}

type recordingListener struct {
	net.Listener
	conns chan *recorder
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := &recorder{Conn: c}
	l.conns <- r
	return r, nil
}

// Calls one at a time, as services make most of theirs, cost no flow-control pings: with gRPC's
// bandwidth estimation on, each end pinged after nearly every call.
func TestSpacedCallsSendNoPings(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := recordingListener{Listener: lis, conns: make(chan *recorder, 4)}
	srv := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, server) }()
	defer func() { cancel(); <-served }()

	var client *recorder
	conn, err := Dial(lis.Addr().String(), grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		client = &recorder{Conn: c}
		return client, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	const calls = 20
	for range calls {
		if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // time for any ping to be sent and acknowledged
	}
	serverEnd := <-server.conns
	const preface = len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if n := client.pings(t, preface); n > 0 {
		t.Errorf("the client sent %d pings over %d calls", n, calls)
	}
	if n := serverEnd.pings(t, 0); n > 0 {
		t.Errorf("the server sent %d pings over %d calls", n, calls)
	}
}
