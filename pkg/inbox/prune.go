package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/doorstep/doorstep/pkg/natsx"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Keep is how long an event's id is remembered after it was applied or last delivered again. A
// consumer can be handed an event again while the stream holds it (natsx.EventMaxAge: a durable
// created anew reads from the stream's start) and as a replayed dead letter: another consumer can
// park the event until the stream drops it, the letter can be replayed until
// natsx.DeadLetterMaxAge after that, and the replay's copy stays in the stream for another
// natsx.EventMaxAge, for a consumer that is stopped or behind to read late. A replay reaches
// every consumer, and those that had applied the event skip it by its id here. Each delivery
// again restarts the id's time (seenAgain), which covers a letter parked again. A day more covers
// the broker's and the database's clocks disagreeing.
const Keep = 2*natsx.EventMaxAge + natsx.DeadLetterMaxAge + 24*time.Hour

// pruneEvery is how often a running consumer prunes; the first time is pruneFirst after it starts.
const pruneEvery = time.Hour

var pruneFirst = time.Minute // a variable for the tests

// pruneBatch is the most ids one statement deletes: a schema that has never been pruned (months of
// events) is emptied in short transactions rather than one long one that holds back vacuum.
var pruneBatch = 10_000

// Prune deletes the ids applied more than keep ago, of every consumer with an inbox in pool's
// schema: durables since retired or merged into another included, whose ids nothing else deletes.
// It returns how many it deleted. Replicas may prune at the same time; each id goes once.
func Prune(ctx context.Context, pool *pgxpool.Pool, keep time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := pool.Exec(ctx, `
			DELETE FROM inbox WHERE (consumer, event_id) IN (
				SELECT consumer, event_id FROM inbox WHERE applied_at < now() - $1::interval
				LIMIT $2 FOR UPDATE SKIP LOCKED)`, keep, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune inbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(pruneBatch) {
			return total, nil
		}
	}
}

// pruneUntilDone prunes pruneFirst after the consumer starts and every pruneEvery after, until ctx
// is done.
func (c *Consumer) pruneUntilDone(ctx context.Context) {
	next := time.NewTimer(pruneFirst)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-next.C:
		}
		switch n, err := Prune(ctx, c.Pool, Keep); {
		case err != nil && ctx.Err() == nil:
			c.Log.Warn("consumer: pruning the inbox failed; next time", "durable", c.Durable, "err", err, "in", pruneEvery)
		case n > 0:
			c.Log.Info("consumer: pruned the inbox", "durable", c.Durable, "ids", n, "older_than", Keep)
		}
		next.Reset(pruneEvery)
	}
}
