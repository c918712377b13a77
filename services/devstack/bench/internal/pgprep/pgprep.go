// Package pgprep gives a benchmark's new PostgreSQL cluster the disk behaviour of a server that
// has been running, so that each phase measures its own work, and reports afterwards what the
// measuring wrote.
//
// Two costs land on a benchmark that no phase of it causes:
//
//   - A new cluster has one WAL segment file. Each time it fills one it creates the next: it
//     writes 16 MB of zeros and fsyncs them while holding the WAL write lock, so every commit of
//     the moment waits. A running server rarely does: at each checkpoint it renames the files it
//     no longer needs into the ones it will write next and overwrites them in place. Ready does
//     that before measuring.
//   - The data a phase writes sits in the kernel's page cache until the kernel writes it out,
//     about 30 seconds later on Linux, in one burst that makes WAL fsyncs queue behind it. After a
//     phase at full load that burst falls into whichever phase comes next. Checkpoint writes out
//     and syncs everything before a phase begins.
//
// On this project's 2-CPU machine, in the PlaceOrder benchmark, the first cost stalled commits for
// 20-70 ms every few seconds of load and cut the maximum throughput by about a fifth (the
// floor's as much as the stack's); the second put 60-170 ms stalls into the half-load phase in
// about one run in three. Both are costs of the database being new or of the benchmark's order
// of phases; the benchmarks' -unprepared flag measures with them.
package pgprep

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the package needs of a connection or pool. It must be a superuser's:
// pg_switch_wal, CHECKPOINT and pg_ls_waldir need one.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// State is where the WAL stands at one moment.
type State struct {
	Files     int    // segment files in pg_wal
	Ahead     int    // of those, files after the one being written: ready to be overwritten
	LSN       string // where the next WAL record goes
	Redo      string // where recovery would start: the last checkpoint's redo point
	SegmentMB int64
}

// Read returns the WAL's state now.
func Read(ctx context.Context, db Querier) (State, error) {
	var s State
	err := db.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'),
			(SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' AND name > pg_walfile_name(pg_current_wal_insert_lsn())),
			pg_current_wal_insert_lsn()::text,
			(SELECT redo_lsn::text FROM pg_control_checkpoint()),
			(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') / (1024 * 1024)`).
		Scan(&s.Files, &s.Ahead, &s.LSN, &s.Redo, &s.SegmentMB)
	if err != nil {
		return State{}, fmt.Errorf("read WAL state: %w", err)
	}
	return s, nil
}

// ReadyMB is how much WAL Prepare readies: what PostgreSQL keeps at most with the default
// max_wal_size, and more than either benchmark writes in a run on this project's machine
// (PlaceOrder about 300 MB, the pipeline about 450 MB).
const ReadyMB = 1024

// Prepare readies the cluster's WAL (Ready with ReadyMB) unless asIs, says on out how the
// cluster stands, and returns the state to report Used against and the function to call before
// each phase: a Checkpoint, or nothing when asIs.
func Prepare(ctx context.Context, db Querier, out io.Writer, asIs bool) (State, func() error, error) {
	if asIs {
		s, err := Read(ctx, db)
		if err != nil {
			return State{}, nil, err
		}
		fmt.Fprintf(out, "the cluster as it is (-unprepared): %d WAL segment files ahead, no checkpoint before each phase\n", s.Ahead)
		return s, func() error { return nil }, nil
	}
	s, err := Ready(ctx, db, ReadyMB)
	if err != nil {
		return State{}, nil, err
	}
	fmt.Fprintf(out, "the cluster as a running server's: %d WAL segment files of %d MB ready to be overwritten; a checkpoint before each phase\n",
		s.Ahead, s.SegmentMB)
	return s, func() error { return Checkpoint(ctx, db) }, nil
}

// Ready makes the cluster create segment files until about mb megabytes of WAL are behind it
// (each pg_switch_wal moves on to a new file; a transaction id between two gives it something to
// switch from), then checkpoints, which turns them into files ready to be overwritten. PostgreSQL
// decides how many it keeps, between min_wal_size and max_wal_size (1 GB by default); the State
// returned says how many are ahead.
func Ready(ctx context.Context, db Querier, mb int64) (State, error) {
	s, err := Read(ctx, db)
	if err != nil {
		return State{}, err
	}
	for range mb / s.SegmentMB {
		if _, err := db.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			return State{}, fmt.Errorf("write WAL: %w", err)
		}
		if _, err := db.Exec(ctx, `SELECT pg_switch_wal()`); err != nil {
			return State{}, fmt.Errorf("switch WAL file: %w", err)
		}
	}
	if err := Checkpoint(ctx, db); err != nil {
		return State{}, err
	}
	return Read(ctx, db)
}

// Checkpoint writes out and syncs every change made so far, so that the kernel has none left to
// write in the phase that follows.
func Checkpoint(ctx context.Context, db Querier) error {
	if _, err := db.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Used describes the WAL written since before: how much, against what was ready to be
// overwritten then.
func Used(ctx context.Context, db Querier, before State) (string, error) {
	after, err := Read(ctx, db)
	if err != nil {
		return "", err
	}
	var written int64
	if err := db.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint`, after.LSN, before.LSN).Scan(&written); err != nil {
		return "", fmt.Errorf("measure WAL written: %w", err)
	}
	ready := int64(before.Ahead) * before.SegmentMB
	fits := "within"
	if written>>20 > ready {
		fits = "more than" // files were created, unless checkpoints meanwhile recycled enough
	}
	return fmt.Sprintf("%d MB of WAL written, %s the %d MB of segment files ready at the start", written>>20, fits, ready), nil
}
