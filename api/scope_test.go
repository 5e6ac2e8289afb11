package main

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Keys scoped to the east of the scope fixture (district jianghan).
const (
	eastViewerKey = "east-viewer-key-0123"
	eastAdminKey  = "east-admin-key-01234"
	westOpsKey    = "west-ops-key-0123456" // viewer, operator westcargo
)

// scopeFixture is a city of two halves: east (district jianghan, operator
// eastcargo), which the scoped keys see, and west (district wuchang,
// operator westcargo), which they must not. Every west name holds "west"
// (or is the district wuchang), so that any trace of it in an answer can be
// found. The fake engine, judge and bins give both halves full figures,
// device states, alerts and collection entries, so that every route has
// something of the west to leak.
//
// With withWest false it is the city as the east's keys must see it: the
// east alone, and only jianghan among the districts.
func scopeFixture(t *testing.T, withWest bool) *testServer {
	t.Helper()
	east := scope{districts: []string{"jianghan"}}
	ts := newTestServer(t, func(c *config) {
		if !withWest {
			c.Districts = []string{"jianghan"}
		}
		c.Keys = append(c.Keys,
			apiKey{Role: roleViewer, Name: "east-viewer", Hash: sha256.Sum256([]byte(eastViewerKey)), Scope: east},
			apiKey{Role: roleAdmin, Name: "east-admin", Hash: sha256.Sum256([]byte(eastAdminKey)), Scope: east},
			apiKey{Role: roleViewer, Name: "west-ops", Hash: sha256.Sum256([]byte(westOpsKey)), Scope: scope{operators: []string{"westcargo"}}})
	})
	outlets := []Outlet{
		{ID: "o-east-1", Name: "East Gate", District: "jianghan", Address: "1 East Road", Lat: 30.58, Lon: 114.27, Operator: "eastcargo", Active: true},
		{ID: "o-east-2", Name: "East Market", District: "jianghan", Address: "2 East Road", Lat: 30.59, Lon: 114.28, Operator: "eastcargo", Active: true},
		{ID: "o-west-1", Name: "Westside Post", District: "wuchang", Address: "1 West Road", Lat: 30.55, Lon: 114.31, Operator: "westcargo", Active: true},
		{ID: "o-west-2", Name: "West Lake", District: "wuchang", Address: "2 West Road", Lat: 30.54, Lon: 114.32, Operator: "westcargo", Active: true},
	}
	if !withWest {
		outlets = outlets[:2]
	}
	for _, o := range outlets {
		ts.putOutlet(o)
	}
	at := testNow.UnixMilli()
	ts.engine.set(func(f *fakeEngine) {
		for i, o := range outlets {
			// Green 80 % everywhere (below the 90 % target: an alert each),
			// east 100 parcels an outlet, west 1000.
			n := int64(100)
			if o.District == "wuchang" {
				n = 1000
			}
			f.outlets[o.ID] = metrics.Outlet{Parcels: parcels(0, n*8/10, 0, 0, n*2/10, 0, 0, 1), BinsReporting: 1, ServingMinutes: 1440,
				CountersReporting: 1, CounterReportingMinutes: 1440}
			f.series[o.ID] = slices.Repeat([]metrics.Outlet{f.outlets[o.ID]}, 24) // the default 24 h at 1 h
			f.devices = append(f.devices,
				metrics.DeviceState{Outlet: o.ID, Device: "b-" + o.ID, Kind: telemetry.KindBin, LastReport: testNow.Add(-time.Minute), FillPct: 95},
				metrics.DeviceState{Outlet: o.ID, Device: "c-" + o.ID, Kind: telemetry.KindCounter, LastReport: testNow.Add(-time.Duration(i+2) * time.Hour)})
		}
		// A device no outlet of the registry owns: only the city sees it.
		if withWest {
			f.devices = append(f.devices, metrics.DeviceState{Outlet: "o-westless", Device: "c-west-stray", Kind: telemetry.KindCounter, LastReport: testNow.Add(-5 * time.Hour)})
		}
	})
	for _, o := range outlets {
		ts.judge.bins = append(ts.judge.bins, fill.Bin{Outlet: o.ID, Device: "b-" + o.ID,
			Prediction: fill.Prediction{State: fill.Full, FillPct: 95, ReportedAt: at - 60_000, FullAt: at - 600_000, Confidence: fill.High}})
	}
	return ts
}

// leaks names what an answer says of the west, case-insensitively.
func leaks(body []byte) []string {
	var out []string
	b := strings.ToLower(string(body))
	for _, m := range []string{"west", "wuchang"} {
		if strings.Contains(b, m) {
			out = append(out, m)
		}
	}
	return out
}

