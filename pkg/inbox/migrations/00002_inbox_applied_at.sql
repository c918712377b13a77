-- +goose Up
-- Prune finds the ids past inbox.Keep by applied_at. Rows are appended in applied_at order, so a
-- BRIN index answers that for a few pages, and costs nothing per applied event, unlike a b-tree.
CREATE INDEX inbox_applied_at ON inbox USING brin (applied_at);

-- +goose Down
DROP INDEX inbox_applied_at;
