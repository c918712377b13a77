package order

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// sitePlan is haixin as the roster tests know it.
var sitePlan = []Building{
	{Name: "1", Units: []string{"1", "2"}, Floors: 6},
	{Name: "2", Units: []string{"1"}, Floors: 6},
	{Name: "A", Units: []string{"1"}, Floors: 18},
}

func TestParseRosterReadsTheCommunitysSheet(t *testing.T) {
	// A BOM and CRLF as a spreadsheet writes them; columns in the sheet's own order; the floor
	// left out (room/100), a trailing line of commas, a quoted phone with a comma-free value.
	data := "\uFEFF房号,楼号,单元,状态,人数,电话,80岁以上,独居,慢性病,隔离至\r\n" +
		"302,1,2,在住,2,\"138 0013 8000\",是,否,,2022-04-20\r\n" +
		"101 , 1 ,1,空置,0,,N,n,0,\r\n" +
		"1801,a,1,未知,1,+86-21-5555,Y,yes,1,2022/4/9\r\n" +
		",,,,,,,,,\r\n"
	r := ParseRoster("haixin", []byte(data))
	r.CheckSitePlan(sitePlan)
	if len(r.Errors) != 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	if r.DataRows != 3 || len(r.Rows) != 3 {
		t.Fatalf("%d data rows, %d accepted, want 3", r.DataRows, len(r.Rows))
	}
	want := []RosterRow{
		{Line: 2, Household: Household{Address: Address{Compound: "haixin", Building: "1", Unit: "2", Floor: 3, Room: "302"},
			Residents: 2, Occupancy: OccupancyOccupied, Phone: "138 0013 8000", Over80: true, QuarantinedUntil: "2022-04-20"}},
		{Line: 3, Household: Household{Address: Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "101"},
			Occupancy: OccupancyEmpty}},
		// The site plan's spelling of building "A"; the spreadsheet's date format.
		{Line: 4, Household: Household{Address: Address{Compound: "haixin", Building: "A", Unit: "1", Floor: 18, Room: "1801"},
			Residents: 1, Occupancy: OccupancyUnknown, Phone: "+86-21-5555", Over80: true, LivesAlone: true, ChronicallyIll: true,
			QuarantinedUntil: "2022-04-09"}},
	}
	if !slices.Equal(r.Rows, want) {
		t.Errorf("rows\n%+v\nwant\n%+v", r.Rows, want)
	}
}

func TestParseRosterEnglishHeaders(t *testing.T) {
	data := "Building,UNIT,room,floor,occupancy,residents,phone,over_80,lives_alone,chronically_ill,quarantined_until\n" +
		"2,1,5,1,occupied,3,,no,YES,0,\n"
	r := ParseRoster("haixin", []byte(data))
	if len(r.Errors) != 0 || len(r.Rows) != 1 {
		t.Fatalf("rows %v errors %v", r.Rows, r.Errors)
	}
	h := r.Rows[0].Household
	if h.Address.Floor != 1 || h.Address.Room != "5" || !h.LivesAlone || h.Occupancy != OccupancyOccupied || h.Residents != 3 {
		t.Errorf("household %+v", h)
	}
	// Messages name the columns as the sheet does.
	r = ParseRoster("haixin", []byte("building,unit,room\n1,1,x\n"))
	if len(r.Errors) != 1 || r.Errors[0].Column != "floor" {
		t.Errorf("errors %v, want one on column floor", r.Errors)
	}
}

