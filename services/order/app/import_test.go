package app_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/doorstep/doorstep/pkg/grpcx"
	"golang.org/x/text/encoding/simplifiedchinese"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
)

// roster is a community worker's sheet as a spreadsheet saves it: BOM, CRLF, their own column
// order, the floor left to the room number.
const roster = "\uFEFF楼号,单元,房号,状态,人数,电话,80岁以上,独居,慢性病,隔离至\r\n" +
	"1,1,101,在住,2,13800138000,是,否,否,\r\n" +
	"1,1,102,空置,0,,否,否,否,\r\n" +
	"1,2,301,在住,1,+86 21 5555 0101,是,是,是,2022-04-20\r\n" +
	"a,1,1801,未知,,,,,,\r\n"

func (e *env) importCSV(requestID, csv string, dryRun bool) *orderv1.ImportHouseholdsResponse {
	e.t.Helper()
	resp, err := e.client.ImportHouseholds(e.worker, &orderv1.ImportHouseholdsRequest{RequestId: requestID, Compound: "haixin",
		Csv: []byte(csv), DryRun: dryRun})
	if err != nil {
		e.t.Fatalf("ImportHouseholds: %v", err)
	}
	return resp
}

func wantCounts(t *testing.T, resp *orderv1.ImportHouseholdsResponse, rows, created, updated, unchanged int32, applied bool) {
	t.Helper()
	if resp.Rows != rows || resp.Created != created || resp.Updated != updated || resp.Unchanged != unchanged || resp.Applied != applied {
		t.Errorf("rows %d created %d updated %d unchanged %d applied %v, want %d %d %d %d %v (errors %v)",
			resp.Rows, resp.Created, resp.Updated, resp.Unchanged, resp.Applied, rows, created, updated, unchanged, applied, resp.Errors)
	}
}

func TestImportHouseholds(t *testing.T) {
	t.Parallel()
	e := start(t)

	dry := e.importCSV("", roster, true)
	wantCounts(t, dry, 4, 4, 0, 0, false)
	if n := e.count(`SELECT count(*) FROM households`); n != 0 {
		t.Fatalf("a dry run wrote %d households", n)
	}

	first := e.importCSV("import-1", roster, false)
	wantCounts(t, first, 4, 4, 0, 0, true)
	// Dispatch was asked for the site plan by the order service, for the worker importing.
	wantOnBehalfOf(t, e.disp.peerAuth, "ListBuildings", typesv1.Role_ROLE_WORKER, "worker-li")
	got, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-1-2-301"})
	if err != nil {
		t.Fatal(err)
	}
	want := &orderv1.Household{HouseholdId: "haixin-1-2-301",
		Address:   &typesv1.Address{Compound: "haixin", Building: "1", Unit: "2", Floor: 3, Room: "301"},
		Residents: 1, Occupancy: orderv1.Occupancy_OCCUPANCY_OCCUPIED, Phone: "+86 21 5555 0101", Over_80: true,
		LivesAlone: true, ChronicallyIll: true, QuarantinedUntil: "2022-04-20", Priority: true, Quarantined: true, Occupied: true}
	if !proto.Equal(got.Household, want) {
		t.Errorf("imported\n%v\nwant\n%v", got.Household, want)
	}
	// Building "a" is spelled as the site plan spells it.
	if _, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-a-1-1801"}); err != nil {
		t.Errorf("tower flat: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM households WHERE building = 'A' AND floor = 18`); n != 1 {
		t.Errorf("tower flat stored %d times with the plan's spelling and floor 18", n)
	}

	t.Run("a retry returns the first result", func(t *testing.T) {
		again := e.importCSV("import-1", roster, false)
		if !proto.Equal(again, first) {
			t.Errorf("retry got %v, want %v", again, first)
		}
		_, err := e.client.ImportHouseholds(e.worker, &orderv1.ImportHouseholdsRequest{RequestId: "import-1", Compound: "haixin",
			Csv: []byte(roster + "1,1,103,在住,1,,否,否,否,\r\n")})
		wantCode(t, err, codes.AlreadyExists)
	})

	t.Run("the same sheet again changes nothing", func(t *testing.T) {
		wantCounts(t, e.importCSV("import-2", roster, false), 4, 0, 0, 4, true)
	})

	t.Run("an edited sheet updates and adds", func(t *testing.T) {
		edited := strings.Replace(roster, "1,1,102,空置,0,", "1,1,102,在住,3,", 1) + "2,2,602,在住,4,,否,否,否,\r\n"
		wantCounts(t, e.importCSV("import-3", edited, false), 5, 1, 1, 3, true)
		h, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-1-1-102"})
		if err != nil || !h.Household.Occupied || h.Household.Residents != 3 {
			t.Errorf("updated household %v %v", h, err)
		}
	})

	t.Run("a sheet of some columns keeps the others", func(t *testing.T) {
		phones := "building,unit,room,phone\n1,1,101,021-5555-0000\n"
		wantCounts(t, e.importCSV("import-4", phones, false), 1, 0, 1, 0, true)
		h, err := e.client.GetHousehold(e.worker, &orderv1.GetHouseholdRequest{HouseholdId: "haixin-1-1-101"})
		if err != nil || h.Household.Phone != "021-5555-0000" || !h.Household.Over_80 || h.Household.Residents != 2 {
			t.Errorf("household %v %v", h, err)
		}
	})
}

