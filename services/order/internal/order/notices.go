package order

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Notice is a message from the community to the residents of some buildings, or of all.
type Notice struct {
	ID       string
	Compound string
	Title    string
	Text     string
	// Buildings it is for; empty means every building.
	Buildings   []string
	PostedBy    Actor
	PostedAt    time.Time
	WithdrawnAt time.Time // zero while in force
	WithdrawnBy Actor
}

// Limits of a notice.
const (
	maxNoticeTitle = 100
	maxNoticeText  = 4000
)

// NoticeRequest is a notice to post.
type NoticeRequest struct {
	RequestID string
	Compound  string
	Title     string
	Text      string
	Buildings []string
}

// Hash identifies what was asked.
func (r NoticeRequest) Hash() []byte {
	return hash("notice", r.Compound, r.Title, r.Text, sortedJoin(r.Buildings))
}

// NoticeID is the id of the notice a request posts: retries post one notice.
func NoticeID(compound, requestID string) string {
	return uuid.NewSHA1(namespace, []byte("notice/"+compound+"/"+requestID)).String()
}

// PostNotice posts a notice to the caller's compound. Buildings named must be on dispatch's site
// plan: a typo would silently reach nobody. When dispatch cannot be reached nothing is posted.
func (s *Service) PostNotice(ctx context.Context, c Caller, req NoticeRequest) (Notice, error) {
	if !c.reachesCompound(req.Compound) {
		return Notice{}, NotFound("compound", req.Compound)
	}
	req.Title, req.Text = strings.TrimSpace(req.Title), strings.TrimSpace(req.Text)
	switch {
	case req.Title == "":
		return Notice{}, &FieldError{Field: "title", Reason: "required"}
	case len([]rune(req.Title)) > maxNoticeTitle:
		return Notice{}, &FieldError{Field: "title", Reason: fmt.Sprintf("at most %d characters", maxNoticeTitle)}
	case req.Text == "":
		return Notice{}, &FieldError{Field: "text", Reason: "required"}
	case len([]rune(req.Text)) > maxNoticeText:
		return Notice{}, &FieldError{Field: "text", Reason: fmt.Sprintf("at most %d characters", maxNoticeText)}
	}
	if len(req.Buildings) > 0 {
		plan, err := s.dispatch.Buildings(ctx, req.Compound)
		if err != nil {
			return Notice{}, fmt.Errorf("site plan of %s: %w", req.Compound, err)
		}
		for i, b := range req.Buildings {
			switch {
			case slices.Contains(req.Buildings[:i], b):
				return Notice{}, &FieldError{Field: fmt.Sprintf("buildings[%d]", i), Reason: fmt.Sprintf("building %q named twice", b)}
			case !slices.ContainsFunc(plan, func(p Building) bool { return p.Name == b }):
				return Notice{}, &FieldError{Field: fmt.Sprintf("buildings[%d]", i), Reason: fmt.Sprintf("no building %q in %s", b, req.Compound)}
			}
		}
	}
	n := Notice{ID: NoticeID(req.Compound, req.RequestID), Compound: req.Compound, Title: req.Title, Text: req.Text,
		Buildings: req.Buildings, PostedBy: c.Actor, PostedAt: s.now()}
	key := RequestKey{Kind: "notice", Scope: req.Compound, ID: req.RequestID, Hash: req.Hash()}
	return s.store.PostNotice(ctx, n, key)
}

// WithdrawNotice takes a notice of the caller's compound down. Withdrawing it again changes
// nothing, so a retry is harmless.
func (s *Service) WithdrawNotice(ctx context.Context, c Caller, id string) (Notice, error) {
	return s.store.WithdrawNotice(ctx, id, c.Actor, s.now(), func(n Notice) bool { return c.reachesCompound(n.Compound) })
}

// Notices lists a compound's notices, newest first, withdrawn ones included.
func (s *Service) Notices(ctx context.Context, c Caller, compound string) ([]Notice, error) {
	if !c.reachesCompound(compound) {
		return nil, NotFound("compound", compound)
	}
	return s.store.Notices(ctx, compound)
}
