-- +goose Up
-- The dispatcher's gate list (ListParcelsToCheckIn): a compound's READY parcels, longest waiting
-- first. Partial, so that it holds only the parcels waiting at the gate, not every parcel ever
-- made, and placing an order (PLACED) does not write to it.
CREATE INDEX parcels_to_check_in ON parcels (compound, updated_at, parcel_id) WHERE state = 'READY';

-- +goose Down
DROP INDEX parcels_to_check_in;
