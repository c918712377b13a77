package order

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// CampaignStore keeps campaigns, the households each one targets with their packs, and notices.
type CampaignStore interface {
	// CreateCampaign stores c as a draft under key; a repeat of key returns the campaign the key
	// created, and its reuse for another request is ErrConflict.
	CreateCampaign(ctx context.Context, c Campaign, key RequestKey) (Campaign, error)
	// Campaign returns a campaign with its counts.
	Campaign(ctx context.Context, id string) (Campaign, error)
	// Campaigns lists a compound's campaigns, newest first, with their counts.
	Campaigns(ctx context.Context, compound string) ([]Campaign, error)
	// LaunchCampaign, in one transaction, locks the campaign and, if it is still a draft, records
	// the households choose picks from the compound's roster as its targets (each at attempt 1,
	// no pack yet) and makes it LAUNCHING by actor at now; when choose picks nobody it changes
	// nothing and returns ErrCampaignState. A launched campaign is left as it is. It returns the
	// campaign as it then stands.
	LaunchCampaign(ctx context.Context, id string, actor Actor, now time.Time, choose func([]Household) []Household) (Campaign, error)
	// RetryMissed, in one transaction under key, moves every household whose pack missed (see
	// RosterEntry.Status) to its next attempt with no pack yet, and makes the campaign LAUNCHING
	// if any moved. A repeat of key returns the first call's count without moving anything.
	RetryMissed(ctx context.Context, id string, key RequestKey, now time.Time) (retried int, err error)
	// CampaignRoster returns every targeted household of a campaign with its current pack.
	CampaignRoster(ctx context.Context, id string) ([]RosterEntry, error)
	// PendingPacks returns up to limit households of LAUNCHING campaigns whose current pack is
	// neither made nor missed.
	PendingPacks(ctx context.Context, limit int) ([]PendingPack, error)
	// StorePack, in one transaction, writes o (a household's pack as a PLACED order, with its
	// transitions and events) and records it as the household's current pack, provided the
	// household is still at attempt without a pack. It returns false when nothing was written: the
	// pack was stored already (a resumed launch), or the household has moved on.
	StorePack(ctx context.Context, o Order, campaignID string, attempt int) (bool, error)
	// MarkMissed records why the pack of a household's attempt could not be made, unless the
	// household has moved on from attempt or has a pack.
	MarkMissed(ctx context.Context, campaignID, householdID string, attempt int, reason string, now time.Time) error
	// FinishLaunches marks LAUNCHED every LAUNCHING campaign without pending households.
	FinishLaunches(ctx context.Context, now time.Time) (int, error)

	// PostNotice stores n with its notice.posted event under key; a repeat of key returns the
	// notice the key posted, its reuse for another request is ErrConflict.
	PostNotice(ctx context.Context, n Notice, key RequestKey) (Notice, error)
	// WithdrawNotice marks a notice withdrawn by actor at now with its notice.withdrawn event,
	// unless reaches refuses the notice (ErrNotFound) or it is withdrawn already (returned as is).
	WithdrawNotice(ctx context.Context, id string, actor Actor, now time.Time, reaches func(Notice) bool) (Notice, error)
	// Notices lists a compound's notices, newest first.
	Notices(ctx context.Context, compound string) ([]Notice, error)
}

// CreateCampaign defines a campaign of the caller's compound. Every pack item must exist and
// belong to one supplier, and be counted rather than weighed (a pack is the same for every door).
// Whether the supplier will give them free is the supplier's to say: its service refuses the
// reservations otherwise, and the households show as missed with its reason.
func (s *Service) CreateCampaign(ctx context.Context, c Caller, req CampaignRequest) (Campaign, error) {
	if !c.reachesCompound(req.Compound) {
		return Campaign{}, NotFound("compound", req.Compound)
	}
	if err := ValidateCampaign(req); err != nil {
		return Campaign{}, err
	}
	ids := make([]string, len(req.Pack))
	for i, l := range req.Pack {
		ids[i] = l.ItemID
	}
	items, err := s.suppliers.Items(ctx, ids)
	if errors.Is(err, ErrNotFound) {
		return Campaign{}, s.unknownItem(ctx, "pack", req.Pack, err)
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("look up items: %w", err)
	}
	supplier := items[ids[0]].SupplierID
	for i, id := range ids {
		it, ok := items[id]
		switch {
		case !ok, it.Compound != "" && it.Compound != req.Compound: // "": see group
			return Campaign{}, &FieldError{Field: fmt.Sprintf("pack[%d].item_id", i), Reason: fmt.Sprintf("no item %q in compound %s", id, req.Compound)}
		case it.SupplierID != supplier:
			return Campaign{}, &FieldError{Field: fmt.Sprintf("pack[%d].item_id", i), Reason: fmt.Sprintf(
				"item %q is %s's, the pack's first item is %s's; a pack comes from one supplier (run a second campaign for the other's items)",
				id, it.SupplierID, supplier)}
		case it.Weighed:
			return Campaign{}, &FieldError{Field: fmt.Sprintf("pack[%d].item_id", i), Reason: fmt.Sprintf(
				"item %q is weighed; a pack holds counted items", id)}
		}
	}
	camp := Campaign{ID: CampaignID(req.Compound, req.RequestID), Compound: req.Compound, Name: req.Name, SupplierID: supplier,
		Pack: req.Pack, Target: req.Target, State: CampaignDraft, CreatedBy: c.Actor, CreatedAt: s.now()}
	key := RequestKey{Kind: "campaign", Scope: req.Compound, ID: req.RequestID, Hash: req.Hash()}
	return s.store.CreateCampaign(ctx, camp, key)
}

