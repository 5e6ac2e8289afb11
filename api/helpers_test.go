package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/testenv"
)

// Keys of the test servers.
const (
	adminKey  = "admin-key-0123456789"
	viewerKey = "viewer-key-0123456789"
)

func testKeys() []apiKey {
	return []apiKey{
		{Role: roleAdmin, Name: "test-admin", Hash: sha256.Sum256([]byte(adminKey)), Scope: cityWide},
		{Role: roleViewer, Name: "test-viewer", Hash: sha256.Sum256([]byte(viewerKey)), Scope: cityWide},
	}
}

// fakeEngine stands in for internal/metrics at the seam: it answers with
// the figures a test sets and records what it was asked.
type fakeEngine struct {
	mu       sync.Mutex
	outlets  map[string]metrics.Outlet // by outlet id, for any window
	series   map[string][]metrics.Outlet
	devices  []metrics.DeviceState
	err      error
	panicMsg string
	asked    [][]string // the id lists of Outlets calls
	gate     chan struct{}
	devCalls int
	windows  []metrics.Window
}

func (f *fakeEngine) Outlets(_ context.Context, w metrics.Window, ids []string) ([]metrics.Outlet, error) {
	if f.gate != nil {
		<-f.gate // set before any request: tests hold calls to make them overlap
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	f.asked = append(f.asked, append([]string(nil), ids...))
	f.windows = append(f.windows, w)
	if f.err != nil {
		return nil, f.err
	}
	out := make([]metrics.Outlet, len(ids))
	for i, id := range ids {
		m := f.outlets[id] // none: no data
		m.WindowMinutes = w.Minutes()
		out[i] = m
	}
	return out, nil
}

func (f *fakeEngine) Series(_ context.Context, outlet string, w metrics.Window, step time.Duration) ([]metrics.Outlet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.series[outlet], nil
}

func (f *fakeEngine) Devices(_ context.Context, now time.Time, lookback time.Duration) ([]metrics.DeviceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devCalls++
	if f.err != nil {
		return nil, f.err
	}
	return f.devices, nil
}

func (f *fakeEngine) set(fn func(f *fakeEngine)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeJudge stands in for internal/fill's tracker: it answers the bins a
// test sets and records what it was asked.
type fakeJudge struct {
	mu    sync.Mutex
	bins  []fill.Bin
	err   error
	asked []judgeCall
}

type judgeCall struct {
	at      time.Time
	ahead   time.Duration
	outlets []string
}

func (f *fakeJudge) Judge(_ context.Context, at time.Time, ahead time.Duration, outlets []string) ([]fill.Bin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, judgeCall{at, ahead, append([]string(nil), outlets...)})
	if f.err != nil {
		return nil, f.err
	}
	var out []fill.Bin
	for _, b := range f.bins {
		if slices.Contains(outlets, b.Outlet) {
			out = append(out, b)
		}
	}
	return out, nil
}

// fakeFill answers fill_pct series and since when bins are full.
type fakeFill struct {
	vals  []*float64
	since map[string]time.Time
}

func (f fakeFill) MaxFill(context.Context, string, metrics.Window, time.Duration) ([]*float64, error) {
	return f.vals, nil
}

func (f fakeFill) FullSince(_ context.Context, bins []fill.FullBin, _ float64, _ time.Time, _ time.Duration) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for _, b := range bins {
		if t, ok := f.since[b.Device]; ok {
			out[b.Device] = t
		}
	}
	return out, nil
}

// fakeBins answers one bin per outlet, b-<outlet>: battery 80 %, fill 50 %
// at every step.
type fakeBins struct{}

func (fakeBins) Batteries(_ context.Context, outlet string, _ time.Time) (map[string]float64, error) {
	return map[string]float64{"b-" + outlet: 80}, nil
}

func (fakeBins) FillByBin(_ context.Context, outlet string, w metrics.Window, step time.Duration) (map[string][]*float64, error) {
	v := 50.0
	vals := make([]*float64, int(w.To.Sub(w.From)/step))
	for i := range vals {
		vals[i] = &v
	}
	return map[string][]*float64{"b-" + outlet: vals}, nil
}

