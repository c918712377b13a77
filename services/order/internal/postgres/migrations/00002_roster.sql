-- +goose Up
-- The roster records what a worker knows of a household. Whether it is a priority household,
-- under quarantine or occupied is derived from these when read, so a quarantine ends by itself.
ALTER TABLE households
    ADD COLUMN occupancy         text    NOT NULL DEFAULT 'UNKNOWN' CHECK (occupancy IN ('OCCUPIED', 'EMPTY', 'UNKNOWN')),
    ADD COLUMN phone             text    NOT NULL DEFAULT '',
    ADD COLUMN over_80           boolean NOT NULL DEFAULT false,
    ADD COLUMN lives_alone       boolean NOT NULL DEFAULT false,
    ADD COLUMN chronically_ill   boolean NOT NULL DEFAULT false,
    -- Last day of quarantine, a date in Asia/Shanghai; NULL when not quarantined.
    ADD COLUMN quarantined_until date,
    -- Served first although no reason is recorded: households migrated from the old single flag,
    -- until a write states their reasons.
    ADD COLUMN priority_unstated boolean NOT NULL DEFAULT false;

-- The old flags said that, not why or until when:
--  * occupied: true is OCCUPIED; false meant empty or never recorded alike, so UNKNOWN.
--  * quarantined: no end was kept. The usual 14 days from today (Asia/Shanghai, UTC+8 all year)
--    keeps the household contactless until a worker records the real date.
--  * priority: the reason was not kept; priority_unstated keeps the household served first.
UPDATE households SET
    occupancy = CASE WHEN occupied THEN 'OCCUPIED' ELSE 'UNKNOWN' END,
    quarantined_until = CASE WHEN quarantined THEN (now() AT TIME ZONE 'UTC' + interval '8 hours')::date + 14 END,
    priority_unstated = priority;
ALTER TABLE households DROP COLUMN priority, DROP COLUMN quarantined, DROP COLUMN occupied;

-- attempt counts a placement's failed attempts (its parcel ids derive from it); result is the
-- first answer of a finished import, returned to its retries. Keys are pruned by created_at.
ALTER TABLE requests
    ADD COLUMN attempt int NOT NULL DEFAULT 0,
    ADD COLUMN result  jsonb;
CREATE INDEX requests_created ON requests (created_at);
-- Upsert keys hash the household's fields, which have changed: forget them rather than refuse a
-- retry of an earlier upsert as a different request. An upsert is idempotent on its own.
DELETE FROM requests WHERE kind = 'household';

-- +goose Down
DROP INDEX requests_created;
ALTER TABLE requests DROP COLUMN attempt, DROP COLUMN result;
ALTER TABLE households
    ADD COLUMN priority    boolean NOT NULL DEFAULT false,
    ADD COLUMN quarantined boolean NOT NULL DEFAULT false,
    ADD COLUMN occupied    boolean NOT NULL DEFAULT false;
UPDATE households SET
    occupied = occupancy = 'OCCUPIED',
    quarantined = coalesce(quarantined_until >= (now() AT TIME ZONE 'UTC' + interval '8 hours')::date, false),
    priority = over_80 OR lives_alone OR chronically_ill OR priority_unstated
        OR coalesce(quarantined_until >= (now() AT TIME ZONE 'UTC' + interval '8 hours')::date, false);
ALTER TABLE households
    DROP COLUMN occupancy, DROP COLUMN phone, DROP COLUMN over_80, DROP COLUMN lives_alone,
    DROP COLUMN chronically_ill, DROP COLUMN quarantined_until, DROP COLUMN priority_unstated;
