package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// The dashboard in a real headless chromium (Debian's), against the real
// API (run(), as main runs it) on a real InfluxDB 1.8.10 holding eight days
// of a simulated city. The tests read the page as a person does: visible
// text, headings, labels, links and buttons by their words.

// chromiumPath finds Debian's chromium ($GREENPOST_CHROMIUM overrides). A
// missing browser fails the test: `make tools` installs it.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("GREENPOST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Fatal("chromium not found: run `make tools` (deploy/tools/ensure-chromium.sh installs Debian's chromium)")
	return ""
}

// dashCity is the simulated city the browser tests look at.
type dashCity struct {
	api  *apiProcess
	city *city.City
	// silent is an outlet whose devices stopped two days ago (offline
	// alerts, not covered today); empty is registered and never reported.
	silent, empty string
	// scoped is the district of scopedKey, a viewer key scoped to it.
	scoped string
}

// scopedKey is the dashboard city's viewer key scoped to one district.
const scopedKey = "scoped-viewer-key-0123"

// startDashCity fills a fresh database with eight days of a 24-outlet city
// (reports every 10 minutes, as the simulator's devices send them), starts
// the API on it, imports the simulator's registry through the API and waits
// until the roll-up answers a 30-day question.
func startDashCity(t *testing.T) *dashCity {
	t.Helper()
	in := testenv.SharedInflux(t)
	bucket := freshBucket(t, in)
	st := openStore(t, in, bucket)
	c, err := city.New(city.Config{Seed: 11, Outlets: 24, Bins: 2})
	if err != nil {
		t.Fatal(err)
	}
	dc := &dashCity{city: c, silent: c.Outlets[4].ID, empty: c.Outlets[9].ID, scoped: c.Outlets[0].District}
	keys := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(keys, []byte(keyfile.Format(roleViewer, "district-office", []byte(scopedKey), "districts="+dc.scoped)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	end := now
	start := end.Truncate(10 * time.Minute).Add(-8 * 24 * time.Hour)
	var lines []byte
	flush := func() {
		if err := st.Write(context.Background(), lines); err != nil {
			t.Fatal(err)
		}
		lines = lines[:0]
	}
	for i, ref := range c.Devices() {
		if ref.Outlet.ID == dc.empty {
			continue
		}
		d := c.NewDevice(ref)
		offset := time.Duration(i*37%600) * time.Second
		for at := start.Add(offset); at.Before(end); at = at.Add(10 * time.Minute) {
			d.Advance(at)
			if ref.Outlet.ID == dc.silent && at.After(end.Add(-48*time.Hour)) {
				continue
			}
			lines, _ = appendReport(t, lines, d, at, now)
			if len(lines) > 4<<20 {
				flush()
			}
		}
	}
	flush()
	dc.api = startRun(t, map[string]string{
		"GP_INFLUX_URL": in.URL, "GP_INFLUX_BUCKET": bucket,
		"GP_API_KEYS": "admin:" + adminKey + ",viewer:" + viewerKey, "GP_API_KEYS_FILE": keys,
	})
	var reg bytes.Buffer
	if err := c.WriteRegistry(&reg, time.Time{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "readyz", func() bool { return dc.api.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	if a := dc.api.do(t, "POST", "/v1/outlets/import", adminKey, "text/csv", reg.String()); a.Status != 200 || !strings.Contains(string(a.Body), `"errors":[]`) {
		t.Fatalf("import: %s", a)
	}
	month := "from=" + now.Add(-30*24*time.Hour).UTC().Format(time.RFC3339) + "&to=" + now.UTC().Format(time.RFC3339)
	waitUntil(t, 120*time.Second, "the roll-up", func() bool {
		return dc.api.do(t, "GET", "/v1/rates?group_by=city&"+month, viewerKey, "", "").Status == 200 &&
			dc.api.do(t, "GET", "/v1/alerts", viewerKey, "", "").Status == 200
	})
	return dc
}

// appendReport appends device d's report at `at` as the collector stores
// it (decoded by the contract's one decoder, as a point).
func appendReport(t *testing.T, lines []byte, d *city.Device, at, now time.Time) ([]byte, telemetry.Message) {
	t.Helper()
	m, err := telemetry.Decode(d.Ref.TelemetryTopic(), d.AppendTelemetry(nil, at.UnixMilli()), now)
	if err != nil {
		t.Fatalf("simulated message: %v", err)
	}
	return telemetry.AppendPoint(lines, &m), m
}

// browserSession is one headless chromium with its console watched.
type browserSession struct {
	t       *testing.T
	ctx     context.Context
	base    string
	mu      sync.Mutex
	console []string
	dlDir   string
}

func newBrowser(t *testing.T, base string) *browserSession {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browserSession{t: t, ctx: ctx, base: base, dlDir: t.TempDir()}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				b.mu.Lock()
				b.console = append(b.console, m.String()+" "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	if _, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.dlDir, EventsEnabled: ptrTo(true),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: seenAddress}); err != nil {
		t.Fatal(err)
	}
	return b
}

// seenAddress runs in every page before its own scripts: it keeps the
// address whose hashchange the page has been told of. A click that calls
// go() changes location.hash at once, but the page hears of it (and starts
// rendering the new view) a task later; until then the last view still
// says it is loaded. Its listener comes first, so when it has seen the
// address the page's own render has begun.
const seenAddress = `window.__gpSeen = location.hash;
addEventListener("hashchange", () => { window.__gpSeen = location.hash; });`

func ptrTo[T any](v T) *T { return &v }

// consoleErrors returns and forgets the console's errors so far.
func (b *browserSession) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.console
	b.console = nil
	return out
}

// do runs steps with a deadline.
func (b *browserSession) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
}

// eval evaluates a JavaScript expression (promises awaited).
func evalIn[T any](b *browserSession, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// open loads a dashboard address and waits until every panel has settled.
func (b *browserSession) open(hash string) {
	b.t.Helper()
	b.navigate(hash)
	b.settle()
}

// navigate loads a dashboard address. A new page each time: an address
// that differs only after '#' would not load the page again.
func (b *browserSession) navigate(hash string) {
	b.t.Helper()
	b.do(chromedp.Navigate("about:blank"), chromedp.Navigate(b.base+"/dashboard/"+hash))
}

// settle waits until the page has rendered the view of its current address
// (not the last one, see seenAddress) and every panel finished loading.
func (b *browserSession) settle() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	const settled = `window.__gpSeen === location.hash && ["yes", "key", "error"].includes(document.body.dataset.loaded) &&
		document.querySelectorAll('[aria-busy="true"]').length === 0`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](settled, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		b.t.Fatalf("waiting for the view of %s and its panels: %v", b.location(), err)
	}
}

// shot saves a screenshot under $GREENPOST_SCREENSHOT_DIR, if set.
func (b *browserSession) shot(name string) {
	b.t.Helper()
	dir := os.Getenv("GREENPOST_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn enters the viewer key if the page asks for one.
func (b *browserSession) signIn() {
	b.t.Helper()
	b.open("#/overview")
	if evalIn[string](b, `document.body.dataset.loaded`) == "key" {
		b.do(chromedp.SendKeys(chromedp.Search(`//input[@id=//label[normalize-space()="访问密钥"]/@for]`), viewerKey),
			chromedp.Click(chromedp.Search(`//button[normalize-space()="进入"]`)))
		b.settle()
	}
}

// sectionText is the visible text of the section under a heading.
func (b *browserSession) sectionText(heading string) string {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const h = [...document.querySelectorAll("h2")].find((x) => x.textContent.trim() === %q);
		return h ? h.closest("section").innerText.replace(/\s+/g, " ") : "(no section " + %q + ")"; })()`, heading, heading)
	return evalIn[string](b, js)
}

// waitText waits until the section under heading shows want.
func (b *browserSession) waitText(heading, want string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := b.sectionText(heading)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("section %q never showed %q; it shows: %s", heading, want, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clickText clicks the link or button whose visible text is text (within
// the section under heading, when given).
func (b *browserSession) clickText(heading, text string) {
	b.t.Helper()
	xp := fmt.Sprintf(`//*[self::a or self::button][normalize-space()=%q]`, text)
	if heading != "" {
		xp = fmt.Sprintf(`//section[.//h2[normalize-space()=%q]]`, heading) + xp
	}
	b.do(chromedp.Click(chromedp.Search(xp), chromedp.NodeVisible))
}

// choose picks an option of the select labelled label, as a person does
// with the list.
func (b *browserSession) choose(label, option string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const l = [...document.querySelectorAll("label")].find((x) => x.textContent.trim() === %q);
		const s = document.getElementById(l.htmlFor); const o = [...s.options].find((x) => x.textContent.trim() === %q);
		s.value = o.value; s.dispatchEvent(new Event("change", { bubbles: true })); return true; })()`, label, option)
	evalIn[bool](b, js)
}

// location is the page's address after the '#'.
func (b *browserSession) location() string {
	return evalIn[string](b, `decodeURIComponent(location.hash)`)
}

// shownPct is a rate as the page shows it (format.js shownRate): cut to a
// tenth of a percent, never shown at the target when below it.
func shownPct(v *float64, target *float64) string {
	if v == nil {
		return "—"
	}
	s := math.Floor(*v*1000+1e-9) / 1000
	if target != nil && *v < *target && s >= *target {
		s = math.Round(*target*1000-1) / 1000
	}
	return strconv.FormatFloat(s*100, 'f', 1, 64) + "%"
}

// cityDays is the custom window of the last seven whole days before today
// in the city's zone, as the page's address and as the API's from/to.
func cityDays(now time.Time) (hash, query string) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	today := time.Date(now.In(loc).Year(), now.In(loc).Month(), now.In(loc).Day(), 0, 0, 0, 0, loc)
	from := today.AddDate(0, 0, -7)
	hash = "window=custom&from=" + from.Format("2006-01-02") + "&to=" + today.AddDate(0, 0, -1).Format("2006-01-02")
	query = "from=" + from.UTC().Format(time.RFC3339) + "&to=" + today.UTC().Format(time.RFC3339)
	return hash, query
}

// TestDashboardInChromium drives the page as a bureau officer would: the
// key, the figures against the API's for the same window (city, a district,
// an outlet), the window picker, the language switch, the district filter,
// the map, the outlet address, CSV downloads, and a refused request.
func TestDashboardInChromium(t *testing.T) {
	dc := startDashCity(t)
	b := newBrowser(t, dc.api.base)
	api := func(path string, v any) {
		t.Helper()
		a := dc.api.do(t, "GET", path, viewerKey, "", "")
		if a.Status != 200 {
			t.Fatalf("%s: %s", path, a)
		}
		a.json(t, v)
	}
	var districts districtsAnswer
	api("/v1/districts", &districts)
	zh := map[string]string{}
	en := map[string]string{}
	for _, d := range districts.Districts {
		zh[d.ID], en[d.ID] = d.NameZH, d.NameEN
	}
	tg := districts.Targets
	hash, win := cityDays(time.Now())

	t.Run("key", func(t *testing.T) { // other subtests sign in themselves when run alone
		b.t = t
		b.do(chromedp.Navigate(b.base + "/")) // redirects to the dashboard
		b.do(chromedp.WaitVisible(chromedp.Search(`//h2[normalize-space()="请输入访问密钥"]`)))
		b.do(chromedp.SendKeys(chromedp.Search(`//input[@id=//label[normalize-space()="访问密钥"]/@for]`), "wrong-key-000000"),
			chromedp.Click(chromedp.Search(`//button[normalize-space()="进入"]`)))
		b.do(chromedp.WaitVisible(chromedp.Search(`//*[@role="alert"][contains(., "密钥无效")]`)))
		b.refusedOnly(401)
		if figs := evalIn[int](b, `document.querySelectorAll("main section").length`); figs != 0 {
			t.Errorf("%d panels shown with a wrong key", figs)
		}
		b.do(chromedp.SendKeys(chromedp.Search(`//input[@id=//label[normalize-space()="访问密钥"]/@for]`), viewerKey),
			chromedp.Click(chromedp.Search(`//button[normalize-space()="进入"]`)))
		b.settle()
		b.waitText("一览：是否达标", "全市绿色包装使用率")
		if lang := evalIn[string](b, `document.documentElement.lang`); lang != "zh-CN" {
			t.Errorf("html lang %q", lang)
		}
	})

	t.Run("every view in zh and en, desktop and 400 px", func(t *testing.T) {
		b.t = t
		b.signIn()
		outlet := dc.city.Outlets[0].ID
		for _, size := range []struct {
			name string
			w, h int64
		}{{"desktop", 1280, 900}, {"phone", 400, 860}} {
			b.do(chromedp.EmulateViewport(size.w, size.h))
			for _, lang := range []string{"zh", "en"} {
				for _, v := range []struct{ name, hash string }{
					{"overview", "#/overview?lang=" + lang},
					{"map", "#/map?lang=" + lang},
					{"outlet", "#/outlets/" + outlet + "?lang=" + lang},
					{"alerts", "#/alerts?lang=" + lang},
				} {
					b.open(v.hash)
					b.noConsoleErrors(v.name + " " + lang + " " + size.name)
					if state := evalIn[string](b, `document.body.dataset.loaded`); state != "yes" {
						t.Errorf("%s %s %s: the page is %q", v.name, lang, size.name, state)
					}
					if wide := evalIn[bool](b, `document.documentElement.scrollWidth > window.innerWidth`); wide {
						t.Errorf("%s %s %s: the page scrolls sideways", v.name, lang, size.name)
					}
					if failed := evalIn[string](b, `[...document.querySelectorAll('[data-state="error"]')].map((e) => e.innerText).join(" | ")`); failed != "" {
						t.Errorf("%s %s %s: a panel failed: %s", v.name, lang, size.name, failed)
					}
					b.shot(fmt.Sprintf("%s-%s-%s", v.name, lang, size.name))
				}
			}
		}
		b.do(chromedp.EmulateViewport(1280, 900))
		b.open("#/overview?lang=zh")
	})

	t.Run("city and district figures equal the API's", func(t *testing.T) {
		b.t = t
		b.signIn()
		b.open("#/overview?" + hash)
		var city, byDistrict groupsAnswer
		api("/v1/rates?group_by=city&"+win, &city)
		api("/v1/rates?group_by=district&"+win, &byDistrict)
		g := city.Groups[0]
		answers := b.sectionText("一览：是否达标")
		for _, want := range []string{
			"全市绿色包装使用率 " + shownPct(g.GreenRate, tg.GreenRate) + " （目标 90%）",
			"全市设有回收装置的网点 " + shownPct(g.OutletCoverage, tg.OutletCoverage) + " （目标 100%）",
		} {
			if !strings.Contains(answers, want) {
				t.Errorf("answers lack %q: %s", want, answers)
			}
		}
		for _, d := range byDistrict.Groups {
			lags := !d.Meets.flags()["green_rate"] || !d.Meets.flags()["outlet_coverage"]
			if strings.Contains(answers, zh[d.Key]) != lags {
				t.Errorf("district %s (lags %v) in the answers: %s", d.Key, lags, answers)
			}
		}
		if card := b.sectionText("绿色包装使用率（目标一）"); !strings.Contains(card, shownPct(g.GreenRate, tg.GreenRate)+" 目标 90% 未达标") &&
			!strings.Contains(card, shownPct(g.GreenRate, tg.GreenRate)+" 目标 90% 达标") {
			t.Errorf("green card: %s", card)
		}
		rows := evalIn[[]string](b, `[...document.querySelectorAll("section")].find((s) => s.querySelector("h2")?.textContent === "各区情况").querySelectorAll("tbody tr")
			.length ? [...[...document.querySelectorAll("section")].find((s) => s.querySelector("h2")?.textContent === "各区情况").querySelectorAll("tbody tr")].map((r) => r.innerText.replace(/\s+/g, " ").trim()) : []`)
		if len(rows) != len(byDistrict.Groups) {
			t.Fatalf("%d district rows, the API has %d", len(rows), len(byDistrict.Groups))
		}
		for _, d := range byDistrict.Groups {
			want := zh[d.Key] + " " + strconv.Itoa(d.Outlets) + " " + groupDigits(d.Parcels.Total) + " " + shownPct(d.GreenRate, tg.GreenRate) + " " + shownPct(d.OutletCoverage, tg.OutletCoverage)
			if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, want) }) {
				t.Errorf("no district row starts %q: %q", want, rows)
			}
		}

		// The district filter: choose a district in the header's list.
		d := byDistrict.Groups[0].Key
		b.choose("区", zh[d])
		b.settle()
		if loc := b.location(); !strings.Contains(loc, "district="+d) {
			t.Errorf("address after choosing %s: %s", d, loc)
		}
		var one groupsAnswer
		api("/v1/rates?group_by=city&district="+d+"&"+win, &one)
		b.waitText("一览：是否达标", zh[d]+"绿色包装使用率 "+shownPct(one.Groups[0].GreenRate, tg.GreenRate))
		lag := b.sectionText("需要关注的网点")
		for _, o := range dc.city.Outlets {
			if o.District != d && strings.Contains(lag, o.Name) {
				t.Errorf("outlet %s of %s listed while filtered to %s", o.Name, o.District, d)
			}
		}
		// A click on the district again in the table lifts the filter.
		b.clickText("各区情况", zh[d])
		b.settle()
		if loc := b.location(); strings.Contains(loc, "district=") {
			t.Errorf("address after lifting the filter: %s", loc)
		}
	})

	t.Run("outlet address and figures", func(t *testing.T) {
		b.t = t
		b.signIn()
		o := dc.city.Outlets[0]
		b.open("#/outlets/" + o.ID + "?" + hash)
		var r outletRates
		api("/v1/outlets/"+o.ID+"/rates?"+win, &r)
		head := b.sectionText(o.Name)
		if !strings.Contains(head, o.Address) || !strings.Contains(head, zh[o.District]) || !strings.Contains(head, o.Operator) {
			t.Errorf("outlet head: %s", head)
		}
		figs := b.sectionText("本时段指标")
		for _, want := range []string{"绿色包装使用率 " + shownPct(r.GreenRate, tg.GreenRate), "绿色 " + groupDigits(r.Parcels.Green) + " / 共 " + groupDigits(r.Parcels.Total) + " 件",
			"回收箱可用率 " + shownPct(&r.BinCoverage, tg.BinCoverage)} {
			if !strings.Contains(figs, want) {
				t.Errorf("outlet figures lack %q: %s", want, figs)
			}
		}
		devs := b.sectionText("设备")
		for _, id := range append([]string{o.Counter}, o.BinIDs...) {
			if !strings.Contains(devs, id) {
				t.Errorf("devices lack %s: %s", id, devs)
			}
		}
		b.noConsoleErrors("outlet")
		b.open("#/outlets/o-9999")
		b.waitText("网点", "未找到该内容")
		b.refusedOnly(404)
	})

	t.Run("window picker and CSV", func(t *testing.T) {
		b.t = t
		b.signIn()
		b.open("#/overview")
		b.choose("时间范围", "最近 24 小时")
		b.settle()
		if loc := b.location(); !strings.Contains(loc, "window=24h") {
			t.Fatalf("address after choosing 24 h: %s", loc)
		}
		// The green rate's CSV is the trend shown: hourly steps over the day.
		recs := b.download("绿色包装使用率（目标一）")
		if len(recs) < 25 || strings.Join(recs[0], ",") != "key,t,v,reporting" {
			t.Fatalf("24 h trend CSV: %q", recs)
		}
		t0, _ := time.Parse(time.RFC3339, recs[1][1])
		t1, _ := time.Parse(time.RFC3339, recs[2][1])
		if t1.Sub(t0) != time.Hour || t0.Minute() != 0 {
			t.Errorf("24 h trend steps %v .. %v", t0, t1)
		}
		// The districts CSV holds the districts table's rows and figures.
		b.open("#/overview?" + hash)
		recs = b.download("各区情况")
		var byDistrict groupsAnswer
		api("/v1/rates?group_by=district&"+win, &byDistrict)
		if len(recs) != len(byDistrict.Groups)+1 {
			t.Fatalf("districts CSV has %d rows, the table %d", len(recs)-1, len(byDistrict.Groups))
		}
		col := slices.Index(recs[0], "green_rate")
		for i, g := range byDistrict.Groups {
			if recs[i+1][0] != g.Key || recs[i+1][col] != fptr(g.GreenRate) {
				t.Errorf("CSV row %v, API %s %v", recs[i+1], g.Key, fptr(g.GreenRate))
			}
		}
	})

	t.Run("language switch", func(t *testing.T) {
		b.t = t
		b.signIn()
		b.open("#/overview?" + hash)
		b.do(chromedp.Click(chromedp.Search(`//button[normalize-space()="EN"]`)))
		b.settle()
		b.waitText("At a glance: are the targets met?", "Green-packaging rate in the whole city")
		if lang := evalIn[string](b, `document.documentElement.lang`); lang != "en" {
			t.Errorf("html lang %q", lang)
		}
		// The choice is kept: a reload stays in English.
		b.do(chromedp.Reload())
		b.settle()
		b.waitText("Districts", en[districts.Districts[0].ID])
		// The page's own words (the language switch names 中文 in Chinese on purpose).
		ui := evalIn[string](b, `[...document.querySelectorAll("header, h2, th, label, button:not(#lang), .note, .answers .q")].map((e) => e === document.querySelector("header") ? "" : e.innerText).join(" ")`)
		if han := regexp.MustCompile(`\p{Han}+`).FindAllString(ui, -1); len(han) > 0 {
			t.Errorf("Chinese left in the English page's own words: %q", han)
		}
		b.do(chromedp.Click(chromedp.Search(`//button[normalize-space()="中文"]`)))
		b.settle()
		b.waitText("一览：是否达标", "全市绿色包装使用率")
	})

	t.Run("map", func(t *testing.T) {
		b.t = t
		b.signIn()
		b.open("#/map?" + hash)
		shapes, err := city.WuhanShapes()
		if err != nil {
			t.Fatal(err)
		}
		// A district whose inner point is far from every outlet, and the
		// outlet farthest from the others: a click on each hits it alone.
		far := func(lat, lon float64, skip string) float64 {
			m := math.Inf(1)
			for _, o := range dc.city.Outlets {
				if o.ID != skip {
					m = math.Min(m, math.Hypot(o.Lat-lat, o.Lon-lon))
				}
			}
			return m
		}
		var dist string
		for _, d := range city.Wuhan() {
			s := shapes[d.ID]
			if far(s.Inside[0], s.Inside[1], "") > 0.05 && (dist == "" || d.ID < dist) {
				dist = d.ID
			}
		}
		lone := dc.city.Outlets[0]
		for _, o := range dc.city.Outlets {
			if o.ID != dc.empty && far(o.Lat, o.Lon, o.ID) > far(lone.Lat, lone.Lon, lone.ID) {
				lone = o
			}
		}
		b.clickMap(shapes[dist].Inside[0], shapes[dist].Inside[1])
		b.settle()
		if loc := b.location(); !strings.Contains(loc, "district="+dist) {
			t.Fatalf("address after a click on %s: %s", dist, loc)
		}
		b.waitText("全市地图", "已筛选："+zh[dist]+"。")
		b.clickText("全市地图", "放大主城区")
		b.do(chromedp.WaitVisible(chromedp.Search(`//button[normalize-space()="显示全市范围"][@aria-pressed="true"]`)))
		b.clickText("全市地图", "显示全市范围")
		b.clickText("全市地图", "显示全市")
		b.settle()
		b.clickMap(lone.Lat, lone.Lon)
		b.settle()
		if loc := b.location(); !strings.HasPrefix(loc, "#/outlets/"+lone.ID) {
			t.Fatalf("address after a click on %s: %s", lone.ID, loc)
		}
		b.waitText(lone.Name, lone.Address)
	})

	t.Run("keyboard", func(t *testing.T) {
		b.t = t
		b.signIn()
		b.open("#/overview")
		var seen []string
		for i := 0; i < 12; i++ {
			b.do(chromedp.KeyEvent(kb.Tab))
			now := evalIn[string](b, `document.activeElement.innerText || document.activeElement.tagName`)
			seen = append(seen, now)
			if now == "地图" {
				break
			}
		}
		b.do(chromedp.KeyEvent(kb.Enter))
		b.settle()
		if loc := b.location(); !strings.HasPrefix(loc, "#/map") {
			t.Errorf("Tab to 地图 and Enter: %s (focus went %q)", loc, seen)
		}
	})

	t.Run("printable collection list", func(t *testing.T) {
		b.t = t
		b.signIn()
		// The collection list: full bins, bins predicted full within the
		// look-ahead and silent ones, as /v1/collections lists them.
		for _, hours := range []string{"24", "2"} {
			hash := "#/alerts?tab=full"
			if hours != "24" {
				hash += "&hours=" + hours
			}
			b.open(hash)
			var list collectionsAnswer
			api("/v1/collections?hours="+hours, &list)
			states := map[string]int{}
			for _, x := range list.Bins {
				states[x.State]++
			}
			// The silent outlet's bins are stale; whether a bin is full or
			// filling now depends on the hour the test runs.
			if hours == "24" && (states["full"]+states["filling"] == 0 || states["stale"] == 0) {
				t.Fatalf("the city's list has no bin to empty or no silent one (%v): the test would test little", states)
			}
			shown := b.sectionText("清运清单")
			pressed := evalIn[string](b, `[...document.querySelectorAll('[role=group][aria-label="预计满箱的时间范围"] a[aria-pressed=true]')].map((a) => a.textContent).join()`)
			if pressed != hours+" 小时内" {
				t.Errorf("%s h: the look-ahead switch shows %q pressed", hours, pressed)
			}
			for _, x := range list.Bins {
				o := dc.city.Outlet(x.Outlet)
				var word string
				switch x.State {
				case "full":
					word = "已满 "
				case "filling":
					word = "预计 "
				case "stale":
					word = "无上报"
				}
				if !strings.Contains(shown, o.Name) || !strings.Contains(shown, x.Device) || !strings.Contains(shown, word) {
					t.Errorf("%s h: bin %s (%s) of %s not shown as %q", hours, x.Device, x.State, o.Name, word)
				}
			}
			if n := evalIn[int](b, `document.querySelectorAll("section[role=tabpanel] tbody tr").length`); n != max(1, len(list.Bins)) {
				t.Errorf("%s h: %d rows shown, the list has %d bins", hours, n, len(list.Bins))
			}
		}
		b.open("#/alerts?tab=full")
		var list collectionsAnswer
		api("/v1/collections?hours=24", &list)
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
			t.Fatal(err)
		}
		defer chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
		paper := evalIn[string](b, `document.body.innerText`)
		if !strings.Contains(paper, "回收箱清运单") || strings.Contains(paper, "下载 CSV") || strings.Contains(paper, "打印清运单") {
			t.Errorf("the printed page: %s", paper)
		}
		for _, x := range list.Bins {
			o := dc.city.Outlet(x.Outlet)
			if !strings.Contains(paper, zh[o.District]) || !strings.Contains(paper, o.Name) || !strings.Contains(paper, x.Device) {
				t.Errorf("bin %s (%s) of %s not on the printed list", x.Device, x.State, o.Name)
			}
		}
		b.shot("collection-list-zh-print")
	})

	t.Run("a miss never looks like the target", func(t *testing.T) {
		b.t = t
		got := evalIn[[]string](b, `import("/dashboard/js/format.js").then((f) => [f.pct(0.8999, 0.9), f.pct(0.9, 0.9), f.pct(0.89951, 0.9),
			f.pct(0.99996, 1), f.pct(1, 1), f.pct(0.29), f.pct(0.9999999999, 1), f.pct(null)])`)
		want := []string{"89.9%", "90.0%", "89.9%", "99.9%", "100.0%", "29.0%", "99.9%", "—"}
		if !slices.Equal(got, want) {
			t.Errorf("shown rates %q, want %q", got, want)
		}
		for i, v := range []float64{0.8999, 0.9, 0.89951, 0.99996, 1, 0.29, 0.9999999999} {
			target := []float64{0.9, 0.9, 0.9, 1, 1, 0.5, 1}[i]
			if s := shownPct(&v, &target); s != want[i] {
				t.Errorf("Go's reading of the rule: %v → %s, the page %s", v, s, want[i])
			}
		}
		// Both languages have every string.
		tables := evalIn[[][]string](b, `import("/dashboard/js/i18n.js").then((m) => [m.keys("zh").sort(), m.keys("en").sort()])`)
		if !slices.Equal(tables[0], tables[1]) || len(tables[0]) < 100 {
			t.Errorf("the zh and en tables differ: %d and %d keys", len(tables[0]), len(tables[1]))
		}
	})

	t.Run("a refused request", func(t *testing.T) {
		b.t = t
		b.signIn()
		stop := b.refuse("*/v1/series*", 500, `{"type":"urn:greenpost:problem:internal","title":"Internal Server Error","status":500,"code":"internal","detail":"test"}`)
		b.open("#/overview?" + hash)
		b.waitText("绿色包装使用率（目标一）", "服务器出错（500）。")
		b.refusedOnly(500)
		var city groupsAnswer
		api("/v1/rates?group_by=city&"+win, &city)
		b.waitText("一览：是否达标", shownPct(city.Groups[0].GreenRate, tg.GreenRate))
		b.waitText("各区情况", zh[city.Groups[0].Key])
		stop()
		// The panel retries on its own and shows its figure.
		b.waitText("绿色包装使用率（目标一）", shownPct(city.Groups[0].GreenRate, tg.GreenRate)+" 目标 90%")
		if strings.Contains(b.sectionText("绿色包装使用率（目标一）"), "服务器出错") {
			t.Error("the error stayed after the retry")
		}
		// 503: "being prepared", then the figures.
		stop = b.refuse("*/v1/alerts*", 503, `{"type":"urn:greenpost:problem:not_ready","title":"Service Unavailable","status":503,"code":"not_ready","detail":"warming up"}`)
		b.navigate("#/overview?" + hash) // not settled: that panel keeps waiting
		b.waitText("需立即清运", "数据正在准备中")
		stop()
		b.waitText("需立即清运", "查看清运清单")
		b.settle()
		b.refusedOnly(503)
	})
	t.Run("a key scoped to one district", func(t *testing.T) {
		b.t = t
		b.signIn()
		b.do(chromedp.Click(chromedp.CSS(`#logout`)))
		b.do(chromedp.WaitVisible(chromedp.Search(`//h2[normalize-space()="请输入访问密钥"]`)))
		b.do(chromedp.SendKeys(chromedp.Search(`//input[@id=//label[normalize-space()="访问密钥"]/@for]`), scopedKey),
			chromedp.Click(chromedp.Search(`//button[normalize-space()="进入"]`)))
		b.settle()
		b.open("#/overview?" + hash)
		// The headline says whose figures these are, and they are the
		// scope's: the API's total for that district.
		var scoped groupsAnswer
		api("/v1/rates?group_by=city&district="+dc.scoped+"&"+win, &scoped)
		b.waitText("一览：是否达标", "我的范围内绿色包装使用率 "+shownPct(scoped.Groups[0].GreenRate, tg.GreenRate))
		if got, want := evalIn[string](b, `[...document.querySelectorAll("#district option")].map((o) => o.textContent).join("|")`), "我的范围|"+zh[dc.scoped]; got != want {
			t.Errorf("district picker %q, want %q", got, want)
		}
		table := b.sectionText("各区情况")
		for id, name := range zh {
			if id != dc.scoped && strings.Contains(table, name) {
				t.Errorf("the districts table of a key scoped to %s shows %s: %s", dc.scoped, name, table)
			}
		}
		if !strings.Contains(table, zh[dc.scoped]) {
			t.Errorf("the districts table does not show the key's district: %s", table)
		}
		b.shot("overview-zh-scoped")
		b.do(chromedp.Click(chromedp.CSS(`#logout`)))
		b.do(chromedp.WaitVisible(chromedp.Search(`//h2[normalize-space()="请输入访问密钥"]`)))
	})
	b.t = t
	b.noConsoleErrors("the end")
}

