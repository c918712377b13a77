-- +goose Up
-- A request id is unique within what it acts on: two suppliers' clients that happen to pick the
-- same id make two requests, not a conflict. Keys are now kept per scope ("supplier:<id>", or
-- "compound:<c>" for registering a supplier). Keys stored before carry scope '' and are still
-- honoured for their 48 hours (see idempotent), so a retry across the upgrade is not applied twice.
ALTER TABLE idempotency_keys ADD COLUMN scope text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (scope, request_id);

-- +goose Down
-- Back to one key per request id: of ids used by several callers only the oldest is kept.
DELETE FROM idempotency_keys k USING idempotency_keys o
    WHERE k.request_id = o.request_id AND (k.created_at, k.scope) > (o.created_at, o.scope);
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (request_id);
ALTER TABLE idempotency_keys DROP COLUMN scope;
