-- +goose Up
-- Prune finds the ids past inbox.Keep by applied_at. 00002's BRIN index stops helping once pruned
-- space is reused: a range's summary only widens, so every range soon spans old and new ids. A
-- b-tree costs an entry per applied id (appended at its right edge) and stays exact.
DROP INDEX inbox_applied_at;
CREATE INDEX inbox_applied_at ON inbox (applied_at);

-- +goose Down
DROP INDEX inbox_applied_at;
CREATE INDEX inbox_applied_at ON inbox USING brin (applied_at);
