package supply

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/rounds"
)

// CredentialKind is a licence or permit a supplier may hold.
type CredentialKind string

// The credentials Doorstep knows: every supplier needs a business licence, a supermarket a food
// permit and a pharmacy a drug permit.
const (
	BusinessLicence CredentialKind = "business_licence"
	FoodPermit      CredentialKind = "food_permit"
	DrugPermit      CredentialKind = "drug_permit"
)

var credentialKinds = []CredentialKind{BusinessLicence, FoodPermit, DrugPermit}

// Credential is one licence or permit with its last valid day.
type Credential struct {
	Kind   CredentialKind
	Number string
	// ExpiresOn is the last valid day, YYYY-MM-DD in Asia/Shanghai. Dates in that form compare as
	// strings, which is how expiry is decided.
	ExpiresOn string
}

// Earliest and latest expiry dates accepted: anything outside is a typing mistake, and keeping
// dates to four-digit years keeps them comparable as strings.
const (
	minExpiresOn = "2000-01-01"
	maxExpiresOn = "2999-12-31"
)

// MaxCredentialNumber bounds a licence or permit number.
const MaxCredentialNumber = 64

// Required is what a supplier of kind k must hold to take orders, in the order a refusal names them.
// The community's donated stock is no business and needs none: it takes campaign reservations
// unless suspended.
func (k Kind) Required() []CredentialKind {
	switch k {
	case KindSupermarket:
		return []CredentialKind{BusinessLicence, FoodPermit}
	case KindPharmacy:
		return []CredentialKind{BusinessLicence, DrugPermit}
	case KindDonations:
		return nil
	}
	return []CredentialKind{BusinessLicence}
}

// CredentialsUpdate replaces all of a supplier's credentials.
type CredentialsUpdate struct {
	SupplierID  string
	Credentials []Credential
}

// Validate checks the update. Field names are UpdateCredentialsRequest's.
func (u CredentialsUpdate) Validate() error {
	var v violations
	v.required(u.SupplierID, "supplier_id")
	v.check(len(u.Credentials) <= len(credentialKinds), "credentials", "must hold at most %d credentials, one of each kind", len(credentialKinds))
	seen := map[CredentialKind]bool{}
	for i, c := range u.Credentials {
		f := fmt.Sprintf("credentials[%d]", i)
		switch {
		case !slices.Contains(credentialKinds, c.Kind):
			v.add(f+".kind", `must be "business_licence", "food_permit" or "drug_permit"`)
		case seen[c.Kind]:
			v.add(f+".kind", "%s appears twice", c.Kind)
		}
		seen[c.Kind] = true
		v.required(c.Number, f+".number")
		v.maxLen(c.Number, f+".number", MaxCredentialNumber)
		if c.ExpiresOn == "" {
			v.add(f+".expires_on", "is required")
		} else if d, err := time.Parse(rounds.DateLayout, c.ExpiresOn); err != nil || d.Format(rounds.DateLayout) != c.ExpiresOn {
			v.add(f+".expires_on", "must be a date YYYY-MM-DD")
		} else {
			v.check(c.ExpiresOn >= minExpiresOn && c.ExpiresOn <= maxExpiresOn, f+".expires_on",
				"must be between %s and %s", minExpiresOn, maxExpiresOn)
		}
	}
	return v.err()
}

// Normalize trims what people type around numbers.
func (u *CredentialsUpdate) Normalize() {
	for i := range u.Credentials {
		u.Credentials[i].Number = strings.TrimSpace(u.Credentials[i].Number)
	}
}

// SuspensionChange suspends or reinstates a supplier: a worker's decision, recorded with who made it.
type SuspensionChange struct {
	SupplierID string
	Suspended  bool
	Reason     string
	Actor      Actor
}

// Who may suspend or reinstate a supplier: the community's staff, or the system itself.
var suspenders = []Role{RoleWorker, RoleDispatcher, RoleSystem}

// Validate checks the change. Field names are SetSupplierSuspendedRequest's.
func (c SuspensionChange) Validate() error {
	var v violations
	v.required(c.SupplierID, "supplier_id")
	if c.Suspended {
		v.required(c.Reason, "reason")
	}
	v.maxLen(c.Reason, "reason", MaxReason)
	switch {
	case c.Actor.Role == "":
		v.add("actor.role", "is required")
	case !slices.Contains(suspenders, c.Actor.Role):
		v.add("actor.role", "only a worker, a dispatcher or the system may suspend or reinstate a supplier")
	}
	v.required(c.Actor.ID, "actor.id")
	v.maxLen(c.Actor.ID, "actor.id", MaxText)
	return v.err()
}

// Standing is whether a supplier may take new orders at now, and if not, every reason why in a
// fixed order (suspension first, then each required credential), so the message is stable.
func (s Supplier) Standing(now time.Time) (accepting bool, reason string) {
	var why []string
	if s.Suspended {
		why = append(why, "suspended: "+s.SuspensionReason)
	}
	today := rounds.Date(now)
	for _, kind := range s.Kind.Required() {
		i := slices.IndexFunc(s.Credentials, func(c Credential) bool { return c.Kind == kind })
		switch {
		case i < 0:
			why = append(why, string(kind)+" missing")
		case s.Credentials[i].ExpiresOn < today:
			why = append(why, fmt.Sprintf("%s expired on %s", kind, s.Credentials[i].ExpiresOn))
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// WithStanding is s with AcceptingOrders and NotAcceptingReason evaluated at now.
func (s Supplier) WithStanding(now time.Time) Supplier {
	s.AcceptingOrders, s.NotAcceptingReason = s.Standing(now)
	return s
}

// NotAcceptingError refuses a reservation from a supplier not in good standing.
func NotAcceptingError(s Supplier, reason string) error {
	return &SupplierError{SupplierID: s.ID, Err: ErrNotAcceptingOrders, Detail: reason}
}

// SupplierError is a refusal that concerns a whole supplier rather than one item.
type SupplierError struct {
	SupplierID string
	Err        error
	Detail     string
}

func (e *SupplierError) Error() string {
	return "supplier " + e.SupplierID + " is " + e.Err.Error() + ": " + e.Detail
}

func (e *SupplierError) Unwrap() error { return e.Err }
