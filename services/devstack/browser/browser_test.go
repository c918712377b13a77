package browser_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/doorstep/doorstep/pkg/auth"
	"github.com/doorstep/doorstep/pkg/grpcx"
	"github.com/doorstep/doorstep/pkg/rounds"
	"github.com/doorstep/doorstep/pkg/testkit"
	dispatchv1 "github.com/doorstep/doorstep/proto/gen/doorstep/dispatch/v1"
	orderv1 "github.com/doorstep/doorstep/proto/gen/doorstep/order/v1"
	supplierv1 "github.com/doorstep/doorstep/proto/gen/doorstep/supplier/v1"
	typesv1 "github.com/doorstep/doorstep/proto/gen/doorstep/types/v1"
	"github.com/doorstep/doorstep/services/devstack/seed"
	"github.com/doorstep/doorstep/services/devstack/stack"
	"github.com/doorstep/doorstep/services/gateway/accounts"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// chromiumPath is Debian's Chromium. The browser tests are part of `make test`: a machine
// without it fails them, loudly, rather than passing by skipping.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("DOORSTEP_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("Chromium is not installed: the browser tests need it. Install it with `apt-get install -y chromium` " +
		"(or set DOORSTEP_CHROMIUM to a Chromium binary).")
	return ""
}

const (
	household = "haixin-3-2-502" // building 3: haixin-courier-02's
	freshmart = "haixin-freshmart"
	courierID = "haixin-courier-02"
	password  = "browser test password"
)

// evening is the clock of the services, the seed and the accounts (and of the tokens this test
// mints): 20:00 in Shanghai two years from today, and running from there.
//   - By 20:00 today's rounds have closed, and a parcel checked in at the gate joins tomorrow's
//     first round; the dispatcher's console once offered only today's rounds to plan, which a
//     test run in the morning could not see.
//   - Two years on, papers the seed gave fixed expiry dates would have run out (it once did, and
//     the demo compound would have stopped taking orders in mid-2027).
var evening = func() func() time.Time {
	now := time.Now().In(rounds.Shanghai)
	offset := time.Date(now.Year()+2, now.Month(), now.Day(), 20, 0, 0, 0, rounds.Shanghai).Sub(now)
	return func() time.Time { return time.Now().Add(offset) }
}()

// startStack runs the whole system as `make run` does and seeds the haixin compound.
func startStack(t *testing.T) *stack.Stack {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := stack.Start(ctx, stack.Options{DataDir: t.TempDir(), DatabaseURL: testkit.Postgres(t), Log: log,
		AuthKey: string(testkit.AuthKey), Now: evening})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(s.Stop)

	// The seed speaks to the services as a SYSTEM identity, as the dev stack's seed does.
	keys, err := auth.NewKeys(testkit.AuthKey, evening)
	if err != nil {
		t.Fatal(err)
	}
	asSeed := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, err := keys.Outgoing(ctx, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "seed"})
		if err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpcx.Dial(addr, asSeed)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	if _, err := seed.Run(ctx, seed.Clients{Order: orderv1.NewOrderServiceClient(dial(s.Order)),
		Supplier: supplierv1.NewSupplierServiceClient(dial(s.Supplier)), Dispatch: dispatchv1.NewDispatchServiceClient(dial(s.Dispatch)),
		Now: evening}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return s
}

