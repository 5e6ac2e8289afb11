package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Outlets whose free text a spreadsheet would run as formulas, or that
// already start with the guard's quote.
var hostileOutlets = []Outlet{
	{ID: "o-h1", Name: "=cmd|' /C calc'!A0", District: "jianghan", Address: "@SUM(1+1)*cmd|' /C calc'!A0", Lat: 30, Lon: 114, Operator: "=cmd|' /C calc'!A0", Active: true},
	{ID: "o-h2", Name: "'=already quoted", District: "jianghan", Address: "-2+3+cmd|' /C calc'!A0", Lat: -30.5, Lon: -114.25, Operator: "+op", Active: true},
	{ID: "o-h3", Name: "''", District: "wuchang", Address: "'", Lat: 0, Lon: 0, Operator: "'sf", Active: true},
}

// csvRoutes returns the GET routes whose 200 answer openapi.json documents
// as text/csv (TestOpenAPIMatchesRoutes keeps the document and the route
// table in step, so a new CSV route is walked by construction).
func csvRoutes(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	pathParam := regexp.MustCompile(`:([a-z_]+)`)
	var out []string
	for _, r := range routes(&deps{cfg: defaultTestConfig(), reg: newRegistry(nil, nil, nil), promReg: newPromRegistry()}) {
		raw, ok := doc.Paths[pathParam.ReplaceAllString(r.Path, "{$1}")][strings.ToLower(r.Method)]
		var op struct {
			Responses map[string]struct {
				Content map[string]any `json:"content"`
			} `json:"responses"`
		}
		if ok {
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
		}
		if _, csv := op.Responses["200"].Content["text/csv"]; csv && r.Method == "GET" {
			out = append(out, r.Path)
		}
	}
	return out
}

// TestEveryCSVCellGuarded walks every CSV route (each group_by of
// /v1/rates) over outlets whose name, address and operator start like
// formulas: no cell of any export may start like one, unless it is a
// plain number.
func TestEveryCSVCellGuarded(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, o := range hostileOutlets {
		ts.putOutlet(o)
	}
	ts.engine.set(func(f *fakeEngine) {
		for _, o := range hostileOutlets {
			f.outlets[o.ID] = metrics.Outlet{Parcels: parcels(1, 2, 0, 0, 7, 0, 0, 0), BinsReporting: 1, ServingMinutes: 10, CountersReporting: 1}
			f.series[o.ID] = []metrics.Outlet{{Parcels: parcels(1, 2, 0, 0, 7, 0, 0, 0), WindowMinutes: 60}}
			f.devices = append(f.devices,
				metrics.DeviceState{Outlet: o.ID, Device: "b-" + o.ID, Kind: telemetry.KindBin, LastReport: testNow.Add(-time.Minute), FillPct: 99},
				metrics.DeviceState{Outlet: o.ID, Device: "c-" + o.ID, Kind: telemetry.KindCounter, LastReport: testNow.Add(-time.Hour)})
		}
	})
	// The collection list names each hostile outlet's full bin.
	for _, o := range hostileOutlets {
		ts.judge.bins = append(ts.judge.bins, fill.Bin{Outlet: o.ID, Device: "b-" + o.ID, Prediction: fill.Prediction{
			State: fill.Full, FillPct: 99, ReportedAt: testNow.Add(-time.Minute).UnixMilli(), FullAt: testNow.Add(-time.Hour).UnixMilli(), Confidence: fill.High}})
	}
	queries := map[string][]string{
		"/v1/rates":              {"group_by=outlet", "group_by=district", "group_by=operator", "group_by=city"},
		"/v1/outlets/:id/series": {"metric=green_rate&from=2026-11-28T09:00:00Z&to=2026-11-28T10:00:00Z"},
		"/v1/series":             {"metric=green_rate&group_by=district&from=2026-11-28T09:00:00Z&to=2026-11-28T10:00:00Z"},
	}
	routes := csvRoutes(t)
	if len(routes) < 5 {
		t.Fatalf("CSV routes in openapi.json: %v; want at least the five collections", routes)
	}
	for _, path := range routes {
		qs := queries[path]
		if qs == nil {
			qs = []string{""}
		}
		for _, q := range qs {
			url := strings.ReplaceAll(path, ":id", "o-h1") + "?format=csv"
			if q != "" {
				url += "&" + q
			}
			t.Run(url, func(t *testing.T) {
				a := ts.on(t).do("GET", url, keyFor(path), "")
				if a.Status != 200 {
					t.Fatal(a)
				}
				recs, err := csv.NewReader(bytes.NewReader(a.Body)).ReadAll()
				if err != nil || len(recs) < 2 {
					t.Fatalf("%v, %d records:\n%s", err, len(recs), a.Body)
				}
				for i, rec := range recs {
					for j, cell := range rec {
						if cell != "" && strings.IndexByte(formulaStarts, cell[0]) >= 0 && !plainNumber.MatchString(cell) {
							t.Errorf("row %d column %q: %q starts like a formula", i, recs[0][j], cell)
						}
					}
				}
			})
		}
	}
}

