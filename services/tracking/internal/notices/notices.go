// Package notices is the tracking service's read model of a compound's notices: what a worker
// posted (notice.posted) and has not withdrawn (notice.withdrawn), for the residents of the
// buildings it reaches. Events of one notice may arrive in either order, so a withdrawal that
// lands first is remembered and the posting that follows it is never in force. It knows nothing
// of protobuf, gRPC or PostgreSQL.
package notices

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound means the caller may not see the compound's notices; another compound answers the
// same whether it exists or not.
var ErrNotFound = errors.New("not found")

// Actor is who posted a notice, as the timeline stores actors: role in lower case and id.
type Actor struct {
	Role string
	ID   string
}

// Posted is a notice.posted: a notice to all of a compound's buildings (Buildings empty) or to
// some of them.
type Posted struct {
	Compound  string
	NoticeID  string
	Title     string
	Text      string
	Buildings []string
	PostedBy  Actor
	At        time.Time
	EventID   string
}

// Withdrawn is a notice.withdrawn. It is final: a notice once withdrawn is never in force again,
// whichever of its events arrives first.
type Withdrawn struct {
	Compound string
	NoticeID string
	At       time.Time
	EventID  string
}

// Notice is a notice in force, as residents read it.
type Notice struct {
	NoticeID  string
	Title     string
	Text      string
	Buildings []string
	PostedBy  Actor
	PostedAt  time.Time
}

// Reader reads the notices in force.
type Reader interface {
	// Notices returns the compound's notices in force that reach building (every one in force when
	// building is empty), newest first (posted_at, then event id). A compound without notices has
	// none, not an error.
	Notices(ctx context.Context, compound, building string) ([]Notice, error)
}
