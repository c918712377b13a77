-- +goose Up
-- A supplier serves one compound; its id may be a readable slug given by the caller.
CREATE TABLE suppliers (
    supplier_id text        PRIMARY KEY,
    compound    text        NOT NULL,
    name        text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('supermarket', 'pharmacy')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppliers_compound ON suppliers (compound, supplier_id);

-- Stock is in units, or grams for weighed items. The CHECKs are the last line of defence of the
-- rules the service enforces first: never oversell, never above the reference price (不加价).
CREATE TABLE items (
    item_id             text        PRIMARY KEY,
    supplier_id         text        NOT NULL REFERENCES suppliers,
    compound            text        NOT NULL,
    name                text        NOT NULL,
    unit                text        NOT NULL,
    weighed             boolean     NOT NULL,
    reference_price_fen bigint      NOT NULL CHECK (reference_price_fen > 0),
    current_price_fen   bigint      NOT NULL CHECK (current_price_fen > 0),
    stock               bigint      NOT NULL CONSTRAINT items_stock_not_negative CHECK (stock >= 0),
    ration_per_day      bigint      NOT NULL CHECK (ration_per_day >= 0),
    bundle              boolean     NOT NULL,
    bundle_contents     text        NOT NULL,
    unit_weight_grams   bigint      NOT NULL CHECK (unit_weight_grams > 0),
    category            text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT items_no_markup CHECK (current_price_fen <= reference_price_fen)
);
CREATE INDEX items_catalog ON items (compound, supplier_id, item_id);

CREATE TABLE parcels (
    parcel_id        uuid        PRIMARY KEY,
    order_id         uuid        NOT NULL,
    supplier_id      text        NOT NULL REFERENCES suppliers,
    compound         text        NOT NULL,
    household_id     text        NOT NULL,
    address_compound text        NOT NULL,
    address_building text        NOT NULL,
    address_unit     text        NOT NULL,
    address_floor    integer     NOT NULL,
    address_room     text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('placed', 'confirmed', 'rejected', 'cancelled',
                                     'expired', 'ready', 'at_gate', 'assigned', 'out_for_delivery',
                                     'delivered', 'failed')),
    total_fen        bigint      NOT NULL CHECK (total_fen >= 0),
    reason           text        NOT NULL,
    -- The Asia/Shanghai day of the reservation, which the household's rations count in.
    service_day      date        NOT NULL,
    -- Digest of the reservation request: a retry matches it, a different request does not.
    fingerprint      bytea       NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX parcels_queue ON parcels (supplier_id, state, created_at);
CREATE INDEX parcels_household_day ON parcels (household_id, service_day);

CREATE TABLE parcel_lines (
    parcel_id            uuid    NOT NULL REFERENCES parcels,
    line_no              integer NOT NULL,
    item_id              text    NOT NULL REFERENCES items,
    name                 text    NOT NULL,
    unit                 text    NOT NULL,
    weighed              boolean NOT NULL,
    quantity             bigint  NOT NULL CHECK (quantity > 0),
    unit_price_fen       bigint  NOT NULL CHECK (unit_price_fen >= 0),
    amount_fen           bigint  NOT NULL CHECK (amount_fen >= 0),
    unit_weight_grams    bigint  NOT NULL CHECK (unit_weight_grams > 0),
    confirmed_quantity   bigint  NOT NULL DEFAULT 0 CHECK (confirmed_quantity >= 0),
    confirmed_amount_fen bigint  NOT NULL DEFAULT 0 CHECK (confirmed_amount_fen >= 0),
    PRIMARY KEY (parcel_id, item_id),
    UNIQUE (parcel_id, line_no)
);
CREATE INDEX parcel_lines_item ON parcel_lines (item_id);

-- Every change of a parcel's state: who, when, why. from_state is NULL for the reservation.
CREATE TABLE parcel_transitions (
    id         bigserial   PRIMARY KEY,
    parcel_id  uuid        NOT NULL REFERENCES parcels,
    from_state text,
    to_state   text        NOT NULL,
    actor_role text        NOT NULL,
    actor_id   text        NOT NULL,
    reason     text        NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX parcel_transitions_parcel ON parcel_transitions (parcel_id, id);

-- A mutating request's id, what it asked (method and digest) and what it was answered, written in
-- the transaction of the change, so a retry gets the first answer and nothing runs twice.
CREATE TABLE idempotency_keys (
    request_id   text        PRIMARY KEY,
    method       text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE parcel_transitions;
DROP TABLE parcel_lines;
DROP TABLE parcels;
DROP TABLE items;
DROP TABLE suppliers;
