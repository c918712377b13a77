package order

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorstep/doorstep/pkg/rounds"
)

// The roster spreadsheet is how community workers keep households: one row per flat, exported
// from their spreadsheet as CSV (UTF-8). Columns may come in any order under the community's own
// Chinese headers or English ones.

// column is a column of the roster spreadsheet.
type column int

// The columns, in the order an export writes them.
const (
	colBuilding column = iota
	colUnit
	colRoom
	colFloor
	colOccupancy
	colResidents
	colPhone
	colOver80
	colLivesAlone
	colChronicallyIll
	colQuarantinedUntil
	numColumns
	colIgnored column = -1 // a column without a header, which must stay empty
)

// columnNames are each column's headers: the community's own, then English.
var columnNames = [numColumns][2]string{
	{"楼号", "building"}, {"单元", "unit"}, {"房号", "room"}, {"楼层", "floor"}, {"状态", "occupancy"},
	{"人数", "residents"}, {"电话", "phone"}, {"80岁以上", "over_80"}, {"独居", "lives_alone"},
	{"慢性病", "chronically_ill"}, {"隔离至", "quarantined_until"},
}

// reasonColumns are the columns that say why a household is a priority household.
var reasonColumns = []column{colOver80, colLivesAlone, colChronicallyIll, colQuarantinedUntil}

// fieldColumn maps CheckHousehold's fields to columns.
var fieldColumn = map[string]column{
	"address.building": colBuilding, "address.unit": colUnit, "address.room": colRoom, "address.floor": colFloor,
	"residents": colResidents, "occupancy": colOccupancy, "phone": colPhone, "quarantined_until": colQuarantinedUntil,
}

// Limits of one import. A compound has a few thousand flats.
const (
	MaxRosterRows = 20_000
	maxRowErrors  = 1_000
)

const notUTF8 = "not UTF-8; save the spreadsheet as CSV UTF-8"

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// RowError is one rejected row of an import.
type RowError struct {
	// Line is 1-based, the header being line 1.
	Line int
	// Column is the header of the column at fault, when one is.
	Column  string
	Message string
}

// RosterRow is one accepted row.
type RosterRow struct {
	Line      int
	Household Household // without an id; the address carries the compound
}

// Roster is a parsed roster spreadsheet: the rows it accepted and every row it rejected.
type Roster struct {
	Compound string
	Rows     []RosterRow
	Errors   []RowError
	// DataRows counts the data rows read, accepted or not (blank lines aside).
	DataRows int

	has   [numColumns]bool
	names [numColumns]string // headers as the file writes them, for messages
	index []column           // file position -> column
}

// ParseRoster reads a roster spreadsheet of compound. It never fails as a whole: whatever is
// wrong is reported in Errors, by line and column, so a worker can fix every row in one go.
// A header it cannot read (missing columns, an unknown column, not UTF-8) stops it there.
func ParseRoster(compound string, data []byte) *Roster {
	r := &Roster{Compound: compound}
	for c := range numColumns {
		r.names[c] = columnNames[c][0]
	}
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		r.reject(1, "", "UTF-16 text; save the spreadsheet as CSV UTF-8")
		return r
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // checked per row, so that one short row does not hide the others

	header, err := cr.Read()
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		r.reject(1, "", "the file is empty; its first row must name the columns: "+strings.Join(headerRow(), ","))
		return r
	case errors.As(err, &pe):
		r.reject(pe.StartLine, "", "cannot read the header: "+pe.Err.Error())
		return r
	case err != nil:
		r.reject(1, "", "cannot read the file: "+err.Error())
		return r
	}
	if !r.readHeader(header) {
		return r
	}

	seen := map[string]int{} // address key -> line of its first row
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.As(err, &pe) {
			r.DataRows++
			r.reject(pe.StartLine, "", "malformed row: "+pe.Err.Error())
			continue
		}
		if err != nil {
			r.reject(0, "", "cannot read the file: "+err.Error())
			break
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue // spreadsheets export trailing empty rows as a line of commas
		}
		r.DataRows++
		if r.DataRows > MaxRosterRows {
			r.reject(line, "", fmt.Sprintf("the file has more than %d rows; split it", MaxRosterRows))
			break
		}
		if len(rec) != len(r.index) {
			r.reject(line, "", fmt.Sprintf("malformed row: %d fields, the header has %d", len(rec), len(r.index)))
			continue
		}
		r.readRow(line, rec, seen)
	}
	r.finish()
	return r
}

func blank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

