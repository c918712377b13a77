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

// SeesDonatedStock reports whether c is shown the community's donated stock in catalogs: the
// workers who hand it out, the dispatchers who plan its delivery and the services. It is not for
// sale, so residents, who order from the catalog, do not see it, nor do couriers and the
// suppliers' staff, who have no use for it. Items named by id (BatchGetItems) are answered to
// anyone, so a household can read what its free pack holds.
func (c Caller) SeesDonatedStock() bool {
	switch c.Actor.Role {
	case RoleWorker, RoleDispatcher, RoleSystem:
		return true
	}
	return false
}

// keeper checks that c may keep supplier id's catalog and stock and hand its parcels over at the
// gate, and returns the supplier. That is its own staff and the services; and, since the
// community's donated stock has no staff of its own, the workers of its compound for a donations
// supplier, and only for one. A supplier c does not reach is not found, worded as an unknown one;
// one it reaches but may not keep (a worker and a supermarket) is ErrForbidden.
func (s *Service) keeper(ctx context.Context, c Caller, id string) (Supplier, error) {
	r := c.Reach
	if r.HouseholdID != "" || (r.SupplierID != "" && r.SupplierID != id) {
		return Supplier{}, SupplierNotFound(id)
	}
	sup, err := s.Repo.GetSupplier(ctx, id)
	if err != nil {
		return Supplier{}, err
	}
	if !r.Supplier(sup) {
		return Supplier{}, SupplierNotFound(id)
	}
	switch {
	case c.Actor.Role == RoleSupplier, c.Actor.Role == RoleSystem:
		return sup, nil
	case c.Actor.Role == RoleWorker && sup.Kind == KindDonations:
		return sup, nil
	case c.Actor.Role == RoleWorker:
		return Supplier{}, fmt.Errorf("worker %s may not act for %s %s: workers keep the community's donated stock only: %w",
			c.Actor.ID, sup.Kind, sup.ID, ErrForbidden)
	}
	return Supplier{}, fmt.Errorf("%s %s may not act for supplier %s: %w", c.Actor.Role, c.Actor.ID, sup.ID, ErrForbidden)
}
