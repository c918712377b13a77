-- +goose Up
-- A campaign's pack comes from one supplier; pack and target are what the worker defined.
CREATE TABLE campaigns (
    campaign_id      uuid        PRIMARY KEY,
    compound         text        NOT NULL,
    name             text        NOT NULL,
    supplier_id      text        NOT NULL,
    pack             jsonb       NOT NULL,
    target           jsonb       NOT NULL,
    state            text        NOT NULL CHECK (state IN ('DRAFT', 'LAUNCHING', 'LAUNCHED')),
    created_by_role  text        NOT NULL,
    created_by_id    text        NOT NULL,
    created_at       timestamptz NOT NULL,
    launched_by_role text        NOT NULL DEFAULT '',
    launched_by_id   text        NOT NULL DEFAULT '',
    launched_at      timestamptz
);
CREATE INDEX campaigns_compound ON campaigns (compound, created_at DESC);

-- The households a launch targeted, fixed at launch, one row each: the primary key is what keeps
-- a household to one pack per attempt. order_id is the current attempt's pack once made (its
-- order id derives from campaign, household and attempt); missed_reason says why it could not be.
CREATE TABLE campaign_households (
    campaign_id   uuid        NOT NULL REFERENCES campaigns,
    household_id  text        NOT NULL REFERENCES households,
    attempt       int         NOT NULL DEFAULT 1,
    order_id      uuid        REFERENCES orders,
    missed_reason text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, household_id)
);
-- The launcher's work list: households whose current pack is neither made nor missed.
CREATE INDEX campaign_households_pending ON campaign_households (campaign_id)
    WHERE order_id IS NULL AND missed_reason = '';

ALTER TABLE orders ADD COLUMN campaign_id uuid REFERENCES campaigns;

CREATE TABLE notices (
    notice_id         uuid        PRIMARY KEY,
    compound          text        NOT NULL,
    title             text        NOT NULL,
    body              text        NOT NULL,
    buildings         text[]      NOT NULL DEFAULT '{}',
    posted_by_role    text        NOT NULL,
    posted_by_id      text        NOT NULL,
    posted_at         timestamptz NOT NULL,
    withdrawn_at      timestamptz,
    withdrawn_by_role text        NOT NULL DEFAULT '',
    withdrawn_by_id   text        NOT NULL DEFAULT ''
);
CREATE INDEX notices_compound ON notices (compound, posted_at DESC);

-- +goose Down
DROP TABLE notices;
ALTER TABLE orders DROP COLUMN campaign_id;
DROP TABLE campaign_households;
DROP TABLE campaigns;
