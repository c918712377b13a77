package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

func TestHouseholds(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := e.household()
	if id != "haixin-3-2-302" {
		t.Fatalf("generated id %q, want haixin-3-2-302", id)
	}
	got, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: id})
	if err != nil {
		t.Fatal(err)
	}
	if h := got.Household; !h.Quarantined || !h.Priority || h.Address.Floor != 3 || h.Address.Room != "302" {
		t.Errorf("household %v", h)
	}

	t.Run("retry returns the first result, reuse is refused", func(t *testing.T) {
		again := e.household()
		if again != id {
			t.Errorf("retry gave %q", again)
		}
		_, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: "hh-1", Household: &orderv1.Household{
			HouseholdId: id, Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}, Residents: 4}})
		wantCode(t, err, codes.AlreadyExists)
	})

	t.Run("update keeps the id", func(t *testing.T) {
		resp, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: "hh-2", Household: &orderv1.Household{
			HouseholdId: id, Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"},
			Residents: 2, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Household.Residents != 2 || resp.Household.Quarantined {
			t.Errorf("updated household %v", resp.Household)
		}
	})

	t.Run("one room is one household", func(t *testing.T) {
		_, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
			HouseholdId: "someone-else", Address: &typesv1.Address{Compound: "haixin", Building: "3", Unit: "2", Floor: 3, Room: "302"}}})
		wantCode(t, err, codes.AlreadyExists)
	})

	t.Run("not found", func(t *testing.T) {
		_, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-9-9-999"})
		wantCode(t, err, codes.NotFound)
	})

	t.Run("validation names the fields", func(t *testing.T) {
		tests := []struct {
			name  string
			h     *orderv1.Household
			field string
		}{
			{"no household", nil, "household"},
			{"no address", &orderv1.Household{}, "household.address"},
			{"bad compound", &orderv1.Household{Address: &typesv1.Address{Compound: "Hai Xin", Building: "1", Unit: "1", Floor: 1, Room: "101"}}, "household.address.compound"},
			{"no building", &orderv1.Household{Address: &typesv1.Address{Compound: "haixin", Unit: "1", Floor: 1, Room: "101"}}, "household.address.building"},
			{"no unit", &orderv1.Household{Address: &typesv1.Address{Compound: "haixin", Building: "1", Floor: 1, Room: "101"}}, "household.address.unit"},
			{"no room", &orderv1.Household{Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1}}, "household.address.room"},
			{"room with a dash", &orderv1.Household{Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "1-01"}}, "household.address.room"},
			{"floor 0", &orderv1.Household{Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 0, Room: "101"}}, "household.address.floor"},
			{"floor 61", &orderv1.Household{Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 61, Room: "101"}}, "household.address.floor"},
			{"negative residents", &orderv1.Household{Residents: -1, Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "101"}}, "household.residents"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: tt.h})
				wantCode(t, err, codes.InvalidArgument)
				if _, ok := grpcx.FieldViolations(err)[tt.field]; !ok {
					t.Errorf("violations %v do not name %s", grpcx.FieldViolations(err), tt.field)
				}
			})
		}
		// A change without a request id could be applied twice by a retry (SPEC.md, "Idempotency").
		_, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{Household: &orderv1.Household{
			Address: &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "199"}}})
		if _, ok := grpcx.FieldViolations(err)["request_id"]; !ok {
			t.Errorf("without a request id: %v", err)
		}
		if n := e.count(`SELECT count(*) FROM households WHERE room = '199'`); n != 0 {
			t.Errorf("%d households written without a request id", n)
		}
	})

	t.Run("list pages through a compound", func(t *testing.T) {
		for i := 1; i <= 4; i++ {
			_, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
				Address: &typesv1.Address{Compound: "haixin", Building: "5", Unit: "1", Floor: int32(i), Room: fmt.Sprintf("%d01", i)}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		// Another compound's household, registered by a city-wide worker.
		if _, err := e.client.UpsertHousehold(e.as(typesv1.Role_ROLE_WORKER, "worker-chen"), &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
			Address: &typesv1.Address{Compound: "other", Building: "1", Unit: "1", Floor: 1, Room: "101"}}}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		token := ""
		for pages := 0; ; pages++ {
			resp, err := e.client.ListHouseholds(e.worker, &orderv1.ListHouseholdsRequest{Compound: "haixin", PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range resp.Households {
				ids = append(ids, h.HouseholdId)
			}
			if token = resp.NextPageToken; token == "" {
				break
			}
			if pages > 5 {
				t.Fatal("paging does not end")
			}
		}
		want := []string{"haixin-3-2-302", "haixin-5-1-101", "haixin-5-1-201", "haixin-5-1-301", "haixin-5-1-401"}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("listed %v, want %v", ids, want)
		}
		all, err := e.client.ListHouseholds(e.worker, &orderv1.ListHouseholdsRequest{Compound: "haixin"})
		if err != nil || len(all.Households) != 5 || all.NextPageToken != "" {
			t.Errorf("default page: %v %v", all, err)
		}
		_, err = e.client.ListHouseholds(e.worker, &orderv1.ListHouseholdsRequest{Compound: "haixin", PageToken: "garbage!"})
		wantCode(t, err, codes.InvalidArgument)
		if _, ok := grpcx.FieldViolations(err)["page_token"]; !ok {
			t.Errorf("bad token: %v", err)
		}
		_, err = e.client.ListHouseholds(e.worker, &orderv1.ListHouseholdsRequest{Compound: "haixin", PageSize: -1})
		if _, ok := grpcx.FieldViolations(err)["page_size"]; !ok {
			t.Errorf("negative page size: %v", err)
		}
	})
}