// A file with any rejected row reports every one of them and writes nothing.
func TestImportHouseholdsRejects(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.importCSV("seed", roster, false)
	before := e.count(`SELECT count(*) FROM households`)
	bad := "楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至\n" +
		"1,1,101,1,在住,2,,否,否,否,\n" + // 2: fine (an update)
		"1,1,105,1,在住\n" + // 3: wrong field count
		"1,1,106,1,在住,1,,否,否,否,\n" + // 4: fine (new)
		"1,1,106,1,在住,1,,否,否,否,\n" + // 5: duplicate room
		"7,1,701,1,在住,1,,否,否,否,\n" + // 6: unknown building
		"2,3,201,2,在住,1,,否,否,否,\n" + // 7: unknown unit
		"1,1,107,one,在住,x,,否,否,否,\n" + // 8: two bad numbers
		"1,1,108,1,在住,1,,否,否,否,2022-04-31\n" + // 9: bad date
		"1,1,109,1,在住,1,\xff\xfe,否,否,否,\n" // 10: not UTF-8
	for _, dryRun := range []bool{true, false} {
		resp := e.importCSV("bad-1", bad, dryRun)
		wantCounts(t, resp, 9, 1, 1, 0, false)
		want := []struct {
			line   int32
			column string
			msg    string
		}{
			{3, "", "malformed row: 5 fields, the header has 11"},
			{5, "房号", "building 1 unit 1 room 106 is also on line 4"},
			{6, "楼号", "no building 7 in the site plan of haixin (buildings: 1, 2, 3, A)"},
			{7, "单元", "building 2 has no unit 3 (units: 1, 2)"},
			{8, "楼层", `"one" is not a whole number`},
			{8, "人数", `"x" is not a whole number`},
			{9, "隔离至", `"2022-04-31" is not a date YYYY-MM-DD`},
			{10, "电话", "not UTF-8; save the spreadsheet as CSV UTF-8"},
		}
		if len(resp.Errors) != len(want) {
			t.Fatalf("dry run %v: errors %v", dryRun, resp.Errors)
		}
		for i, w := range want {
			got := resp.Errors[i]
			if got.Line != w.line || got.Column != w.column || !strings.Contains(got.Message, w.msg) {
				t.Errorf("dry run %v: error %d = %v, want line %d column %q containing %q", dryRun, i, got, w.line, w.column, w.msg)
			}
		}
	}
	if n := e.count(`SELECT count(*) FROM households`); n != before {
		t.Errorf("%d households after a rejected import, want %d", n, before)
	}
	if n := e.count(`SELECT count(*) FROM requests WHERE kind = 'import' AND request_id = 'bad-1'`); n != 0 {
		t.Errorf("a rejected import recorded its key, so the fixed file could not reuse it")
	}

	t.Run("a GBK file", func(t *testing.T) {
		gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte("楼号,单元,房号,状态\r\n1,1,101,在住\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.client.ImportHouseholds(e.worker, &orderv1.ImportHouseholdsRequest{RequestId: "gbk", Compound: "haixin", Csv: gbk})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Errors) != 1 || resp.Errors[0].Line != 1 || resp.Errors[0].Message != "not UTF-8; save the spreadsheet as CSV UTF-8" || resp.Applied {
			t.Errorf("GBK file: %v", resp)
		}
	})

	t.Run("dispatch unreachable", func(t *testing.T) {
		e.disp.setDown(true)
		defer e.disp.setDown(false)
		_, err := e.client.ImportHouseholds(e.worker, &orderv1.ImportHouseholdsRequest{RequestId: "down", Compound: "haixin",
			Csv: []byte("楼号,单元,房号\n3,1,101\n")})
		wantCode(t, err, codes.Unavailable)
		if n := e.count(`SELECT count(*) FROM households`); n != before {
			t.Errorf("%d households after dispatch was unreachable, want %d", n, before)
		}
		// The retry once dispatch is back goes through.
		e.disp.setDown(false)
		wantCounts(t, e.importCSV("down", "楼号,单元,房号\n3,1,101\n", false), 1, 1, 0, 0, true)
	})

	t.Run("validation names the fields", func(t *testing.T) {
		tests := []struct {
			name  string
			req   *orderv1.ImportHouseholdsRequest
			field string
		}{
			{"no request id", &orderv1.ImportHouseholdsRequest{Compound: "haixin", Csv: []byte(roster)}, "request_id"},
			{"bad compound", &orderv1.ImportHouseholdsRequest{RequestId: "r", Compound: "Hai Xin", Csv: []byte(roster)}, "compound"},
			{"no file", &orderv1.ImportHouseholdsRequest{RequestId: "r", Compound: "haixin"}, "csv"},
		}
		for _, tt := range tests {
			_, err := e.client.ImportHouseholds(e.worker, tt.req)
			wantCode(t, err, codes.InvalidArgument)
			if _, ok := grpcx.FieldViolations(err)[tt.field]; !ok {
				t.Errorf("%s: violations %v do not name %s", tt.name, grpcx.FieldViolations(err), tt.field)
			}
		}
		_, err := e.client.ExportHouseholds(e.worker, &orderv1.ExportHouseholdsRequest{Compound: "Hai Xin"})
		if _, ok := grpcx.FieldViolations(err)["compound"]; !ok {
			t.Errorf("export of a bad compound: %v", err)
		}
	})
}