// routeQueries are what some routes need to answer at all (a new route
// that needs a parameter fails the walk until it is listed here).
var routeQueries = map[string]string{
	"/v1/outlets/:id/series": "metric=green_rate",
	"/v1/series":             "metric=green_rate",
}

// variants are the query variants every GET route is tried with; a
// variant the route does not take (400 for the city-wide key) is skipped.
var variants = []string{"", "format=csv", "group_by=city", "group_by=outlet", "group_by=operator", "group_by=district", "kind=below_target"}

// writeTimes are the registry's write stamps (sub-second RFC 3339 times),
// which differ between two fixtures built at different moments.
var writeTimes = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]+Z`)

// withoutScope drops the answer's naming of the scope (its one allowed
// difference from the city-wide answer over the east alone).
var scopeField = regexp.MustCompile(`"scope":\{[^}]*\},`)

// TestScopeWalksTheRouteTable walks every route of the route table with a
// key scoped to the east. Each answer, in JSON and CSV, grouped every way,
// must be exactly the city-wide answer of a city where the west does not
// exist, and mention nothing of the west; an out-of-scope outlet or
// district is answered exactly as a missing one; and the city-wide key
// does see the west on every route that holds outlets, so the walk proves
// something.
func TestScopeWalksTheRouteTable(t *testing.T) {
	ts := scopeFixture(t, true)
	eastOnly := scopeFixture(t, false)
	table := routes(&deps{cfg: defaultTestConfig(), reg: newRegistry(nil, nil, nil), promReg: newPromRegistry()})
	// Routes whose answers hold no outlet data at all.
	noOutletData := []string{"/v1/targets"}
	writesCovered := map[string]bool{}
	for _, r := range table {
		if r.Role == "" {
			continue // open: health, metrics, OpenAPI, the dashboard's files
		}
		if r.Method != http.MethodGet {
			writesCovered[r.Method+" "+r.Path] = false
			continue
		}
		t.Run(r.Path, func(t *testing.T) {
			ts := ts.on(t)
			path := func(id string) string { return strings.Replace(r.Path, ":id", id, 1) }
			if r.Role == roleCityAdmin {
				if a := ts.do("GET", path("o-west-1"), eastAdminKey, ""); a.Status != http.StatusForbidden {
					t.Errorf("a scoped admin got %s", a)
				}
				if a := ts.do("GET", path("o-west-1"), adminKey, ""); a.Status != http.StatusOK {
					t.Errorf("the city-wide admin got %s", a)
				}
				return
			}
			for _, v := range variants {
				q := strings.Trim(routeQueries[r.Path]+"&"+v, "&")
				url := func(id string) string {
					if q == "" {
						return path(id)
					}
					return path(id) + "?" + q
				}
				city := ts.do("GET", url("o-west-1"), viewerKey, "")
				if city.Status == http.StatusBadRequest && v != "" {
					continue // the route does not take this variant
				}
				if city.Status != http.StatusOK {
					t.Fatalf("%s: the city-wide key got %s", url("o-west-1"), city)
				}
				// (An outlet's own route names it in the path; a city total
				// names nobody: the comparison below proves those.)
				byName := !strings.Contains(r.Path, ":id") && !strings.Contains(url(""), "group_by=city") && !strings.HasPrefix(url(""), "/v1/series")
				if !slices.Contains(noOutletData, r.Path) && byName && len(leaks(city.Body)) == 0 {
					t.Errorf("%s: the city-wide answer says nothing of the west, so this walk proves nothing: give the fixture data for it\n%s", url("o-west-1"), city.Body)
				}
				scoped := ts.do("GET", url("o-west-1"), eastViewerKey, "")
				if strings.Contains(r.Path, ":id") {
					// Exactly as a missing outlet: same status, same words.
					missing := ts.do("GET", url("o-none-1"), eastViewerKey, "")
					want := strings.ReplaceAll(string(missing.Body), "o-none-1", "o-west-1")
					if scoped.Status != http.StatusNotFound || missing.Status != http.StatusNotFound || string(scoped.Body) != want {
						t.Errorf("%s: out of scope %s, missing %s", url("o-west-1"), scoped, missing)
					}
					if own := ts.do("GET", url("o-east-1"), eastViewerKey, ""); own.Status != http.StatusOK {
						t.Errorf("%s: the scoped key cannot read its own outlet: %s", url("o-east-1"), own)
					}
					continue
				}
				if scoped.Status != http.StatusOK {
					t.Errorf("%s: the scoped key got %s", url(""), scoped)
				}
				if l := leaks(scoped.Body); len(l) > 0 {
					t.Errorf("%s: the scoped answer mentions %v:\n%s", url(""), l, scoped.Body)
				}
				alone := eastOnly.on(t).do("GET", url(""), viewerKey, "")
				got := writeTimes.ReplaceAllString(scopeField.ReplaceAllString(string(scoped.Body), ""), "T")
				if want := writeTimes.ReplaceAllString(string(alone.Body), "T"); got != want {
					t.Errorf("%s: the scoped answer\n%s\nis not the answer of the city without the west\n%s", url(""), got, want)
				}
			}
			// A filter naming an out-of-scope district or operator answers
			// exactly as one naming a district or operator nobody has.
			for _, f := range [][2]string{{"district=wuchang", "district=nowhere"}, {"operator=westcargo", "operator=nobody"}} {
				sep := "?"
				if q := routeQueries[r.Path]; q != "" {
					sep = "?" + q + "&"
				}
				out := ts.do("GET", path("o-east-1")+sep+f[0], eastViewerKey, "")
				none := ts.do("GET", path("o-east-1")+sep+f[1], eastViewerKey, "")
				if none.Status == http.StatusBadRequest {
					continue // the route takes no such filter
				}
				name := func(s string) string { _, v, _ := strings.Cut(s, "="); return v }
				want := strings.ReplaceAll(string(none.Body), name(f[1]), name(f[0]))
				if out.Status != none.Status || string(out.Body) != want {
					t.Errorf("%s: %s answers\n%s\nbut %s answers\n%s", r.Path, f[0], out, f[1], none)
				}
			}
		})
	}

	// Writes: a scoped admin writes its own outlets only. Every write route
	// of the table must be tried here.
	try := func(method, path, body string, want int) answer {
		t.Helper()
		writesCovered[method+" "+routePattern(table, method, path)] = true
		h := []string{}
		if strings.HasSuffix(path, "/import") {
			h = []string{"Content-Type", "text/csv"}
		}
		a := ts.do(method, path, eastAdminKey, body, h...)
		if a.Status != want {
			t.Errorf("%s %s: got %s, want %d", method, path, a, want)
		}
		return a
	}
	west := `{"name":"Westside Post","district":"wuchang","address":"1 West Road","lat":30.55,"lon":114.31,"operator":"westcargo","active":true}`
	eastBody := `{"name":"East Pier","district":"jianghan","address":"3 East Road","lat":30.6,"lon":114.29,"operator":"eastcargo","active":true}`
	try("PUT", "/v1/outlets/o-west-1", west, http.StatusForbidden)                                          // an outlet of the west
	try("PUT", "/v1/outlets/o-west-9", west, http.StatusForbidden)                                          // a new outlet in the west
	try("PUT", "/v1/outlets/o-east-1", strings.Replace(west, "Westside", "Moved", 1), http.StatusForbidden) // moving one of its own west
	try("PUT", "/v1/outlets/o-east-3", eastBody, http.StatusOK)
	try("DELETE", "/v1/outlets/o-west-2", "", http.StatusForbidden)
	try("DELETE", "/v1/outlets/o-east-3", "", http.StatusNoContent)
	imp := try("POST", "/v1/outlets/import", "id,name,district,address,lat,lon,operator,active\n"+
		"o-east-4,East Four,jianghan,4 East Road,30.6,114.3,eastcargo,true\n"+
		"o-west-4,West Four,wuchang,4 West Road,30.5,114.3,westcargo,true\n"+
		"o-west-1,Taken Over,jianghan,1 West Road,30.5,114.3,eastcargo,true\n", http.StatusOK)
	var res importResult
	imp.json(t, &res)
	if res.Imported != 1 || len(res.Errors) != 2 || res.Errors[0].Line != 3 || res.Errors[1].Line != 4 ||
		!strings.Contains(res.Errors[0].Error, "outside this key's scope") || !strings.Contains(res.Errors[1].Error, "outside this key's scope") {
		t.Errorf("import: %+v", res)
	}
	target := `{"name":"t","source":"s","valid_from":"2026-01-01T00:00:00Z","targets":{"green_rate":0.5}}`
	try("PUT", "/v1/targets/east-2026", target, http.StatusForbidden)
	try("DELETE", "/v1/targets/wuhan-2025", "", http.StatusForbidden)
	for w, done := range writesCovered {
		if !done {
			t.Errorf("write route %s is not tried with a scoped admin key", w)
		}
	}
	// Nothing of the west changed; the east's writes are there.
	for id, district := range map[string]string{"o-west-1": "wuchang", "o-west-2": "wuchang", "o-east-4": "jianghan"} {
		if o, ok := ts.reg.Get(cityCtx, id); !ok || o.District != district || strings.Contains(o.Name, "Taken") {
			t.Errorf("%s after the writes: %+v %v", id, o, ok)
		}
	}
	for _, id := range []string{"o-west-9", "o-west-4", "o-east-3"} {
		if _, ok := ts.reg.Get(cityCtx, id); ok {
			t.Errorf("%s exists", id)
		}
	}
	if sets := ts.targets.List(); len(sets) != 1 {
		t.Errorf("target sets %+v", sets)
	}
	// Exactly the successful writes are audited, under the key's name.
	var audit struct {
		Entries []struct{ Key, Method, Target string }
	}
	ts.do("GET", "/v1/audit", adminKey, "").json(t, &audit)
	var got []string
	for _, e := range audit.Entries {
		got = append(got, e.Key+" "+e.Method+" "+e.Target)
	}
	if want := []string{"east-admin POST import", "east-admin DELETE o-east-3", "east-admin PUT o-east-3"}; len(got) < 3 || !slices.Equal(got[:3], want) || len(got) != 3+4 {
		t.Errorf("audit (newest first): %q", got)
	}
}

// routePattern is the table's pattern that a concrete path matches.
func routePattern(table []route, method, path string) string {
	for _, r := range table {
		if r.Method != method {
			continue
		}
		rp, pp := strings.Split(r.Path, "/"), strings.Split(path, "/")
		if len(rp) != len(pp) {
			continue
		}
		match := true
		for i := range rp {
			if rp[i] != pp[i] && !strings.HasPrefix(rp[i], ":") {
				match = false
			}
		}
		if match {
			return r.Path
		}
	}
	return path
}

// TestScopeTotals: group_by=city gives the scope's totals, named in the
// answer; a city-wide key's answer names no scope; an operator scope
// works the same way.
func TestScopeTotals(t *testing.T) {
	ts := scopeFixture(t, true)
	type cityAnswer struct {
		Scope  *scopeJSON `json:"scope"`
		Groups []struct {
			Key     string
			Outlets int
			Parcels struct{ Total int64 }
		}
	}
	for _, c := range []struct {
		key       string
		scope     string
		outlets   int
		total     int64
		districts []string
	}{
		{viewerKey, "null", 4, 2200, []string{"jianghan", "wuchang"}},
		{eastViewerKey, `{"districts":["jianghan"]}`, 2, 200, []string{"jianghan"}},
		{westOpsKey, `{"operators":["westcargo"]}`, 2, 2000, []string{"wuchang"}},
	} {
		var ans cityAnswer
		a := ts.do("GET", "/v1/rates?group_by=city", c.key, "")
		a.json(t, &ans)
		got, _ := json.Marshal(ans.Scope)
		if string(got) != c.scope || len(ans.Groups) != 1 || ans.Groups[0].Parcels.Total != c.total || ans.Groups[0].Outlets != c.outlets {
			t.Errorf("%s: %s", c.key, a)
		}
		var ds districtsAnswer
		ts.do("GET", "/v1/districts", c.key, "").json(t, &ds)
		var withOutlets []string
		for _, d := range ds.Districts {
			if d.Outlets > 0 {
				withOutlets = append(withOutlets, d.ID)
			}
		}
		if !slices.Equal(withOutlets, c.districts) || c.key != viewerKey && len(ds.Districts) != 1 {
			t.Errorf("%s: districts %+v", c.key, ds.Districts)
		}
	}
}

func TestScopeSees(t *testing.T) {
	o := func(d, op string) *Outlet { return &Outlet{District: d, Operator: op} }
	for _, c := range []struct {
		s    scope
		o    *Outlet
		want bool
	}{
		{cityWide, o("a", "x"), true},
		{scope{}, o("a", "x"), false}, // no scope in the context: nothing
		{scope{districts: []string{"a"}}, o("a", "x"), true},
		{scope{districts: []string{"a"}}, o("b", "x"), false},
		{scope{operators: []string{"x"}}, o("b", "x"), true},
		{scope{operators: []string{"x"}}, o("b", "y"), false},
		{scope{districts: []string{"a"}, operators: []string{"x"}}, o("a", "y"), false},
		{scope{districts: []string{"a"}, operators: []string{"x"}}, o("a", "x"), true},
	} {
		if got := c.s.sees(c.o); got != c.want {
			t.Errorf("%+v sees %+v: %v", c.s, c.o, got)
		}
	}
	if scopeOf(t.Context()).sees(o("a", "x")) {
		t.Error("a context without a scope sees an outlet")
	}
}
