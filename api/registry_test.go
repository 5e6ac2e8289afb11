package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestRegistryCRUD runs on the in-memory store of the handler tests and on
// InfluxDB: the two keep records alike.
func TestRegistryCRUD(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(*testing.T, func(*config)) *testServer
	}{{"memory", newTestServer}, {"influxdb", newInfluxTestServer}} {
		t.Run(b.name, func(t *testing.T) { testRegistryCRUD(t, b.open(t, nil)) })
	}
}

func testRegistryCRUD(t *testing.T, ts *testServer) {
	o := sampleOutlet
	o.Name = `Name with "quotes", a \backslash\, commas, = signs and 汉字`
	o.Address = `Lane 3, "East" gate`
	ts.putOutlet(o)

	var got Outlet
	a := ts.do("GET", "/v1/outlets/o-0001", viewerKey, "")
	a.json(t, &got)
	if got.Name != o.Name || got.Address != o.Address || got.District != o.District || got.Lat != o.Lat || got.Lon != o.Lon || got.Operator != o.Operator || !got.Active {
		t.Fatalf("got %+v, want %+v", got, o)
	}
	// The same from the store, read by a fresh registry.
	fresh := newRegistry(ts.db, nil, nil)
	if err := fresh.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g, ok := fresh.Get(cityCtx, "o-0001"); !ok || g != got {
		t.Fatalf("reloaded %+v, want %+v", g, got)
	}

	// Update: the latest write wins, also for active=false.
	a = ts.do("PUT", "/v1/outlets/o-0001", adminKey, `{"name":"Renamed","district":"hanyang","lat":30.5,"lon":114.2,"operator":"ems","active":false}`)
	if a.Status != 200 {
		t.Fatal(a)
	}
	a = ts.do("GET", "/v1/outlets/o-0001", viewerKey, "")
	a.json(t, &got)
	if got.Name != "Renamed" || got.District != "hanyang" || got.Active {
		t.Fatalf("after update: %+v", got)
	}
	// A GET answer can be PUT back as it is.
	if a := ts.do("PUT", "/v1/outlets/o-0001", adminKey, string(a.Body)); a.Status != 200 {
		t.Fatalf("PUT of a GET answer: %s", a)
	}

	if a := ts.do("DELETE", "/v1/outlets/o-0001", adminKey, ""); a.Status != 204 {
		t.Fatalf("delete: %s", a)
	}
	checkProblem(t, ts.do("GET", "/v1/outlets/o-0001", viewerKey, ""), 404)
	checkProblem(t, ts.do("DELETE", "/v1/outlets/o-0001", adminKey, ""), 404)
	fresh = newRegistry(ts.db, nil, nil)
	if err := fresh.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Get(cityCtx, "o-0001"); ok {
		t.Fatal("a deleted outlet came back on reload")
	}
	// Re-creating after a delete works.
	ts.putOutlet(sampleOutlet)
	if a := ts.do("GET", "/v1/outlets/o-0001", viewerKey, ""); a.Status != 200 {
		t.Fatalf("re-created outlet: %s", a)
	}
}

