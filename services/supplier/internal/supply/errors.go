package supply

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Sentinel errors; the transport maps each to one status code.
var (
	ErrNotFound          = errors.New("not found")
	ErrAlreadyExists     = errors.New("already exists")
	ErrIllegalTransition = errors.New("illegal parcel transition")
	ErrOutOfStock        = errors.New("out of stock")
	ErrRationExceeded    = errors.New("daily ration exceeded")
	ErrNotInCatalog      = errors.New("not in the supplier's catalog")
	// ErrPastCutoff: a placed parcel's round cutoff has come; it expires rather than being confirmed.
	ErrPastCutoff = errors.New("past its confirmation cutoff")
	// ErrNotAcceptingOrders: the supplier is suspended or lacks a valid licence or permit.
	ErrNotAcceptingOrders = errors.New("not accepting orders")
	// ErrDonatedStock: the community's donated stock is handed out by campaigns, never ordered.
	ErrDonatedStock = errors.New("donated stock; it is handed out by campaigns")
)

// ItemError is a refusal that concerns one catalog item, so that the caller (the order service,
// then the resident) learns which item of a basket is the problem.
type ItemError struct {
	ItemID string
	Err    error
	Detail string
}

func (e *ItemError) Error() string {
	sep := ": "
	if errors.Is(e.Err, ErrDonatedStock) {
		sep = " is " // says what the item is: "item masks is donated stock; ..."
	}
	msg := "item " + e.ItemID + sep + e.Err.Error()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

func (e *ItemError) Unwrap() error { return e.Err }

// ItemErrors lists every ItemError in err, which may be a join of several.
func ItemErrors(err error) []*ItemError {
	var out []*ItemError
	var walk func(error)
	walk = func(err error) {
		var ie *ItemError
		switch x := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		default:
			if errors.As(err, &ie) {
				out = append(out, ie)
			}
		}
	}
	walk(err)
	return out
}

// Violation is one bad field of a request. Field names follow the API's request fields
// ("item.current_price_fen", "lines[2].quantity") so the transport passes them through unchanged.
type Violation struct {
	Field  string
	Reason string
}

// InvalidError is bad input, found either at the edge or against stored state (a confirmed
// weight too far from the estimate).
type InvalidError struct {
	Violations []Violation
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Reason
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// violations collects Violations; err is nil when there are none.
type violations []Violation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, Violation{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (v *violations) check(ok bool, field, format string, args ...any) {
	if !ok {
		v.add(field, format, args...)
	}
}

func (v *violations) required(s, field string) {
	v.check(strings.TrimSpace(s) != "", field, "is required")
}

// id checks a parcel or order id: a UUID, which is what the order service generates.
func (v *violations) id(s, field string) {
	if strings.TrimSpace(s) == "" {
		v.add(field, "is required")
		return
	}
	// The canonical lower-case form only, since that is how it is stored and given back.
	u, err := uuid.Parse(s)
	v.check(err == nil && u.String() == s, field, "must be a UUID in canonical lower-case form")
}

// slug checks a supplier or item id.
func (v *violations) slug(s, field string) {
	if strings.TrimSpace(s) == "" {
		v.add(field, "is required")
		return
	}
	v.check(ValidSlug(s), field, "must be a slug (lower-case letters, digits, '-', at most 63)")
}

func (v *violations) maxLen(s, field string, n int) {
	v.check(len([]rune(s)) <= n, field, "must be at most %d characters", n)
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return &InvalidError{Violations: v}
}

// Invalid is an InvalidError naming one field.
func Invalid(field, reason string) error {
	return &InvalidError{Violations: []Violation{{Field: field, Reason: reason}}}
}