// TestCSVExportImportRoundTrip: outlets whose text starts like a formula or
// with a quote come back exactly after export → import.
func TestCSVExportImportRoundTrip(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, o := range hostileOutlets {
		ts.putOutlet(o)
	}
	exp := ts.do("GET", "/v1/outlets?format=csv", viewerKey, "")
	ts2 := newTestServer(t, nil)
	if a := ts2.do("POST", "/v1/outlets/import", adminKey, string(exp.Body), "Content-Type", "text/csv"); a.Status != 200 || !strings.Contains(string(a.Body), `"imported":3,"errors":[]`) {
		t.Fatalf("import of the export: %s\n%s", a, exp.Body)
	}
	for _, want := range hostileOutlets {
		got, ok := ts2.reg.Get(cityCtx, want.ID)
		got.Updated = time.Time{}
		if !ok || got != want {
			t.Errorf("%s came back as %+v, want %+v", want.ID, got, want)
		}
	}
}

// TestFilterWarnings: a district or operator no outlet has gives an empty
// answer that says so, with the known values; a known one warns nothing.
func TestFilterWarnings(t *testing.T) {
	ts := cityFixture(t)
	for _, path := range []string{"/v1/rates?", "/v1/waste-free?", "/v1/outlets?", "/v1/alerts?"} {
		for _, tc := range []struct{ q, warning string }{
			{"district=qiaokuo", `no outlet has district "qiaokuo"; known: jianghan, wuchang`},
			{"operator=S.F.", `no outlet has operator "S.F."; known: ems, sf`},
			{"district=jianghan&operator=sf", ""},
		} {
			var ans struct {
				Warnings []string `json:"warnings"`
			}
			a := ts.do("GET", path+tc.q, viewerKey, "")
			a.json(t, &ans)
			want := []string{tc.warning}
			if tc.warning == "" {
				want = nil
			}
			if a.Status != 200 || !reflect.DeepEqual(ans.Warnings, want) {
				t.Errorf("%s%s: %s; want warnings %q", path, tc.q, a, want)
			}
		}
	}
}

// TestCSVForSpreadsheets: ?bom=1 starts a CSV with a UTF-8 byte order mark
// (Excel on a Chinese Windows needs it), and group_by=outlet names each
// outlet and its district.
func TestCSVForSpreadsheets(t *testing.T) {
	ts := cityFixture(t)
	ts.putOutlet(Outlet{ID: "o-0006", Name: "汉口站", District: "jianghan", Lat: 30, Lon: 114, Operator: "顺丰", Active: true})
	for _, path := range csvRoutes(t) {
		url := strings.ReplaceAll(path, ":id", "o-0001") + "?format=csv&bom=1"
		switch path {
		case "/v1/outlets/:id/series":
			url += "&metric=fill_pct"
		case "/v1/series":
			url += "&metric=green_rate"
		}
		a := ts.do("GET", url, keyFor(path), "")
		if a.Status != 200 || !bytes.HasPrefix(a.Body, []byte("\uFEFF")) {
			t.Errorf("%s: %d, starts %q", url, a.Status, a.Body[:min(8, len(a.Body))])
		}
		if plain := ts.do("GET", strings.Replace(url, "&bom=1", "", 1), keyFor(path), ""); bytes.HasPrefix(plain.Body, []byte("\uFEFF")) {
			t.Errorf("%s without bom=1 has a BOM", url)
		}
	}
	if a := ts.do("GET", "/v1/outlets?format=csv&bom=yes", viewerKey, ""); a.Status != 400 {
		t.Errorf("bom=yes: %s", a)
	}
	// An export with a BOM imports as it is.
	exp := ts.do("GET", "/v1/outlets?format=csv&bom=1", viewerKey, "")
	ts2 := newTestServer(t, nil)
	if a := ts2.do("POST", "/v1/outlets/import", adminKey, string(exp.Body), "Content-Type", "text/csv"); !strings.Contains(string(a.Body), `"imported":6,"errors":[]`) {
		t.Errorf("import of a BOM export: %s", a)
	}
	a := ts.do("GET", "/v1/rates?group_by=outlet&format=csv&"+day1, viewerKey, "")
	recs, err := csv.NewReader(bytes.NewReader(a.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if h := recs[0]; h[0] != "key" || h[1] != "name" || h[2] != "district" || h[3] != "outlets" {
		t.Errorf("header %q", h)
	}
	for _, r := range recs[1:] {
		o, _ := ts.reg.Get(cityCtx, r[0])
		if r[1] != o.Name || r[2] != o.District || r[1] == "" {
			t.Errorf("row %q: want name %q, district %q", r, o.Name, o.District)
		}
	}
}

// keyFor is the least key that may read a CSV route: the audit is for
// unscoped admins, everything else for viewers.
func keyFor(path string) string {
	if path == "/v1/audit" {
		return adminKey
	}
	return viewerKey
}