func TestRegistryDistrictList(t *testing.T) {
	ts := newTestServer(t, func(c *config) { c.Districts = []string{"jianghan", "wuchang"} })
	ts.putOutlet(sampleOutlet)
	a := ts.do("PUT", "/v1/outlets/o-0002", adminKey, `{"name":"n","district":"hanyang","lat":1,"lon":1,"operator":"o"}`)
	if p := checkProblem(t, a, 400); p.Param != "district" {
		t.Fatalf("param %q", p.Param)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	ts := newTestServer(t, nil)
	var rows []string
	want := map[string][]string{}
	for i := 1; i <= 57; i++ {
		id := fmt.Sprintf("o-%04d", i)
		d := []string{"jianghan", "wuchang", "hanyang"}[i%3]
		op := []string{"SF Express", "ems"}[i%2]
		rows = append(rows, fmt.Sprintf("%s,Outlet %d,%s,,30.%d,114.%d,%s", id, i, d, i, i, op))
		want[""] = append(want[""], id)
		want["district="+d] = append(want["district="+d], id)
		want["operator="+url.QueryEscape(op)] = append(want["operator="+url.QueryEscape(op)], id)
		if d == "wuchang" && op == "ems" {
			want["district=wuchang&operator=ems"] = append(want["district=wuchang&operator=ems"], id)
		}
	}
	// Imported in reverse order: the listing is by id whatever the order of writes.
	sort.Sort(sort.Reverse(sort.StringSlice(rows)))
	a := ts.do("POST", "/v1/outlets/import", adminKey, "id,name,district,address,lat,lon,operator\n"+strings.Join(rows, "\n"), "Content-Type", "text/csv")
	if a.Status != 200 {
		t.Fatal(a)
	}
	for filter, ids := range want {
		for _, limit := range []int{1, 10, 57, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", filter, limit), func(t *testing.T) {
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > 100 {
						t.Fatal("paging does not end")
					}
					q := fmt.Sprintf("/v1/outlets?limit=%d&%s", limit, filter)
					if cursor != "" {
						q += "&cursor=" + cursor
					}
					var page outletPage
					a := ts.on(t).do("GET", q, viewerKey, "")
					if a.Status != 200 {
						t.Fatal(a)
					}
					a.json(t, &page)
					if len(page.Outlets) > limit {
						t.Fatalf("page of %d > limit %d", len(page.Outlets), limit)
					}
					for _, o := range page.Outlets {
						got = append(got, o.ID)
					}
					if page.NextCursor == nil {
						break
					}
					if a.Header.Get("X-Next-Cursor") != *page.NextCursor {
						t.Errorf("X-Next-Cursor %q, next_cursor %q", a.Header.Get("X-Next-Cursor"), *page.NextCursor)
					}
					cursor = *page.NextCursor
				}
				if !reflect.DeepEqual(got, ids) {
					t.Fatalf("got %v\nwant %v", got, ids)
				}
			})
		}
	}
	// A cursor stays valid when its outlet is deleted between pages.
	var page outletPage
	ts.do("GET", "/v1/outlets?limit=5", viewerKey, "").json(t, &page)
	ts.do("DELETE", "/v1/outlets/o-0005", adminKey, "")
	ts.do("GET", "/v1/outlets?limit=2&cursor="+*page.NextCursor, viewerKey, "").json(t, &page)
	if len(page.Outlets) != 2 || page.Outlets[0].ID != "o-0006" {
		t.Fatalf("after a deleted cursor outlet: %+v", page.Outlets)
	}
}

