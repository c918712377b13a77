package supply

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestStanding(t *testing.T) {
	// 2026-11-02 07:59 in Shanghai is still 2026-11-01 23:59 UTC: the day is Shanghai's.
	now := time.Date(2026, 11, 1, 23, 59, 0, 0, time.UTC)
	licence := Credential{Kind: BusinessLicence, Number: "1", ExpiresOn: "2030-12-31"}
	food := func(on string) Credential { return Credential{Kind: FoodPermit, Number: "2", ExpiresOn: on} }
	drug := Credential{Kind: DrugPermit, Number: "3", ExpiresOn: "2030-12-31"}
	tests := []struct {
		name   string
		s      Supplier
		reason string // "" means accepting
	}{
		{"supermarket in order", Supplier{Kind: KindSupermarket, Credentials: []Credential{licence, food("2026-11-02")}}, ""},
		{"expired yesterday", Supplier{Kind: KindSupermarket, Credentials: []Credential{licence, food("2026-11-01")}},
			"food_permit expired on 2026-11-01"},
		{"nothing on record", Supplier{Kind: KindSupermarket}, "business_licence missing; food_permit missing"},
		{"pharmacy needs a drug permit", Supplier{Kind: KindPharmacy, Credentials: []Credential{licence, food("2030-01-01")}},
			"drug_permit missing"},
		{"pharmacy in order", Supplier{Kind: KindPharmacy, Credentials: []Credential{drug, licence}}, ""},
		{"suspended first", Supplier{Kind: KindSupermarket, Suspended: true, SuspensionReason: "rats",
			Credentials: []Credential{food("2020-01-01")}},
			"suspended: rats; business_licence missing; food_permit expired on 2020-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := tt.s.Standing(now)
			if ok != (tt.reason == "") || reason != tt.reason {
				t.Fatalf("Standing = %v, %q; want %q", ok, reason, tt.reason)
			}
			s := tt.s.WithStanding(now)
			if s.AcceptingOrders != ok || s.NotAcceptingReason != reason {
				t.Fatalf("WithStanding %+v", s)
			}
		})
	}
}

func TestNewParcelRefusedWhileNotAccepting(t *testing.T) {
	sup := freshmart
	sup.Suspended, sup.SuspensionReason = true, "inspection"
	items := catalog()
	_, _, err := NewParcel(reservation(ReservationLine{"rice", 1}), sup, items, nil, time.Now(), due(time.Now()))
	var se *SupplierError
	if !errors.Is(err, ErrNotAcceptingOrders) || !errors.As(err, &se) || se.SupplierID != "freshmart" ||
		err.Error() != "supplier freshmart is not accepting orders: suspended: inspection" {
		t.Fatalf("got %v", err)
	}
	if items["rice"].Stock != 5 {
		t.Fatal("a refused reservation took stock")
	}
}

func TestCredentialsUpdateValidate(t *testing.T) {
	valid := func() CredentialsUpdate {
		return CredentialsUpdate{SupplierID: "freshmart", Credentials: []Credential{
			{Kind: BusinessLicence, Number: "91310000", ExpiresOn: "2030-12-31"},
			{Kind: FoodPermit, Number: "JY1310", ExpiresOn: "2027-06-30"}}}
	}
	tests := []struct {
		name  string
		edit  func(*CredentialsUpdate)
		field string
	}{
		{"valid", func(*CredentialsUpdate) {}, ""},
		{"none: every credential removed", func(u *CredentialsUpdate) { u.Credentials = nil }, ""},
		{"already expired is a fact to record", func(u *CredentialsUpdate) { u.Credentials[1].ExpiresOn = "2020-01-01" }, ""},
		{"no supplier", func(u *CredentialsUpdate) { u.SupplierID = "" }, "supplier_id"},
		{"unknown kind", func(u *CredentialsUpdate) { u.Credentials[1].Kind = "Food_Permit" }, "credentials[1].kind"},
		{"duplicate kind", func(u *CredentialsUpdate) { u.Credentials[1].Kind = BusinessLicence }, "credentials[1].kind"},
		{"no number", func(u *CredentialsUpdate) { u.Credentials[0].Number = "" }, "credentials[0].number"},
		{"no date", func(u *CredentialsUpdate) { u.Credentials[0].ExpiresOn = "" }, "credentials[0].expires_on"},
		{"not a day", func(u *CredentialsUpdate) { u.Credentials[0].ExpiresOn = "2027-02-29" }, "credentials[0].expires_on"},
		{"time of day", func(u *CredentialsUpdate) { u.Credentials[0].ExpiresOn = "2027-02-28T00:00:00Z" }, "credentials[0].expires_on"},
		{"far future", func(u *CredentialsUpdate) { u.Credentials[0].ExpiresOn = "3000-01-01" }, "credentials[0].expires_on"},
		{"four credentials", func(u *CredentialsUpdate) {
			u.Credentials = append(u.Credentials, Credential{Kind: DrugPermit, Number: "x", ExpiresOn: "2030-01-01"},
				Credential{Kind: DrugPermit, Number: "y", ExpiresOn: "2030-01-01"})
		}, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := valid()
			tt.edit(&u)
			got := fields(u.Validate())
			if tt.field == "" && got != nil || tt.field != "" && !slices.Contains(got, tt.field) {
				t.Fatalf("violations %v, want %q", got, tt.field)
			}
		})
	}
}

func TestSuspensionChangeValidate(t *testing.T) {
	w := Actor{Role: RoleWorker, ID: "worker-li"}
	tests := []struct {
		c     SuspensionChange
		field string
	}{
		{SuspensionChange{SupplierID: "freshmart", Suspended: true, Reason: "inspection", Actor: w}, ""},
		{SuspensionChange{SupplierID: "freshmart", Actor: w}, ""}, // reinstating needs no reason
		{SuspensionChange{SupplierID: "freshmart", Suspended: true, Reason: "x", Actor: Actor{Role: RoleSystem, ID: "health-check"}}, ""},
		{SuspensionChange{SupplierID: "freshmart", Suspended: true, Actor: w}, "reason"},
		{SuspensionChange{Suspended: true, Reason: "x", Actor: w}, "supplier_id"},
		{SuspensionChange{SupplierID: "freshmart", Reason: "x"}, "actor.role"},
		{SuspensionChange{SupplierID: "freshmart", Actor: Actor{Role: RoleSupplier, ID: "freshmart"}}, "actor.role"},
		{SuspensionChange{SupplierID: "freshmart", Actor: Actor{Role: RoleResident, ID: "haixin-3-2-302"}}, "actor.role"},
		{SuspensionChange{SupplierID: "freshmart", Actor: Actor{Role: RoleWorker}}, "actor.id"},
	}
	for i, tt := range tests {
		got := fields(tt.c.Validate())
		if tt.field == "" && got != nil || tt.field != "" && !slices.Contains(got, tt.field) {
			t.Errorf("%d: violations %v, want %q", i, got, tt.field)
		}
	}
}