func lookupColumn(name string) (column, bool) {
	for c := range numColumns {
		if name == columnNames[c][0] || strings.EqualFold(name, columnNames[c][1]) {
			return c, true
		}
	}
	return 0, false
}

func (r *Roster) readHeader(header []string) bool {
	before := len(r.Errors)
	r.index = make([]column, len(header))
	for i, h := range header {
		name := strings.TrimSpace(h)
		if !utf8.ValidString(name) {
			r.reject(1, "", notUTF8)
			return false
		}
		c, known := lookupColumn(name)
		switch {
		case name == "":
			r.index[i] = colIgnored
		case !known:
			r.reject(1, name, "unknown column; the columns are "+strings.Join(headerRow(), ",")+
				" (or building,unit,room,floor,occupancy,residents,phone,over_80,lives_alone,chronically_ill,quarantined_until)")
		case r.has[c]:
			r.reject(1, name, fmt.Sprintf("column %s appears twice", columnNames[c][0]))
		default:
			r.has[c], r.names[c], r.index[i] = true, name, c
		}
	}
	english := r.has[colBuilding] && r.names[colBuilding] != columnNames[colBuilding][0]
	for c := range numColumns {
		if !r.has[c] && english {
			r.names[c] = columnNames[c][1]
		}
	}
	for _, c := range []column{colBuilding, colUnit, colRoom} {
		if !r.has[c] {
			r.reject(1, r.names[c], fmt.Sprintf("the file has no %s (%s) column, which is required", columnNames[c][0], columnNames[c][1]))
		}
	}
	return len(r.Errors) == before
}

// readRow checks one data row; seen holds the rooms of the rows before it.
func (r *Roster) readRow(line int, rec []string, seen map[string]int) {
	before := len(r.Errors)
	var vals [numColumns]string
	for i, v := range rec {
		v = strings.TrimSpace(v)
		c := r.index[i]
		if !utf8.ValidString(v) {
			col := fmt.Sprintf("column %d", i+1)
			if c != colIgnored {
				col = r.names[c]
			}
			r.reject(line, col, notUTF8)
			return
		}
		if c == colIgnored {
			if v != "" {
				r.reject(line, fmt.Sprintf("column %d", i+1), "has a value but the column has no header")
			}
			continue
		}
		vals[c] = v
	}

	bad := map[column]bool{}
	fail := func(c column, msg string) {
		bad[c] = true
		r.reject(line, r.names[c], msg)
	}
	h := Household{
		Address:   Address{Compound: r.Compound, Building: vals[colBuilding], Unit: vals[colUnit], Room: vals[colRoom]},
		Occupancy: OccupancyUnknown,
		Phone:     vals[colPhone],
	}
	if v := vals[colFloor]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fail(colFloor, fmt.Sprintf("%q is not a whole number", v))
		}
		h.Address.Floor = n
	} else if room, err := strconv.Atoi(h.Address.Room); err == nil {
		// Rooms are numbered floor*100 + door (302 is on the 3rd floor).
		h.Address.Floor = room / 100
		if h.Address.Floor < 1 || h.Address.Floor > MaxFloor {
			fail(colFloor, fmt.Sprintf("room %s does not say the floor (room/100 = %d); fill in %s", h.Address.Room, h.Address.Floor, r.names[colFloor]))
		}
	} else if h.Address.Room != "" {
		fail(colFloor, fmt.Sprintf("room %q is not a number to derive the floor from; fill in %s", h.Address.Room, r.names[colFloor]))
	}
	if occ, ok := parseOccupancy(vals[colOccupancy]); ok {
		h.Occupancy = occ
	} else {
		fail(colOccupancy, fmt.Sprintf("%q is not 在住, 空置 or 未知 (occupied, empty, unknown)", vals[colOccupancy]))
	}
	if v := vals[colResidents]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fail(colResidents, fmt.Sprintf("%q is not a whole number", v))
		}
		h.Residents = n
	}
	for _, f := range []struct {
		c   column
		dst *bool
	}{{colOver80, &h.Over80}, {colLivesAlone, &h.LivesAlone}, {colChronicallyIll, &h.ChronicallyIll}} {
		yes, ok := parseYesNo(vals[f.c])
		if !ok {
			fail(f.c, fmt.Sprintf("%q is not 是 or 否 (Y/N, yes/no, 1/0, or empty for no)", vals[f.c]))
		}
		*f.dst = yes
	}
	if v := vals[colQuarantinedUntil]; v != "" {
		d, ok := parseDate(v)
		if !ok {
			fail(colQuarantinedUntil, fmt.Sprintf("%q is not a date YYYY-MM-DD", v))
		}
		h.QuarantinedUntil = d
	}
	for _, fe := range CheckHousehold(h) {
		c := fieldColumn[fe.Field]
		if bad[c] {
			continue
		}
		msg := fe.Reason
		if c == colPhone {
			msg += "; format the column as text so the spreadsheet keeps the number as written"
		}
		fail(c, msg)
	}
	if !bad[colBuilding] && !bad[colUnit] && !bad[colRoom] {
		key := addressKey(h.Address)
		if first, dup := seen[key]; dup {
			fail(colRoom, fmt.Sprintf("building %s unit %s room %s is also on line %d", h.Address.Building, h.Address.Unit, h.Address.Room, first))
		} else {
			seen[key] = line
		}
	}
	if len(r.Errors) == before {
		r.Rows = append(r.Rows, RosterRow{Line: line, Household: h})
	}
}