// people creates the accounts the way the dev stack's seed does: straight in the gateway's
// database, through the gateway's accounts package.
func people(t *testing.T, s *stack.Stack) accounts.IssuedCode {
	t.Helper()
	ctx := context.Background()
	store, err := accounts.Open(ctx, s.DatabaseURL, accounts.Options{BcryptCost: bcrypt.MinCost, Now: evening})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, st := range []accounts.Staff{
		{ID: "fm-staff", Role: typesv1.Role_ROLE_SUPPLIER, SupplierID: freshmart, Name: "鲜丰 FreshMart"},
		{ID: "gate", Role: typesv1.Role_ROLE_DISPATCHER, Name: "门岗 Gate"},
		{ID: "li.shifu", Role: typesv1.Role_ROLE_COURIER, CourierID: courierID, Name: "李师傅"},
		{ID: "zhou", Role: typesv1.Role_ROLE_WORKER, Name: "周老师"},
	} {
		st.Compound, st.Password = "haixin", password
		if _, err := store.CreateStaff(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	code, err := store.IssueHouseholdCode(ctx, household, "browser-test")
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// browser is one headless Chromium; each person gets their own incognito-like context, with
// their own cookies, in it.
type browser struct {
	t      *testing.T
	ctx    context.Context
	shots  string
	base   string
	failed sync.Once
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(360, 780),               // the narrowest phone the pages are made for
		chromedp.Flag("accept-lang", "zh-CN,zh,en"), // a phone in Shanghai
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	// Screenshots outlive the test (t.TempDir would not), so a failure can be looked at.
	shots, err := os.MkdirTemp("", "doorstep-browser-")
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx, shots: shots, base: base}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(shots)
		}
	})
	return b
}

// person opens a fresh browser context: a separate phone.
func (b *browser) person(name string) *tab {
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open %s's browser: %v", name, err)
	}
	return &tab{b: b, ctx: ctx, name: name}
}

type tab struct {
	b    *browser
	ctx  context.Context
	name string
}

// do runs a step's actions; on failure it saves a screenshot of every open tab and fails.
func (tb *tab) do(step string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.b.t.Fatalf("%s: %s: %v (screenshots in %s)", tb.name, step, err, tb.screenshot(step))
	}
	// DOORSTEP_BROWSER_SCREENSHOTS=dir keeps a picture of every step, to look at the pages.
	if dir := os.Getenv("DOORSTEP_BROWSER_SCREENSHOTS"); dir != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, fileName(tb.name, step)), png, 0o644)
		}
	}
}

func fileName(who, step string) string {
	return strings.NewReplacer(" ", "-", "/", "-", ",", "").Replace(fmt.Sprintf("%s-%s.png", who, step))
}

var tabs sync.Map // name -> *tab, for screenshots of everyone on failure

func (tb *tab) screenshot(step string) string {
	tabs.Range(func(_, v any) bool {
		other := v.(*tab)
		ctx, cancel := context.WithTimeout(other.ctx, 5*time.Second)
		defer cancel()
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(tb.b.shots, fileName(other.name, step)), png, 0o644)
		}
		return true
	})
	return tb.b.shots
}

func (b *browser) open(name string) *tab {
	tb := b.person(name)
	tabs.Store(name, tb)
	return tb
}

func (tb *tab) signInStaff(account string, page string) {
	tb.do("staff sign-in", 20*time.Second,
		chromedp.Navigate(tb.b.base+"/signin"),
		chromedp.WaitVisible(chromedp.CSS(`#account`)),
		chromedp.SendKeys(chromedp.CSS(`#account`), account),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
		chromedp.Click(chromedp.CSS(`#staff-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#sign-out`)),
		waitLocation(tb.b.base+page),
	)
}

// waitLocation waits until the tab is at url.
func waitLocation(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			// Asking while the page navigates fails ("target navigated"): ask again.
			loc, err := chromedp.Location()(ctx, t)
			if err == nil && strings.TrimSuffix(loc, "/") == strings.TrimSuffix(url, "/") {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("at %s, waiting for %s: %w", loc, url, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// evaluate runs a script for its effect.
func evaluate(script string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](script)(ctx, t)
		return err
	})
}

// attribute reads an attribute of the first element sel matches into v.
func attribute(sel, name string, v *string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		res, err := chromedp.AttributeValue(chromedp.CSS(sel), name)(ctx, t)
		*v = res.Value
		return err
	})
}

// text reads the text of the first element sel matches into v.
func text(sel string, v *string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
		*v, err = chromedp.Text(chromedp.CSS(sel))(ctx, t)
		return err
	})
}

