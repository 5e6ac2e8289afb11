package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

var sampleOutlet = Outlet{ID: "o-0001", Name: "Jianghan Road 1", District: "jianghan", Address: "1 Jianghan Rd", Lat: 30.58, Lon: 114.27, Operator: "sf", Active: true}

// checkProblem asserts an RFC 9457 answer with the given status.
func checkProblem(t *testing.T, a answer, status int) problem {
	t.Helper()
	if a.Status != status {
		t.Fatalf("status %d, want %d: %s", a.Status, status, a.Body)
	}
	if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	a.json(t, &p)
	if p.Status != status || p.Title != http.StatusText(status) || !strings.HasPrefix(p.Type, "urn:greenpost:problem:") || p.Code == "" {
		t.Fatalf("bad problem document: %s", a.Body)
	}
	return p
}

func TestAuth(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putOutlet(sampleOutlet)
	body := `{"name":"x","district":"d1","lat":1,"lon":2,"operator":"op"}`
	for _, tc := range []struct {
		name, method, path, key, body string
		header                        []string
		want                          int
	}{
		{"no key", "GET", "/v1/outlets", "", "", nil, 401},
		{"unknown key", "GET", "/v1/outlets", "not-a-key-at-all", "", nil, 401},
		{"basic auth", "GET", "/v1/outlets", "", "", []string{"Authorization", "Basic " + adminKey}, 401},
		{"bearer without token", "GET", "/v1/outlets", "", "", []string{"Authorization", "Bearer "}, 401},
		{"key of another case", "GET", "/v1/outlets", strings.ToUpper(viewerKey), "", nil, 401},
		{"viewer reads", "GET", "/v1/outlets", viewerKey, "", nil, 200},
		{"viewer reads one", "GET", "/v1/outlets/o-0001", viewerKey, "", nil, 200},
		{"lower-case scheme", "GET", "/v1/outlets", "", "", []string{"Authorization", "bearer " + viewerKey}, 200},
		{"viewer cannot write", "PUT", "/v1/outlets/o-0002", viewerKey, body, nil, 403},
		{"viewer cannot delete", "DELETE", "/v1/outlets/o-0001", viewerKey, "", nil, 403},
		{"viewer cannot import", "POST", "/v1/outlets/import", viewerKey, "[]", nil, 403},
		{"no key cannot write", "PUT", "/v1/outlets/o-0002", "", body, nil, 401},
		{"admin writes", "PUT", "/v1/outlets/o-0002", adminKey, body, nil, 200},
		{"admin reads", "GET", "/v1/outlets/o-0002", adminKey, "", nil, 200},
		{"open healthz", "GET", "/healthz", "", "", nil, 200},
		{"open readyz", "GET", "/readyz", "", "", nil, 200},
		{"open metrics", "GET", "/metrics", "", "", nil, 200},
		{"open openapi", "GET", "/openapi.json", "", "", nil, 200},
		{"open dashboard", "GET", "/dashboard/", "", "", nil, 200},
		{"open dashboard script", "GET", "/dashboard/js/main.js", "", "", nil, 200},
		{"root redirects to the dashboard", "GET", "/", "", "", nil, 302},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := ts.on(t).do(tc.method, tc.path, tc.key, tc.body, tc.header...)
			switch tc.want {
			case 401:
				checkProblem(t, a, 401)
				if got := a.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate %q", got)
				}
			case 403:
				checkProblem(t, a, 403)
			default:
				if a.Status != tc.want {
					t.Fatalf("got %s, want %d", a, tc.want)
				}
			}
		})
	}
	// A viewer's refused write changed nothing.
	if a := ts.do("GET", "/v1/outlets/o-0001", viewerKey, ""); a.Status != 200 {
		t.Fatalf("outlet gone after a refused delete: %s", a)
	}
}