// addressKey identifies a flat within a compound the way household ids do: case does not matter.
func addressKey(a Address) string {
	return strings.ToLower(a.Building + "\x00" + a.Unit + "\x00" + a.Room)
}

func parseOccupancy(s string) (Occupancy, bool) {
	switch strings.ToLower(s) {
	case "在住", "occupied":
		return OccupancyOccupied, true
	case "空置", "empty":
		return OccupancyEmpty, true
	case "未知", "unknown", "":
		return OccupancyUnknown, true
	}
	return "", false
}

func parseYesNo(s string) (yes, ok bool) {
	switch strings.ToLower(s) {
	case "是", "y", "yes", "1":
		return true, true
	case "否", "n", "no", "0", "":
		return false, true
	}
	return false, false
}

// parseDate reads YYYY-MM-DD, and also the YYYY/M/D a Chinese-locale spreadsheet writes when it
// has turned the cell into a date.
func parseDate(s string) (string, bool) {
	for _, layout := range []string{"2006-1-2", "2006/1/2"} {
		if t, err := time.Parse(layout, s); err == nil && len(s) <= len("2006-01-02") {
			return t.Format(rounds.DateLayout), true
		}
	}
	return "", false
}

// Building is one building of the compound's site plan, as far as the roster needs it.
type Building struct {
	Name   string
	Units  []string
	Floors int // 0 when not recorded
}

// CheckSitePlan rejects the rows whose building or unit is not in the compound's site plan, or
// whose floor is above the building's top floor, and spells building and unit as the plan does.
func (r *Roster) CheckSitePlan(plan []Building) {
	byName := make(map[string]Building, len(plan))
	names := make([]string, 0, len(plan))
	for _, b := range plan {
		byName[strings.ToLower(b.Name)] = b
		names = append(names, b.Name)
	}
	slices.SortFunc(names, naturalCompare)
	kept := r.Rows[:0]
	for _, row := range r.Rows {
		a := &row.Household.Address
		b, ok := byName[strings.ToLower(a.Building)]
		if !ok {
			r.reject(row.Line, r.names[colBuilding], fmt.Sprintf("no building %s in the site plan of %s (buildings: %s)", a.Building, r.Compound, listNames(names)))
			continue
		}
		a.Building = b.Name
		unit := ""
		for _, u := range b.Units {
			if strings.EqualFold(u, a.Unit) {
				unit = u
			}
		}
		if unit == "" {
			r.reject(row.Line, r.names[colUnit], fmt.Sprintf("building %s has no unit %s (units: %s)", b.Name, a.Unit, listNames(b.Units)))
			continue
		}
		a.Unit = unit
		if b.Floors > 0 && a.Floor > b.Floors {
			r.reject(row.Line, r.names[colFloor], fmt.Sprintf("floor %d, but building %s has %d floors", a.Floor, b.Name, b.Floors))
			continue
		}
		kept = append(kept, row)
	}
	r.Rows = kept
	r.finish()
}

