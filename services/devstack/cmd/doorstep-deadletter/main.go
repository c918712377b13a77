// Command doorstep-deadletter lists the events that consumers gave up on, with the reason, and
// replays one after the cause is fixed:
//
//	doorstep-deadletter list
//	doorstep-deadletter replay SEQ
//
// NATS_URL says which server; without it, the one `make run` starts (on NATS_PORT, as make run
// reads it, default 14222).
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/doorstep/doorstep/pkg/deadletter"
	"github.com/doorstep/doorstep/pkg/natsx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "doorstep-deadletter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:" + cmp.Or(os.Getenv("NATS_PORT"), "14222")
	}
	nc, js, err := natsx.Connect(url, "doorstep-deadletter", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case len(args) == 1 && args[0] == "list":
		letters, err := deadletter.List(ctx, js, 1000)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SEQ\tPARKED\tCONSUMER\tSUBJECT\tEVENT\tREASON")
		for _, l := range letters {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", l.Seq, l.Parked.Format(time.RFC3339), l.Consumer, l.Subject, l.OriginalMsgID, l.Reason)
		}
		return w.Flush()
	case len(args) == 2 && args[0] == "replay":
		seq, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("SEQ must be a number from the list: %w", err)
		}
		l, err := deadletter.Replay(ctx, js, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "replayed %s on %s (parked by %s: %s)\n", l.OriginalMsgID, l.Subject, l.Consumer, l.Reason)
		return nil
	default:
		return fmt.Errorf("usage: doorstep-deadletter list | replay SEQ")
	}
}