// Concurrent retries of one import write it once and all get its result.
func TestImportHouseholdsConcurrentRetries(t *testing.T) {
	t.Parallel()
	e := start(t)
	const n = 10
	resps := make([]*orderv1.ImportHouseholdsResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resps[i], errs[i] = e.client.ImportHouseholds(e.worker, &orderv1.ImportHouseholdsRequest{RequestId: "import-1",
				Compound: "haixin", Csv: []byte(roster)})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("retry %d: %v", i, errs[i])
		}
		wantCounts(t, resps[i], 4, 4, 0, 0, true)
	}
	if got := e.count(`SELECT count(*) FROM households`); got != 4 {
		t.Errorf("%d households, want 4", got)
	}
}

func TestExportHouseholds(t *testing.T) {
	t.Parallel()
	e := start(t)
	var sheet strings.Builder
	sheet.WriteString("楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至\n")
	for _, b := range []string{"3", "A", "1", "2"} {
		for _, u := range []string{"2", "1"} {
			for _, room := range []string{"601", "101", "1801"} {
				if b != "A" && room == "1801" || b == "A" && u == "2" {
					continue
				}
				fmt.Fprintf(&sheet, "%s,%s,%s,,在住,2,138 0000 %s,否,是,否,2022-04-1%d\n", b, u, room, room, len(room))
			}
		}
	}
	wantCounts(t, e.importCSV("import-1", sheet.String(), false), 15, 15, 0, 0, true)
	// One flat registered one by one, with a quoted-worthy phone and a migrated-style empty roster.
	if _, err := e.client.UpsertHousehold(e.worker, &orderv1.UpsertHouseholdRequest{RequestId: newID(), Household: &orderv1.Household{
		Address: &typesv1.Address{Compound: "haixin", Building: "2", Unit: "1", Floor: 2, Room: "201"}}}); err != nil {
		t.Fatal(err)
	}

	resp, err := e.client.ExportHouseholds(e.worker, &orderv1.ExportHouseholdsRequest{Compound: "haixin"})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(resp.Csv), "\r\n"), "\r\n")
	if !bytes.HasPrefix(resp.Csv, []byte("\uFEFF")) || lines[0] != "\uFEFF楼号,单元,房号,楼层,状态,人数,电话,80岁以上,独居,慢性病,隔离至" {
		t.Errorf("header %q", lines[0])
	}
	var order []string
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		order = append(order, f[0]+"-"+f[1]+"-"+f[2])
	}
	want := "[1-1-101 1-1-601 1-2-101 1-2-601 2-1-101 2-1-201 2-1-601 2-2-101 2-2-601 3-1-101 3-1-601 3-2-101 3-2-601 A-1-101 A-1-601 A-1-1801]"
	if fmt.Sprint(order) != want {
		t.Errorf("export order\n%v\nwant\n%s", order, want)
	}
	if lines[2] != "1,1,601,6,在住,2,138 0000 601,否,是,否,2022-04-13" || lines[6] != "2,1,201,2,未知,0,,否,否,否," {
		t.Errorf("rows %q %q", lines[2], lines[6])
	}

	// The export imports back unchanged.
	wantCounts(t, e.importCSV("round-trip", string(resp.Csv), false), 16, 0, 0, 16, true)
	empty, err := e.client.ExportHouseholds(e.system(), &orderv1.ExportHouseholdsRequest{Compound: "nobody"})
	if err != nil || strings.Count(string(empty.Csv), "\n") != 1 {
		t.Errorf("export of an empty compound: %q %v", empty.GetCsv(), err)
	}
}