// Campaign returns a campaign of a compound the caller reaches.
func (s *Service) Campaign(ctx context.Context, c Caller, id string) (Campaign, error) {
	camp, err := s.store.Campaign(ctx, id)
	if err != nil {
		return Campaign{}, err
	}
	if !c.reachesCompound(camp.Compound) {
		return Campaign{}, NotFound("campaign", id)
	}
	return camp, nil
}

// Campaigns lists a compound's campaigns, newest first.
func (s *Service) Campaigns(ctx context.Context, c Caller, compound string) ([]Campaign, error) {
	if !c.reachesCompound(compound) {
		return nil, NotFound("compound", compound)
	}
	return s.store.Campaigns(ctx, compound)
}

// LaunchCampaign fixes a draft campaign's target households from the roster as it is now and
// starts making their packs in the background (the launcher, see MakePacks). Launching a
// launched campaign changes nothing, so a retry, or a second worker pressing the button, is
// harmless; the request id is accepted for the record but not needed for that.
func (s *Service) LaunchCampaign(ctx context.Context, c Caller, id string) (Campaign, error) {
	camp, err := s.Campaign(ctx, c, id)
	if err != nil {
		return Campaign{}, err
	}
	now, target := s.now(), camp.Target
	camp, err = s.store.LaunchCampaign(ctx, camp.ID, c.Actor, now, func(hs []Household) []Household {
		return slices.DeleteFunc(hs, func(h Household) bool { return !target.Includes(h, now) })
	})
	if err != nil {
		return Campaign{}, err
	}
	s.wakeLauncher()
	return camp, nil
}

// RetryMissedHouseholds gives every missed household of a launched campaign a fresh pack, made by
// the launcher like the first ones, which goes into the next round. A retry of the request
// returns the first count and moves nothing again.
func (s *Service) RetryMissedHouseholds(ctx context.Context, c Caller, requestID, id string) (Campaign, int, error) {
	camp, err := s.Campaign(ctx, c, id)
	if err != nil {
		return Campaign{}, 0, err
	}
	if camp.State == CampaignDraft {
		return Campaign{}, 0, fmt.Errorf("%w: campaign %s is a draft; launch it first", ErrCampaignState, id)
	}
	key := RequestKey{Kind: "retry-missed", Scope: camp.ID, ID: requestID, Hash: hash("retry-missed", camp.ID)}
	n, err := s.store.RetryMissed(ctx, camp.ID, key, s.now())
	if err != nil {
		return Campaign{}, 0, err
	}
	s.wakeLauncher()
	camp, err = s.store.Campaign(ctx, camp.ID)
	return camp, n, err
}

// CampaignRoster lists a campaign's targeted households matching f in address order (building,
// unit, floor, room), with the counts of the whole campaign.
func (s *Service) CampaignRoster(ctx context.Context, c Caller, id string, f RosterFilter) (CampaignRoster, error) {
	camp, err := s.Campaign(ctx, c, id)
	if err != nil {
		return CampaignRoster{}, err
	}
	all, err := s.store.CampaignRoster(ctx, camp.ID)
	if err != nil {
		return CampaignRoster{}, err
	}
	out := CampaignRoster{}
	out.Totals, out.Buildings = CountRoster(all)
	// In address order, as workers walk the compound; the targets are fixed at launch, so a page
	// goes on after the last household of the previous one.
	slices.SortFunc(all, byAddress)
	if f.After != "" {
		i := slices.IndexFunc(all, func(e RosterEntry) bool { return e.HouseholdID == f.After })
		if i < 0 {
			return CampaignRoster{}, &FieldError{Field: "page_token", Reason: "names no household of this campaign"}
		}
		all = all[i+1:]
	}
	for _, e := range all {
		status, _ := e.Status()
		switch {
		case f.Building != "" && e.Address.Building != f.Building:
		case len(f.Statuses) > 0 && !slices.Contains(f.Statuses, status):
		default:
			if f.Limit > 0 && len(out.Entries) == f.Limit {
				return out, nil
			}
			out.Entries = append(out.Entries, e)
		}
	}
	return out, nil
}

