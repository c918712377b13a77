package route

import "time"

// Outcome is what happened at the door to one parcel: delivered (Method set, with an optional
// photo) or failed (Failure set).
type Outcome struct {
	ParcelID string
	Method   Method
	PhotoRef string
	Failure  Failure
}

// Delivered reports whether the outcome is a delivery rather than a failure.
func (o Outcome) Delivered() bool { return o.Method != 0 }

// Result says whether one outcome was recorded and, if not, why. Parcel is the parcel as it stands
// afterwards, nil when it is on none of the courier's routes.
type Result struct {
	ParcelID string
	Recorded bool
	Refusal  string
	Parcel   *Parcel
}

// Complete applies outcomes in order, each on its own: one that cannot be recorded (not the
// courier's parcel, not picked up, already delivered) is refused with the reason and the others
// still count. routes maps each parcel id to the route it is acted on in; parcels on the same
// route share one *Route, so a later outcome sees the earlier ones (a parcel given twice is
// recorded once and refused the second time).
func Complete(routes map[string]*Route, outcomes []Outcome, at time.Time) ([]Change, []Result) {
	var changes []Change
	results := make([]Result, 0, len(outcomes))
	for _, o := range outcomes {
		res := Result{ParcelID: o.ParcelID}
		r, ok := routes[o.ParcelID]
		if !ok {
			res.Refusal = ErrNotFound.Error() + ": parcel " + o.ParcelID + " is on none of your routes"
			results = append(results, res)
			continue
		}
		var c Change
		var err error
		if o.Delivered() {
			c, err = r.Deliver(o.ParcelID, o.Method, o.PhotoRef, at)
		} else {
			c, err = r.Fail(o.ParcelID, o.Failure, at)
		}
		if err != nil {
			res.Refusal = err.Error()
		} else {
			res.Recorded = true
			changes = append(changes, c)
		}
		if _, p, ok := r.Parcel(o.ParcelID); ok {
			cp := *p
			res.Parcel = &cp
		}
		results = append(results, res)
	}
	return changes, results
}
