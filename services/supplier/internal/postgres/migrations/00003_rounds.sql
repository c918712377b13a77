-- +goose Up
-- Each reservation is due for a round and must be confirmed by its cutoff, or it expires.
-- Parcels reserved before this migration have no round and never expire on their own.
ALTER TABLE parcels
    ADD COLUMN round_id   text        NOT NULL DEFAULT '',
    ADD COLUMN confirm_by timestamptz;
-- The expiry job's query: placed parcels by cutoff. Partial, so it stays the size of the queue.
CREATE INDEX parcels_due ON parcels (confirm_by) WHERE state = 'placed';
CREATE INDEX parcels_round ON parcels (supplier_id, round_id, created_at);

-- Keys are pruned by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP INDEX idempotency_keys_created;
DROP INDEX parcels_round;
DROP INDEX parcels_due;
ALTER TABLE parcels DROP COLUMN confirm_by, DROP COLUMN round_id;
