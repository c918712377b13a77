-- +goose Up
-- One row per event a consumer has applied, written in the same transaction as the effect, so a
-- redelivered event is recognised and changes nothing.
CREATE TABLE inbox (
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE inbox;
