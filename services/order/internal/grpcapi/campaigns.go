package grpcapi

import (
	"context"
	"fmt"

	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/services/order/internal/order"
	"github.com/doorstep/doorstep/services/order/internal/pbconv"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
)

const defaultRosterPage = 200

// CreateCampaign implements orderv1.OrderServiceServer.
func (s *Server) CreateCampaign(ctx context.Context, req *orderv1.CreateCampaignRequest) (*orderv1.CreateCampaignResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_CreateCampaign_FullMethodName)
	if err != nil {
		return nil, err
	}
	r, err := campaignRequest(req)
	if err != nil {
		return nil, err
	}
	camp, err := s.svc.CreateCampaign(ctx, c, r)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.CreateCampaignResponse{Campaign: pbconv.CampaignProto(camp)}, nil
}

// campaignRequest validates the shape of a CreateCampaign request; the domain checks the rest
// (order.ValidateCampaign, and the items against the catalog).
func campaignRequest(req *orderv1.CreateCampaignRequest) (order.CampaignRequest, error) {
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkCompound(&v, req.GetCompound())
	r := order.CampaignRequest{RequestID: req.GetRequestId(), Compound: req.GetCompound(), Name: req.GetName()}
	for _, l := range req.GetPack() {
		r.Pack = append(r.Pack, order.BasketLine{ItemID: l.GetItemId(), Quantity: l.GetQuantity()})
	}
	t := req.GetTarget()
	r.Target = order.Target{Buildings: t.GetBuildings(), IncludeUnknown: t.GetIncludeUnknownOccupancy()}
	for i, f := range t.GetFlags() {
		flag := pbconv.Flag(f)
		v.Check(flag != "" && pbconv.FlagProto(flag) == f, fmt.Sprintf("target.flags[%d]", i), "is not a known flag")
		r.Target.Flags = append(r.Target.Flags, flag)
	}
	return r, v.Err()
}

func checkCompound(v *grpcx.Violations, compound string) {
	v.Check(events.ValidCompound(compound), "compound", "must be a compound slug such as \"haixin\"")
}