// groupDigits writes n as the page does in both languages (1,234).
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// noConsoleErrors fails on any console error, warning or exception so far.
func (b *browserSession) noConsoleErrors(when string) {
	b.t.Helper()
	if errs := b.consoleErrors(); len(errs) > 0 {
		b.t.Errorf("%s: console:\n%s", when, strings.Join(errs, "\n"))
	}
}

// refusedOnly takes the console's lines so far and fails unless each is
// the browser's note of a refused request with the given status.
func (b *browserSession) refusedOnly(status int) {
	b.t.Helper()
	for _, e := range b.consoleErrors() {
		if !strings.Contains(e, fmt.Sprintf("the server responded with a status of %d", status)) {
			b.t.Errorf("console: %s", e)
		}
	}
}

// download clicks the CSV button of the section under heading and returns
// the file's records (without the byte order mark, which it checks).
func (b *browserSession) download(heading string) [][]string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	b.clickText(heading, "下载 CSV")
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("download from %s: %v", heading, err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			b.t.Fatalf("download from %s canceled", heading)
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(b.dlDir, ev.GUID))
		if err != nil {
			b.t.Fatal(err)
		}
		body, ok := bytes.CutPrefix(raw, []byte("\xef\xbb\xbf"))
		if !ok {
			b.t.Errorf("CSV from %s without a UTF-8 byte order mark", heading)
		}
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			b.t.Fatalf("CSV from %s: %v", heading, err)
		}
		return recs
	}
	b.t.Fatalf("no download from %s", heading)
	return nil
}