var dbSeq atomic.Int64

// freshBucket creates a database of its own on the shared influxd, so that
// each test has its own registry, and returns its bucket name.
func freshBucket(t *testing.T, in *testenv.Influx) string {
	t.Helper()
	name := fmt.Sprintf("api_%d_%d", time.Now().UnixNano()%1e9, dbSeq.Add(1))
	if err := in.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return name + "/autogen"
}

func openStore(t *testing.T, in *testenv.Influx, bucket string) *store.Store {
	t.Helper()
	return openStoreTB(t, in, bucket)
}

func openStoreTB(t testing.TB, in *testenv.Influx, bucket string) *store.Store {
	t.Helper()
	s, err := store.Open(store.Config{URL: in.URL, Bucket: bucket, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// testServer is the app on a real InfluxDB (a database of its own) with a
// fake metrics engine and a fixed clock.
type testServer struct {
	t       *testing.T
	app     *fiber.App
	reg     *registry
	engine  *fakeEngine
	judge   *fakeJudge
	targets *targetBook
	cfg     config
	db      outletStore
	logs    *bytes.Buffer
	now     time.Time
	full    fakeFill // since when bins are full (fill its since map)
}

// testNow is the fixed "now" of handler tests.
var testNow = time.Date(2026, 11, 28, 10, 30, 42, 0, time.UTC)

func defaultTestConfig() config {
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	c.Keys = testKeys()
	// Tests send many requests at once; TestRateLimitPerKey sets its own.
	c.RateLimit, c.RateBurst = 1e6, 1e6
	// Tests change the fake engine's figures between requests over the same
	// window; TestFigureCache turns the cache on.
	c.CacheTTL = 0
	return c
}

// newTestServer is the app with the registry in memory (memOutlets), a
// fake metrics engine and a fixed clock: handler tests need no influxd.
func newTestServer(t *testing.T, mod func(*config)) *testServer {
	t.Helper()
	return newTestServerOn(t, mod, func(*config) outletStore { return &memOutlets{} })
}

// newInfluxTestServer is newTestServer with the registry on a real
// InfluxDB (a database of its own), for tests that prove the store.
func newInfluxTestServer(t *testing.T, mod func(*config)) *testServer {
	t.Helper()
	in := testenv.SharedInflux(t)
	return newTestServerOn(t, mod, func(cfg *config) outletStore {
		cfg.Bucket = freshBucket(t, in)
		return openStore(t, in, cfg.Bucket)
	})
}

func newTestServerOn(t *testing.T, mod func(*config), open func(*config) outletStore) *testServer {
	t.Helper()
	cfg := defaultTestConfig()
	db := open(&cfg)
	if mod != nil {
		mod(&cfg)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, nil))
	reg := newRegistry(db, cfg.Districts, log)
	if err := reg.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	eng := &fakeEngine{outlets: map[string]metrics.Outlet{}, series: map[string][]metrics.Outlet{}}
	judge := &fakeJudge{}
	targets := loadedTargets(t, db.(targetStore), reg.stamp)
	ts := &testServer{t: t, reg: reg, engine: eng, judge: judge, targets: targets, cfg: cfg, db: db, logs: logs, now: testNow,
		full: fakeFill{since: map[string]time.Time{}}}
	ts.app = newApp(&deps{cfg: cfg, log: log, db: pingerOf(db), reg: reg, engine: eng, fill: fakeFill{}, full: ts.full, judge: judge, bins: fakeBins{},
		targets: targets, audit: db.(auditStore), now: func() time.Time { return ts.now }, promReg: newPromRegistry()})
	return ts
}

// loadedTargets is a target book over db, loaded (the shipped set written).
func loadedTargets(t testing.TB, db targetStore, stamp *stamper) *targetBook {
	t.Helper()
	b := newTargetBook(db, stamp, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// pingerOf gives /readyz the store's ping (memOutlets always answers).
func pingerOf(db outletStore) pinger {
	if p, ok := db.(pinger); ok {
		return p
	}
	return okPinger{}
}

type okPinger struct{}

func (okPinger) Ping(context.Context) error { return nil }

// memOutlets keeps registry records in memory under the store's rule: the
// latest record of an id wins (tombstones included). TestRegistryCRUD runs
// against it and against InfluxDB alike.
//
// It keeps target sets and the audit too (the same rules as internal/store),
// and can be told to fail writes.
type memOutlets struct {
	mu        sync.Mutex
	recs      map[string]store.OutletRecord
	sets      map[string]store.TargetSetRecord
	audit     []store.AuditRecord
	failWrite error // every write fails with it
	failAudit error // audit writes fail with it
}

func (m *memOutlets) WriteTargetSets(_ context.Context, recs []store.TargetSetRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite != nil {
		return m.failWrite
	}
	if m.sets == nil {
		m.sets = map[string]store.TargetSetRecord{}
	}
	for _, r := range recs {
		if old, ok := m.sets[r.ID]; !ok || !old.Updated.After(r.Updated) {
			m.sets[r.ID] = r
		}
	}
	return nil
}

func (m *memOutlets) LoadTargetSets(context.Context) ([]store.TargetSetRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.TargetSetRecord, 0, len(m.sets))
	for _, r := range m.sets {
		out = append(out, r)
	}
	return out, nil
}

func (m *memOutlets) WriteAudit(_ context.Context, r store.AuditRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite != nil {
		return m.failWrite
	}
	if m.failAudit != nil {
		return m.failAudit
	}
	m.audit = append(m.audit, r)
	return nil
}

func (m *memOutlets) ReadAudit(_ context.Context, from, to, before time.Time, beforeKey string, limit int) ([]store.AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AuditRecord
	for _, r := range m.audit {
		if !r.At.Before(from) && r.At.Before(to) && (before.IsZero() || r.At.Before(before) || r.At.Equal(before) && r.Key < beforeKey) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b store.AuditRecord) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(b.Key, a.Key)
	})
	return out[:min(len(out), limit)], nil
}

// entries returns the audit as written, oldest first.
func (m *memOutlets) entries() []store.AuditRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.audit)
}

