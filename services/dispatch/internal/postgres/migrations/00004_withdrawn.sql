-- +goose Up
-- A parcel that failed at the door and was then cancelled by its household leaves the gate pool
-- for good ('withdrawn'); its round stops waiting for it (outcome 'withdrawn').
ALTER TABLE parcels DROP CONSTRAINT parcels_status_check;
ALTER TABLE parcels ADD CONSTRAINT parcels_status_check CHECK (status IN ('pooled', 'assigned', 'delivered', 'withdrawn'));
ALTER TABLE round_parcels DROP CONSTRAINT round_parcels_outcome_check;
ALTER TABLE round_parcels ADD CONSTRAINT round_parcels_outcome_check CHECK (outcome IN ('delivered', 'failed', 'withdrawn'));

-- +goose Down
UPDATE round_parcels SET outcome = NULL WHERE outcome = 'withdrawn';
ALTER TABLE round_parcels DROP CONSTRAINT round_parcels_outcome_check;
ALTER TABLE round_parcels ADD CONSTRAINT round_parcels_outcome_check CHECK (outcome IN ('delivered', 'failed'));
-- A withdrawn parcel cannot be told apart from one waiting at the gate any more: it goes back
-- to the pool, as before this migration a cancelled failure did.
UPDATE parcels SET status = 'pooled' WHERE status = 'withdrawn';
ALTER TABLE parcels DROP CONSTRAINT parcels_status_check;
ALTER TABLE parcels ADD CONSTRAINT parcels_status_check CHECK (status IN ('pooled', 'assigned', 'delivered'));
