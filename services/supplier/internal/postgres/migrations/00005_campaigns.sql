-- +goose Up
-- The community's donated stock is a supplier of kind 'donations', whose items are free: prices
-- may now be 0. The service refuses a zero price at a supermarket or pharmacy and any other at
-- a donations supplier (items do not know their supplier's kind, so no CHECK can); no markup
-- stays a CHECK.
ALTER TABLE suppliers
    DROP CONSTRAINT suppliers_kind_check,
    ADD CONSTRAINT suppliers_kind_check CHECK (kind IN ('supermarket', 'pharmacy', 'donations'));
ALTER TABLE items
    DROP CONSTRAINT items_reference_price_fen_check,
    ADD CONSTRAINT items_reference_price_fen_check CHECK (reference_price_fen >= 0),
    DROP CONSTRAINT items_current_price_fen_check,
    ADD CONSTRAINT items_current_price_fen_check CHECK (current_price_fen >= 0);

-- A campaign's free pack names its campaign; '' for an order's parcel. Campaign packs are
-- confirmed when reserved, so they have no confirm_by and never expire.
ALTER TABLE parcels ADD COLUMN campaign_id text NOT NULL DEFAULT '';
-- ListParcels of one campaign. Partial: orders' parcels, the most of them, stay out of it.
CREATE INDEX parcels_campaign ON parcels (supplier_id, campaign_id, created_at) WHERE campaign_id <> '';

-- +goose Down
-- Fails while donated stock or free items exist: they have no place in the older schema.
DROP INDEX parcels_campaign;
ALTER TABLE parcels DROP COLUMN campaign_id;
ALTER TABLE items
    DROP CONSTRAINT items_current_price_fen_check,
    ADD CONSTRAINT items_current_price_fen_check CHECK (current_price_fen > 0),
    DROP CONSTRAINT items_reference_price_fen_check,
    ADD CONSTRAINT items_reference_price_fen_check CHECK (reference_price_fen > 0);
ALTER TABLE suppliers
    DROP CONSTRAINT suppliers_kind_check,
    ADD CONSTRAINT suppliers_kind_check CHECK (kind IN ('supermarket', 'pharmacy'));
