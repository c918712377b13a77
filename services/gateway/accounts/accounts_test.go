package accounts_test

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorstep/doorstep/pkg/testkit"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t *testing.T) (*accounts.Store, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2022, 4, 10, 1, 0, 0, 0, time.UTC)}
	s, err := accounts.Open(context.Background(), testkit.Postgres(t), accounts.Options{Now: clk.Now, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, clk
}

func TestCreateStaffNamesTheBadField(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	good := accounts.Staff{ID: "wang.li", Role: typesv1.Role_ROLE_WORKER, Compound: "haixin", Name: "王丽", Password: "long enough pw"}
	for _, tc := range []struct {
		name  string
		edit  func(*accounts.Staff)
		field string
	}{
		{"id too short", func(s *accounts.Staff) { s.ID = "w" }, "id"},
		{"id upper case", func(s *accounts.Staff) { s.ID = "Wang" }, "id"},
		{"resident role", func(s *accounts.Staff) { s.Role = typesv1.Role_ROLE_RESIDENT }, "role"},
		{"system role", func(s *accounts.Staff) { s.Role = typesv1.Role_ROLE_SYSTEM }, "role"},
		{"no compound", func(s *accounts.Staff) { s.Compound = "" }, "compound"},
		{"supplier without supplier", func(s *accounts.Staff) { s.Role = typesv1.Role_ROLE_SUPPLIER }, "supplier_id"},
		{"worker bound to supplier", func(s *accounts.Staff) { s.SupplierID = "haixin-freshmart" }, "supplier_id"},
		{"courier without courier", func(s *accounts.Staff) { s.Role = typesv1.Role_ROLE_COURIER }, "courier_id"},
		{"worker bound to courier", func(s *accounts.Staff) { s.CourierID = "haixin-courier-01" }, "courier_id"},
		{"short password", func(s *accounts.Staff) { s.Password = "short" }, "password"},
		{"password past bcrypt's 72 bytes", func(s *accounts.Staff) { s.Password = strings.Repeat("x", 73) }, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := good
			tc.edit(&st)
			_, err := s.CreateStaff(ctx, st)
			var ie *accounts.InvalidError
			if !errors.As(err, &ie) || ie.Field != tc.field {
				t.Fatalf("CreateStaff = %v, want an InvalidError naming %s", err, tc.field)
			}
		})
	}
	if _, err := s.CreateStaff(ctx, good); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateStaff(ctx, good); !errors.Is(err, accounts.ErrExists) {
		t.Fatalf("second CreateStaff = %v, want ErrExists", err)
	}
}