// waitTextSuffix waits until the text of the first element sel matches ends with suffix. The
// text is read in the page in one step: the order list is redrawn as updates arrive, and a node
// found by one call can be gone by the next.
func waitTextSuffix(sel, suffix string) chromedp.Action[chromedp.Void] {
	script := fmt.Sprintf(`(() => { const n = document.querySelector(%q); return n ? n.textContent : ''; })()`, sel)
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var last string
		for {
			got, err := chromedp.Evaluate[string](script)(ctx, t)
			if err == nil && strings.HasSuffix(got, suffix) {
				return nil
			}
			if err == nil {
				last = got
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s reads %q, want it to end with %q: %w", sel, last, suffix, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// TestBasketToDoorInTheBrowser is a day in the pages: a resident signs in with the code from
// their notice and orders, the supplier confirms and hands the parcel over at the gate, the
// dispatcher checks it in and plans the round, the courier picks up and delivers, and the
// resident's page, open all along and never reloaded, shows it DELIVERED.
func TestBasketToDoorInTheBrowser(t *testing.T) {
	chromiumPath(t) // fail first, and fast, on a machine without Chromium
	s := startStack(t)
	code := people(t, s)
	b := newBrowser(t, "http://"+s.Gateway)

	// A stranger asking for a console lands on sign-in, in the browser's language, can switch it,
	// and a wrong code is refused there.
	stranger := b.open("stranger")
	var before, after string
	stranger.do("language", 30*time.Second,
		chromedp.Navigate(b.base+"/dispatch"),
		waitLocation(b.base+"/signin?next=%2Fdispatch"),
		chromedp.WaitVisible(chromedp.CSS(`#lang-switch`)),
		text(`#code-title`, &before),
		chromedp.Click(chromedp.CSS(`#lang-switch`)),
		chromedp.WaitVisible(chromedp.CSS(`html[lang="en"] #code`)),
		text(`#code-title`, &after),
	)
	if before != "居民登录" || after != "Residents" {
		t.Fatalf("sign-in title %q, then %q after the switch", before, after)
	}
	stranger.do("wrong code", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS(`#code`), "2222-3333-4444-5555"),
		chromedp.Click(chromedp.CSS(`#code-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#code-message.error`)),
	)

	// The resident opens the link of the QR code on their notice.
	resident := b.open("resident")
	var orderID, parcelID string
	resident.do("sign in by link and order", 60*time.Second,
		chromedp.Navigate(accounts.SignInLink(b.base, code.Code)),
		waitLocation(b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-add="fm-rice-5kg"]`)),
		// A marker the page would lose on a reload: the last check proves there was none.
		evaluate(`window.__sameDocument = true`),
		chromedp.Click(chromedp.CSS(`[data-add="fm-rice-5kg"]`)),
		chromedp.Click(chromedp.CSS(`[data-add="fm-rice-5kg"]`)),
		chromedp.WaitEnabled(chromedp.CSS(`#place-order`)),
		chromedp.Click(chromedp.CSS(`#place-order`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-order-id] [data-state="PLACED"]`)),
		attribute(`[data-order-id]`, "data-order-id", &orderID),
		attribute(`[data-order-id] [data-parcel-id]`, "data-parcel-id", &parcelID),
	)
	if orderID == "" || parcelID == "" {
		t.Fatalf("order %q parcel %q", orderID, parcelID)
	}
	parcel := fmt.Sprintf(`[data-parcel-id=%q]`, parcelID)
	// The page is in Chinese (the phone's language): so is the rice's unit, entered as "bag".
	resident.do("read the parcel's lines in Chinese", 10*time.Second, waitTextSuffix(parcel+` .lines`, " 2 袋"))

	// The supplier confirms and hands the parcel over at the gate.
	supplier := b.open("supplier")
	supplier.signInStaff("fm-staff", "/supplier")
	supplier.do("confirm", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-confirm=%q]`, parcelID))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-confirm=%q]`, parcelID))),
		// Each action reloads the list (and the counts above the tabs): wait for it to settle.
		chromedp.WaitNotPresent(chromedp.CSS(fmt.Sprintf(`[data-confirm=%q]`, parcelID))),
		chromedp.Click(chromedp.CSS(`[data-tab="CONFIRMED"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-ready=%q]`, parcelID))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-ready=%q]`, parcelID))),
		chromedp.WaitNotPresent(chromedp.CSS(fmt.Sprintf(`[data-ready=%q]`, parcelID))),
		chromedp.Click(chromedp.CSS(`[data-tab="READY"]`)),
		chromedp.WaitVisible(chromedp.CSS(parcel+`[data-state="READY"]`)),
	)
	// The resident sees it move without doing anything.
	resident.do("see it ready", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(`[data-order-id] `+parcel+`[data-state="READY"]`)))

	// The dispatcher checks it in at the gate and plans the round.
	dispatcher := b.open("dispatcher")
	dispatcher.signInStaff("gate", "/dispatch")
	// At 20:00 the page selects today's morning round, closed and empty. Planning it would end it:
	// the page asks first, and a "no" plans nothing.
	var asked int
	dispatcher.do("not plan an empty round", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-round]`)),
		evaluate(`window.__asked = 0; window.confirm = () => { window.__asked++; return false; }`),
		chromedp.Click(chromedp.CSS(`#plan`)),
		// The page reads the rounds' counts afresh before it asks (or, wrongly, plans).
		chromedp.Poll[chromedp.Void](`window.__asked > 0 || document.querySelector('#plan-message.ok') !== null`),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
			asked, err = chromedp.Evaluate[int](`window.__asked`)(ctx, t)
			return err
		}),
	)
	if asked != 1 {
		t.Fatalf("planning an empty round asked %d times; want once", asked)
	}
	dispatcher.do("check in and plan", 60*time.Second,
		// The parcel's label is scanned (typed) at the gate: that works whether or not the gate
		// list has it yet.
		chromedp.WaitVisible(chromedp.CSS(`#gate-parcel`)),
		// The gate list is the order service's, which hears of the check-in a moment later:
		// from here on it answers as if it had not yet, and the page must still drop the
		// parcel it checked in.
		evaluate(staleGateList(parcelID)),
		chromedp.SendKeys(chromedp.CSS(`#gate-parcel`), parcelID+"\n"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-gate=%q]`, parcelID))),
		chromedp.Click(chromedp.CSS(`#checkin`)),
		chromedp.WaitVisible(chromedp.CSS(`#checkin-message.ok`)),
		// The checked-in parcel leaves the gate list, which moves the plan button: click it
		// once the page has settled, not where it was.
		chromedp.WaitNotPresent(chromedp.CSS(fmt.Sprintf(`[data-gate=%q]`, parcelID))),
		chromedp.Click(chromedp.CSS(`#plan`)),
		chromedp.WaitVisible(chromedp.CSS(`#plan-message.ok`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-route][data-courier=%q]`, courierID))),
	)

	// The courier's route arrives as the courier service hears of the plan; the courier opens
	// the page (again) until it is there, picks up at the gate and delivers.
	courier := b.open("courier")
	courier.signInStaff("li.shifu", "/courier")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(courier.ctx, 3*time.Second)
		err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#pickup`)))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("courier: no route to pick up (screenshots in %s)", courier.screenshot("route"))
		}
		courier.do("reload", 10*time.Second, chromedp.Reload())
	}
	stop := fmt.Sprintf(`[data-left=%q]`, household)
	courier.do("pick up", 30*time.Second,
		chromedp.Click(chromedp.CSS(`#pickup`)),
		chromedp.WaitVisible(chromedp.CSS(stop)),
	)
	courier.do("deliver", 30*time.Second,
		chromedp.Click(chromedp.CSS(stop)),
		chromedp.WaitVisible(chromedp.CSS(parcel+`[data-state="DELIVERED"]`)),
	)

	// The resident's page, never reloaded, shows the parcel delivered.
	var same bool
	resident.do("see it delivered, live", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-order-id] `+parcel+`[data-state="DELIVERED"]`)),
		// The order's own status follows once the order service has applied the delivery.
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-order-id=%q][data-status="DELIVERED"] `, orderID)+parcel+`[data-state="DELIVERED"]`)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
			same, err = chromedp.Evaluate[bool](`window.__sameDocument === true`)(ctx, t)
			return err
		}),
	)
	if !same {
		t.Fatalf("the resident's page was reloaded (screenshots in %s)", resident.screenshot("reloaded"))
	}
	// And it heard of it over the event stream, not by falling back to refreshing.
	var hint string
	resident.do("live, not polling", 5*time.Second, text(`#live-hint`, &hint))
	if hint != "Live updates" && hint != "状态实时更新" {
		t.Fatalf("the resident's page says %q: its event stream failed (screenshots in %s)", hint, resident.screenshot("polling"))
	}

	// A community worker re-issues the household's code (the old one stops working), prints the
	// notice with its QR code, and orders for the household as it asked by phone; the household
	// signs in with the new code and finds the worker's phone order.
	worker := b.open("worker")
	worker.signInStaff("zhou", "/worker")
	var issued string
	var qrWidth int
	worker.do("re-issue the code and order for the household", 60*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`#filter`)),
		chromedp.SendKeys(chromedp.CSS(`#filter`), household+"\n"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-code=%q]`, household))),
		evaluate(`window.confirm = () => true`), // the "re-issuing ends the old code" question
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-code=%q]`, household))),
		chromedp.WaitVisible(chromedp.CSS(`#issued-code`)),
		text(`#issued-code`, &issued),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			// The QR code is drawn once its image has loaded.
			for {
				w, err := chromedp.Evaluate[int](`document.querySelector('img.qr').naturalWidth`)(ctx, t)
				if err != nil || w > 0 {
					qrWidth = w
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		}),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-proxy=%q]`, household))),
		chromedp.WaitVisible(chromedp.CSS(`#proxy-catalog [data-add="fm-rice-5kg"]`)),
		chromedp.Click(chromedp.CSS(`#proxy-catalog [data-add="fm-rice-5kg"]`)),
		chromedp.Click(chromedp.CSS(`#proxy-phone`)), // the household called
		chromedp.WaitEnabled(chromedp.CSS(`#proxy-place`)),
		chromedp.Click(chromedp.CSS(`#proxy-place`)),
		chromedp.WaitVisible(chromedp.CSS(`#proxy-message.ok`)),
	)
	if len(issued) != 19 || issued == code.Formatted || qrWidth == 0 {
		t.Fatalf("issued %q (old %q), QR %d px wide", issued, code.Formatted, qrWidth)
	}
	// The resident's phone was signed in with the old code: its next request finds the session
	// ended. The new code signs in, and the worker's order is there.
	again := b.open("resident again")
	again.do("sign in with the new code", 30*time.Second,
		chromedp.Navigate(accounts.SignInLink(b.base, issued)),
		waitLocation(b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-order-id][data-placed-by="WORKER"][data-channel="PHONE"]`)),
	)
}

// staleGateList makes the page's gate list always include parcelID as waiting, as the order
// service answers until it has applied the parcel's check-in.
func staleGateList(parcelID string) string {
	return fmt.Sprintf(`(() => {
		const real = window.fetch;
		window.fetch = async (url, opts) => {
			const res = await real(url, opts);
			if (!String(url).endsWith('/api/v1/dispatch/gate') || !res.ok) return res;
			const body = await res.json();
			if (!body.parcels.some((p) => p.parcel_id === %[1]q)) {
				body.parcels.push({ parcel_id: %[1]q, supplier_id: %[2]q, lines: [], address: { building: '3', unit: '2', floor: '5', room: '502' } });
			}
			return new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } });
		};
	})()`, parcelID, freshmart)
}

// evaluateInto runs a script in the page and reads its string result into v: one step, so a list
// redrawn meanwhile cannot lose the node between finding and reading it.
func evaluateInto(script string, v *string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
		*v, err = chromedp.Evaluate[string](script)(ctx, t)
		return err
	})
}

// count reads how many elements sel matches into n.
func count(sel string, n *int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := chromedp.Evaluate[float64](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))(ctx, t)
		*n = int(v)
		return err
	})
}

// TestSupplierConsolePages: the supplier's "At the gate" list keeps every parcel ever handed
// over, so the console shows 100 at a time, the newest first, and "More" adds the next ones below.
func TestSupplierConsolePages(t *testing.T) {
	chromiumPath(t)
	s := startStack(t)
	people(t, s)
	ctx := context.Background()
	keys, err := auth.NewKeys(testkit.AuthKey, evening)
	if err != nil {
		t.Fatal(err)
	}
	system, err := keys.Outgoing(ctx, auth.Identity{Role: typesv1.Role_ROLE_SYSTEM, Subject: "browser-test"})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpcx.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	orders, supplier := orderv1.NewOrderServiceClient(dial(s.Order)), supplierv1.NewSupplierServiceClient(dial(s.Supplier))
	const handedOver = 101
	ids := make([]string, handedOver)
	handOver := func(ctx context.Context, i int) error {
		o, err := orders.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{RequestId: fmt.Sprintf("pages-%d", i), HouseholdId: household,
			Lines: []*orderv1.BasketLine{{ItemId: "fm-rice-5kg", Quantity: 1}}})
		if err != nil {
			return fmt.Errorf("order %d: %w", i, err)
		}
		ids[i] = o.GetOrder().GetParcels()[0].GetParcelId()
		if _, err := supplier.ConfirmParcel(ctx, &supplierv1.ConfirmParcelRequest{RequestId: "c-" + ids[i], SupplierId: freshmart, ParcelId: ids[i]}); err != nil {
			return fmt.Errorf("confirm %d: %w", i, err)
		}
		_, err = supplier.MarkParcelReady(ctx, &supplierv1.MarkParcelReadyRequest{RequestId: "r-" + ids[i], SupplierId: freshmart, ParcelId: ids[i]})
		return err
	}
	g, gctx := errgroup.WithContext(system)
	g.SetLimit(8)
	for i := range handedOver - 1 {
		g.Go(func() error { return handOver(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// The last is ordered after all the others: the tab, newest first, shows it at the top.
	if err := handOver(system, handedOver-1); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, "http://"+s.Gateway)
	staff := b.open("supplier")
	// The page's timers are kept where the test can run them: the console refreshes every 15 s.
	staff.do("keep the timers", 10*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			(() => {
				window.__timers = [];
				const setInterval = window.setInterval;
				window.setInterval = (f, ms, ...args) => { window.__timers.push(f); return setInterval(f, ms, ...args); };
			})();`})
		return err
	}))
	staff.signInStaff("fm-staff", "/supplier")
	var first, all, more, afterRefresh int
	var top string
	staff.do("a page, then more", 60*time.Second,
		chromedp.Click(chromedp.CSS(`[data-tab="READY"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#more-parcels`)),
		count(`#parcels [data-parcel-id]`, &first),
		evaluateInto(`document.querySelector('#parcels [data-parcel-id]').dataset.parcelId`, &top),
		chromedp.Click(chromedp.CSS(`#more-parcels`)),
		chromedp.WaitVisible(chromedp.CSS(`#parcels [data-parcel-id]:nth-of-type(101)`)),
		count(`#parcels [data-parcel-id]`, &all),
		count(`#more-parcels`, &more),
		// The 15 s refresh comes: the counts are read again, and the pages asked for stay.
		evaluate(`window.__timers.forEach((f) => f())`),
		// A reload of the list takes some 50 ms here: 2 s is ample for it to show, and with the
		// page right nothing is reloaded, so the wait can only pass wrongly, never fail wrongly.
		chromedp.Sleep(2*time.Second),
		count(`#parcels [data-parcel-id]`, &afterRefresh),
	)
	if afterRefresh != handedOver {
		t.Errorf("after the periodic refresh the READY tab shows %d parcels; want the %d asked for", afterRefresh, handedOver)
	}
	if first != 100 || all != handedOver || more != 0 {
		t.Errorf("the READY tab showed %d parcels, then %d after More (More buttons left: %d); want 100, then %d and none", first, all, more, handedOver)
	}
	if top != ids[handedOver-1] {
		t.Errorf("the READY tab shows %s first; want the one handed over last, %s", top, ids[handedOver-1])
	}
}
