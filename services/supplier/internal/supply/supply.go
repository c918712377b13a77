// Package supply is the supplier service's domain: suppliers and their catalogs, the no-markup
// and rationing rules, stock reservation for parcels and the supplier's decisions on them. It
// knows nothing of gRPC, protobuf or PostgreSQL; the transport and the repository adapt to it.
package supply

import (
	"regexp"
	"time"
)

// Kind is what a supplier sells.
type Kind string

// The kinds of supplier a compound has. Donations is the community's donated stock (84
// disinfectant, masks, spray bottles, printed notices): kept by its workers, priced at zero,
// needing no licence and handed out only by free-distribution campaigns, never ordered.
const (
	KindSupermarket Kind = "supermarket"
	KindPharmacy    Kind = "pharmacy"
	KindDonations   Kind = "donations"
)

// Supplier is a supermarket, a pharmacy or the community's donated stock, serving one compound.
type Supplier struct {
	ID          string
	Compound    string
	Name        string
	Kind        Kind
	Credentials []Credential
	// Suspended by a worker, who gave SuspensionReason; who and when is in the suspension history.
	Suspended        bool
	SuspensionReason string
	// AcceptingOrders and NotAcceptingReason are derived (see Standing) when a supplier is
	// answered, never stored.
	AcceptingOrders    bool
	NotAcceptingReason string
}

// Item is one catalog entry. Prices are fen per unit, or per kilogram for weighed items, whose
// stock, rations and quantities are in grams.
type Item struct {
	ID                string
	SupplierID        string
	Compound          string
	Name              string
	Unit              string
	Weighed           bool
	ReferencePriceFen int64
	CurrentPriceFen   int64
	Stock             int64
	RationPerDay      int64
	Bundle            bool
	BundleContents    string
	UnitWeightGrams   int64
	Category          string
}

// Address is a household's structured place in a compound.
type Address struct {
	Compound string
	Building string
	Unit     string
	Floor    int32
	Room     string
}

// Role is who acts; the names are the API's roles in lower case.
type Role string

// The roles of Doorstep's actors.
const (
	RoleResident   Role = "resident"
	RoleWorker     Role = "worker"
	RoleSupplier   Role = "supplier"
	RoleDispatcher Role = "dispatcher"
	RoleCourier    Role = "courier"
	RoleSystem     Role = "system"
)

// Actor records who made a change.
type Actor struct {
	Role Role
	ID   string
}

// Limits keep every amount far inside int64: MaxLines lines of MaxQuantity at MaxPriceFen per
// kilogram or unit sum to at most 2e18 fen.
const (
	MaxPriceFen = 100_000_000 // one million yuan
	MaxQuantity = 100_000_000 // units, or grams (100 tonnes)
	MaxStock    = 1_000_000_000_000
	MaxLines    = 200
	MaxText     = 200
	MaxReason   = 500
)

// slugRE is what a readable supplier or item id may look like; a generated UUID matches it too.
var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s can be a supplier or item id.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// shanghai is where rationing days begin and end. China has kept UTC+8 without daylight saving
// since 1991, so the fixed zone is exact when the tz database is missing from the host.
var shanghai = func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("Asia/Shanghai", 8*60*60)
}()

// ServiceDay is the Asia/Shanghai calendar day of t, as midnight UTC of that date: rations are
// per household per local day, whatever the server's zone.
func ServiceDay(t time.Time) time.Time {
	y, m, d := t.In(shanghai).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
