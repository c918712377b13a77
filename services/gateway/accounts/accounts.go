// Package accounts keeps who may sign in to Doorstep: households by a printed sign-in code, staff
// (community workers, dispatchers, supplier staff, couriers) by name and password, and the
// sessions both open. It lives in the gateway's own PostgreSQL schema, "gateway".
//
// It is public so that the dev stack's seed and tests can create staff accounts and issue
// household codes directly against the database, without a signed-in worker.
//
// Secrets are never stored: codes and session tokens as SHA-256 (they carry 79 and 256 bits of
// randomness, so a fast hash is enough and lets a sign-in look them up directly), passwords as
// bcrypt (people choose them, so they need a slow hash).
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/events"
	"github.com/doorstep/doorstep/pkg/pgkit"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// Schema is the gateway's PostgreSQL schema.
const Schema = "gateway"

//go:embed migrations/*.sql
var migrations embed.FS

// Session lifetimes: a household stays signed in on its phone for a month (the code is on paper
// under the door, signing in again is a chore for the elderly); staff for one working day.
const (
	ResidentSessionTTL = 30 * 24 * time.Hour
	StaffSessionTTL    = 12 * time.Hour
)

var (
	// ErrBadCredentials is a sign-in that failed: unknown code, unknown name or wrong password.
	// One error for all of them, so a failed sign-in does not tell which part was wrong.
	ErrBadCredentials = errors.New("accounts: sign-in code, name or password not accepted")
	// ErrNoSession is a session token that is unknown, ended or expired.
	ErrNoSession = errors.New("accounts: no such session")
	// ErrExists is a staff account id already taken.
	ErrExists = errors.New("accounts: account already exists")
	// ErrNotFound is an unknown account.
	ErrNotFound = errors.New("accounts: not found")
)

// InvalidError names the field of a request that is wrong.
type InvalidError struct {
	Field, Why string
}

func (e *InvalidError) Error() string { return "accounts: " + e.Field + ": " + e.Why }

// Options configure a Store.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BcryptCost of new password hashes; 0 means bcrypt.DefaultCost. Tests lower it.
	BcryptCost int
}

// Store is the accounts database.
type Store struct {
	pool *pgxpool.Pool
	own  bool
	now  func() time.Time
	cost int
	// dummy is compared against when a name is unknown, so an unknown name costs as much time
	// as a wrong password and sign-in timing does not reveal which names exist.
	dummy []byte
}

// Open connects to the database at url, in the gateway schema, and applies the migrations.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	if url == "" {
		return nil, errors.New("accounts: DATABASE_URL is required")
	}
	pool, err := pgkit.Open(ctx, url, Schema)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := New(pool, o)
	s.own = true
	return s, nil
}

// Migrations are the accounts' schema migrations.
func Migrations() pgkit.Migrations {
	return pgkit.Migrations{Table: "gateway_migrations", FS: mustSub(migrations, "migrations")}
}

// Migrate applies the accounts migrations to pool's schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgkit.Migrate(ctx, pool, Migrations())
}

// New wraps a pool whose search_path is the gateway schema, already migrated.
func New(pool *pgxpool.Pool, o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	dummy, _ := bcrypt.GenerateFromPassword([]byte("no such account"), o.BcryptCost)
	return &Store{pool: pool, now: o.Now, cost: o.BcryptCost, dummy: dummy}
}

// Close closes the pool if Open made it.
func (s *Store) Close() {
	if s.own {
		s.pool.Close()
	}
}

// Pool is the store's connection pool (for readiness checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Principal is who a session belongs to.
type Principal struct {
	Role typesv1.Role
	// AccountID is the staff account (empty for a household).
	AccountID string
	// HouseholdID is the household of a resident session.
	HouseholdID string
	Compound    string
	Name        string
	// SupplierID binds supplier staff to their supplier.
	SupplierID string
	// CourierID binds a courier account to the courier the planner routes.
	CourierID string
	ExpiresAt time.Time
}

