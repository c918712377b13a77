package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"golang.org/x/sync/errgroup"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// campaignHouseholds is how many households the crash test's campaign reaches: enough that the
// launch takes seconds, so the kills land in the middle of it.
const campaignHouseholds = 1200

// TestCampaignLaunchSurvivesKills launches a free pack to 1,200 households and kills the order
// service (kill -9) while the packs are being made, then the supplier service, restarting each.
// Afterwards every household has exactly one pack, the supplier holds exactly one reservation per
// household and gave out exactly that much stock, and every pack reached CONFIRMED in the order
// service (the supplier's confirmation, which can arrive before the pack is stored, was applied).
func TestCampaignLaunchSurvivesKills(t *testing.T) {
	sys := startSystem(t, "supplier", "order")
	w := seed(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seedAs := as(ctx, sys.Keys, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "faulttest-seed"})
	ord := orderv1.NewOrderServiceClient(dial(t, sys.Replicas("order")[0].Addr))
	sup := supplierv1.NewSupplierServiceClient(dial(t, sys.Replicas("supplier")[0].Addr))

	// More households: buildings 11–20, 60 flats each (the seed's 60 are occupied too).
	g, gctx := errgroup.WithContext(seedAs)
	g.SetLimit(16)
	for i := range campaignHouseholds - len(w.households) {
		b, f, r := 11+i/60, 1+i%60/4, 1+i%4
		g.Go(func() error {
			_, err := ord.UpsertHousehold(gctx, &orderv1.UpsertHouseholdRequest{RequestId: fmt.Sprintf("campaign-hh-%d", i),
				Household: &orderv1.Household{Address: &typesv1.Address{Compound: compound, Building: fmt.Sprint(b), Unit: "1",
					Floor: int32(f), Room: fmt.Sprintf("%d%02d", f, r)}, Residents: 1, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED}})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("households: %v", err)
	}

	// The first supermarket gives two of its item to every household.
	item := w.items[0]
	stockBefore := stockOf(ctx, t, sup, seedAs, item)
	worker := as(ctx, sys.Keys, auth.Identity{Role: typesv1.Role_ROLE_WORKER, Subject: "worker.faulttest", Compound: compound})
	created, err := ord.CreateCampaign(worker, &orderv1.CreateCampaignRequest{RequestId: "crash", Compound: compound, Name: "free boxes",
		Pack: []*orderv1.PackLine{{ItemId: item.item, Quantity: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetCampaign().GetCampaignId()
	if _, err := ord.LaunchCampaign(worker, &orderv1.LaunchCampaignRequest{RequestId: "go", CampaignId: id}); err != nil {
		t.Fatal(err)
	}
	packs := func() int {
		var n int
		if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM orders.orders WHERE campaign_id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, kill := range []struct {
		kind  string
		after int
	}{{"order", 300}, {"supplier", 700}} {
		if err := waitFor(ctx, func() bool { return packs() >= kill.after }); err != nil {
			t.Fatalf("waiting for %d packs: %v", kill.after, err)
		}
		svc := sys.Replicas(kill.kind)[0]
		svc.Kill()
		at := packs()
		var reserved int
		if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM supplier.parcels WHERE campaign_id = $1::text`, id).Scan(&reserved); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		if err := sys.StartService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s killed at %d packs stored, %d reserved at the supplier (%d in between); serving again after %s",
			kill.kind, at, reserved, reserved-at, time.Since(down).Round(time.Millisecond))
		if at >= campaignHouseholds {
			t.Fatalf("the launch was over before the %s was killed: the test needs more households", kill.kind)
		}
	}

	// A fresh identity: the first may have expired if the launch was slow.
	worker = as(ctx, sys.Keys, auth.Identity{Role: typesv1.Role_ROLE_WORKER, Subject: "worker.faulttest", Compound: compound})
	var camp *orderv1.Campaign
	if err := waitFor(ctx, func() bool {
		resp, err := ord.GetCampaign(worker, &orderv1.GetCampaignRequest{CampaignId: id})
		if err != nil {
			return false // the order service may still be starting
		}
		camp = resp.GetCampaign()
		if camp.GetState() != orderv1.CampaignState_CAMPAIGN_STATE_LAUNCHED || camp.GetCounts().GetPacking() != campaignHouseholds {
			return false
		}
		var unconfirmed int
		if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM orders.parcels p JOIN orders.orders o USING (order_id)
			WHERE o.campaign_id = $1 AND p.state <> 'CONFIRMED'`, id).Scan(&unconfirmed); err != nil {
			t.Fatal(err)
		}
		return unconfirmed == 0
	}); err != nil {
		t.Fatalf("campaign never launched with every pack confirmed: %v (%v)", err, camp)
	}

	var households, orders, supplierParcels, supplierHouseholds, unconfirmed int
	if err := sys.DB.QueryRow(ctx, `SELECT
			(SELECT count(DISTINCT household_id) FROM orders.orders WHERE campaign_id = $1),
			(SELECT count(*) FROM orders.orders WHERE campaign_id = $1),
			(SELECT count(*) FROM supplier.parcels WHERE campaign_id = $1::text),
			(SELECT count(DISTINCT household_id) FROM supplier.parcels WHERE campaign_id = $1::text),
			(SELECT count(*) FROM orders.parcels p JOIN orders.orders o USING (order_id) WHERE o.campaign_id = $1 AND p.state <> 'CONFIRMED')`,
		id).Scan(&households, &orders, &supplierParcels, &supplierHouseholds, &unconfirmed); err != nil {
		t.Fatal(err)
	}
	if households != campaignHouseholds || orders != campaignHouseholds || supplierParcels != campaignHouseholds ||
		supplierHouseholds != campaignHouseholds || unconfirmed != 0 {
		t.Errorf("packs: %d households, %d orders; supplier: %d parcels for %d households; %d not confirmed; want %d of each and 0",
			households, orders, supplierParcels, supplierHouseholds, unconfirmed, campaignHouseholds)
	}
	if used := stockBefore - stockOf(ctx, t, sup, seedAs, item); used != 2*campaignHouseholds {
		t.Errorf("the supplier gave out %d units, want %d", used, 2*campaignHouseholds)
	}
	// The confirmations that came before their packs were stored were retried, not given up on.
	dead, err := readStream(ctx, connect(t, sys), events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 {
		t.Errorf("%d dead letters: %v", len(dead), dead[0])
	}
	requireRunning(t, sys, "supplier", "order")
}

func stockOf(ctx context.Context, t *testing.T, sup supplierv1.SupplierServiceClient, as context.Context, it supplierItem) int64 {
	t.Helper()
	resp, err := sup.BatchGetItems(as, &supplierv1.BatchGetItemsRequest{ItemIds: []string{it.item}})
	if err != nil || len(resp.GetItems()) != 1 {
		t.Fatalf("item %s: %v", it.item, err)
	}
	return resp.GetItems()[0].GetStock()
}
