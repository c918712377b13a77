package inbox

import "time"

// SetPruning changes when a running consumer first prunes and how many ids one statement deletes,
// until the returned function restores them.
func SetPruning(first time.Duration, batch int) (restore func()) {
	oldFirst, oldBatch := pruneFirst, pruneBatch
	pruneFirst, pruneBatch = first, batch
	return func() { pruneFirst, pruneBatch = oldFirst, oldBatch }
}