// Identity is the principal as the services see it. Couriers are named by their courier id, so
// routes, events and the courier service's ownership checks all speak of the same person.
func (p Principal) Identity() auth.Identity {
	id := auth.Identity{Role: p.Role, Subject: p.AccountID, SupplierID: p.SupplierID, Compound: p.Compound}
	switch p.Role {
	case typesv1.Role_ROLE_RESIDENT:
		id.Subject = p.HouseholdID
	case typesv1.Role_ROLE_COURIER:
		id.Subject = p.CourierID
	}
	return id
}

// Staff is a staff account as created.
type Staff struct {
	ID         string
	Role       typesv1.Role
	Compound   string
	Name       string
	SupplierID string
	CourierID  string
	// Password is only read by CreateStaff; it is never stored or returned.
	Password string
}

var (
	accountIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)
	slugPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,99}$`)
)

// staffRoles are the roles a staff account may hold; residents sign in by code, SYSTEM never signs in.
var staffRoles = map[typesv1.Role]bool{
	typesv1.Role_ROLE_WORKER: true, typesv1.Role_ROLE_DISPATCHER: true,
	typesv1.Role_ROLE_SUPPLIER: true, typesv1.Role_ROLE_COURIER: true,
}

// MinPasswordLength is the shortest staff password accepted.
const MinPasswordLength = 10

func (st Staff) validate() error {
	switch {
	case !accountIDPattern.MatchString(st.ID):
		return &InvalidError{"id", "must be 3 to 64 lower-case letters, digits, '.', '_' or '-'"}
	case !staffRoles[st.Role]:
		return &InvalidError{"role", "must be worker, dispatcher, supplier or courier"}
	case !events.ValidCompound(st.Compound):
		return &InvalidError{"compound", "must be a compound slug such as haixin"}
	case st.Role == typesv1.Role_ROLE_SUPPLIER && !slugPattern.MatchString(st.SupplierID):
		return &InvalidError{"supplier_id", "is required for supplier staff"}
	case st.Role != typesv1.Role_ROLE_SUPPLIER && st.SupplierID != "":
		return &InvalidError{"supplier_id", "is only for supplier staff"}
	case st.Role == typesv1.Role_ROLE_COURIER && !slugPattern.MatchString(st.CourierID):
		return &InvalidError{"courier_id", "is required for a courier"}
	case st.Role != typesv1.Role_ROLE_COURIER && st.CourierID != "":
		return &InvalidError{"courier_id", "is only for couriers"}
	case len(st.Name) > 200:
		return &InvalidError{"name", "must be at most 200 bytes"}
	}
	return validatePassword(st.Password)
}

func validatePassword(p string) error {
	switch {
	case len([]rune(p)) < MinPasswordLength:
		return &InvalidError{"password", fmt.Sprintf("must be at least %d characters", MinPasswordLength)}
	case len(p) > 72: // bcrypt reads no further; a longer password would silently be cut
		return &InvalidError{"password", "must be at most 72 bytes"}
	}
	return nil
}

// CreateStaff creates a staff account; ErrExists when the id is taken.
func (s *Store) CreateStaff(ctx context.Context, st Staff) (Staff, error) {
	if err := st.validate(); err != nil {
		return Staff{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(st.Password), s.cost)
	if err != nil {
		return Staff{}, fmt.Errorf("accounts: hash password: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO staff_accounts
		(account_id, role, compound, display_name, supplier_id, courier_id, password_hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		st.ID, st.Role.String(), st.Compound, st.Name, st.SupplierID, st.CourierID, string(hash), s.now().UTC())
	if pgkit.IsUniqueViolation(err) {
		return Staff{}, fmt.Errorf("%w: %s", ErrExists, st.ID)
	}
	if err != nil {
		return Staff{}, fmt.Errorf("accounts: create %s: %w", st.ID, err)
	}
	st.Password = ""
	return st, nil
}

// SetPassword replaces a staff account's password and ends its sessions.
func (s *Store) SetPassword(ctx context.Context, accountID, password string) error {
	if err := validatePassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return fmt.Errorf("accounts: hash password: %w", err)
	}
	return pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE staff_accounts SET password_hash = $2 WHERE account_id = $1`, accountID, string(hash))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: account %s", ErrNotFound, accountID)
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE account_id = $1`, accountID)
		return err
	})
}

// SignInStaff checks a staff account's password.
func (s *Store) SignInStaff(ctx context.Context, accountID, password string) (Principal, error) {
	var p Principal
	var role, hash string
	err := s.pool.QueryRow(ctx, `SELECT role, compound, display_name, supplier_id, courier_id, password_hash
		FROM staff_accounts WHERE account_id = $1`, strings.ToLower(strings.TrimSpace(accountID))).
		Scan(&role, &p.Compound, &p.Name, &p.SupplierID, &p.CourierID, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return Principal{}, ErrBadCredentials
	}
	if err != nil {
		return Principal{}, fmt.Errorf("accounts: sign in: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return Principal{}, ErrBadCredentials
	}
	p.AccountID = strings.ToLower(strings.TrimSpace(accountID))
	p.Role = typesv1.Role(typesv1.Role_value[role])
	return p, nil
}

// ---- household sign-in codes ----

// codeAlphabet leaves out 0/O, 1/I/L and U: a code is read off paper by elderly people and typed
// on a phone, so no two symbols may be mistaken for each other.
const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTVWXYZ"

// CodeLength symbols of a 30-symbol alphabet are 78.5 bits: guessing one of a few thousand live
// codes at the rate-limited pace of sign-in is hopeless.
const CodeLength = 16

// newCode draws a code uniformly (rand.Text-style rejection sampling keeps every symbol equally likely).
func newCode() (string, error) {
	var b strings.Builder
	buf := make([]byte, 32)
	for b.Len() < CodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			// 240 = 8 * 30: bytes at or above it would favour the alphabet's first symbols.
			if c >= 240 || b.Len() == CodeLength {
				continue
			}
			b.WriteByte(codeAlphabet[int(c)%len(codeAlphabet)])
		}
	}
	return b.String(), nil
}

// FormatCode groups a code in fours for printing: "7K3M-XQ9P-...".
func FormatCode(code string) string {
	var parts []string
	for i := 0; i < len(code); i += 4 {
		parts = append(parts, code[i:min(i+4, len(code))])
	}
	return strings.Join(parts, "-")
}

// NormalizeCode undoes what people do to a code when typing it: spaces, dashes, lower case.
// It reports false for anything that cannot be a code, so no lookup is made for it.
func NormalizeCode(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r < 128 && strings.IndexByte(codeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), b.Len() == CodeLength
}

func digest(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

var householdPattern = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*?)-([0-9A-Za-z]+)-([0-9A-Za-z]+)-([0-9A-Za-z]+)$`)

