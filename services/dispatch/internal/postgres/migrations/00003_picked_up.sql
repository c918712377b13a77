-- +goose Up
-- The courier has the parcel in hand (parcel.out_for_delivery): overrides leave it with them.
ALTER TABLE parcels ADD COLUMN picked_up boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE parcels DROP COLUMN picked_up;
