-- +goose Up
-- Staff sign in with a name and a password; the bcrypt hash is all that is kept.
CREATE TABLE staff_accounts (
    account_id    text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('ROLE_WORKER', 'ROLE_DISPATCHER', 'ROLE_SUPPLIER', 'ROLE_COURIER')),
    compound      text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    supplier_id   text NOT NULL DEFAULT '',
    courier_id    text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    -- Supplier staff act for exactly one supplier, couriers are exactly one courier.
    CHECK ((role = 'ROLE_SUPPLIER') = (supplier_id <> '')),
    CHECK ((role = 'ROLE_COURIER') = (courier_id <> ''))
);

-- One live sign-in code per household; re-issuing replaces the row, so the old code stops working.
-- The code is high-entropy, so a plain SHA-256 is enough and lets sign-in look it up directly.
CREATE TABLE household_codes (
    household_id text PRIMARY KEY,
    compound     text NOT NULL,
    code_hash    bytea NOT NULL UNIQUE,
    issued_at    timestamptz NOT NULL,
    issued_by    text NOT NULL
);

-- Sessions are stored by the SHA-256 of their cookie token; a stolen table opens no session.
CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,
    household_id text REFERENCES household_codes (household_id) ON DELETE CASCADE,
    account_id   text REFERENCES staff_accounts (account_id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    CHECK ((household_id IS NULL) <> (account_id IS NULL))
);
CREATE INDEX sessions_household ON sessions (household_id);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
DROP TABLE household_codes;
DROP TABLE staff_accounts;