// CompoundOf is the compound of a household id "<compound>-<building>-<unit>-<room>".
func CompoundOf(householdID string) (string, bool) {
	m := householdPattern.FindStringSubmatch(householdID)
	if m == nil || !events.ValidCompound(m[1]) {
		return "", false
	}
	return m[1], true
}

// IssuedCode is a freshly issued household sign-in code. It exists only in this value: the
// database keeps its hash, so a lost code is re-issued, never looked up.
type IssuedCode struct {
	HouseholdID string
	// Code is the 16 symbols; Formatted groups them for print.
	Code      string
	Formatted string
	IssuedAt  time.Time
}

// IssueHouseholdCode gives a household a new sign-in code. The previous code stops working and
// every session opened with it ends: re-issuing is what a worker does when a code was lost or
// seen by someone else. issuedBy names the worker (or "seed").
func (s *Store) IssueHouseholdCode(ctx context.Context, householdID, issuedBy string) (IssuedCode, error) {
	compound, ok := CompoundOf(householdID)
	if !ok {
		return IssuedCode{}, &InvalidError{"household_id", "must be compound-building-unit-room, e.g. haixin-3-2-302"}
	}
	if issuedBy == "" {
		return IssuedCode{}, &InvalidError{"issued_by", "is required"}
	}
	code, err := newCode()
	if err != nil {
		return IssuedCode{}, fmt.Errorf("accounts: draw code: %w", err)
	}
	now := s.now().UTC()
	err = pgkit.Tx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO household_codes (household_id, compound, code_hash, issued_at, issued_by)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (household_id) DO UPDATE SET code_hash = EXCLUDED.code_hash,
				issued_at = EXCLUDED.issued_at, issued_by = EXCLUDED.issued_by`,
			householdID, compound, digest(code), now, issuedBy); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE household_id = $1`, householdID)
		return err
	})
	if err != nil {
		return IssuedCode{}, fmt.Errorf("accounts: issue code for %s: %w", householdID, err)
	}
	return IssuedCode{HouseholdID: householdID, Code: code, Formatted: FormatCode(code), IssuedAt: now}, nil
}

