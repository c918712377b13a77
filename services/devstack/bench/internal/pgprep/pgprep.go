// Package pgprep gives a benchmark's new PostgreSQL cluster the disk behaviour of a server that
// has been running for a while, so that each phase measures its own work, and reports afterwards
// what the measuring wrote.
//
// Two costs land on a benchmark that the part being measured does not cause:
//
//   - A new cluster has one WAL segment file. Each time it fills one it creates the next: it
//     writes 16 MB of zeros and fsyncs them while holding the WAL write lock, so every commit of
//     the moment waits. A server that has been running rarely does: at each checkpoint it renames
//     the files it no longer needs into the ones it will write next and overwrites them in place.
//     Ready does that before measuring.
//   - What is written to files without fsyncing them (PostgreSQL's data files between
//     checkpoints, among them the zero-filled pages it writes as it extends a table, and the
//     broker's file store) sits in the kernel's page cache until the kernel writes it out: all of
//     a file's dirty pages go about 30 seconds (vm.dirty_expire_centisecs) after the file was
//     first dirtied, so later writes leave with the first ones, in one burst that WAL fsyncs
//     queue behind. After a phase at full load that burst falls into whichever phase comes next,
//     and within a phase longer than 30 seconds into one of its later slices, whichever system
//     that slice measures. BeforePhase checkpoints and syncs the machine's file systems before
//     each phase; a benchmark that alternates slices of two systems calls BeforeSlice, which syncs
//     them, before each slice. A slice shorter than 30 seconds never meets its own write-out, so
//     the sync keeps it from paying for the slices before it.
//
// What this does not model: a server under steady load is usually in the middle of a spread-out
// checkpoint, whose writes go on beside the work. Here a checkpoint is forced before each phase
// and a run writes less WAL than starts one (about 540 MB with the default max_wal_size), so no
// checkpoint overlaps a measured slice; each phase instead pays the full-page images of the first
// change to each page after its checkpoint. Nor does it model the kernel's write-out: on a loaded
// server each busy file's dirty pages go out about every 30 seconds, in bursts that commits can
// queue behind, where here no measured slice meets any. Latencies measured this way are those of
// a machine with nothing to write out, for both systems alike.
//
// On this project's 2-CPU machine, in the PlaceOrder benchmark, the first cost stalled commits for
// 20-70 ms every few seconds of load and cut the maximum throughput by about a fifth (the floor's
// as much as the stack's). The second, coming from the full-load phase before, put 60-170 ms
// stalls into the half-load phase in about one run in three (BeforePhase). Within the half-load
// phase itself (two systems of 16 s each, in alternating slices, about 35 s in all) it wrote out
// 40-60 MB some 30 s in, and in 4 of 13 runs commits stalled for 0.1-1 s, a p99 of 54-981 ms
// for the system whose slice it was (BeforeSlice); in the one watched, 27.5 s in, pg_stat_activity
// showed one backend in IO:WALSync and every other committer in LWLock:WALWrite for a second. What remains is the virtual disk's own: in one of 8 runs watched with the slices
// synced, one write stayed in flight for a second with 5 MB dirty in the page cache
// (/proc/diskstats), and that slice's system had a p99 of 1,016 ms. The benchmarks' -unprepared
// flag measures with both costs.
package pgprep

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the package needs of a connection or pool: a superuser's, or a role with
// pg_checkpoint, pg_monitor and EXECUTE on pg_switch_wal.
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
	err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE name > pg_walfile_name(pg_current_wal_insert_lsn())),
			pg_current_wal_insert_lsn()::text,
			(SELECT redo_lsn::text FROM pg_control_checkpoint()),
			(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') / (1024 * 1024)
		FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'`).
		Scan(&s.Files, &s.Ahead, &s.LSN, &s.Redo, &s.SegmentMB)
	if err != nil {
		return State{}, fmt.Errorf("read WAL state: %w", err)
	}
	return s, nil
}

// ReadyMB is how much WAL Prepare readies: what PostgreSQL keeps at most with the default
// max_wal_size, and more than either benchmark writes in a run on this project's machine
// (PlaceOrder and the pipeline about 450 MB each).
const ReadyMB = 1024

// UnpreparedUsage describes the benchmarks' -unprepared flag, which sets Prepare's unprepared.
const UnpreparedUsage = "measure the new cluster as it is: no WAL segment files readied, no checkpoints or syncs between what is measured (see bench/internal/pgprep)"

// Prepared is a cluster readied by Prepare.
type Prepared struct {
	db         Querier
	start      State
	unprepared bool
}

// Prepare readies the cluster's WAL (Ready with ReadyMB), unless unprepared, and says on out how
// the cluster stands.
func Prepare(ctx context.Context, db Querier, out io.Writer, unprepared bool) (*Prepared, error) {
	p := &Prepared{db: db, unprepared: unprepared}
	var err error
	if unprepared {
		if p.start, err = Read(ctx, db); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "the cluster as it is (-unprepared): %d WAL segment files ahead, no checkpoints or syncs between what is measured\n", p.start.Ahead)
		return p, nil
	}
	if p.start, err = Ready(ctx, db, ReadyMB); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "the cluster prepared as a running server's: %d WAL segment files of %d MB ready to be overwritten; "+
		"a checkpoint and a sync before each phase\n", p.start.Ahead, p.start.SegmentMB)
	return p, nil
}

// BeforePhase checkpoints and syncs (Checkpoint), unless the cluster is measured as it is.
func (p *Prepared) BeforePhase(ctx context.Context) error {
	if p.unprepared {
		return nil
	}
	return Checkpoint(ctx, p.db)
}

// BeforeSlice syncs every file system on the machine (not only the cluster's), unless the cluster
// is measured as it is, so that what the slices before wrote is on disk rather than due to be
// written out during this one. Call it outside the measured time: it takes as long as the disk.
func (p *Prepared) BeforeSlice() {
	if p.unprepared {
		return
	}
	syscall.Sync()
}

// Used describes the WAL written since Prepare (Used); a failure to read it is described too,
// so that it costs the run's figures nothing.
func (p *Prepared) Used(ctx context.Context) string {
	used, err := Used(ctx, p.db, p.start)
	if err != nil {
		return "WAL written unknown: " + err.Error()
	}
	return used
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

// Checkpoint writes out and fsyncs every change PostgreSQL has made so far, then syncs the
// machine's file systems for everything else (the broker's file store), so that the kernel has
// nothing left to write in the phase that follows.
func Checkpoint(ctx context.Context, db Querier) error {
	if _, err := db.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	syscall.Sync()
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
		// Files were created, unless the checkpoints meanwhile recycled enough.
		fits = "more than"
	}
	return fmt.Sprintf("%d MB of WAL written, %s the %d MB of segment files ready at the start", written>>20, fits, ready), nil
}
