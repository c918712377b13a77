package order

import "context"

// Store keeps households, orders and parcels. Every method that changes parcels also records
// their transitions and the events announcing them, in one transaction.
type Store interface {
	// UpsertHousehold creates or replaces h. With a non-empty key, a repeat of the key returns the
	// household as it is now without writing, and a reuse for another household returns ErrConflict.
	UpsertHousehold(ctx context.Context, h Household, key RequestKey) (Household, error)
	Household(ctx context.Context, id string) (Household, error)
	// Households lists a compound's households ordered by id, after the id `after`.
	Households(ctx context.Context, compound, after string, limit int) ([]Household, error)

	// ClaimRequest records key. It returns done=true when a request with this key already
	// finished, and ErrConflict when the key was used for a different request.
	ClaimRequest(ctx context.Context, key RequestKey) (done bool, err error)

	// CreateOrder writes o with its parcels (PLACED), their creation transitions and the
	// order.placed and parcel.placed events. If an order with o.ID exists it writes nothing and
	// returns that order with created=false.
	CreateOrder(ctx context.Context, o Order) (stored Order, created bool, err error)
	Order(ctx context.Context, id string) (Order, error)
	// Orders lists a household's orders, newest first.
	Orders(ctx context.Context, householdID string, limit int) ([]Order, error)
	Parcel(ctx context.Context, id string) (Parcel, error)

	// UpdateOrder loads the order locked, lets fn change its parcels, then stores the changed
	// parcels, the transitions fn returns and one parcel.<state> event per transition. When done
	// is non-nil the request key is marked finished in the same transaction.
	UpdateOrder(ctx context.Context, id string, done *RequestKey, fn func(*Order) ([]Transition, error)) (Order, error)
}

// Item is a supplier's catalog entry, as much as ordering needs.
type Item struct {
	ID         string
	SupplierID string
	Name       string
	Weighed    bool
}

// Reservation asks one supplier to hold stock for one parcel.
type Reservation struct {
	ParcelID    string
	OrderID     string
	SupplierID  string
	HouseholdID string
	Address     Address
	Lines       []BasketLine
}

// Reserved is the supplier's answer: the parcel as it holds it, priced.
type Reserved struct {
	State State
	Lines []Line
}

// Suppliers is the supplier service as the order service uses it. Errors wrap ErrNotFound,
// ErrRefused, ErrInvalid, ErrConflict or ErrUnavailable with the supplier's own message.
type Suppliers interface {
	// Items returns the named items by id; all or nothing.
	Items(ctx context.Context, ids []string) (map[string]Item, error)
	// Reserve is idempotent on the parcel id.
	Reserve(ctx context.Context, r Reservation) (Reserved, error)
	// Release gives back a parcel's stock; ErrRefused once the supplier has confirmed it.
	Release(ctx context.Context, parcelID, reason string, actor Actor) error
}
