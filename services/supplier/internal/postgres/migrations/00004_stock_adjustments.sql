-- +goose Up
-- Every change of an item's stock outside reservations (deliveries, spoilage, recounts): who,
-- when, by how much, why and the stock it left. With the parcels' lines they account for every
-- unit. request_id is the client's idempotency key, kept for tracing; it is not unique here
-- because keys are pruned after two days and may then be used again.
CREATE TABLE stock_adjustments (
    id          bigserial   PRIMARY KEY,
    item_id     text        NOT NULL REFERENCES items,
    supplier_id text        NOT NULL REFERENCES suppliers,
    delta       bigint      NOT NULL CHECK (delta <> 0),
    reason      text        NOT NULL,
    stock_after bigint      NOT NULL CHECK (stock_after >= 0),
    actor_role  text        NOT NULL,
    actor_id    text        NOT NULL,
    request_id  text        NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX stock_adjustments_item ON stock_adjustments (item_id, id);

-- +goose Down
DROP TABLE stock_adjustments;
