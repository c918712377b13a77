package pbconv

import (
	"strings"

	"github.com/doorstep/doorstep/services/order/internal/order"
	"google.golang.org/protobuf/types/known/timestamppb"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
)

// Flag maps a proto household flag; unspecified or unknown gives "" (invalid).
func Flag(f orderv1.HouseholdFlag) order.Flag {
	if f == orderv1.HouseholdFlag_HOUSEHOLD_FLAG_UNSPECIFIED {
		return ""
	}
	return order.Flag(strings.TrimPrefix(f.String(), "HOUSEHOLD_FLAG_"))
}

// FlagProto maps a domain flag.
func FlagProto(f order.Flag) orderv1.HouseholdFlag {
	return orderv1.HouseholdFlag(orderv1.HouseholdFlag_value["HOUSEHOLD_FLAG_"+string(f)])
}

// RosterStatus maps a proto roster status; unspecified or unknown gives "".
func RosterStatus(s orderv1.RosterStatus) order.RosterStatus {
	if s == orderv1.RosterStatus_ROSTER_STATUS_UNSPECIFIED {
		return ""
	}
	return order.RosterStatus(strings.TrimPrefix(s.String(), "ROSTER_STATUS_"))
}

// RosterStatusProto maps a domain roster status.
func RosterStatusProto(s order.RosterStatus) orderv1.RosterStatus {
	return orderv1.RosterStatus(orderv1.RosterStatus_value["ROSTER_STATUS_"+string(s)])
}

// CountsProto maps campaign counts.
func CountsProto(c order.CampaignCounts) *orderv1.CampaignCounts {
	return &orderv1.CampaignCounts{Targeted: int32(c.Targeted), Packing: int32(c.Packing), OnTheWay: int32(c.OnTheWay),
		Delivered: int32(c.Delivered), Failed: int32(c.Failed), Missed: int32(c.Missed)}
}

// CampaignProto maps a campaign.
func CampaignProto(c order.Campaign) *orderv1.Campaign {
	pack := make([]*orderv1.PackLine, len(c.Pack))
	for i, l := range c.Pack {
		pack[i] = &orderv1.PackLine{ItemId: l.ItemID, Quantity: l.Quantity}
	}
	flags := make([]orderv1.HouseholdFlag, len(c.Target.Flags))
	for i, f := range c.Target.Flags {
		flags[i] = FlagProto(f)
	}
	out := &orderv1.Campaign{CampaignId: c.ID, Compound: c.Compound, Name: c.Name, SupplierId: c.SupplierID, Pack: pack,
		Target:    &orderv1.CampaignTarget{Buildings: c.Target.Buildings, Flags: flags, IncludeUnknownOccupancy: c.Target.IncludeUnknown},
		State:     orderv1.CampaignState(orderv1.CampaignState_value["CAMPAIGN_STATE_"+string(c.State)]),
		CreatedBy: ActorProto(c.CreatedBy), CreatedAt: timestamppb.New(c.CreatedAt), Counts: CountsProto(c.Counts)}
	if !c.LaunchedAt.IsZero() {
		out.LaunchedAt = timestamppb.New(c.LaunchedAt)
	}
	return out
}

// RosterEntryProto maps one household of a campaign roster.
func RosterEntryProto(e order.RosterEntry) *orderv1.RosterEntry {
	status, reason := e.Status()
	out := &orderv1.RosterEntry{HouseholdId: e.HouseholdID, Address: AddressProto(e.Address), Status: RosterStatusProto(status),
		Reason: reason, ParcelId: e.ParcelID, Attempt: int32(e.Attempt), Priority: e.Priority,
		UpdatedAt: timestamppb.New(e.UpdatedAt)}
	if e.ParcelState != "" {
		out.ParcelState = StateProto(e.ParcelState)
	}
	return out
}

// NoticeProto maps a notice.
func NoticeProto(n order.Notice) *orderv1.Notice {
	out := &orderv1.Notice{NoticeId: n.ID, Compound: n.Compound, Title: n.Title, Text: n.Text, Buildings: n.Buildings,
		PostedBy: ActorProto(n.PostedBy), PostedAt: timestamppb.New(n.PostedAt)}
	if !n.WithdrawnAt.IsZero() {
		out.WithdrawnAt = timestamppb.New(n.WithdrawnAt)
	}
	return out
}
