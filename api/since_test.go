package main

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
)

// TestActiveSinceInTheRegistry: active_since is optional in PUT, kept in
// UTC, cleared by a PUT without it, exported in CSV and read back by both
// import formats; a bad value is a 400 that names it.
func TestActiveSinceInTheRegistry(t *testing.T) {
	ts := newTestServer(t, nil)
	put := func(body string) answer {
		return ts.do("PUT", "/v1/outlets/o-1", adminKey, body)
	}
	base := `"name":"One","district":"d1","lat":30,"lon":114,"operator":"sf"`
	if a := put(`{` + base + `,"active_since":"2026-11-20T08:00:30+08:00"}`); a.Status != 200 {
		t.Fatal(a)
	}
	var got Outlet
	ts.do("GET", "/v1/outlets/o-1", viewerKey, "").json(t, &got)
	if want := time.Date(2026, 11, 20, 0, 0, 30, 0, time.UTC); !got.ActiveSince.Equal(want) || got.ActiveSince.Location() != time.UTC {
		t.Errorf("active_since %v, want %v in UTC", got.ActiveSince, want)
	}
	a := ts.do("GET", "/v1/outlets?format=csv", viewerKey, "")
	recs, err := csv.NewReader(strings.NewReader(string(a.Body))).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("csv export %v: %s", err, a.Body)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if i, ok := col["active_since"]; !ok || recs[1][i] != "2026-11-20T00:00:30Z" {
		t.Errorf("csv export: %q", a.Body)
	}
	// The export imports back as it is, active_since included.
	put(`{` + base + `}`)
	got = Outlet{}
	ts.do("GET", "/v1/outlets/o-1", viewerKey, "").json(t, &got)
	if !got.ActiveSince.IsZero() || strings.Contains(string(ts.do("GET", "/v1/outlets/o-1", viewerKey, "").Body), "active_since") {
		t.Errorf("a PUT without active_since must clear it: %+v", got)
	}
	if a := ts.do("POST", "/v1/outlets/import", adminKey, string(a.Body), "Content-Type", "text/csv"); a.Status != 200 || !strings.Contains(string(a.Body), `"imported":1`) {
		t.Fatalf("import of the export: %s", a)
	}
	ts.do("GET", "/v1/outlets/o-1", viewerKey, "").json(t, &got)
	if !got.ActiveSince.Equal(time.Date(2026, 11, 20, 0, 0, 30, 0, time.UTC)) {
		t.Errorf("after CSV import: active_since %v", got.ActiveSince)
	}
	a = ts.do("POST", "/v1/outlets/import", adminKey, `[{"id":"o-2",`+base+`,"active_since":"2026-11-21T00:00:00Z"},{"id":"o-3",`+base+`,"active_since":null}]`)
	if a.Status != 200 || !strings.Contains(string(a.Body), `"imported":2`) {
		t.Fatalf("JSON import: %s", a)
	}
	if o, _ := ts.reg.Get(cityCtx, "o-2"); !o.ActiveSince.Equal(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("o-2 active_since %v", o.ActiveSince)
	}
	if o, _ := ts.reg.Get(cityCtx, "o-3"); !o.ActiveSince.IsZero() {
		t.Errorf("o-3 active_since %v, want none", o.ActiveSince)
	}
	for _, bad := range []string{`"yesterday"`, `"2026-11-20"`, `5`} {
		p := checkProblem(t, put(`{`+base+`,"active_since":`+bad+`}`), 400)
		if !strings.Contains(p.Detail, "active_since") {
			t.Errorf("active_since %s: detail %q does not name it", bad, p.Detail)
		}
	}
	a = ts.do("POST", "/v1/outlets/import", adminKey, "id,name,district,address,lat,lon,operator,active_since\no-4,Four,d1,,30,114,sf,soon\n", "Content-Type", "text/csv")
	if !strings.Contains(string(a.Body), `"imported":0`) || !strings.Contains(string(a.Body), "active_since") {
		t.Errorf("CSV row with a bad active_since: %s", a)
	}
}

