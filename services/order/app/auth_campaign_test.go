package app_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/doorstep/doorstep/pkg/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// campaignAndNoticeRPCs are the community worker's RPCs, tested by
// TestWhoMayRunCampaignsAndNotices; TestWhoMayCallWhat covers the rest.
const campaignAndNoticeRPCs = 10

// Campaigns and notices are community workers' business (and services acting for them): every
// other caller is refused, and a worker of another compound finds nothing.
func TestWhoMayRunCampaignsAndNotices(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.campaignRoster()
	camp := e.createCampaign("setup", donatedPack, nil)
	e.launch(camp.CampaignId)
	e.waitLaunched(camp.CampaignId)
	n, err := e.client.PostNotice(e.worker, &orderv1.PostNoticeRequest{RequestId: "setup", Compound: "haixin", Title: "t", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}

	rpcs := []struct {
		name string
		call func(ctx context.Context, i int) error
	}{
		{"CreateCampaign", func(ctx context.Context, i int) error {
			_, err := e.client.CreateCampaign(ctx, &orderv1.CreateCampaignRequest{RequestId: fmt.Sprintf("c-%d", i), Compound: "haixin",
				Name: "masks", Pack: donatedPack})
			return err
		}},
		{"GetCampaign", func(ctx context.Context, _ int) error {
			_, err := e.client.GetCampaign(ctx, &orderv1.GetCampaignRequest{CampaignId: camp.CampaignId})
			return err
		}},
		{"ListCampaigns", func(ctx context.Context, _ int) error {
			_, err := e.client.ListCampaigns(ctx, &orderv1.ListCampaignsRequest{Compound: "haixin"})
			return err
		}},
		{"LaunchCampaign", func(ctx context.Context, _ int) error {
			_, err := e.client.LaunchCampaign(ctx, &orderv1.LaunchCampaignRequest{RequestId: "l", CampaignId: camp.CampaignId})
			return err
		}},
		{"RetryMissedHouseholds", func(ctx context.Context, i int) error {
			_, err := e.client.RetryMissedHouseholds(ctx, &orderv1.RetryMissedHouseholdsRequest{RequestId: fmt.Sprintf("r-%d", i),
				CampaignId: camp.CampaignId})
			return err
		}},
		{"GetCampaignRoster", func(ctx context.Context, _ int) error {
			_, err := e.client.GetCampaignRoster(ctx, &orderv1.GetCampaignRosterRequest{CampaignId: camp.CampaignId})
			return err
		}},
		{"ExportCampaignRoster", func(ctx context.Context, _ int) error {
			_, err := e.client.ExportCampaignRoster(ctx, &orderv1.ExportCampaignRosterRequest{CampaignId: camp.CampaignId})
			return err
		}},
		{"PostNotice", func(ctx context.Context, i int) error {
			_, err := e.client.PostNotice(ctx, &orderv1.PostNoticeRequest{RequestId: fmt.Sprintf("n-%d", i), Compound: "haixin",
				Title: "t", Text: "x"})
			return err
		}},
		{"WithdrawNotice", func(ctx context.Context, _ int) error {
			_, err := e.client.WithdrawNotice(ctx, &orderv1.WithdrawNoticeRequest{RequestId: "w", NoticeId: n.Notice.NoticeId})
			return err
		}},
		{"ListNotices", func(ctx context.Context, _ int) error {
			_, err := e.client.ListNotices(ctx, &orderv1.ListNoticesRequest{Compound: "haixin"})
			return err
		}},
	}
	if len(rpcs) != campaignAndNoticeRPCs {
		t.Fatalf("%d RPCs tested, want %d", len(rpcs), campaignAndNoticeRPCs)
	}
	haixin, yuyuan := testkit.InCompound("haixin"), testkit.InCompound("yuyuan")
	const w = typesv1.Role_ROLE_WORKER
	hh := "haixin-1-1-101"
	for i, tc := range []struct {
		caller string
		ctx    context.Context
		want   codes.Code
	}{
		{"a household", e.resident(hh), denied},
		{"worker of the compound", e.as(w, "worker-li", haixin), ok},
		{"city-wide worker", e.as(w, "worker-chen"), ok},
		{"worker of another compound", e.as(w, "worker-zhao", yuyuan), notFound},
		{"dispatcher", e.as(typesv1.Role_ROLE_DISPATCHER, "gate-wang", haixin), denied},
		{"supplier", e.as(typesv1.Role_ROLE_SUPPLIER, "staff-1", testkit.Supplier("donations"), haixin), denied},
		{"courier", e.as(typesv1.Role_ROLE_COURIER, "haixin-courier-01", haixin), denied},
		{"service", e.system(), ok},
		{"service for a household", e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(typesv1.Role_ROLE_RESIDENT, hh, haixin)), denied},
		{"service for a worker", e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(w, "worker-li", haixin)), ok},
		{"service for a worker of another compound", e.as(typesv1.Role_ROLE_SYSTEM, "gateway", onBehalfOf(w, "worker-zhao", yuyuan)), notFound},
		{"no identity", e.ctx, unauthentic},
	} {
		for _, rpc := range rpcs {
			t.Run(tc.caller+"/"+rpc.name, func(t *testing.T) {
				if err := rpc.call(tc.ctx, i); status.Code(err) != tc.want {
					t.Errorf("%s as %s: %v, want %v", rpc.name, tc.caller, err, tc.want)
				}
			})
		}
	}
	// Only the allowed callers created campaigns: setup's and one each for four callers.
	if got := e.count(`SELECT count(*) FROM campaigns`); got != 5 {
		t.Errorf("%d campaigns, want 5", got)
	}
}