func TestImportReportsBadRowsAndKeepsGoodOnes(t *testing.T) {
	csvBody := strings.Join([]string{
		"id,name,district,address,lat,lon,operator,active", // line 1
		"o-0001,Good One,jianghan,1 Road,30.58,114.27,sf,true",
		"O-BAD,Bad Id,jianghan,,30,114,sf,",   // 3: id
		"o-0003,Bad Lat,jianghan,,91,114,sf,", // 4: lat range
		"o-0004,Short Row,jianghan,,30,114",   // 5: field count
		`o-0005,"Quoted, with comma",wuchang,"Lane ""3""",30.5,114.3,ems,false`,
		"o-0006,Bad Active,jianghan,,30,114,sf,maybe",     // 7: active
		"o-0001,Duplicate,jianghan,,30,114,sf,",           // 8: duplicate of line 2
		"o-0009,Lat Not A Number,jianghan,,north,114,sf,", // 9: lat
		`o-0010,"Multi`,                      // 10-11: one record over two lines,
		`line name",hanyang,,30.1,114.1,sf,`, // with a newline in the name
		"o-0012,No District,,,30,114,sf,",    // 12: district
	}, "\n") + "\n"
	jsonBody := `[
  {"id":"j-0001","name":"Good","district":"jianghan","lat":30.1,"lon":114.1,"operator":"sf"},
  {"id":"j-0002","name":"Unknown key","district":"jianghan","lat":30.1,"lon":114.1,"operator":"sf","colour":"red"},
  {"id":"j-0003","name":"No lon","district":"jianghan","lat":30.1,"operator":"sf"},
  {"id":"j-0004",
   "name":"Inactive","district":"wuchang","lat":30.2,"lon":114.2,"operator":"ems","active":false},
  "not an object",
  {"name":"No id","district":"jianghan","lat":30.1,"lon":114.1,"operator":"sf"}
]`
	for _, tc := range []struct {
		name, ctype, body string
		imported          []string
		errLines          []int
		errText           map[int]string
	}{
		{"csv", "text/csv; charset=utf-8", csvBody, []string{"o-0001", "o-0005"}, []int{3, 4, 5, 7, 8, 9, 10, 12},
			map[int]string{3: "id", 4: "lat", 5: "fields", 7: "active", 8: "repeats line 2", 9: "lat", 10: "name", 12: "district"}},
		{"json", "application/json", jsonBody, []string{"j-0001", "j-0004"}, []int{3, 4, 7, 8},
			map[int]string{3: "colour", 4: "lon", 7: "want an object", 8: "id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			a := ts.do("POST", "/v1/outlets/import", adminKey, tc.body, "Content-Type", tc.ctype)
			if a.Status != 200 {
				t.Fatal(a)
			}
			var res importResult
			a.json(t, &res)
			if res.Imported != len(tc.imported) {
				t.Errorf("imported %d, want %d: %s", res.Imported, len(tc.imported), a.Body)
			}
			var lines []int
			for _, e := range res.Errors {
				lines = append(lines, e.Line)
				if want := tc.errText[e.Line]; !strings.Contains(e.Error, want) {
					t.Errorf("line %d: error %q does not mention %q", e.Line, e.Error, want)
				}
			}
			if !reflect.DeepEqual(lines, tc.errLines) {
				t.Errorf("error lines %v, want %v: %s", lines, tc.errLines, a.Body)
			}
			var page outletPage
			ts.do("GET", "/v1/outlets", viewerKey, "").json(t, &page)
			var ids []string
			for _, o := range page.Outlets {
				ids = append(ids, o.ID)
			}
			if !reflect.DeepEqual(ids, tc.imported) {
				t.Errorf("registry holds %v, want %v", ids, tc.imported)
			}
		})
	}
	t.Run("csv values", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.do("POST", "/v1/outlets/import", adminKey, csvBody, "Content-Type", "text/csv")
		o, _ := ts.reg.Get(cityCtx, "o-0005")
		if o.Name != "Quoted, with comma" || o.Address != `Lane "3"` || o.Active || o.District != "wuchang" || o.Lat != 30.5 {
			t.Errorf("o-0005: %+v", o)
		}
	})
}

