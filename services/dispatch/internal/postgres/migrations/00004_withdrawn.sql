-- +goose Up
-- A parcel that failed at the door and was then cancelled by its household leaves the gate pool
-- for good ('withdrawn'); its round stops waiting for it and counting it (outcome 'withdrawn').
ALTER TABLE parcels DROP CONSTRAINT parcels_status_check;
ALTER TABLE parcels ADD CONSTRAINT parcels_status_check CHECK (status IN ('pooled', 'assigned', 'delivered', 'withdrawn'));
ALTER TABLE round_parcels DROP CONSTRAINT round_parcels_outcome_check;
ALTER TABLE round_parcels ADD CONSTRAINT round_parcels_outcome_check CHECK (outcome IN ('delivered', 'failed', 'withdrawn'));

-- +goose Down
-- Before this migration a cancelled parcel could not be told from one waiting at the gate: going
-- back would have the next plan deliver it. Refuse while there are any.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM parcels WHERE status = 'withdrawn') THEN
        RAISE EXCEPTION 'parcels were withdrawn after failing at the door; migrating down would deliver them again';
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE round_parcels DROP CONSTRAINT round_parcels_outcome_check;
ALTER TABLE round_parcels ADD CONSTRAINT round_parcels_outcome_check CHECK (outcome IN ('delivered', 'failed'));
ALTER TABLE parcels DROP CONSTRAINT parcels_status_check;
ALTER TABLE parcels ADD CONSTRAINT parcels_status_check CHECK (status IN ('pooled', 'assigned', 'delivered'));