func TestParseRosterReportsEveryRejectedRow(t *testing.T) {
	header := "楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至\n"
	rows := []string{
		"1,1,101,1,在住,1,,否,否,否,",           // 2: fine
		"1,1,102,1,在住",                     // 3: short
		"1,1,101,1,在住,1,,否,否,否,",           // 4: duplicate of line 2
		"9,1,901,1,在住,1,,否,否,否,",           // 5: no building 9
		"1,7,103,1,在住,1,,否,否,否,",           // 6: no unit 7
		"1,1,104,x,在住,1,,否,否,否,",           // 7: floor not a number
		"1,1,105,1,住,1,,否,否,否,",            // 8: occupancy
		"1,1,106,1,在住,two,,否,否,否,",         // 9: residents
		"1,1,107,1,在住,1,1.38E+10,否,否,否,",   // 10: phone
		"1,1,108,1,在住,1,,maybe,否,否,",       // 11: yes/no
		"1,1,109,1,在住,1,,否,否,否,20.4.2022",  // 12: date
		"1,1,110,1,在住,1,,否,否,否,2022-02-30", // 13: no such day
		"1,1,1-11,1,在住,1,,否,否,否,",          // 14: room with a dash
		"1,1,112,9,在住,1,,否,否,否,",           // 15: above the top floor
		"1,1,\xb7\xbf,1,在住,1,,否,否,否,",      // 16: GBK bytes
		"1,1,\"11\"3,1,在住,1,,否,否,否,",       // 17: stray quote
		"2,1,1,,在住,1,,否,否,否,",              // 18: room 1 gives floor 0
		"1,1,abc,,在住,1,,否,否,否,",            // 19: room abc gives no floor
		"1,1,120,1,在住,100,x,否,否,否,",        // 20: two bad columns
	}
	r := ParseRoster("haixin", []byte(header+strings.Join(rows, "\n")+"\n"))
	r.CheckSitePlan(sitePlan)
	want := []struct {
		line   int
		column string
		msg    string
	}{
		{3, "", "malformed row: 5 fields, the header has 11"},
		{4, "房号", "building 1 unit 1 room 101 is also on line 2"},
		{5, "楼号", "no building 9 in the site plan of haixin (buildings: 1, 2, A)"},
		{6, "单元", "building 1 has no unit 7 (units: 1, 2)"},
		{7, "楼层", `"x" is not a whole number`},
		{8, "状态", `"住" is not 在住, 空置 or 未知`},
		{9, "人数", `"two" is not a whole number`},
		{10, "电话", "must be 3 to 20 digits"},
		{11, "80岁以上", `"maybe" is not 是 or 否`},
		{12, "隔离至", `"20.4.2022" is not a date YYYY-MM-DD`},
		{13, "隔离至", `"2022-02-30" is not a date YYYY-MM-DD`},
		{14, "房号", "must be 1 to 16 letters or digits"},
		{15, "楼层", "floor 9, but building 1 has 6 floors"},
		{16, "房号", "not UTF-8; save the spreadsheet as CSV UTF-8"},
		{17, "", "malformed row: "},
		{18, "楼层", "room 1 does not say the floor (room/100 = 0); fill in 楼层"},
		{19, "楼层", `room "abc" is not a number to derive the floor from`},
		{20, "人数", "must be 0 to 99"},
		{20, "电话", "must be 3 to 20 digits"},
	}
	if len(r.Errors) != len(want) {
		t.Fatalf("%d errors, want %d:\n%s", len(r.Errors), len(want), formatErrors(r.Errors))
	}
	for i, w := range want {
		e := r.Errors[i]
		if e.Line != w.line || e.Column != w.column || !strings.Contains(e.Message, w.msg) {
			t.Errorf("error %d = %d %q %q, want %d %q containing %q", i, e.Line, e.Column, e.Message, w.line, w.column, w.msg)
		}
	}
	if r.DataRows != len(rows) || len(r.Rows) != 1 || r.Rows[0].Line != 2 {
		t.Errorf("data rows %d, accepted %v", r.DataRows, r.Rows)
	}
}

func formatErrors(errs []RowError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  %d %q %q\n", e.Line, e.Column, e.Message)
	}
	return b.String()
}

func TestParseRosterHeader(t *testing.T) {
	tests := []struct {
		name, data string
		column     string
		msg        string
	}{
		{"empty", "", "", "the file is empty"},
		{"only a BOM", "\uFEFF", "", "the file is empty"},
		{"GBK", "\xc2\xa5\xba\xc5,\xb5\xa5\xd4\xaa,\xb7\xbf\xba\xc5\n", "", "not UTF-8; save the spreadsheet as CSV UTF-8"},
		{"UTF-16", "\xff\xfe\x7f\x69\xf7\x53", "", "UTF-16 text; save the spreadsheet as CSV UTF-8"},
		{"no room", "楼号,单元,楼层\n", "房号", "the file has no 房号 (room) column, which is required"},
		{"unknown", "楼号,单元,房号,姓名\n", "姓名", "unknown column"},
		{"twice", "楼号,单元,房号,room\n", "room", "column 房号 appears twice"},
		{"bad quote", "楼号,\"单元,房号\n", "", "cannot read the header"},
	}
	for _, tt := range tests {
		r := ParseRoster("haixin", []byte(tt.data))
		if len(r.Errors) != 1 {
			t.Errorf("%s: errors %v, want one", tt.name, r.Errors)
			continue
		}
		if e := r.Errors[0]; e.Line != 1 || e.Column != tt.column || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s: %d %q %q, want line 1 %q containing %q", tt.name, e.Line, e.Column, e.Message, tt.column, tt.msg)
		}
	}
}

func TestParseRosterLinesAndUnnamedColumns(t *testing.T) {
	// A quoted field spanning lines moves the following line numbers; an empty header cell is a
	// column to ignore as long as it stays empty.
	data := "楼号,单元,房号,电话,\n" +
		"1,1,101,\"138\n0013\",\n" +
		"1,1,102,,\n" +
		"1,1,103,,note\n"
	r := ParseRoster("haixin", []byte(data))
	if len(r.Errors) != 2 {
		t.Fatalf("errors:\n%s", formatErrors(r.Errors))
	}
	if e := r.Errors[0]; e.Line != 2 || e.Column != "电话" {
		t.Errorf("multi-line phone: %+v", e)
	}
	if e := r.Errors[1]; e.Line != 5 || e.Column != "column 5" || !strings.Contains(e.Message, "no header") {
		t.Errorf("value under an unnamed column: %+v", e)
	}
	if len(r.Rows) != 1 || r.Rows[0].Line != 4 {
		t.Errorf("rows %v", r.Rows)
	}
}

func TestParseRosterCapsErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("楼号,单元,房号,楼层\n")
	for i := range maxRowErrors + 5 {
		fmt.Fprintf(&b, "1,1,x-%d,1\n", i)
	}
	r := ParseRoster("haixin", []byte(b.String()))
	if len(r.Errors) != maxRowErrors+1 || !strings.Contains(r.Errors[maxRowErrors].Message, "and 5 more errors") {
		t.Errorf("%d errors, last %+v", len(r.Errors), r.Errors[len(r.Errors)-1])
	}
}

func TestRosterPlan(t *testing.T) {
	current := []Household{
		{ID: "haixin-1-1-101", Address: Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "101"},
			Occupancy: OccupancyOccupied, Residents: 2, Phone: "13800138000"},
		{ID: "custom-id", Address: Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "102"},
			Occupancy: OccupancyOccupied, Residents: 1, UnstatedPriority: true},
		{ID: "haixin-1-1-103", Address: Address{Compound: "haixin", Building: "1", Unit: "1", Floor: 1, Room: "103"},
			Occupancy: OccupancyEmpty, UnstatedPriority: true},
	}
	t.Run("a full sheet states everything", func(t *testing.T) {
		data := "楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至\n" +
			"1,1,101,1,在住,2,13800138000,否,否,否,\n" + // unchanged
			"1,1,102,1,在住,1,,否,否,否,\n" + // states no reason: the migrated priority ends
			"1,1,201,,在住,1,,是,否,否,\n" // new
		plan := ParseRoster("haixin", []byte(data)).Plan(current)
		if plan.Created != 1 || plan.Updated != 1 || plan.Unchanged != 1 || len(plan.Writes) != 2 {
			t.Fatalf("plan %+v", plan)
		}
		if w := plan.Writes[0]; w.ID != "custom-id" || w.UnstatedPriority {
			t.Errorf("update %+v", w)
		}
		if w := plan.Writes[1]; w.ID != "haixin-1-1-201" || w.Address.Floor != 2 || !w.Over80 {
			t.Errorf("create %+v", w)
		}
	})
	t.Run("columns left out keep their values", func(t *testing.T) {
		data := "楼号,单元,房号,电话\n1,1,101,13900139000\n1,1,102,\n1,1,103,\n"
		plan := ParseRoster("haixin", []byte(data)).Plan(current)
		if plan.Created != 0 || plan.Updated != 1 || plan.Unchanged != 2 {
			t.Fatalf("plan %+v", plan)
		}
		w := plan.Writes[0]
		if w.Phone != "13900139000" || w.Residents != 2 || w.Occupancy != OccupancyOccupied {
			t.Errorf("update %+v", w)
		}
	})
}

func TestFormatRoster(t *testing.T) {
	hs := []Household{
		{ID: "h3", Address: Address{Compound: "haixin", Building: "10", Unit: "1", Floor: 1, Room: "101"}, Occupancy: OccupancyUnknown},
		{ID: "h2", Address: Address{Compound: "haixin", Building: "2", Unit: "1", Floor: 10, Room: "1001"}, Occupancy: OccupancyEmpty},
		{ID: "h1", Address: Address{Compound: "haixin", Building: "2", Unit: "1", Floor: 2, Room: "201"}, Occupancy: OccupancyOccupied,
			Residents: 3, Phone: "+86 138 0013 8000", Over80: true, LivesAlone: true, ChronicallyIll: true, QuarantinedUntil: "2022-04-20"},
	}
	got := FormatRoster(hs)
	want := "\uFEFF楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至\r\n" +
		"2,1,201,2,在住,3,+86 138 0013 8000,是,是,是,2022-04-20\r\n" +
		"2,1,1001,10,空置,0,,否,否,否,\r\n" +
		"10,1,101,1,未知,0,,否,否,否,\r\n"
	if string(got) != want {
		t.Errorf("export\n%q\nwant\n%q", got, want)
	}
	r := ParseRoster("haixin", got)
	if len(r.Errors) != 0 {
		t.Fatalf("re-import: %v", r.Errors)
	}
	plan := r.Plan(hs)
	if plan.Unchanged != 3 || len(plan.Writes) != 0 {
		t.Errorf("re-import of the export changes %+v", plan)
	}
}

func TestNaturalCompare(t *testing.T) {
	names := []string{"10", "A", "2", "1", "b", "02"}
	slices.SortFunc(names, naturalCompare)
	if want := []string{"1", "02", "2", "10", "A", "b"}; !slices.Equal(names, want) {
		t.Errorf("sorted %v, want %v", names, want)
	}
}

func TestRosterRowErrorsAreUTF8(t *testing.T) {
	r := ParseRoster("haixin", []byte("楼号,单元,房号\n\xff,1,1\n"))
	for _, e := range r.Errors {
		if !bytes.Equal([]byte(strings.ToValidUTF8(e.Message+e.Column, "?")), []byte(e.Message+e.Column)) {
			t.Errorf("error %+v is not UTF-8", e)
		}
	}
}