func TestHouseholdRosterFields(t *testing.T) {
	t.Parallel()
	e := start(t)
	addr := func(room string) *typesv1.Address {
		return &typesv1.Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: room}
	}
	upsert := func(h *orderv1.Household) *orderv1.Household {
		t.Helper()
		resp, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: h})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Household
	}

	t.Run("recorded fields come back with what they imply", func(t *testing.T) {
		in := &orderv1.Household{Address: addr("101"), Residents: 1, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED,
			Phone: " 138 0013 8000 ", LivesAlone: true, ChronicallyIll: true, QuarantinedUntil: "2022-04-12"}
		got := upsert(in)
		want := &orderv1.Household{HouseholdId: "haixin-1-1-101", Address: addr("101"), Residents: 1,
			Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED, Phone: "138 0013 8000", LivesAlone: true, ChronicallyIll: true,
			QuarantinedUntil: "2022-04-12", Priority: true, Quarantined: true, Occupied: true}
		if !proto.Equal(got, want) {
			t.Errorf("upserted\n%v\nwant\n%v", got, want)
		}
		read, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-1-1-101"})
		if err != nil || !proto.Equal(read.Household, want) {
			t.Errorf("read %v %v", read, err)
		}
	})

	t.Run("output-only fields are derived, not taken", func(t *testing.T) {
		got := upsert(&orderv1.Household{Address: addr("102"), Priority: true, Quarantined: true, Occupied: true})
		if got.Priority || got.Quarantined || got.Occupied || got.Occupancy != orderv1.Occupancy_OCCUPANCY_UNKNOWN {
			t.Errorf("household %v", got)
		}
		got = upsert(&orderv1.Household{Address: addr("103"), Occupancy: orderv1.Occupancy_OCCUPANCY_EMPTY})
		if got.Occupied || got.Occupancy != orderv1.Occupancy_OCCUPANCY_EMPTY {
			t.Errorf("empty flat %v", got)
		}
	})

	t.Run("validation names the fields", func(t *testing.T) {
		tests := []struct {
			name  string
			h     *orderv1.Household
			field string
		}{
			{"phone with letters", &orderv1.Household{Address: addr("104"), Phone: "call me"}, "household.phone"},
			{"phone as a spreadsheet shows it", &orderv1.Household{Address: addr("104"), Phone: "1.38001E+10"}, "household.phone"},
			{"date with slashes", &orderv1.Household{Address: addr("104"), QuarantinedUntil: "2022/04/20"}, "household.quarantined_until"},
			{"no such date", &orderv1.Household{Address: addr("104"), QuarantinedUntil: "2022-13-01"}, "household.quarantined_until"},
			{"unknown occupancy", &orderv1.Household{Address: addr("104"), Occupancy: 9}, "household.occupancy"},
			{"too many residents", &orderv1.Household{Address: addr("104"), Residents: 100}, "household.residents"},
		}
		for _, tt := range tests {
			_, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: tt.h})
			wantCode(t, err, codes.InvalidArgument)
			if _, ok := grpcx.FieldViolations(err)[tt.field]; !ok {
				t.Errorf("%s: violations %v do not name %s", tt.name, grpcx.FieldViolations(err), tt.field)
			}
		}
	})

	t.Run("a quarantine ends by itself", func(t *testing.T) {
		hh := e.household() // over 80, quarantined until 2022-04-20
		o := e.place("req-1", hh, basket())
		p := parcelOf(o, "pharmacy")
		if !p.Priority || !p.Contactless {
			t.Fatalf("parcel while quarantined: priority %v contactless %v", p.Priority, p.Contactless)
		}
		// 2022-04-10 08:00 in Shanghai + 10 days 16 hours is 2022-04-21 00:00: the day after.
		e.clock.advance(10*24*time.Hour + 16*time.Hour)
		got, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: hh})
		if err != nil {
			t.Fatal(err)
		}
		if got.Household.Quarantined || !got.Household.Priority {
			t.Errorf("after the quarantine: %v", got.Household)
		}
		read, err := e.client.GetParcel(e.dispatcher, &orderv1.GetParcelRequest{ParcelId: p.ParcelId})
		if err != nil {
			t.Fatal(err)
		}
		if read.Parcel.Contactless || !read.Parcel.Priority {
			t.Errorf("parcel after the quarantine: priority %v contactless %v", read.Parcel.Priority, read.Parcel.Contactless)
		}
	})
}