// refuse answers every request matching pattern with status and body
// (problem+json) until the returned stop is called.
func (b *browserSession) refuse(pattern string, status int64, body string) (stop func()) {
	b.t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: pattern}}}); err != nil {
		b.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range paused {
			if err != nil {
				return
			}
			headers := []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/problem+json"}, {Name: "Retry-After", Value: "1"}}
			chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: status, ResponseHeaders: headers, Body: []byte(body)})
		}
	}()
	return func() {
		if _, err := chromedp.Call(b.ctx, fetch.Disable, cdp.Empty{}); err != nil {
			b.t.Fatal(err)
		}
		cancel()
		<-done
	}
}

// clickMap clicks the map where the point (lat, lon) is drawn, as a mouse
// does: ECharts itself says where that is on its canvas.
func (b *browserSession) clickMap(lat, lon float64) {
	b.t.Helper()
	js := fmt.Sprintf(`(async () => {
		const e = await import("/dashboard/vendor/echarts/echarts.esm.min.js");
		const el = document.querySelector(".map");
		el.scrollIntoView({ block: "center" });
		await new Promise((r) => requestAnimationFrame(r));
		const [x, y] = e.getInstanceByDom(el).convertToPixel({ geoIndex: 0 }, [%v, %v]);
		const r = el.getBoundingClientRect();
		return [x + r.left, y + r.top];
	})()`, lon, lat)
	xy := evalIn[[]float64](b, js)
	b.do(chromedp.MouseClickXY(xy[0], xy[1]))
}