func TestStaffSignIn(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.CreateStaff(ctx, accounts.Staff{ID: "fm-staff", Role: typesv1.Role_ROLE_SUPPLIER, Compound: "haixin",
		SupplierID: "haixin-freshmart", Password: "fresh vegetables"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateStaff(ctx, accounts.Staff{ID: "courier2", Role: typesv1.Role_ROLE_COURIER, Compound: "haixin",
		CourierID: "haixin-courier-02", Password: "stairs all day"}); err != nil {
		t.Fatal(err)
	}
	p, err := s.SignInStaff(ctx, " FM-Staff ", "fresh vegetables")
	if err != nil {
		t.Fatal(err)
	}
	if p.Role != typesv1.Role_ROLE_SUPPLIER || p.AccountID != "fm-staff" || p.SupplierID != "haixin-freshmart" {
		t.Fatalf("principal %+v", p)
	}
	if id := p.Identity(); id.Subject != "fm-staff" || id.SupplierID != "haixin-freshmart" || id.Compound != "haixin" {
		t.Errorf("supplier identity %+v", id)
	}
	c, err := s.SignInStaff(ctx, "courier2", "stairs all day")
	if err != nil {
		t.Fatal(err)
	}
	if id := c.Identity(); id.Role != typesv1.Role_ROLE_COURIER || id.Subject != "haixin-courier-02" {
		t.Errorf("a courier is named by their courier id to the services: %+v", id)
	}
	for _, tc := range []struct{ id, pw string }{{"fm-staff", "fresh vegetable"}, {"nobody", "fresh vegetables"}, {"fm-staff", ""}} {
		if _, err := s.SignInStaff(ctx, tc.id, tc.pw); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Errorf("SignInStaff(%q, %q) = %v, want ErrBadCredentials", tc.id, tc.pw, err)
		}
	}

	// A new password ends the sessions opened with the old one.
	tok, _, err := s.StartSession(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "fm-staff", "new and longer"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, tok); !errors.Is(err, accounts.ErrNoSession) {
		t.Errorf("session after password change: %v", err)
	}
	if _, err := s.SignInStaff(ctx, "fm-staff", "fresh vegetables"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("old password still works: %v", err)
	}
	if err := s.SetPassword(ctx, "nobody", "new and longer"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("SetPassword of unknown account = %v", err)
	}
}

func TestHouseholdCodes(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	const household = "haixin-3-2-302"
	first, err := s.IssueHouseholdCode(ctx, household, "wang.li")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Code) != accounts.CodeLength || strings.ContainsAny(first.Code, "01ILOU") || strings.ToUpper(first.Code) != first.Code {
		t.Fatalf("code %q is not 16 unambiguous symbols", first.Code)
	}
	if first.Formatted != first.Code[:4]+"-"+first.Code[4:8]+"-"+first.Code[8:12]+"-"+first.Code[12:] {
		t.Errorf("formatted %q", first.Formatted)
	}
	// People type codes with spaces, dashes and in lower case.
	for _, typed := range []string{first.Code, first.Formatted, strings.ToLower(first.Formatted), " " + strings.ReplaceAll(first.Formatted, "-", " ") + " "} {
		p, err := s.SignInHousehold(ctx, typed)
		if err != nil {
			t.Fatalf("sign in with %q: %v", typed, err)
		}
		if p.Role != typesv1.Role_ROLE_RESIDENT || p.HouseholdID != household || p.Compound != "haixin" {
			t.Fatalf("principal %+v", p)
		}
		if id := p.Identity(); id.Subject != household || id.Compound != "haixin" {
			t.Fatalf("resident identity %+v", id)
		}
	}
	session, _, err := s.StartSession(ctx, accounts.Principal{Role: typesv1.Role_ROLE_RESIDENT, HouseholdID: household})
	if err != nil {
		t.Fatal(err)
	}

	// Re-issue: the old code and its sessions stop working, the new one works.
	second, err := s.IssueHouseholdCode(ctx, household, "wang.li")
	if err != nil {
		t.Fatal(err)
	}
	if second.Code == first.Code {
		t.Fatal("re-issue gave the same code")
	}
	if _, err := s.SignInHousehold(ctx, first.Code); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("old code after re-issue: %v", err)
	}
	if _, err := s.Session(ctx, session); !errors.Is(err, accounts.ErrNoSession) {
		t.Errorf("session of the old code after re-issue: %v", err)
	}
	if p, err := s.SignInHousehold(ctx, second.Code); err != nil || p.HouseholdID != household {
		t.Errorf("new code: %+v %v", p, err)
	}
	at, by, ok, err := s.CodeIssued(ctx, household)
	if err != nil || !ok || by != "wang.li" || !at.Equal(second.IssuedAt) {
		t.Errorf("CodeIssued = %v %q %v %v", at, by, ok, err)
	}
	if _, _, ok, err := s.CodeIssued(ctx, "haixin-1-1-101"); ok || err != nil {
		t.Errorf("CodeIssued of a household without code: %v %v", ok, err)
	}

	for _, bad := range []string{"", "short", strings.Repeat("A", 16), first.Code + "2", "0000-0000-0000-0000", "'; DROP TABLE x; --"} {
		if _, err := s.SignInHousehold(ctx, bad); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Errorf("SignInHousehold(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{"", "haixin", "haixin-3-2", "Haixin-3-2-302"} {
		var ie *accounts.InvalidError
		if _, err := s.IssueHouseholdCode(ctx, bad, "wang.li"); !errors.As(err, &ie) || ie.Field != "household_id" {
			t.Errorf("IssueHouseholdCode(%q) = %v", bad, err)
		}
	}
}

