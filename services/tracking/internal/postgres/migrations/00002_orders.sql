-- +goose Up
-- Whose order it is, written by the timeline consumer in the same transaction as the entries, so
-- a resident can read their own timeline as soon as it exists and never anyone else's.
CREATE TABLE orders (
    order_id     uuid PRIMARY KEY,
    compound     text NOT NULL,
    -- '' until an event names the household (order.placed, or any parcel event of the order).
    household_id text NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE orders;