// ExportCampaignRoster writes a campaign's roster as CSV.
func (s *Service) ExportCampaignRoster(ctx context.Context, c Caller, id string) ([]byte, error) {
	camp, err := s.Campaign(ctx, c, id)
	if err != nil {
		return nil, err
	}
	all, err := s.store.CampaignRoster(ctx, camp.ID)
	if err != nil {
		return nil, err
	}
	return FormatCampaignRoster(all), nil
}

// launchBatch is how many pending packs the launcher takes at a time, and packConcurrency how
// many of them it reserves at once: enough to pack a compound of thousands in seconds without
// taking every connection of the supplier service.
const (
	launchBatch     = 256
	packConcurrency = 8
)

// MakePacks makes the pending packs of launching campaigns: for each household, reserve the pack
// at its supplier (free, confirmed at once) under a parcel id derived from the campaign,
// household and attempt, then store it as the household's order. It is safe to run anywhere at
// any time, and again after a crash at any point, because both steps are idempotent on those
// ids: the supplier holds one reservation per parcel id and the household one pack per attempt.
// A supplier's refusal (out of stock, not accepting orders) marks the household missed with the
// supplier's reason; an unreachable supplier leaves it pending for the next run. It returns how
// many packs it made or marked missed.
func (s *Service) MakePacks(ctx context.Context) (int, error) {
	pending, err := s.store.PendingPacks(ctx, launchBatch)
	if err != nil {
		return 0, err
	}
	var (
		mu       sync.Mutex
		done     int
		firstErr error
	)
	// Priority households go in a wave of their own before the rest (the store lists them
	// first), so that when stock runs short it is the old, the ill and the quarantined who get a
	// pack, whatever the order in which the concurrent reservations land.
	now := s.now()
	priority := slices.IndexFunc(pending, func(p PendingPack) bool { return !p.Household.Priority(now) })
	if priority < 0 {
		priority = len(pending)
	}
	for _, wave := range [][]PendingPack{pending[:priority], pending[priority:]} {
		sem := make(chan struct{}, packConcurrency)
		var wg sync.WaitGroup
		for _, p := range wave {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				err := s.makePack(ctx, p)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					done++
				} else if firstErr == nil {
					firstErr = err
				}
			})
		}
		wg.Wait()
	}
	if _, err := s.store.FinishLaunches(ctx, s.now()); err != nil && firstErr == nil {
		firstErr = err
	}
	return done, firstErr
}

func (s *Service) makePack(ctx context.Context, p PendingPack) error {
	camp, hh := p.Campaign, p.Household
	orderID := PackOrderID(camp.ID, hh.ID, p.Attempt)
	r := Reservation{ParcelID: ParcelID(orderID, camp.SupplierID, 0), OrderID: orderID, SupplierID: camp.SupplierID,
		HouseholdID: hh.ID, Address: hh.Address, Lines: camp.Pack, CampaignID: camp.ID, ActingFor: camp.LaunchedBy}
	got, err := s.suppliers.Reserve(ctx, r)
	switch {
	case errors.Is(err, ErrUnavailable):
		return fmt.Errorf("pack for %s of campaign %s: %w", hh.ID, camp.ID, err)
	case err != nil:
		// A definite refusal: nothing was reserved.
		return s.store.MarkMissed(ctx, camp.ID, hh.ID, p.Attempt, err.Error(), s.now())
	case !sameLines(camp.Pack, got.Lines):
		return fmt.Errorf("%w: supplier %s holds parcel %s with other lines", ErrConflict, camp.SupplierID, r.ParcelID)
	}
	now := s.now()
	pack := Parcel{ID: r.ParcelID, OrderID: orderID, SupplierID: camp.SupplierID, HouseholdID: hh.ID, State: Placed,
		Lines: got.Lines, UpdatedAt: now, Address: hh.Address, Priority: hh.Priority(now), Contactless: hh.Quarantined(now)}
	pack.Totals()
	requestID := fmt.Sprintf("campaign/%s/%d", camp.ID, p.Attempt)
	o := Order{ID: orderID, HouseholdID: hh.ID, Compound: camp.Compound, RequestID: requestID,
		RequestHash: hash("pack", camp.ID, hh.ID), Channel: ChannelCampaign, PlacedBy: camp.LaunchedBy,
		Proxy: camp.LaunchedBy.Role == RoleWorker, PlacedAt: now, CampaignID: camp.ID, Parcels: []Parcel{pack}}
	_, err = s.store.StorePack(ctx, o, camp.ID, p.Attempt)
	return err
}

// RunLauncher makes pending packs until ctx is done: whenever a launch or a retry wakes it, and
// every interval as the net under a wake-up lost to a crash or to another replica's launch.
func (s *Service) RunLauncher(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := s.MakePacks(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("campaign packs", "made", n, "err", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.launches:
		}
	}
}

func (s *Service) wakeLauncher() {
	select {
	case s.launches <- struct{}{}:
	default: // already woken
	}
}
