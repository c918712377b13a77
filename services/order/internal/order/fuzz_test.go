package order

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// rosterSeeds are sheets worth starting from; they are also committed as the corpus in
// testdata/fuzz, with inputs found while fuzzing.
func rosterSeeds() [][]byte {
	var out [][]byte
	for _, s := range []string{
		"\uFEFF楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至\r\n1,1,101,1,在住,2,13800138000,是,否,否,2022-04-20\r\n",
		"building,unit,room,phone\n1,2,302,+86 21 5555\na,1,1801,\n",
		"房号,楼号,单元\n302,1,1\n302,1,1\n9,9,9\n",
		"楼号,单元,房号\n1,1,\"1\"01\n1,1,\"10\n1\"\n1,1\n,,\n",
		"楼号,单元,房号,,状态\n1,1,101,,空置\n1,1,102,x,未知\n",
		"\xc2\xa5\xba\xc5,\xb5\xa5\xd4\xaa,\xb7\xbf\xba\xc5\n1,1,101\n",
		"\xff\xfe\x7f\x69\xf7\x53",
		"",
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzParseRoster feeds arbitrary bytes as a roster spreadsheet through the import's parser and
// validation (the site plan and the comparison with stored households included). Whatever comes
// in: no panic; every message can go into a proto string; every accepted row is a valid
// household; and the accepted rows, exported, import back unchanged.
func FuzzParseRoster(f *testing.F) {
	for _, b := range rosterSeeds() {
		f.Add(b)
	}
	current := []Household{{ID: "custom", Address: Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "101"},
		Occupancy: OccupancyOccupied, Residents: 2, UnstatedPriority: true}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := ParseRoster("haixin", data)
		r.CheckSitePlan(sitePlan)
		if len(r.Errors) > maxRowErrors+1 {
			t.Fatalf("%d errors", len(r.Errors))
		}
		for _, e := range r.Errors {
			if e.Line < 1 || !utf8.ValidString(e.Column) || !utf8.ValidString(e.Message) || e.Message == "" {
				t.Fatalf("error %+v", e)
			}
		}
		if r.DataRows < len(r.Rows) {
			t.Fatalf("%d data rows, %d accepted", r.DataRows, len(r.Rows))
		}
		var accepted []Household
		for _, row := range r.Rows {
			if fes := CheckHousehold(row.Household); len(fes) > 0 {
				t.Fatalf("accepted line %d with %v", row.Line, fes)
			}
			accepted = append(accepted, row.Household)
		}
		plan := r.Plan(current)
		if plan.Created+plan.Updated+plan.Unchanged != len(r.Rows) || len(plan.Writes) != plan.Created+plan.Updated {
			t.Fatalf("plan %+v of %d rows", plan, len(r.Rows))
		}

		again := ParseRoster("haixin", FormatRoster(accepted))
		again.CheckSitePlan(sitePlan)
		if len(again.Errors) > 0 || len(again.Rows) != len(accepted) {
			t.Fatalf("the export of the accepted rows does not import: %v", again.Errors)
		}
		var back []Household
		for _, row := range again.Rows {
			back = append(back, row.Household)
		}
		byAddress := func(a, b Household) int { return naturalCompare(addressKey(a.Address), addressKey(b.Address)) }
		slices.SortFunc(accepted, byAddress)
		slices.SortFunc(back, byAddress)
		if !slices.Equal(accepted, back) {
			t.Fatalf("round trip:\n%+v\n%+v", accepted, back)
		}
	})
}
