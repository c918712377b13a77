-- +goose Up
-- A compound's round rules; a compound without a row has the defaults (pkg/rounds.Default, no cap).
CREATE TABLE compound_settings (
    compound       text        PRIMARY KEY,
    -- [{"slot": "am", "cutoff": "09:00", "departs": "09:30"}, ...] in the order of the day.
    slots          jsonb       NOT NULL,
    round_capacity int         NOT NULL CHECK (round_capacity >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- OPEN → CLOSED (cutoff passed or closed by hand) → PLANNED → DONE (every parcel delivered or failed).
ALTER TABLE rounds DROP CONSTRAINT rounds_state_check;
ALTER TABLE rounds ADD CONSTRAINT rounds_state_check CHECK (state IN ('open', 'closed', 'planned', 'done'));
ALTER TABLE rounds ADD COLUMN departs timestamptz;
UPDATE rounds SET departs = cutoff + interval '30 minutes';
ALTER TABLE rounds ALTER COLUMN departs SET NOT NULL;
ALTER TABLE rounds ADD COLUMN closed_at timestamptz;
ALTER TABLE rounds ADD COLUMN done_at timestamptz;
UPDATE rounds SET closed_at = planned_at WHERE state = 'planned';

-- Finer assignments than whole buildings: [{"building": "5", "min_floor": 1, "max_floor": 16}].
ALTER TABLE couriers ADD COLUMN floor_ranges jsonb NOT NULL DEFAULT '[]';

-- SetCourierDuty: a courier on or off duty for one round, whatever the roster says.
CREATE TABLE round_duty (
    round_id   text        NOT NULL REFERENCES rounds ON DELETE CASCADE,
    courier_id text        NOT NULL,
    on_duty    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, courier_id)
);

ALTER TABLE parcels DROP CONSTRAINT parcels_status_check;
ALTER TABLE parcels ADD CONSTRAINT parcels_status_check CHECK (status IN ('pooled', 'assigned', 'delivered'));
-- Moved to its courier by a dispatcher: re-planning keeps it there.
ALTER TABLE parcels ADD COLUMN pinned boolean NOT NULL DEFAULT false;

-- What became of each parcel in each round it was in; a round is done when none is left open.
ALTER TABLE round_parcels ADD COLUMN outcome text CHECK (outcome IN ('delivered', 'failed'));
UPDATE round_parcels rp SET outcome = 'failed'
FROM parcels p WHERE p.parcel_id = rp.parcel_id AND p.round_id <> rp.round_id;
CREATE INDEX round_parcels_open ON round_parcels (round_id) WHERE outcome IS NULL;

-- Items missing or damaged when a parcel was checked in at the gate.
CREATE TABLE shortages (
    parcel_id        text   NOT NULL REFERENCES parcels,
    item_id          text   NOT NULL,
    missing_quantity bigint NOT NULL CHECK (missing_quantity >= 0),
    damaged_quantity bigint NOT NULL CHECK (damaged_quantity >= 0),
    note             text   NOT NULL,
    PRIMARY KEY (parcel_id, item_id)
);

-- A route's version grows with every change; its stops are the current version's.
ALTER TABLE routes ADD COLUMN version int NOT NULL DEFAULT 1;
ALTER TABLE routes ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE stops ADD COLUMN pinned boolean NOT NULL DEFAULT false;
CREATE INDEX parcels_route ON parcels (route_id) WHERE status = 'assigned';

-- +goose Down
DROP INDEX parcels_route;
ALTER TABLE stops DROP COLUMN pinned;
ALTER TABLE routes DROP COLUMN updated_at;
ALTER TABLE routes DROP COLUMN version;
DROP TABLE shortages;
DROP INDEX round_parcels_open;
ALTER TABLE round_parcels DROP COLUMN outcome;
ALTER TABLE parcels DROP COLUMN pinned;
ALTER TABLE parcels DROP CONSTRAINT parcels_status_check;
UPDATE parcels SET status = 'assigned' WHERE status = 'delivered';
ALTER TABLE parcels ADD CONSTRAINT parcels_status_check CHECK (status IN ('pooled', 'assigned'));
DROP TABLE round_duty;
ALTER TABLE couriers DROP COLUMN floor_ranges;
ALTER TABLE rounds DROP COLUMN done_at;
ALTER TABLE rounds DROP COLUMN closed_at;
ALTER TABLE rounds DROP COLUMN departs;
ALTER TABLE rounds DROP CONSTRAINT rounds_state_check;
UPDATE rounds SET state = 'open' WHERE state = 'closed';
UPDATE rounds SET state = 'planned' WHERE state = 'done';
ALTER TABLE rounds ADD CONSTRAINT rounds_state_check CHECK (state IN ('open', 'planned'));
DROP TABLE compound_settings;
