-- +goose Up
-- A courier's routes as dispatch planned them. planned_at (the route.planned event's time) orders
-- a courier's routes and a parcel's routes: the newest one is the one shown and acted on.
CREATE TABLE routes (
    route_id    text        PRIMARY KEY,
    round_id    text        NOT NULL,
    courier_id  text        NOT NULL,
    compound    text        NOT NULL,
    planned_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_courier_newest ON routes (courier_id, planned_at DESC, route_id DESC);
CREATE INDEX routes_courier_round ON routes (courier_id, round_id, planned_at DESC, route_id DESC);

CREATE TABLE stops (
    route_id     text    NOT NULL REFERENCES routes ON DELETE CASCADE,
    sequence     integer NOT NULL,
    trip         integer NOT NULL,
    household_id text    NOT NULL,
    compound     text    NOT NULL,
    building     text    NOT NULL,
    unit         text    NOT NULL,
    floor        integer NOT NULL,
    room         text    NOT NULL,
    priority     boolean NOT NULL,
    contactless  boolean NOT NULL,
    PRIMARY KEY (route_id, sequence)
);

-- Keyed by (route_id, parcel_id), not parcel_id: a parcel that failed in one round is planned
-- again into a route of the next, and each route keeps its own record of what happened.
CREATE TABLE stop_parcels (
    route_id   text        NOT NULL,
    parcel_id  text        NOT NULL,
    sequence   integer     NOT NULL,
    position   integer     NOT NULL,
    order_id   text        NOT NULL,
    status     text        NOT NULL CHECK (status IN ('PENDING', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED')),
    method     text        NOT NULL DEFAULT '',
    reason     text        NOT NULL DEFAULT '',
    photo_ref  text        NOT NULL DEFAULT '',
    changed_at timestamptz,
    PRIMARY KEY (route_id, parcel_id),
    FOREIGN KEY (route_id, sequence) REFERENCES stops ON DELETE CASCADE
);
CREATE INDEX stop_parcels_parcel ON stop_parcels (parcel_id);

-- Idempotency keys of PickUp, MarkDelivered and MarkFailed. route_id is the route the first
-- request acted on, so a retry answers from the same route.
CREATE TABLE requests (
    request_id  text        PRIMARY KEY,
    op          text        NOT NULL,
    fingerprint text        NOT NULL,
    route_id    text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE requests;
DROP TABLE stop_parcels;
DROP TABLE stops;
DROP TABLE routes;
