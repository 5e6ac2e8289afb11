package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

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

// TestDashboardInChromium drives the embedded dashboard in a real headless
// chromium against the API (fake metrics at the seam, so the figures are
// known): paste a key, see the city against its targets, the districts and
// the alerts; a wrong key shows the problem's detail.
func TestDashboardInChromium(t *testing.T) {
	browser := chromiumPath(t)
	ts := cityFixture(t)
	ts.engine.set(func(f *fakeEngine) {
		f.devices = []metrics.DeviceState{
			{Outlet: "o-0001", Device: "b-0001-1", Kind: telemetry.KindBin, LastReport: ts.now.Add(-time.Minute), FillPct: 96},
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ts.app.Listener(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts.app.ShutdownWithContext(ctx)
		<-served
	})
	base := "http://" + ln.Addr().String()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/"), // redirects to /dashboard/
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), viewerKey),
		chromedp.Click(chromedp.ID("use-key")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="yes"]`)),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	text := func(id string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("text of #%s: %v", id, err)
		}
		return v
	}
	eval := func(js string) []string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	green, outletCov, binCov := text("city-green-rate"), text("city-outlet-coverage"), text("city-bin-coverage")
	trust, alertCount := text("city-trust"), text("alert-count")
	districts := eval(`[...document.querySelectorAll("#districts tbody tr")].map(r => r.innerText.replace(/\s+/g, " ").trim())`)
	alerts := eval(`[...document.querySelectorAll("#alerts tbody tr")].map(r => r.dataset.kind + " " + r.cells[1].innerText + " " + r.cells[2].innerText)`)
	stored := eval(`[sessionStorage.getItem("gp.key")]`)
	if dir := os.Getenv("GREENPOST_SCREENSHOT_DIR"); dir != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(filepath.Join(dir, "dashboard.png"), png, 0o644)
		}
	}
	// The fixture by hand: green 220 of 250 parcels, 2 of 4 outlets
	// covered, bin coverage mean(1, 0.5, 0, 0).
	if green != "88.0 %" || outletCov != "50.0 %" || binCov != "37.5 %" {
		t.Errorf("city cards: green %q, outlets %q, bins %q", green, outletCov, binCov)
	}
	if !strings.Contains(trust, "1 outlets silent") || !strings.Contains(trust, "3 of 4 outlets sent parcel counts") {
		t.Errorf("trust line %q", trust)
	}
	if len(districts) != 2 || !strings.HasPrefix(districts[0], "jianghan 2 200 87.5 % 100.0 % 75.0 %") || !strings.HasPrefix(districts[1], "wuchang 2 50 90.0 % 0.0 % 0.0 %") {
		t.Errorf("district rows %q", districts)
	}
	if alertCount != "(2)" || len(alerts) != 2 || alerts[0] != "below_target o-0002 —" || alerts[1] != "bin_full o-0001 b-0001-1" {
		t.Errorf("alerts %s %q", alertCount, alerts)
	}
	if len(stored) != 1 || stored[0] != viewerKey {
		t.Errorf("sessionStorage key %q", stored)
	}

	// A wrong key: the page shows the problem's detail and no figures.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("forget-key")),
		chromedp.WaitVisible(chromedp.CSS(`#status:not(.error)`)),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), "wrong-key-000000"),
		chromedp.Click(chromedp.ID("use-key")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="error"]`)),
	)
	if err != nil {
		t.Fatalf("chromium, wrong key: %v", err)
	}
	if status := text("status"); !strings.Contains(status, "401") || !strings.Contains(status, "unknown key") {
		t.Errorf("status with a wrong key: %q", status)
	}
	if v := text("city-green-rate"); v != "—" {
		t.Errorf("figures shown after a reload with a wrong key: %q", v)
	}
}
