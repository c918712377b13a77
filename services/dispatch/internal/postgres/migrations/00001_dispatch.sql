-- +goose Up
-- The site plan: one row per building, units in walking order.
CREATE TABLE buildings (
    compound   text        NOT NULL,
    building   text        NOT NULL,
    units      text[]      NOT NULL,
    floors     int         NOT NULL CHECK (floors BETWEEN 1 AND 60),
    has_lift   boolean     NOT NULL,
    distance_m int         NOT NULL CHECK (distance_m >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compound, building)
);

CREATE TABLE couriers (
    compound    text        NOT NULL,
    courier_id  text        NOT NULL,
    name        text        NOT NULL,
    -- Empty: the courier may go anywhere in the compound.
    buildings   text[]      NOT NULL,
    max_parcels int         NOT NULL CHECK (max_parcels > 0),
    max_grams   bigint      NOT NULL CHECK (max_grams > 0),
    on_duty     boolean     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (compound, courier_id)
);

-- Two rounds a day per compound; round_id is <compound>-<YYYY-MM-DD>-<slot>.
CREATE TABLE rounds (
    round_id        text        PRIMARY KEY,
    compound        text        NOT NULL,
    day             date        NOT NULL,
    slot            text        NOT NULL,
    cutoff          timestamptz NOT NULL,
    state           text        NOT NULL CHECK (state IN ('open', 'planned')),
    planned_at      timestamptz,
    cost_metres     bigint      NOT NULL DEFAULT 0,
    cost_floors     bigint      NOT NULL DEFAULT 0,
    cost_trips      int         NOT NULL DEFAULT 0,
    lower_metres    bigint      NOT NULL DEFAULT 0,
    lower_floors    bigint      NOT NULL DEFAULT 0,
    lower_trips     int         NOT NULL DEFAULT 0,
    UNIQUE (compound, day, slot)
);
CREATE INDEX rounds_open ON rounds (compound, cutoff) WHERE state = 'open';

-- Parcels checked in at the gate, with what the planner needs; round_id is the round they are in
-- now (a failed parcel moves on to a later round).
CREATE TABLE parcels (
    parcel_id     text        PRIMARY KEY,
    order_id      text        NOT NULL,
    compound      text        NOT NULL,
    household_id  text        NOT NULL,
    building      text        NOT NULL,
    unit          text        NOT NULL,
    floor         int         NOT NULL,
    room          text        NOT NULL,
    priority      boolean     NOT NULL,
    contactless   boolean     NOT NULL,
    weight_grams  bigint      NOT NULL,
    round_id      text        NOT NULL REFERENCES rounds,
    status        text        NOT NULL CHECK (status IN ('pooled', 'assigned')),
    route_id      uuid,
    courier_id    text,
    reason        text        NOT NULL DEFAULT '',
    checked_in_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parcels_round ON parcels (round_id, status);

-- Every round a parcel was ever in: a round's parcel count stays what it was after a failed
-- parcel moves on.
CREATE TABLE round_parcels (
    round_id  text        NOT NULL REFERENCES rounds,
    parcel_id text        NOT NULL REFERENCES parcels,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, parcel_id)
);

CREATE TABLE routes (
    route_id   uuid        PRIMARY KEY,
    round_id   text        NOT NULL REFERENCES rounds,
    courier_id text        NOT NULL,
    metres     bigint      NOT NULL,
    floors     bigint      NOT NULL,
    trips      int         NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (round_id, courier_id)
);

CREATE TABLE stops (
    route_id     uuid    NOT NULL REFERENCES routes,
    sequence     int     NOT NULL,
    trip         int     NOT NULL,
    household_id text    NOT NULL,
    compound     text    NOT NULL,
    building     text    NOT NULL,
    unit         text    NOT NULL,
    floor        int     NOT NULL,
    room         text    NOT NULL,
    -- Parallel arrays: parcel_ids[i] belongs to order_ids[i].
    parcel_ids   text[]  NOT NULL,
    order_ids    text[]  NOT NULL,
    priority     boolean NOT NULL,
    contactless  boolean NOT NULL,
    weight_grams bigint  NOT NULL,
    PRIMARY KEY (route_id, sequence)
);

-- Request ids of mutating calls, with a fingerprint of the request and the answer given, so a
-- retry gets the first answer and a reused id with a different request is refused.
CREATE TABLE requests (
    request_id  text        PRIMARY KEY,
    method      text        NOT NULL,
    fingerprint bytea       NOT NULL,
    response    bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE requests;
DROP TABLE stops;
DROP TABLE routes;
DROP TABLE round_parcels;
DROP TABLE parcels;
DROP TABLE rounds;
DROP TABLE couriers;
DROP TABLE buildings;