// GetCampaign implements orderv1.OrderServiceServer.
func (s *Server) GetCampaign(ctx context.Context, req *orderv1.GetCampaignRequest) (*orderv1.GetCampaignResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_GetCampaign_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkUUID(&v, req.GetCampaignId(), "campaign_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	camp, err := s.svc.Campaign(ctx, c, req.GetCampaignId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.GetCampaignResponse{Campaign: pbconv.CampaignProto(camp)}, nil
}

// ListCampaigns implements orderv1.OrderServiceServer.
func (s *Server) ListCampaigns(ctx context.Context, req *orderv1.ListCampaignsRequest) (*orderv1.ListCampaignsResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ListCampaigns_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkCompound(&v, req.GetCompound())
	if err := v.Err(); err != nil {
		return nil, err
	}
	list, err := s.svc.Campaigns(ctx, c, req.GetCompound())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	resp := &orderv1.ListCampaignsResponse{}
	for _, camp := range list {
		resp.Campaigns = append(resp.Campaigns, pbconv.CampaignProto(camp))
	}
	return resp, nil
}

// LaunchCampaign implements orderv1.OrderServiceServer.
func (s *Server) LaunchCampaign(ctx context.Context, req *orderv1.LaunchCampaignRequest) (*orderv1.LaunchCampaignResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_LaunchCampaign_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkUUID(&v, req.GetCampaignId(), "campaign_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	camp, err := s.svc.LaunchCampaign(ctx, c, req.GetCampaignId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.LaunchCampaignResponse{Campaign: pbconv.CampaignProto(camp)}, nil
}

// RetryMissedHouseholds implements orderv1.OrderServiceServer.
func (s *Server) RetryMissedHouseholds(ctx context.Context, req *orderv1.RetryMissedHouseholdsRequest) (*orderv1.RetryMissedHouseholdsResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_RetryMissedHouseholds_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkUUID(&v, req.GetCampaignId(), "campaign_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	camp, n, err := s.svc.RetryMissedHouseholds(ctx, c, req.GetRequestId(), req.GetCampaignId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.RetryMissedHouseholdsResponse{Campaign: pbconv.CampaignProto(camp), Retried: int32(n)}, nil
}

// GetCampaignRoster implements orderv1.OrderServiceServer.
func (s *Server) GetCampaignRoster(ctx context.Context, req *orderv1.GetCampaignRosterRequest) (*orderv1.GetCampaignRosterResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_GetCampaignRoster_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkUUID(&v, req.GetCampaignId(), "campaign_id")
	f := order.RosterFilter{Building: req.GetBuilding(), Limit: grpcx.PageSize(req.GetPageSize(), defaultRosterPage)}
	for i, st := range req.GetStatuses() {
		status := pbconv.RosterStatus(st)
		v.Check(status != "" && pbconv.RosterStatusProto(status) == st, fmt.Sprintf("statuses[%d]", i), "is not a known roster status")
		f.Statuses = append(f.Statuses, status)
	}
	after, ok := grpcx.ParsePageToken(req.GetPageToken(), req.GetCampaignId())
	v.Check(ok, "page_token", "is not a token of this listing")
	if err := v.Err(); err != nil {
		return nil, err
	}
	f.After = after
	f.Limit++ // one more tells whether there is a next page
	roster, err := s.svc.CampaignRoster(ctx, c, req.GetCampaignId(), f)
	if err != nil {
		return nil, s.err(ctx, err)
	}
	resp := &orderv1.GetCampaignRosterResponse{Totals: pbconv.CountsProto(roster.Totals)}
	entries := roster.Entries
	if size := f.Limit - 1; len(entries) > size {
		entries = entries[:size]
		resp.NextPageToken = grpcx.PageToken(req.GetCampaignId(), entries[size-1].HouseholdID)
	}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, pbconv.RosterEntryProto(e))
	}
	for _, b := range roster.Buildings {
		resp.Buildings = append(resp.Buildings, &orderv1.BuildingCounts{Building: b.Building, Counts: pbconv.CountsProto(b.Counts)})
	}
	return resp, nil
}

// ExportCampaignRoster implements orderv1.OrderServiceServer.
func (s *Server) ExportCampaignRoster(ctx context.Context, req *orderv1.ExportCampaignRosterRequest) (*orderv1.ExportCampaignRosterResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ExportCampaignRoster_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkUUID(&v, req.GetCampaignId(), "campaign_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	csv, err := s.svc.ExportCampaignRoster(ctx, c, req.GetCampaignId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.ExportCampaignRosterResponse{Csv: csv}, nil
}

// PostNotice implements orderv1.OrderServiceServer.
func (s *Server) PostNotice(ctx context.Context, req *orderv1.PostNoticeRequest) (*orderv1.PostNoticeResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_PostNotice_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkCompound(&v, req.GetCompound())
	if err := v.Err(); err != nil {
		return nil, err
	}
	n, err := s.svc.PostNotice(ctx, c, order.NoticeRequest{RequestID: req.GetRequestId(), Compound: req.GetCompound(),
		Title: req.GetTitle(), Text: req.GetText(), Buildings: req.GetBuildings()})
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.PostNoticeResponse{Notice: pbconv.NoticeProto(n)}, nil
}

// WithdrawNotice implements orderv1.OrderServiceServer.
func (s *Server) WithdrawNotice(ctx context.Context, req *orderv1.WithdrawNoticeRequest) (*orderv1.WithdrawNoticeResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_WithdrawNotice_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkRequestID(&v, req.GetRequestId())
	checkUUID(&v, req.GetNoticeId(), "notice_id")
	if err := v.Err(); err != nil {
		return nil, err
	}
	n, err := s.svc.WithdrawNotice(ctx, c, req.GetNoticeId())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	return &orderv1.WithdrawNoticeResponse{Notice: pbconv.NoticeProto(n)}, nil
}

// ListNotices implements orderv1.OrderServiceServer.
func (s *Server) ListNotices(ctx context.Context, req *orderv1.ListNoticesRequest) (*orderv1.ListNoticesResponse, error) {
	c, err := caller(ctx, orderv1.OrderService_ListNotices_FullMethodName)
	if err != nil {
		return nil, err
	}
	var v grpcx.Violations
	checkCompound(&v, req.GetCompound())
	if err := v.Err(); err != nil {
		return nil, err
	}
	list, err := s.svc.Notices(ctx, c, req.GetCompound())
	if err != nil {
		return nil, s.err(ctx, err)
	}
	resp := &orderv1.ListNoticesResponse{}
	for _, n := range list {
		resp.Notices = append(resp.Notices, pbconv.NoticeProto(n))
	}
	return resp, nil
}
