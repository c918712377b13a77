-- +goose Up
-- A supplier takes orders only while not suspended and while it holds the licence and permit its
-- kind requires; both are kept here and the verdict is derived when read, since expiry is a
-- matter of the day.
ALTER TABLE suppliers
    ADD COLUMN suspended         boolean NOT NULL DEFAULT false,
    ADD COLUMN suspension_reason text    NOT NULL DEFAULT '';

CREATE TABLE supplier_credentials (
    supplier_id text NOT NULL REFERENCES suppliers,
    kind        text NOT NULL CHECK (kind IN ('business_licence', 'food_permit', 'drug_permit')),
    number      text NOT NULL,
    -- Last valid day, Asia/Shanghai.
    expires_on  date NOT NULL,
    PRIMARY KEY (supplier_id, kind)
);

-- Every suspension and reinstatement: who, when, why.
CREATE TABLE supplier_suspensions (
    id          bigserial   PRIMARY KEY,
    supplier_id text        NOT NULL REFERENCES suppliers,
    suspended   boolean     NOT NULL,
    reason      text        NOT NULL,
    actor_role  text        NOT NULL,
    actor_id    text        NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX supplier_suspensions_supplier ON supplier_suspensions (supplier_id, id);

-- +goose Down
DROP TABLE supplier_suspensions;
DROP TABLE supplier_credentials;
ALTER TABLE suppliers DROP COLUMN suspension_reason, DROP COLUMN suspended;