func TestBadInputIs400ProblemJSON(t *testing.T) {
	ts := newTestServer(t, func(c *config) { c.MaxWindow = 31 * 24 * time.Hour; c.BodyLimit = 2048 })
	ts.putOutlet(sampleOutlet)
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		param                    string
	}{
		{"bad from", "GET", "/v1/rates?from=yesterday", "", nil, 400, "from"},
		{"bad to", "GET", "/v1/rates?to=2026-13-01T00:00:00Z", "", nil, 400, "to"},
		{"a date that does not exist", "GET", "/v1/rates?from=2026-02-30", "", nil, 400, "from"},
		{"from equals to", "GET", "/v1/rates?from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z", "", nil, 400, "from"},
		{"from after to", "GET", "/v1/rates?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "", nil, 400, "from"},
		{"same minute after rounding", "GET", "/v1/rates?from=2026-11-01T00:00:10Z&to=2026-11-01T00:00:50Z", "", nil, 400, "from"},
		{"window too long", "GET", "/v1/rates?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "", nil, 400, "to"},
		{"window too long for an outlet", "GET", "/v1/outlets/o-0001/rates?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "", nil, 400, "to"},
		{"unknown group_by", "GET", "/v1/rates?group_by=province", "", nil, 400, "group_by"},
		{"bad district", "GET", "/v1/rates?district=Bad%20One", "", nil, 400, "district"},
		{"unknown parameter", "GET", "/v1/rates?form=2026-11-01T00:00:00Z", "", nil, 400, "form"},
		{"repeated parameter", "GET", "/v1/rates?group_by=city&group_by=district", "", nil, 400, "group_by"},
		{"bad format", "GET", "/v1/rates?format=xml", "", nil, 400, "format"},
		{"missing metric", "GET", "/v1/outlets/o-0001/series", "", nil, 400, "metric"},
		{"unknown metric", "GET", "/v1/outlets/o-0001/series?metric=co2", "", nil, 400, "metric"},
		{"bad step", "GET", "/v1/outlets/o-0001/series?metric=parcels&step=fast", "", nil, 400, "step"},
		{"step below a minute", "GET", "/v1/outlets/o-0001/series?metric=parcels&step=30s", "", nil, 400, "step"},
		{"step not whole minutes", "GET", "/v1/outlets/o-0001/series?metric=parcels&step=90s", "", nil, 400, "step"},
		{"too many points", "GET", "/v1/outlets/o-0001/series?metric=parcels&step=1m&from=2026-11-01T00:00:00Z&to=2026-11-28T00:00:00Z", "", nil, 400, "step"},
		{"unknown alert kind", "GET", "/v1/alerts?kind=fire", "", nil, 400, "kind"},
		{"bad limit", "GET", "/v1/outlets?limit=0", "", nil, 400, "limit"},
		{"huge limit", "GET", "/v1/outlets?limit=100000", "", nil, 400, "limit"},
		{"bad cursor", "GET", "/v1/outlets?cursor=%21%21", "", nil, 400, "cursor"},
		{"bad id in path", "GET", "/v1/outlets/O_BAD/rates", "", nil, 400, "id"},
		{"parameter on a route without any", "GET", "/v1/outlets/o-0001?x=1", "", nil, 400, "x"},
		{"body not JSON", "PUT", "/v1/outlets/o-0009", `{"name":`, nil, 400, "body"},
		{"body with an unknown key", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lat":1,"lon":1,"operator":"o","colour":"red"}`, nil, 400, "body"},
		{"body missing lat", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lon":1,"operator":"o"}`, nil, 400, "lat"},
		{"lat out of range", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lat":91,"lon":1,"operator":"o"}`, nil, 400, "lat"},
		{"lon out of range", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lat":1,"lon":-180.5,"operator":"o"}`, nil, 400, "lon"},
		{"district with spaces", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"Jiang Han","lat":1,"lon":1,"operator":"o"}`, nil, 400, "district"},
		{"empty operator", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lat":1,"lon":1,"operator":""}`, nil, 400, "operator"},
		{"operator with a tab", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lat":1,"lon":1,"operator":"SF\tExpress"}`, nil, 400, "operator"},
		{"operator filter with a newline", "GET", "/v1/rates?operator=SF%0A", "", nil, 400, "operator"},
		{"empty name", "PUT", "/v1/outlets/o-0009", `{"name":" ","district":"d","lat":1,"lon":1,"operator":"o"}`, nil, 400, "name"},
		{"name with a newline", "PUT", "/v1/outlets/o-0009", `{"name":"a\nb","district":"d","lat":1,"lon":1,"operator":"o"}`, nil, 400, "name"},
		{"body id differs", "PUT", "/v1/outlets/o-0009", `{"id":"o-0010","name":"n","district":"d","lat":1,"lon":1,"operator":"o"}`, nil, 400, "id"},
		{"lat as a string", "PUT", "/v1/outlets/o-0009", `{"name":"n","district":"d","lat":"1","lon":1,"operator":"o"}`, nil, 400, "body"},
		{"bad id on put", "PUT", "/v1/outlets/-bad", `{"name":"n","district":"d","lat":1,"lon":1,"operator":"o"}`, nil, 400, "id"},
		{"wrong content type", "PUT", "/v1/outlets/o-0009", `name=n`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, ""},
		{"import of an unknown type", "POST", "/v1/outlets/import", `<xml/>`, []string{"Content-Type", "application/xml"}, 415, ""},
		{"import with a bad CSV header", "POST", "/v1/outlets/import", "id,name,colour\n", []string{"Content-Type", "text/csv"}, 400, "body"},
		{"import not an array", "POST", "/v1/outlets/import", `{"id":"o-1"}`, nil, 400, "body"},
		{"unknown outlet", "GET", "/v1/outlets/o-9999/rates", "", nil, 404, ""},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, ""},
		{"wrong method", "PATCH", "/v1/outlets/o-0001", "", nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := ts.on(t).do(tc.method, tc.path, adminKey, tc.body, tc.header...)
			p := checkProblem(t, a, tc.status)
			if p.Param != tc.param {
				t.Errorf("param %q, want %q (%s)", p.Param, tc.param, a.Body)
			}
			if p.Detail == "" {
				t.Errorf("no detail: %s", a.Body)
			}
		})
	}
	if n := len(ts.engine.asked); n != 0 {
		t.Errorf("the engine was asked %d times by requests that should have been refused", n)
	}
}

// TestInternalsDoNotLeak: failures of InfluxDB or bugs answer a problem
// document that carries neither the database's text, nor Flux, nor a stack;
// the log has the details.
func TestInternalsDoNotLeak(t *testing.T) {
	secret := `from(bucket: "gp/autogen") |> range(start: -1h) SECRET-INTERNAL`
	for _, tc := range []struct {
		name   string
		err    error
		panic  string
		status int
	}{
		{"database down", &store.WriteError{Class: store.Retryable, Err: errors.New(secret)}, "", 503},
		{"query refused", &store.WriteError{Class: store.Permanent, Status: 400, Err: errors.New(secret)}, "", 502},
		{"roll-up not ready", fmt.Errorf("%w: %s", metrics.ErrNotReady, secret), "", 503},
		{"bug", errors.New(secret), "", 500},
		{"panic", nil, secret, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			ts.putOutlet(sampleOutlet)
			ts.engine.set(func(f *fakeEngine) { f.err, f.panicMsg = tc.err, tc.panic })
			a := ts.do("GET", "/v1/rates?group_by=city", viewerKey, "")
			checkProblem(t, a, tc.status)
			for _, leak := range []string{"SECRET", "from(bucket", "goroutine", ".go:"} {
				if strings.Contains(string(a.Body), leak) {
					t.Errorf("answer leaks %q: %s", leak, a.Body)
				}
			}
			if tc.status == 503 && a.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if !strings.Contains(ts.logs.String(), "SECRET-INTERNAL") {
				t.Errorf("the cause is not in the log:\n%s", ts.logs)
			}
		})
	}
}

func TestRateLimitPerKey(t *testing.T) {
	ts := newTestServer(t, func(c *config) { c.RateBurst = 3; c.RateLimit = 0.01 })
	for i := 1; i <= 3; i++ {
		if a := ts.do("GET", "/v1/outlets", viewerKey, ""); a.Status != 200 {
			t.Fatalf("request %d: %s", i, a)
		}
	}
	a := ts.do("GET", "/v1/outlets", viewerKey, "")
	checkProblem(t, a, 429)
	ra, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After %q", a.Header.Get("Retry-After"))
	}
	// Another key has its own bucket; open routes are not limited.
	if a := ts.do("GET", "/v1/outlets", adminKey, ""); a.Status != 200 {
		t.Errorf("admin limited by the viewer's bucket: %s", a)
	}
	if a := ts.do("GET", "/healthz", "", ""); a.Status != 200 {
		t.Errorf("healthz: %s", a)
	}
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(1, 2, 2) // 2 per second, burst 2
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at   time.Duration
		wait bool
	}{
		{0, false}, {0, false}, {0, true}, // burst spent
		{400 * time.Millisecond, true},  // 0.8 tokens
		{500 * time.Millisecond, false}, // 1.0 token
		{500 * time.Millisecond, true},
		{10 * time.Second, false}, {10 * time.Second, false}, {10 * time.Second, true}, // capped at burst
	} {
		if got := l.take(0, t0.Add(tc.at)) > 0; got != tc.wait {
			t.Errorf("step %d at %v: wait %v, want %v", i, tc.at, got, tc.wait)
		}
	}
}

func TestKeyringLookup(t *testing.T) {
	k := &keyring{keys: testKeys()}
	for _, tc := range []struct {
		key  string
		want int
	}{{adminKey, 0}, {viewerKey, 1}, {"", -1}, {adminKey + " ", -1}, {"viewer-key-012345678", -1}} {
		if got := k.lookup(tc.key); got != tc.want {
			t.Errorf("lookup(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestMetricsByRoutePattern(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putOutlet(sampleOutlet)
	ts.do("GET", "/v1/outlets/o-0001", viewerKey, "")
	ts.do("GET", "/v1/outlets/o-0404", viewerKey, "")
	ts.do("GET", "/v1/outlets/o-0001", "", "")
	ts.do("GET", "/no/such/path", "", "")
	a := ts.do("GET", "/metrics", "", "")
	if a.Status != 200 {
		t.Fatal(a)
	}
	text := string(a.Body)
	for _, want := range []string{
		`gp_api_requests_total{method="GET",route="/v1/outlets/:id",status="200"} 1`,
		`gp_api_requests_total{method="GET",route="/v1/outlets/:id",status="404"} 1`,
		`gp_api_requests_total{method="GET",route="/v1/outlets/:id",status="401"} 1`,
		`gp_api_requests_total{method="PUT",route="/v1/outlets/:id",status="200"} 1`,
		`gp_api_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`gp_api_request_duration_seconds_count{method="GET",route="/v1/outlets/:id",status="200"} 1`,
		`gp_api_registry_outlets 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "o-0001") {
		t.Error("a raw path is used as a label")
	}
}

// TestOpenAPIMatchesRoutes walks the route table and the document: every
// route is documented (with its role), every documented route exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	pathParam := regexp.MustCompile(`:([a-z_]+)`)
	table := map[string]route{}
	for _, r := range routes(&deps{cfg: defaultTestConfig(), reg: newRegistry(nil, nil, nil), promReg: newPromRegistry()}) {
		if r.Path == "/" || strings.HasPrefix(r.Path, "/dashboard/") {
			continue // the dashboard's files: pages, not API
		}
		table[strings.ToLower(r.Method)+" "+pathParam.ReplaceAllString(r.Path, "{$1}")] = r
	}
	documented := map[string]struct {
		Security []map[string][]string `json:"security"`
		Role     string                `json:"x-role"`
		Params   []json.RawMessage     `json:"parameters"`
	}{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op struct {
				Security  *[]map[string][]string `json:"security"`
				Role      string                 `json:"x-role"`
				Responses map[string]any         `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s documents no response", method, path)
			}
			e := documented[method+" "+path]
			if op.Security != nil {
				e.Security = *op.Security
			} else {
				e.Security = []map[string][]string{{"bearer": nil}}
			}
			e.Role = op.Role
			documented[method+" "+path] = e
		}
	}
	var keys []string
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, ok := documented[k]
		if !ok {
			t.Errorf("route %s is not in openapi.json", k)
			continue
		}
		r := table[k]
		open := len(d.Security) == 0
		if open != (r.Role == "") {
			t.Errorf("%s: openapi says open=%v, the route's role is %q", k, open, r.Role)
		}
		if want := strings.TrimPrefix(r.Role, roleViewer); d.Role != want {
			t.Errorf("%s: openapi x-role %q, the route's role is %q", k, d.Role, r.Role)
		}
	}
	for k := range documented {
		if _, ok := table[k]; !ok {
			t.Errorf("openapi.json documents %s, which is not a route", k)
		}
	}
	// And the served document is this one.
	ts := newTestServer(t, nil)
	if a := ts.do("GET", "/openapi.json", "", ""); a.Status != 200 || string(a.Body) != string(openAPIDoc) || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /openapi.json: %d %s", a.Status, a.Header.Get("Content-Type"))
	}
}

func TestWindowParameters(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 30, 42, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		q        query
		from, to string
	}{
		{query{}, "2026-11-27T10:30:00Z", "2026-11-28T10:30:00Z"},
		{query{"to": "2026-11-20T05:00:59.999Z"}, "2026-11-19T05:00:00Z", "2026-11-20T05:00:00Z"},
		{query{"from": "2026-11-28T08:15:30+08:00"}, "2026-11-28T00:15:00Z", "2026-11-28T10:30:00Z"},
		{query{"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"},
	} {
		w, err := tc.q.window(now, 93*day, time.UTC)
		if err != nil {
			t.Errorf("%v: %v", tc.q, err)
			continue
		}
		if got := w.From.Format(time.RFC3339) + " " + w.To.Format(time.RFC3339); got != tc.from+" "+tc.to {
			t.Errorf("%v: %s, want %s %s", tc.q, got, tc.from, tc.to)
		}
	}
	// What people type: a + that arrived as a space, a bare date (midnight
	// in the city's time zone).
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q        query
		from, to string
	}{
		{query{"from": "2026-11-28T08:15:30 08:00"}, "2026-11-28T00:15:00Z", "2026-11-28T10:30:00Z"},
		{query{"from": "2026-11-28T08:15:30.5 05:30", "to": "2026-11-28T10:00:00 00:00"}, "2026-11-28T02:45:00Z", "2026-11-28T10:00:00Z"},
		{query{"from": "2026-11-27", "to": "2026-11-28"}, "2026-11-26T16:00:00Z", "2026-11-27T16:00:00Z"},
		{query{"from": "2026-11-28"}, "2026-11-27T16:00:00Z", "2026-11-28T10:30:00Z"},
	} {
		w, err := tc.q.window(now, 93*day, shanghai)
		if err != nil {
			t.Errorf("%v: %v", tc.q, err)
			continue
		}
		if got := w.From.Format(time.RFC3339) + " " + w.To.Format(time.RFC3339); got != tc.from+" "+tc.to {
			t.Errorf("%v: %s, want %s %s", tc.q, got, tc.from, tc.to)
		}
	}
	for _, v := range []string{"2026-11-28T08:15:30 8:00", "2026-11-28 08:00", "28.11.2026", "2026-13-01"} {
		_, err := (query{"from": v}).window(now, 93*day, shanghai)
		if err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("from=%q: %v", v, err)
		} else if strings.Contains(v, " ") != strings.Contains(err.Error(), "%2B") {
			t.Errorf("from=%q: %v (says how to write + exactly when a space is in it)", v, err)
		}
	}
	// Exactly the maximum is allowed; a minute more is not.
	if _, err := (query{"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z"}).window(now, 7*day, time.UTC); err != nil {
		t.Errorf("window of exactly the maximum: %v", err)
	}
	if _, err := (query{"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:01:00Z"}).window(now, 7*day, time.UTC); err == nil {
		t.Error("a window a minute over the maximum was accepted")
	}
}

func TestStepParameter(t *testing.T) {
	w, _ := query{"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z"}.window(testNow, 93*24*time.Hour, time.UTC)
	for _, tc := range []struct {
		step string
		want time.Duration
		ok   bool
	}{
		{"1h", time.Hour, true}, {"1d", 24 * time.Hour, true}, {"15m", 15 * time.Minute, true}, {"7d", 7 * 24 * time.Hour, true},
		{"90m", 90 * time.Minute, true}, {"0d", 0, false}, {"-1h", 0, false}, {"1.5d", 0, false}, {"1m", 0, false}, // 10080 points
		{"", 0, false}, {"1h30s", 0, false},
		// Bounded by the window (7 days here): 2562047h overflowed the point count.
		{"2562047h", 7 * 24 * time.Hour, true}, {"8d", 7 * 24 * time.Hour, true}, {"168h", 7 * 24 * time.Hour, true},
		{"169h", 7 * 24 * time.Hour, true}, {"106751992d", 7 * 24 * time.Hour, true}, {"9223372036854775807d", 7 * 24 * time.Hour, true},
		{"-9223372036854775807d", 0, false},
	} {
		d, text, err := (query{"step": tc.step}).step(w, "1h", maxSeriesPoints)
		if (err == nil) != tc.ok || (tc.ok && d != tc.want) {
			t.Errorf("step %q: %v, %v; want %v ok=%v", tc.step, d, err, tc.want, tc.ok)
		}
		if tc.ok && d == 7*24*time.Hour && tc.step != "168h" && text != "7d" {
			t.Errorf("step %q bounded to the window is said as %q, want 7d", tc.step, text)
		}
	}
}

func TestDashboardFilesAreSelfContained(t *testing.T) {
	ts := newTestServer(t, nil)
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:`)
	files := []string{"/dashboard/"}
	fs.WalkDir(dashboardFS, "dashboard", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && dashboardTypes[path.Ext(p)] != "" {
			files = append(files, "/"+p)
		}
		return err
	})
	if len(files) < 10 {
		t.Fatalf("dashboard files: %v", files)
	}
	for _, f := range files {
		a := ts.do("GET", f, "", "")
		if a.Status != 200 {
			t.Fatalf("%s: %s", f, a)
		}
		if m := external.FindString(string(a.Body)); m != "" {
			t.Errorf("%s loads something from elsewhere: %q", f, m)
		}
		if !strings.Contains(a.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s without a CSP", f)
		}
	}
	for _, f := range []string{"/dashboard/nope.js", "/dashboard/..%2fopenapi.go", "/dashboard/openapi.go"} {
		if a := ts.do("GET", f, "", ""); a.Status != 404 {
			t.Errorf("%s: %d, want 404", f, a.Status)
		}
	}
}

// TestOpenAPIDescribesEverything: every parameter and every field of every
// schema (nested objects and array items included) has a description, and
// every JSON field the API answers with is in its schema.
func TestOpenAPIDescribesEverything(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	comps := doc["components"].(map[string]any)
	var walk func(where string, s any)
	walk = func(where string, s any) {
		m, ok := s.(map[string]any)
		if !ok || m["$ref"] != nil {
			return
		}
		props, _ := m["properties"].(map[string]any)
		for name, p := range props {
			pm, _ := p.(map[string]any)
			if pm["$ref"] == nil && strings.TrimSpace(fmt.Sprint(pm["description"])) == "" || pm["description"] == nil && pm["$ref"] == nil {
				t.Errorf("%s.%s has no description", where, name)
			}
			walk(where+"."+name, p)
		}
		walk(where+"[]", m["items"])
	}
	for name, s := range comps["schemas"].(map[string]any) {
		walk(name, s)
	}
	for name, p := range comps["parameters"].(map[string]any) {
		if d, _ := p.(map[string]any)["description"].(string); d == "" {
			t.Errorf("parameter %s has no description", name)
		}
	}
	for path, ops := range doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			om, _ := op.(map[string]any)
			params, _ := om["parameters"].([]any)
			if method == "parameters" {
				params, _ = op.([]any)
			}
			for _, p := range params {
				pm := p.(map[string]any)
				if d, _ := pm["description"].(string); d == "" && pm["$ref"] == nil {
					t.Errorf("%s %s: parameter %v has no description", method, path, pm["name"])
				}
			}
		}
	}
	// Every field the API answers with is in its schema.
	schemas := comps["schemas"].(map[string]any)
	for name, v := range map[string]any{
		"Outlet": Outlet{}, "OutletPage": outletPage{}, "ImportResult": importResult{}, "OutletRates": outletRates{},
		"GroupRates": groupRates{}, "RatesAnswer": groupsAnswer{}, "Series": seriesAnswer{}, "Alert": alert{},
		"AlertsAnswer": alertsAnswer{}, "WasteFreeOutlet": wasteFreeOutlet{}, "WasteFreeAnswer": wasteFreeAnswer{},
		"Health": health{}, "Problem": problem{},
	} {
		props, _ := schemas[name].(map[string]any)["properties"].(map[string]any)
		for _, f := range jsonFields(reflect.TypeOf(v)) {
			if _, ok := props[f]; !ok {
				t.Errorf("%s: the answer's field %q is not in openapi.json", name, f)
			}
		}
	}
}

// jsonFields lists the JSON names of a struct's fields, embedded ones
// included.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, jsonFields(f.Type)...)
		case tag != "":
			out = append(out, tag)
		case f.IsExported():
			out = append(out, f.Name)
		}
	}
	return out
}
