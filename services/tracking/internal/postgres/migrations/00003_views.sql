-- +goose Up
-- The read models of the views consumer (durable tracking-views). Events arrive in any order, so
-- every row remembers the event (time, then id) it came from and only a later one replaces it.

-- Every parcel: whose it is (order.placed) and its latest state (any parcel event).
CREATE TABLE parcels (
    parcel_id      uuid        PRIMARY KEY,
    compound       text        NOT NULL,
    order_id       uuid,
    household_id   text        NOT NULL DEFAULT '',
    supplier_id    text        NOT NULL DEFAULT '',
    -- Lower case, e.g. 'out_for_delivery'; '' until a state is known.
    state          text        NOT NULL DEFAULT '',
    state_at       timestamptz,
    state_event_id uuid
);

-- GetSupplierQueue counts one supplier's parcels by state.
CREATE INDEX parcels_supplier_state ON parcels (supplier_id, state);

-- A parcel's latest state per round ('' for states that belong to no round: placed, confirmed,
-- ready, cancelled...). A parcel that failed in the morning and goes out again in the afternoon
-- keeps FAILED in the morning round's progress and is ASSIGNED in the afternoon's: its state in
-- round R is the latest of its rows for R and ''.
CREATE TABLE parcel_states (
    parcel_id   uuid        NOT NULL,
    round_id    text        NOT NULL,
    state       text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    event_id    uuid        NOT NULL,
    PRIMARY KEY (parcel_id, round_id)
);

-- The latest applied version of each route (route.planned); an older or equal one is ignored.
CREATE TABLE routes (
    route_id   text        PRIMARY KEY,
    compound   text        NOT NULL,
    round_id   text        NOT NULL,
    courier_id text        NOT NULL,
    version    integer     NOT NULL,
    planned_at timestamptz NOT NULL,
    event_id   uuid        NOT NULL
);

-- Which parcels a round carries, on which route and courier, to which building: the parcels of
-- the routes' latest versions. A parcel moved between routes of a round belongs to the route
-- planned last.
CREATE TABLE round_parcels (
    round_id   text        NOT NULL,
    parcel_id  uuid        NOT NULL,
    compound   text        NOT NULL,
    route_id   text        NOT NULL,
    courier_id text        NOT NULL,
    building   text        NOT NULL,
    planned_at timestamptz NOT NULL,
    event_id   uuid        NOT NULL,
    PRIMARY KEY (round_id, parcel_id)
);

-- Replacing a route's parcels; finding the rounds a parcel event changes.
CREATE INDEX round_parcels_route ON round_parcels (route_id);
CREATE INDEX round_parcels_parcel ON round_parcels (parcel_id);

-- +goose Down
DROP TABLE round_parcels;
DROP TABLE routes;
DROP TABLE parcel_states;
DROP TABLE parcels;
