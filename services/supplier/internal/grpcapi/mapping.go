package grpcapi

import (
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	"github.com/doorstep/doorstep/services/supplier/internal/protomap"
	"github.com/doorstep/doorstep/services/supplier/internal/supply"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func supplierMsg(s supply.Supplier) *supplierv1.Supplier {
	m := &supplierv1.Supplier{SupplierId: s.ID, Compound: s.Compound, Name: s.Name, Kind: string(s.Kind),
		Suspended: s.Suspended, SuspensionReason: s.SuspensionReason,
		AcceptingOrders: s.AcceptingOrders, NotAcceptingReason: s.NotAcceptingReason}
	for _, c := range s.Credentials {
		m.Credentials = append(m.Credentials, &supplierv1.Credential{Kind: string(c.Kind), Number: c.Number, ExpiresOn: c.ExpiresOn})
	}
	return m
}

func credentialsFromMsg(req *supplierv1.UpdateCredentialsRequest) supply.CredentialsUpdate {
	u := supply.CredentialsUpdate{SupplierID: req.GetSupplierId(), Credentials: make([]supply.Credential, len(req.GetCredentials()))}
	for i, c := range req.GetCredentials() {
		u.Credentials[i] = supply.Credential{Kind: supply.CredentialKind(c.GetKind()), Number: c.GetNumber(), ExpiresOn: c.GetExpiresOn()}
	}
	return u
}

// suspensionFromMsg reads everything but the request's actor: a suspension is recorded as the
// verified caller's.
func suspensionFromMsg(req *supplierv1.SetSupplierSuspendedRequest) supply.SuspensionChange {
	return supply.SuspensionChange{SupplierID: req.GetSupplierId(), Suspended: req.GetSuspended(), Reason: req.GetReason()}
}

func itemFromMsg(m *supplierv1.Item) supply.Item {
	return supply.Item{
		ID:                m.GetItemId(),
		SupplierID:        m.GetSupplierId(),
		Name:              m.GetName(),
		Unit:              m.GetUnit(),
		Weighed:           m.GetWeighed(),
		ReferencePriceFen: m.GetReferencePriceFen(),
		CurrentPriceFen:   m.GetCurrentPriceFen(),
		Stock:             m.GetStock(),
		RationPerDay:      m.GetRationPerDay(),
		Bundle:            m.GetBundle(),
		BundleContents:    m.GetBundleContents(),
		UnitWeightGrams:   m.GetUnitWeightGrams(),
		Category:          m.GetCategory(),
	}
}

func itemMsg(it supply.Item) *supplierv1.Item {
	return &supplierv1.Item{
		ItemId:            it.ID,
		SupplierId:        it.SupplierID,
		Compound:          it.Compound,
		Name:              it.Name,
		Unit:              it.Unit,
		Weighed:           it.Weighed,
		ReferencePriceFen: it.ReferencePriceFen,
		CurrentPriceFen:   it.CurrentPriceFen,
		Stock:             it.Stock,
		RationPerDay:      it.RationPerDay,
		Bundle:            it.Bundle,
		BundleContents:    it.BundleContents,
		UnitWeightGrams:   it.UnitWeightGrams,
		Category:          it.Category,
	}
}

func itemMsgs(list []supply.Item) []*supplierv1.Item {
	out := make([]*supplierv1.Item, len(list))
	for i, it := range list {
		out[i] = itemMsg(it)
	}
	return out
}

// parcelMsg is the supplier's view of p. total_fen is what the parcel costs now: the reserved
// total until the supplier confirms, the confirmed total after.
func parcelMsg(p supply.Parcel) *supplierv1.SupplierParcel {
	m := &supplierv1.SupplierParcel{
		ParcelId:    p.ID,
		OrderId:     p.OrderID,
		SupplierId:  p.SupplierID,
		HouseholdId: p.HouseholdID,
		Address:     protomap.Address(p.Address),
		State:       protomap.State(p.State),
		Lines:       make([]*supplierv1.ParcelLine, len(p.Lines)),
		TotalFen:    p.TotalFen,
		Reason:      p.Reason,
		UpdatedAt:   timestamppb.New(p.UpdatedAt),
		RoundId:     p.RoundID,
		CampaignId:  p.CampaignID,
	}
	if !p.ConfirmBy.IsZero() {
		m.ConfirmBy = timestamppb.New(p.ConfirmBy)
	}
	for i, l := range p.Lines {
		m.Lines[i] = &supplierv1.ParcelLine{
			ItemId:             l.ItemID,
			Name:               l.Name,
			Unit:               l.Unit,
			Weighed:            l.Weighed,
			Quantity:           l.Quantity,
			UnitPriceFen:       l.UnitPriceFen,
			AmountFen:          l.AmountFen,
			ConfirmedQuantity:  l.ConfirmedQuantity,
			ConfirmedAmountFen: l.ConfirmedAmountFen,
			UnitWeightGrams:    l.UnitWeightGrams,
		}
	}
	return m
}