// CodeIssued reports when a household's current code was issued and by whom (ok false: none yet).
func (s *Store) CodeIssued(ctx context.Context, householdID string) (issuedAt time.Time, issuedBy string, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT issued_at, issued_by FROM household_codes WHERE household_id = $1`, householdID).
		Scan(&issuedAt, &issuedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, "", false, nil
	}
	if err != nil {
		return time.Time{}, "", false, fmt.Errorf("accounts: code of %s: %w", householdID, err)
	}
	return issuedAt.UTC(), issuedBy, true, nil
}

// SignInHousehold finds the household whose current code this is.
func (s *Store) SignInHousehold(ctx context.Context, code string) (Principal, error) {
	norm, ok := NormalizeCode(code)
	if !ok {
		return Principal{}, ErrBadCredentials
	}
	var p Principal
	err := s.pool.QueryRow(ctx, `SELECT household_id, compound FROM household_codes WHERE code_hash = $1`, digest(norm)).
		Scan(&p.HouseholdID, &p.Compound)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrBadCredentials
	}
	if err != nil {
		return Principal{}, fmt.Errorf("accounts: sign in: %w", err)
	}
	p.Role = typesv1.Role_ROLE_RESIDENT
	return p, nil
}

// ---- sessions ----

// SessionTTL is how long a session of this role lasts.
func SessionTTL(role typesv1.Role) time.Duration {
	if role == typesv1.Role_ROLE_RESIDENT {
		return ResidentSessionTTL
	}
	return StaffSessionTTL
}

// StartSession opens a session for a signed-in principal and returns its token (for the cookie).
func (s *Store) StartSession(ctx context.Context, p Principal) (token string, expires time.Time, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: draw session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	now := s.now().UTC()
	expires = now.Add(SessionTTL(p.Role))
	var household, account *string
	if p.Role == typesv1.Role_ROLE_RESIDENT {
		household = &p.HouseholdID
	} else {
		account = &p.AccountID
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO sessions (token_hash, household_id, account_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, digest(token), household, account, now, expires); err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: start session: %w", err)
	}
	return token, expires, nil
}

// Session is the principal of a live session. An expired session is deleted on sight.
func (s *Store) Session(ctx context.Context, token string) (Principal, error) {
	if token == "" || len(token) > 100 {
		return Principal{}, ErrNoSession
	}
	var p Principal
	var household, householdCompound, account, role, compound, name, supplierID, courierID *string
	var expires time.Time
	err := s.pool.QueryRow(ctx, `SELECT s.household_id, h.compound, s.account_id, a.role, a.compound, a.display_name,
			a.supplier_id, a.courier_id, s.expires_at
		FROM sessions s
		LEFT JOIN household_codes h ON h.household_id = s.household_id
		LEFT JOIN staff_accounts a ON a.account_id = s.account_id
		WHERE s.token_hash = $1`, digest(token)).
		Scan(&household, &householdCompound, &account, &role, &compound, &name, &supplierID, &courierID, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrNoSession
	}
	if err != nil {
		return Principal{}, fmt.Errorf("accounts: session: %w", err)
	}
	if !s.now().Before(expires) {
		_, _ = s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, digest(token))
		return Principal{}, ErrNoSession
	}
	p.ExpiresAt = expires.UTC()
	if household != nil {
		p.Role, p.HouseholdID, p.Compound = typesv1.Role_ROLE_RESIDENT, *household, *householdCompound
		return p, nil
	}
	p.AccountID, p.Role = *account, typesv1.Role(typesv1.Role_value[*role])
	p.Compound, p.Name, p.SupplierID, p.CourierID = *compound, *name, *supplierID, *courierID
	return p, nil
}

// EndSession signs a session out; ending an unknown session is not an error.
func (s *Store) EndSession(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, digest(token)); err != nil {
		return fmt.Errorf("accounts: end session: %w", err)
	}
	return nil
}

// PurgeExpired deletes expired sessions and returns how many.
func (s *Store) PurgeExpired(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, s.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("accounts: purge sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