func (m *memOutlets) WriteOutlets(_ context.Context, recs []store.OutletRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite != nil {
		return m.failWrite
	}
	if m.recs == nil {
		m.recs = map[string]store.OutletRecord{}
	}
	for _, r := range recs {
		if old, ok := m.recs[r.ID]; !ok || !old.Updated.After(r.Updated) {
			m.recs[r.ID] = r
		}
	}
	return nil
}

func (m *memOutlets) LoadOutlets(context.Context) ([]store.OutletRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.OutletRecord, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, r)
	}
	return out, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// answer is a response, read whole.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.Status, a.Body) }

// on returns the server bound to a subtest's t, so failures stop the subtest.
func (ts *testServer) on(t *testing.T) *testServer {
	c := *ts
	c.t = t
	return &c
}

// do sends a request through app.Test. key "" sends no Authorization.
func (ts *testServer) do(method, path, key string, body string, header ...string) answer {
	ts.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.app.Test(req, 30_000)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// json decodes the answer into v, failing the test on a bad body.
func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.Body, v); err != nil {
		t.Fatalf("answer is not JSON (%v): %s", err, a.Body)
	}
}

// putOutlet registers an outlet through the API.
func (ts *testServer) putOutlet(o Outlet) {
	ts.t.Helper()
	in := map[string]any{"name": o.Name, "district": o.District, "address": o.Address,
		"lat": o.Lat, "lon": o.Lon, "operator": o.Operator, "active": o.Active}
	if !o.ActiveSince.IsZero() {
		in["active_since"] = o.ActiveSince
	}
	body, _ := json.Marshal(in)
	if a := ts.do("PUT", "/v1/outlets/"+o.ID, adminKey, string(body)); a.Status != 200 {
		ts.t.Fatalf("PUT %s: %s", o.ID, a)
	}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cityCtx sees the whole city: tests reading the registry directly.
var cityCtx = cityWideContext(context.Background())
