-- +goose Up
-- The roster. A room is one household: the structured address is unique.
CREATE TABLE households (
    household_id text        PRIMARY KEY,
    compound     text        NOT NULL,
    building     text        NOT NULL,
    unit         text        NOT NULL,
    floor        int         NOT NULL CHECK (floor BETWEEN 1 AND 60),
    room         text        NOT NULL,
    residents    int         NOT NULL DEFAULT 0,
    priority     boolean     NOT NULL DEFAULT false,
    quarantined  boolean     NOT NULL DEFAULT false,
    occupied     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (compound, building, unit, room)
);
CREATE INDEX households_compound ON households (compound, household_id);

-- Client request ids, with a hash of what each asked for: a retry returns the first result, a
-- reuse for another request is refused. done_at marks a request whose effect is complete.
CREATE TABLE requests (
    kind         text        NOT NULL,
    scope        text        NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    PRIMARY KEY (kind, scope, request_id)
);

-- order_id is derived from (household_id, request_id), so concurrent retries of one request
-- race on this primary key and exactly one wins.
CREATE TABLE orders (
    order_id       uuid        PRIMARY KEY,
    household_id   text        NOT NULL REFERENCES households,
    compound       text        NOT NULL,
    request_id     text        NOT NULL,
    request_hash   bytea       NOT NULL,
    channel        text        NOT NULL,
    placed_by_role text        NOT NULL,
    placed_by_id   text        NOT NULL,
    proxy          boolean     NOT NULL,
    placed_at      timestamptz NOT NULL
);
CREATE INDEX orders_household ON orders (household_id, placed_at DESC, order_id DESC);

-- One parcel per supplier of an order. The address, priority and contactless flags are the
-- household's at placement; reads prefer the household's current flags.
CREATE TABLE parcels (
    parcel_id    uuid        PRIMARY KEY,
    order_id     uuid        NOT NULL REFERENCES orders,
    supplier_id  text        NOT NULL,
    household_id text        NOT NULL REFERENCES households,
    compound     text        NOT NULL,
    state        text        NOT NULL,
    total_fen    bigint      NOT NULL,
    weight_grams bigint      NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL,
    building     text        NOT NULL,
    unit         text        NOT NULL,
    floor        int         NOT NULL,
    room         text        NOT NULL,
    priority     boolean     NOT NULL,
    contactless  boolean     NOT NULL,
    UNIQUE (order_id, supplier_id)
);

CREATE TABLE parcel_lines (
    parcel_id            uuid    NOT NULL REFERENCES parcels,
    line_no              int     NOT NULL,
    item_id              text    NOT NULL,
    name                 text    NOT NULL,
    unit                 text    NOT NULL,
    weighed              boolean NOT NULL,
    quantity             bigint  NOT NULL,
    unit_price_fen       bigint  NOT NULL,
    amount_fen           bigint  NOT NULL,
    confirmed_quantity   bigint  NOT NULL DEFAULT 0,
    confirmed_amount_fen bigint  NOT NULL DEFAULT 0,
    unit_weight_grams    bigint  NOT NULL,
    PRIMARY KEY (parcel_id, line_no)
);

-- Every move of every parcel: who, when, why, and the event that brought it if another service
-- made it.
CREATE TABLE parcel_transitions (
    id              bigserial   PRIMARY KEY,
    parcel_id       uuid        NOT NULL REFERENCES parcels,
    from_state      text,
    to_state        text        NOT NULL,
    actor_role      text        NOT NULL,
    actor_id        text        NOT NULL,
    at              timestamptz NOT NULL,
    reason          text        NOT NULL DEFAULT '',
    event_id        uuid,
    round_id        text        NOT NULL DEFAULT '',
    route_id        text        NOT NULL DEFAULT '',
    courier_id      text        NOT NULL DEFAULT '',
    delivery_method text        NOT NULL DEFAULT ''
);
CREATE INDEX parcel_transitions_parcel ON parcel_transitions (parcel_id, id);

-- +goose Down
DROP TABLE parcel_transitions;
DROP TABLE parcel_lines;
DROP TABLE parcels;
DROP TABLE orders;
DROP TABLE requests;
DROP TABLE households;