// TestActiveSinceJudgesFromThere: an outlet that joined inside the window
// is asked of the engine over the rest of the window only and says so
// (judged_from); one that joins at or after to is left out of every
// roll-up and of the waste-free list; the series starts where it joined.
func TestActiveSinceJudgesFromThere(t *testing.T) {
	ts := newTestServer(t, nil)
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	a, b, c := sampleOutlet, sampleOutlet, sampleOutlet
	a.ID, b.ID, c.ID = "o-a", "o-b", "o-c"
	b.ActiveSince = from.Add(12*time.Hour + 30*time.Second) // judged from 12:01
	c.ActiveSince = to                                      // not yet there
	for _, o := range []Outlet{a, b, c} {
		ts.putOutlet(o)
	}
	full := metrics.Outlet{BinsReporting: 1, CountersReporting: 1}
	full.Parcels.ByClass[0] = 10
	ts.engine.set(func(f *fakeEngine) {
		for _, id := range []string{"o-a", "o-b", "o-c"} {
			f.outlets[id] = full
		}
		f.series["o-b"] = []metrics.Outlet{full} // [12:01, 24:00): one step of 12 h
	})
	win := "from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	judged := from.Add(12*time.Hour + time.Minute)

	var r outletRates
	ts.do("GET", "/v1/outlets/o-b/rates?"+win, viewerKey, "").json(t, &r)
	if r.JudgedFrom == nil || !r.JudgedFrom.Equal(judged) || r.Completeness.WindowMinutes != 719 || !r.From.Equal(from) {
		t.Errorf("o-b: judged_from %v, window_minutes %d, from %v; want %v, 719, %v", r.JudgedFrom, r.Completeness.WindowMinutes, r.From, judged, from)
	}
	var ra map[string]any
	ts.do("GET", "/v1/outlets/o-a/rates?"+win, viewerKey, "").json(t, &ra)
	if _, ok := ra["judged_from"]; ok {
		t.Errorf("o-a has no active_since, yet judged_from: %v", ra["judged_from"])
	}

	ts.engine.set(func(f *fakeEngine) { f.asked, f.windows = nil, nil })
	var g groupsAnswer
	ts.do("GET", "/v1/rates?group_by=city&"+win, viewerKey, "").json(t, &g)
	if len(g.Groups) != 1 || g.Groups[0].Outlets != 2 || g.Groups[0].Parcels.Total != 20 {
		t.Fatalf("city: %+v; want o-a and o-b only", g.Groups)
	}
	ts.engine.set(func(f *fakeEngine) {
		if len(f.asked) != 2 {
			t.Fatalf("engine asked %v over %v; want two windows", f.asked, f.windows)
		}
		for i, ids := range f.asked {
			w := f.windows[i]
			switch {
			case len(ids) == 1 && ids[0] == "o-a" && w.From.Equal(from) && w.To.Equal(to):
			case len(ids) == 1 && ids[0] == "o-b" && w.From.Equal(judged) && w.To.Equal(to):
			default:
				t.Errorf("engine asked %v over %v..%v", ids, w.From, w.To)
			}
		}
	})

	var wf wasteFreeAnswer
	ts.do("GET", "/v1/waste-free?"+win, viewerKey, "").json(t, &wf)
	ids := []string{}
	for _, o := range wf.Outlets {
		ids = append(ids, o.Outlet)
		if o.Outlet == "o-b" && (o.JudgedFrom == nil || !o.JudgedFrom.Equal(judged)) {
			t.Errorf("waste-free o-b judged_from %v", o.JudgedFrom)
		}
	}
	if strings.Join(ids, ",") != "o-a,o-b" {
		t.Errorf("waste-free lists %v; want o-a,o-b", ids)
	}

	var s seriesAnswer
	sa := ts.do("GET", "/v1/outlets/o-b/series?metric=parcels&step=12h&"+win, viewerKey, "")
	if sa.Status != 200 {
		t.Fatalf("series of o-b: %s", sa)
	}
	sa.json(t, &s)
	if len(s.Points) != 1 || !s.Points[0].T.Equal(judged) || s.JudgedFrom == nil {
		t.Errorf("series of o-b: %+v; want points from %v", s, judged)
	}
	ts.do("GET", "/v1/outlets/o-c/series?metric=parcels&step=12h&"+win, viewerKey, "").json(t, &s)
	if len(s.Points) != 0 || s.JudgedFrom == nil || !s.JudgedFrom.Equal(to) {
		t.Errorf("series of o-c: %+v; want no points, judged_from %v", s, to)
	}
}
