package supply

import (
	"context"
	"errors"
	"fmt"
)

// ErrForbidden refuses a request its caller may not make at all (creating a supplier in another
// compound, reserving for another household). Something that exists but is not the caller's to
// see is ErrNotFound instead, worded as for an unknown id, so that nobody learns which ids exist.
var ErrForbidden = errors.New("not allowed")

// Reach is what a caller may see and change. The zero Reach is everything: the services
// themselves and city-wide staff. Each field set narrows it.
type Reach struct {
	// SupplierID: a supplier's staff reach their own supplier's record, items and parcels.
	SupplierID string
	// HouseholdID: a resident reaches their own household's parcels and no supplier's records.
	HouseholdID string
	// Compound: anyone of a compound reaches that compound only.
	Compound string
}

// InCompound reports whether r reaches compound c.
func (r Reach) InCompound(c string) bool { return r.Compound == "" || r.Compound == c }

// Supplier reports whether r reaches supplier s's own records: its credentials, standing, items
// and parcel queue.
func (r Reach) Supplier(s Supplier) bool {
	return r.HouseholdID == "" && (r.SupplierID == "" || r.SupplierID == s.ID) && r.InCompound(s.Compound)
}

// Parcel reports whether r reaches parcel p.
func (r Reach) Parcel(p Parcel) bool {
	return (r.SupplierID == "" || r.SupplierID == p.SupplierID) &&
		(r.HouseholdID == "" || r.HouseholdID == p.HouseholdID) && r.InCompound(p.Compound)
}

// Caller is who makes a request: the actor its changes are recorded by and what it may reach.
type Caller struct {
	Actor Actor
	Reach Reach
}

// SupplierNotFound and ParcelNotFound are the one wording of an unknown supplier or parcel, used
// as well for one the caller may not reach.
func SupplierNotFound(id string) error { return fmt.Errorf("supplier %s: %w", id, ErrNotFound) }

// ParcelNotFound: see SupplierNotFound.
func ParcelNotFound(id string) error { return fmt.Errorf("parcel %s: %w", id, ErrNotFound) }

// compoundNotFound answers a caller of one compound asking about another.
func compoundNotFound(c string) error { return fmt.Errorf("compound %s: %w", c, ErrNotFound) }

// reachSupplier checks that r reaches supplier id before anything is read or changed for it
// (even a stored answer to a retried request). An empty id is left to validation.
func (s *Service) reachSupplier(ctx context.Context, r Reach, id string) error {
	switch {
	case id == "" || r == Reach{}:
		return nil
	case r.HouseholdID != "" || (r.SupplierID != "" && r.SupplierID != id):
		return SupplierNotFound(id)
	case r.Compound == "":
		return nil
	}
	sup, err := s.Repo.GetSupplier(ctx, id)
	if err != nil {
		return err
	}
	if !r.Supplier(sup) {
		return SupplierNotFound(id)
	}
	return nil
}
