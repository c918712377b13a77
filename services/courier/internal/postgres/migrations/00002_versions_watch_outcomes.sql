-- +goose Up
-- version is dispatch's version of a route: only a higher one replaces it. revision counts every
-- stored change (a new version, a pick-up, an outcome) so a watcher told of a change can tell
-- whether it can see it yet. planned_at stays the time the route was first planned.
ALTER TABLE routes
    ADD COLUMN version  integer NOT NULL DEFAULT 0,
    ADD COLUMN revision bigint  NOT NULL DEFAULT 1;
CREATE INDEX routes_round ON routes (round_id);

-- result keeps CompleteStops' per-outcome results, so a retry returns exactly the first answer.
-- created_at is now written from the service's clock and pruned by it.
ALTER TABLE requests ADD COLUMN result jsonb;
CREATE INDEX requests_created ON requests (created_at);

-- +goose Down
DROP INDEX requests_created;
ALTER TABLE requests DROP COLUMN result;
DROP INDEX routes_round;
ALTER TABLE routes DROP COLUMN revision, DROP COLUMN version;
