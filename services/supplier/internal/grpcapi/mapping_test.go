package grpcapi

import (
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/protobuf/proto"
)

// A full page of ListParcels stays far under gRPC's 4 MB default message limit, with room for
// names and reasons longer than these: a whole day's queue of a large compound would not.
func TestFullParcelsPageFitsAMessage(t *testing.T) {
	now := time.Date(2026, 4, 2, 9, 30, 0, 0, time.UTC)
	line := func(id, name string, weighed bool) supply.Line {
		return supply.Line{ItemID: id, Name: name, Unit: "bag", Weighed: weighed, Quantity: 2500, UnitPriceFen: 4990,
			AmountFen: 12475, UnitWeightGrams: 5000, ConfirmedQuantity: 2480, ConfirmedAmountFen: 12375}
	}
	p := supply.Parcel{ID: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f09", OrderID: "0190a6d2-7a3c-7cc3-8a11-3d2a2b7c9f10",
		SupplierID: "freshmart", Compound: "haixin", HouseholdID: "haixin-12-2-1803",
		Address: supply.Address{Compound: "haixin", Building: "12", Unit: "2", Floor: 18, Room: "1803"},
		State:   supply.StateConfirmed, TotalFen: 37425, Reason: "", CreatedAt: now, UpdatedAt: now, Day: now,
		RoundID: "haixin-2026-04-02-pm", ConfirmBy: now.Add(4 * time.Hour), CampaignID: "",
		Lines: []supply.Line{line("fm-rice-5kg", "东北大米 5kg Rice", false), line("fm-pork", "猪肉 Pork", true), line("fm-eggs-30", "鲜鸡蛋 30枚 Eggs", false)}}
	page := &supplierv1.ListParcelsResponse{NextPageToken: "x"}
	for range grpcx.MaxPageSize {
		page.Parcels = append(page.Parcels, parcelMsg(p))
	}
	size := proto.Size(page)
	t.Logf("a page of %d parcels of 3 lines: %d bytes", grpcx.MaxPageSize, size)
	if size > 1<<20 {
		t.Errorf("a page of %d parcels is %d bytes; a quarter of the 4 MB limit is the budget", grpcx.MaxPageSize, size)
	}
}