func listNames(names []string) string {
	const most = 30
	if len(names) == 0 {
		return "none"
	}
	if len(names) > most {
		return strings.Join(names[:most], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}

func (r *Roster) reject(line int, col, msg string) {
	r.Errors = append(r.Errors, RowError{Line: line, Column: col, Message: msg})
}

// finish orders the errors by line and keeps the answer a readable size.
func (r *Roster) finish() {
	slices.SortStableFunc(r.Errors, func(a, b RowError) int { return cmp.Compare(a.Line, b.Line) })
	if n := len(r.Errors); n > maxRowErrors {
		last := r.Errors[maxRowErrors]
		r.Errors = append(r.Errors[:maxRowErrors:maxRowErrors], RowError{Line: last.Line,
			Message: fmt.Sprintf("and %d more errors from here on; fix these first", n-maxRowErrors)})
	}
}

// ImportCounts is what applying a roster does to the stored households.
type ImportCounts struct {
	Created, Updated, Unchanged int
	// Writes are the households to create or update, ids set.
	Writes []Household
}

// Plan compares the accepted rows with the compound's current households. A column the sheet
// leaves out keeps each household's stored value (a sheet of rooms and phones updates phones
// only); a new household gets the defaults. A household migrated without stated priority reasons
// keeps its priority unless the sheet has every reason column.
func (r *Roster) Plan(current []Household) ImportCounts {
	byAddress := make(map[string]Household, len(current))
	for _, h := range current {
		byAddress[addressKey(h.Address)] = h
	}
	statesReasons := true
	for _, c := range reasonColumns {
		statesReasons = statesReasons && r.has[c]
	}
	var out ImportCounts
	for _, row := range r.Rows {
		h := row.Household
		old, found := byAddress[addressKey(h.Address)]
		if !found {
			h.ID = HouseholdID(h.Address)
			out.Created++
			out.Writes = append(out.Writes, h)
			continue
		}
		h.ID = old.ID
		if !r.has[colOccupancy] {
			h.Occupancy = old.Occupancy
		}
		if !r.has[colResidents] {
			h.Residents = old.Residents
		}
		if !r.has[colPhone] {
			h.Phone = old.Phone
		}
		if !r.has[colOver80] {
			h.Over80 = old.Over80
		}
		if !r.has[colLivesAlone] {
			h.LivesAlone = old.LivesAlone
		}
		if !r.has[colChronicallyIll] {
			h.ChronicallyIll = old.ChronicallyIll
		}
		if !r.has[colQuarantinedUntil] {
			h.QuarantinedUntil = old.QuarantinedUntil
		}
		h.UnstatedPriority = old.UnstatedPriority && !statesReasons
		if h == old {
			out.Unchanged++
			continue
		}
		out.Updated++
		out.Writes = append(out.Writes, h)
	}
	return out
}

// FormatRoster writes households as a roster spreadsheet with the community's headers, in
// building, unit, floor and room order, the way ParseRoster reads it back. It starts with a
// byte-order mark because that is how spreadsheets recognise a CSV file as UTF-8.
func FormatRoster(hs []Household) []byte {
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(a, b Household) int {
		x, y := a.Address, b.Address
		return cmp.Or(naturalCompare(x.Building, y.Building), naturalCompare(x.Unit, y.Unit),
			cmp.Compare(x.Floor, y.Floor), naturalCompare(x.Room, y.Room), cmp.Compare(a.ID, b.ID))
	})
	rows := [][]string{headerRow()}
	for _, h := range hs {
		a := h.Address
		rows = append(rows, []string{a.Building, a.Unit, a.Room, strconv.Itoa(a.Floor), occupancyName(h.Occupancy),
			strconv.Itoa(h.Residents), h.Phone, yesNo(h.Over80), yesNo(h.LivesAlone), yesNo(h.ChronicallyIll), h.QuarantinedUntil})
	}
	return writeCSV(rows)
}

// writeCSV writes rows as spreadsheets expect them: UTF-8 with a byte-order mark (or Excel reads
// Chinese as GBK) and CRLF line ends.
func writeCSV(rows [][]string) []byte {
	var buf bytes.Buffer
	buf.Write(utf8BOM)
	w := csv.NewWriter(&buf)
	w.UseCRLF = true
	_ = w.WriteAll(rows) // writes to a bytes.Buffer cannot fail
	return buf.Bytes()
}

func headerRow() []string {
	out := make([]string, numColumns)
	for c := range numColumns {
		out[c] = columnNames[c][0]
	}
	return out
}

func occupancyName(o Occupancy) string {
	switch o {
	case OccupancyOccupied:
		return "在住"
	case OccupancyEmpty:
		return "空置"
	default:
		return "未知"
	}
}

func yesNo(b bool) string {
	if b {
		return "是"
	}
	return "否"
}

// naturalCompare orders numbers by value ("2" before "10") and anything else as text.
func naturalCompare(a, b string) int {
	x, errX := strconv.Atoi(a)
	y, errY := strconv.Atoi(b)
	switch {
	case errX == nil && errY == nil:
		return cmp.Or(cmp.Compare(x, y), strings.Compare(a, b))
	case errX == nil:
		return -1
	case errY == nil:
		return 1
	}
	return strings.Compare(a, b)
}
