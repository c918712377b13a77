-- +goose Up
-- One row per event that belongs to an order. event_id is the key, so an event that slips past
-- both the broker's duplicate window and the inbox (a replay, a second consumer) is stored once.
CREATE TABLE timeline_entries (
    event_id    uuid        PRIMARY KEY,
    compound    text        NOT NULL,
    order_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    kind        text        NOT NULL,
    parcel_id   uuid,
    -- Parcel state after the event in lower case, '' when the event changed no parcel.
    state       text        NOT NULL DEFAULT '',
    actor_role  text        NOT NULL DEFAULT '',
    actor_id    text        NOT NULL DEFAULT '',
    detail      text        NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- GetOrderTimeline reads one order in exactly this order.
CREATE INDEX timeline_entries_order ON timeline_entries (order_id, occurred_at, event_id);

-- +goose Down
DROP TABLE timeline_entries;
