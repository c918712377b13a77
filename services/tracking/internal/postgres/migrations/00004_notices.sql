-- +goose Up
-- A compound's notices (durable tracking-notices): notice.posted fills the posting columns,
-- notice.withdrawn the withdrawal ones. The two events come on different subjects and may arrive
-- in either order, so a withdrawal that lands first leaves a row with no posting (a marker), and
-- the posting that follows fills it in without bringing the notice back into force.
CREATE TABLE notices (
    compound           text        NOT NULL,
    notice_id          text        NOT NULL,
    title              text        NOT NULL DEFAULT '',
    body               text        NOT NULL DEFAULT '',
    -- Empty means every building of the compound.
    buildings          text[]      NOT NULL DEFAULT '{}',
    posted_by_role     text        NOT NULL DEFAULT '',
    posted_by_id       text        NOT NULL DEFAULT '',
    -- NULL until notice.posted is applied.
    posted_at          timestamptz,
    posted_event_id    uuid,
    -- NULL while the notice is not withdrawn.
    withdrawn_at       timestamptz,
    withdrawn_event_id uuid,
    PRIMARY KEY (compound, notice_id)
);

-- ListNotices reads one compound's notices in force, newest first.
CREATE INDEX notices_in_force ON notices (compound, posted_at DESC, posted_event_id DESC)
    WHERE posted_at IS NOT NULL AND withdrawn_at IS NULL;

-- +goose Down
DROP TABLE notices;