func TestCodesAreDistinct(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	seen := map[string]bool{}
	counts := map[rune]int{}
	for i := range 200 {
		c, err := s.IssueHouseholdCode(ctx, "haixin-1-1-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "seed")
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.Code] {
			t.Fatalf("code %s drawn twice", c.Code)
		}
		seen[c.Code] = true
		for _, r := range c.Code {
			counts[r]++
		}
	}
	// 3,200 symbols over 30: every symbol turns up (a biased or short alphabet would show here).
	if len(counts) != 30 {
		t.Errorf("codes use %d symbols, want all 30", len(counts))
	}
}

func TestSessionsExpire(t *testing.T) {
	s, clk := open(t)
	ctx := context.Background()
	if _, err := s.IssueHouseholdCode(ctx, "haixin-1-1-101", "seed"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateStaff(ctx, accounts.Staff{ID: "dispatch", Role: typesv1.Role_ROLE_DISPATCHER, Compound: "haixin", Password: "gate keeper 1"}); err != nil {
		t.Fatal(err)
	}
	resident, residentExp, err := s.StartSession(ctx, accounts.Principal{Role: typesv1.Role_ROLE_RESIDENT, HouseholdID: "haixin-1-1-101"})
	if err != nil {
		t.Fatal(err)
	}
	staff, staffExp, err := s.StartSession(ctx, accounts.Principal{Role: typesv1.Role_ROLE_DISPATCHER, AccountID: "dispatch"})
	if err != nil {
		t.Fatal(err)
	}
	if got := residentExp.Sub(clk.Now()); got != 30*24*time.Hour {
		t.Errorf("resident session lasts %v, want 30 days", got)
	}
	if got := staffExp.Sub(clk.Now()); got != 12*time.Hour {
		t.Errorf("staff session lasts %v, want 12 h", got)
	}
	if p, err := s.Session(ctx, staff); err != nil || p.Role != typesv1.Role_ROLE_DISPATCHER || p.AccountID != "dispatch" || p.Compound != "haixin" {
		t.Fatalf("staff session: %+v %v", p, err)
	}
	if p, err := s.Session(ctx, resident); err != nil || p.HouseholdID != "haixin-1-1-101" || p.Compound != "haixin" {
		t.Fatalf("resident session: %+v %v", p, err)
	}

	clk.Add(12 * time.Hour)
	if _, err := s.Session(ctx, staff); !errors.Is(err, accounts.ErrNoSession) {
		t.Errorf("staff session after 12 h: %v", err)
	}
	if _, err := s.Session(ctx, resident); err != nil {
		t.Errorf("resident session after 12 h: %v", err)
	}
	clk.Add(30*24*time.Hour - 12*time.Hour)
	if _, err := s.Session(ctx, resident); !errors.Is(err, accounts.ErrNoSession) {
		t.Errorf("resident session after 30 days: %v", err)
	}

	// Sign-out ends a session at once; purging removes what expired unseen.
	live, _, err := s.StartSession(ctx, accounts.Principal{Role: typesv1.Role_ROLE_RESIDENT, HouseholdID: "haixin-1-1-101"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EndSession(ctx, live); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, live); !errors.Is(err, accounts.ErrNoSession) {
		t.Errorf("session after sign-out: %v", err)
	}
	if _, _, err := s.StartSession(ctx, accounts.Principal{Role: typesv1.Role_ROLE_DISPATCHER, AccountID: "dispatch"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(13 * time.Hour)
	if n, err := s.PurgeExpired(ctx); err != nil || n != 1 {
		t.Errorf("PurgeExpired = %d, %v; want 1", n, err)
	}
	for _, bad := range []string{"", "nonsense", strings.Repeat("x", 500)} {
		if _, err := s.Session(ctx, bad); !errors.Is(err, accounts.ErrNoSession) {
			t.Errorf("Session(%q) = %v", bad, err)
		}
	}
}

func TestSignInLinkAndQRCode(t *testing.T) {
	link := accounts.SignInLink("http://192.168.1.10:8080/", "7K3MXQ9PABCDEFGH")
	if link != "http://192.168.1.10:8080/signin?code=7K3M-XQ9P-ABCD-EFGH" {
		t.Fatalf("link %s", link)
	}
	raw, err := accounts.QRCode(link, 256)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("QR is %v, want 256×256", b)
	}
	if _, err := accounts.QRCode(link, 10); err == nil {
		t.Error("a 10 px QR code was drawn")
	}
}