// apiProcess is run() in this process, as main would call it.
type apiProcess struct {
	base   string
	log    *testenv.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

var startedAddr = regexp.MustCompile(`"msg":"started"[^}]*"addr":"([^"]+)"`)

// startRun starts run() with env (GP_API_ADDR=127.0.0.1:0 unless set) and
// waits until it logs its address.
func startRun(t *testing.T, env map[string]string) *apiProcess {
	t.Helper()
	if env["GP_API_ADDR"] == "" {
		env["GP_API_ADDR"] = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &apiProcess{log: &testenv.SyncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, p.log) }()
	t.Cleanup(func() { p.stop(t) })
	waitUntil(t, 20*time.Second, "the API to start", func() bool {
		if m := startedAddr.FindStringSubmatch(p.log.String()); m != nil {
			p.base = "http://" + m[1]
			return true
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("run ended before starting: %v\n%s", err, p.log)
		default:
		}
		return false
	})
	return p
}

// stop cancels run (as SIGTERM would) and waits for it; it fails the test
// unless run returns nil.
func (p *apiProcess) stop(t *testing.T) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("run: %v\n%s", err, p.log)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("run did not stop\n%s", p.log)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func (p *apiProcess) do(t *testing.T, method, path, key, ctype, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (p *apiProcess) ids(t *testing.T) []string {
	t.Helper()
	var page outletPage
	a := p.do(t, "GET", "/v1/outlets?limit=1000", viewerKey, "", "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	a.json(t, &page)
	ids := []string{}
	for _, o := range page.Outlets {
		ids = append(ids, o.ID)
	}
	return ids
}

// TestRegistryPersistsAcrossRestartAndReplicas runs the API as main does,
// twice side by side (two replicas) and once more after both stopped, all
// against the same influxd: writes on one replica show up on the other, and
// a restart keeps everything.
func TestRegistryPersistsAcrossRestartAndReplicas(t *testing.T) {
	in := testenv.SharedInflux(t)
	env := func() map[string]string {
		return map[string]string{
			"GP_INFLUX_URL": in.URL, "GP_INFLUX_BUCKET": freshBucketName,
			"GP_API_KEYS":             "admin:" + adminKey + ",viewer:" + viewerKey,
			"GP_API_REGISTRY_REFRESH": "1s", "GP_API_BODY_LIMIT": "4096",
		}
	}
	freshBucketName = freshBucket(t, in)
	a, b := startRun(t, env()), startRun(t, env())
	for _, p := range []*apiProcess{a, b} {
		waitUntil(t, 20*time.Second, "readyz", func() bool { return p.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	}
	put := `{"name":"Jianghan \"1\"","district":"jianghan","address":"1 Road","lat":30.58,"lon":114.27,"operator":"sf"}`
	if r := a.do(t, "PUT", "/v1/outlets/o-0001", adminKey, "application/json", put); r.Status != 200 {
		t.Fatal(r)
	}
	imp := "id,name,district,address,lat,lon,operator,active\no-0002,Two,wuchang,,30.5,114.3,ems,true\no-0003,Three,hanyang,,30.6,114.2,sf,false\no-0004,Four,jianghan,,30.7,114.1,sf,\n"
	if r := a.do(t, "POST", "/v1/outlets/import", adminKey, "text/csv", imp); r.Status != 200 || !strings.Contains(string(r.Body), `"imported":3`) {
		t.Fatal(r)
	}
	all := []string{"o-0001", "o-0002", "o-0003", "o-0004"}
	waitUntil(t, 15*time.Second, "replica B to see A's writes", func() bool { return reflect.DeepEqual(b.ids(t), all) })
	if r := b.do(t, "DELETE", "/v1/outlets/o-0002", adminKey, "", ""); r.Status != 204 {
		t.Fatal(r)
	}
	left := []string{"o-0001", "o-0003", "o-0004"}
	waitUntil(t, 15*time.Second, "replica A to see B's delete", func() bool { return reflect.DeepEqual(a.ids(t), left) })
	before := a.do(t, "GET", "/v1/outlets?format=csv", viewerKey, "", "")
	a.stop(t)
	b.stop(t)

	c := startRun(t, env())
	waitUntil(t, 20*time.Second, "readyz after restart", func() bool { return c.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	after := c.do(t, "GET", "/v1/outlets?format=csv", viewerKey, "", "")
	if before.Status != 200 || string(after.Body) != string(before.Body) {
		t.Fatalf("registry before the restart:\n%s\nafter:\n%s", before.Body, after.Body)
	}
	recs, err := csv.NewReader(bytes.NewReader(after.Body)).ReadAll()
	if err != nil || len(recs) != 4 || recs[1][1] != `Jianghan "1"` || recs[2][7] != "false" {
		t.Fatalf("CSV after restart: %v %q", err, recs)
	}

	// The body limit holds on a real listener: 413 as problem+json.
	big := `{"name":"` + strings.Repeat("x", 5000) + `","district":"d","lat":1,"lon":1,"operator":"o"}`
	r := c.do(t, "PUT", "/v1/outlets/o-0009", adminKey, "application/json", big)
	checkProblem(t, r, 413)
	var p map[string]any
	if err := json.Unmarshal(r.Body, &p); err != nil || p["code"] != codeTooLarge {
		t.Fatalf("413 body: %s", r.Body)
	}
}

var freshBucketName string

// Select gives what List gives, for every filter and scope; a city-wide
// answer may be the registry's own slice, so a change must leave a slice
// handed out before as it was.
func TestSelectIsListAndStaysPut(t *testing.T) {
	reg := newRegistry(&memOutlets{}, nil, nil)
	var put []Outlet
	for i := range 30 {
		o := sampleOutlet
		o.ID = fmt.Sprintf("o-%04d", 30-i) // not in id order
		o.District = []string{"hongshan", "wuchang", "hanyang"}[i%3]
		o.Operator = []string{"sf", "ems"}[i%2]
		o.Active = i%4 != 0
		put = append(put, o)
	}
	if _, err := reg.Put(cityCtx, put...); err != nil {
		t.Fatal(err)
	}
	scoped := withScope(context.Background(), scope{districts: []string{"wuchang"}})
	for _, ctx := range []context.Context{cityCtx, scoped} {
		for _, f := range []outletFilter{{}, {ActiveOnly: true}, {District: "hanyang"}, {Operator: "ems", ActiveOnly: true}} {
			got := reg.Select(ctx, f)
			want, _ := reg.List(ctx, f, "", 0)
			if !reflect.DeepEqual(got, want) || len(want) == 0 && scopeOf(ctx).all && f.District == "" {
				t.Fatalf("scope %+v, filter %+v: Select %d outlets, List %d", scopeOf(ctx), f, len(got), len(want))
			}
		}
	}
	before := reg.Select(cityCtx, outletFilter{ActiveOnly: true})
	kept := slices.Clone(before)
	o := before[0]
	o.Name, o.Active = "Renamed", false
	if _, err := reg.Put(cityCtx, o); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, kept) {
		t.Fatal("an answer of Select changed under its caller when the registry changed")
	}
	if after := reg.Select(cityCtx, outletFilter{ActiveOnly: true}); len(after) != len(before)-1 || after[0].ID == o.ID {
		t.Fatalf("after %s went inactive: %d active outlets (were %d), first %s", o.ID, len(after), len(before), after[0].ID)
	}
}

// TestRegistryWritten: each live outlet's fields written in JSON follow
// its changes and reloads (kept where unchanged), and a deleted one goes.
func TestRegistryWritten(t *testing.T) {
	reg := newRegistry(&memOutlets{}, nil, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	a := Outlet{ID: "o-w1", Name: "驿站 <一>", District: "jianghan", Operator: "ems", Lat: 30.6, Lon: 114.3, Active: true}
	b := Outlet{ID: "o-w2", Name: "Two", District: "wuchang", Operator: "sf", Lat: 30.5, Lon: 114.3}
	if _, err := reg.Put(cityCtx, a, b); err != nil {
		t.Fatal(err)
	}
	want := func(o Outlet) {
		t.Helper()
		e, ok := reg.Written()[o.ID]
		if !ok || e.vals != outletValues(&o) || !bytes.Equal(e.enc, newOutletJSON(&o).enc) {
			t.Fatalf("%s written %q (%v), want %q", o.ID, e.enc, ok, newOutletJSON(&o).enc)
		}
	}
	want(a)
	want(b)
	a.Name = "驿站 & 二"
	if _, err := reg.Put(cityCtx, a); err != nil {
		t.Fatal(err)
	}
	want(a)
	if err := reg.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	want(a)
	want(b)
	if _, err := reg.Delete(cityCtx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Written()[b.ID]; ok {
		t.Error("a deleted outlet is still written")
	}
}
