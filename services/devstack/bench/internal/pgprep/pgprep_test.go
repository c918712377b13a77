package pgprep_test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"github.com/doorstep/doorstep/services/devstack/bench/internal/pgprep"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestReadyThenUsed(t *testing.T) {
	if os.Getenv("DOORSTEP_TEST_DATABASE_URL") != "" {
		// Checkpoints and WAL switches are the whole server's, and other tests' WAL would count.
		t.Skip("needs a server of its own: runs on the private cluster, not on DOORSTEP_TEST_DATABASE_URL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	start, err := pgprep.Read(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if start.SegmentMB <= 0 || start.Files < 1 {
		t.Fatalf("state of a running cluster: %+v", start)
	}
	ready, err := pgprep.Ready(ctx, conn, 4*start.SegmentMB)
	if err != nil {
		t.Fatal(err)
	}
	if ready.Redo == start.Redo {
		t.Errorf("Ready took no checkpoint: the redo point is still %s", ready.Redo)
	}
	if ready.Ahead < 1 {
		t.Errorf("Ready left no segment file ahead of the one being written: %+v", ready)
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE filler (n int, pad text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 4000) g`); err != nil {
		t.Fatal(err)
	}
	if err := pgprep.Checkpoint(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if after, err := pgprep.Read(ctx, conn); err != nil || after.Redo == ready.Redo {
		t.Errorf("Checkpoint left the redo point at %s (%v)", after.Redo, err)
	}
	used, err := pgprep.Used(ctx, conn, ready)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^(\d+) MB of WAL written, (within|more than) the (\d+) MB of segment files ready at the start$`).FindStringSubmatch(used)
	if m == nil {
		t.Fatalf("Used: %q", used)
	}
	// 4,000 rows of 1,000 bytes are at least 3.8 MB of WAL.
	if written, _ := strconv.Atoi(m[1]); written < 3 {
		t.Errorf("Used reports %s MB written for 3.8 MB of rows: %q", m[1], used)
	}
	if m[2] != "within" || m[3] != strconv.FormatInt(int64(ready.Ahead)*ready.SegmentMB, 10) {
		t.Errorf("Used: %q (ready: %+v)", used, ready)
	}
	// With nothing ready, the same WAL is more than there was.
	ready.Ahead = 0
	if used, err := pgprep.Used(ctx, conn, ready); err != nil || !regexp.MustCompile(` more than the 0 MB `).MatchString(used) {
		t.Errorf("Used with no files ready: %q, %v", used, err)
	}
}
