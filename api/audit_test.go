package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// auditCase says how to make one write route succeed and fail.
type auditCase struct {
	path, body, ctype  string // a successful request
	target             string // the entry's target
	failPath, failBody string // a request that fails (4xx)
}

// auditCases holds a case for every write route of the table, by method and
// pattern: TestEveryWriteIsAuditedOnce fails for a write route without one.
var auditCases = map[string]auditCase{
	"PUT /v1/outlets/:id": {path: "/v1/outlets/o-a1", body: `{"name":"A1","district":"east","lat":30,"lon":114,"operator":"sf"}`, target: "o-a1",
		failPath: "/v1/outlets/o-a1", failBody: `{"name":"A1","district":"East","lat":30,"lon":114,"operator":"sf"}`},
	"DELETE /v1/outlets/:id": {path: "/v1/outlets/o-a2", target: "o-a2", failPath: "/v1/outlets/o-none"},
	"POST /v1/outlets/import": {path: "/v1/outlets/import", ctype: "text/csv", target: "import",
		body:     "id,name,district,address,lat,lon,operator\no-a3,A3,east,,30,114,sf\no-a4,A4,BAD,,30,114,sf\n",
		failPath: "/v1/outlets/import", failBody: "id,name\no-a5,A5\n"},
	"PUT /v1/targets/:id": {path: "/v1/targets/t-1", body: `{"name":"t","valid_from":"2025-01-01T00:00:00Z","targets":{"green_rate":0.9}}`, target: "t-1",
		failPath: "/v1/targets/t-1", failBody: `{"name":"t","valid_from":"2025-01-01T00:00:00Z","targets":{"green_rate":9}}`},
	"DELETE /v1/targets/:id": {path: "/v1/targets/t-2", target: "t-2", failPath: "/v1/targets/t-none"},
}

// TestEveryWriteIsAuditedOnce walks the route table: every write route
// leaves exactly one entry when it succeeds — with the key's name, never
// the key, and what changed — and none when it fails.
func TestEveryWriteIsAuditedOnce(t *testing.T) {
	ts := newTestServer(t, nil)
	mem := ts.db.(*memOutlets)
	ts.putOutlet(Outlet{ID: "o-a2", Name: "A2", District: "east", Lat: 30, Lon: 114, Operator: "sf", Active: true})
	ts.putSet("t-2", `{"name":"t2","valid_from":"2025-01-01T00:00:00Z","targets":{}}`)
	writes := 0
	for _, r := range routes(&deps{cfg: ts.cfg, reg: ts.reg, targets: ts.targets, promReg: newPromRegistry()}) {
		if r.Method == http.MethodGet {
			continue
		}
		writes++
		name := r.Method + " " + r.Path
		tc, ok := auditCases[name]
		if !ok {
			t.Errorf("write route %s has no audit case", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			ts := ts.on(t)
			before := len(mem.entries())
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			if a := ts.do(r.Method, tc.failPath, adminKey, tc.failBody, "Content-Type", ctype); a.Status < 400 {
				t.Fatalf("the failing request succeeded: %s", a)
			}
			if n := len(mem.entries()); n != before {
				t.Fatalf("a failed write left %d entries", n-before)
			}
			a := ts.do(r.Method, tc.path, adminKey, tc.body, "Content-Type", ctype)
			if a.Status/100 != 2 {
				t.Fatalf("%s", a)
			}
			es := mem.entries()
			if len(es) != before+1 {
				t.Fatalf("a write left %d entries, want 1", len(es)-before)
			}
			e := es[len(es)-1]
			if e.Key != "test-admin" || e.Method != r.Method || e.Path != tc.path || e.Target != tc.target || !json.Valid([]byte(e.Change)) ||
				strings.Contains(e.Change, adminKey) || e.At.IsZero() {
				t.Errorf("entry %+v", e)
			}
		})
	}
	if writes != len(auditCases) {
		t.Errorf("%d write routes, %d audit cases: a case for a route that is gone?", writes, len(auditCases))
	}
	// What the entries say.
	es := mem.entries()
	var put struct{ Before, After map[string]any }
	var imp struct {
		Imported, Refused int
		MoreIDs           int `json:"more_ids"`
		IDs               []string
	}
	for _, e := range es {
		switch {
		case e.Method == "PUT" && e.Target == "o-a1":
			json.Unmarshal([]byte(e.Change), &put)
		case e.Target == "import":
			json.Unmarshal([]byte(e.Change), &imp)
		}
	}
	if put.Before != nil || put.After["name"] != "A1" {
		t.Errorf("PUT change %+v", put)
	}
	if imp.Imported != 1 || imp.Refused != 1 || len(imp.IDs) != 1 || imp.IDs[0] != "o-a3" {
		t.Errorf("import change %+v", imp)
	}
	// An import that writes nothing changed nothing.
	before := len(mem.entries())
	if a := ts.do("POST", "/v1/outlets/import", adminKey, "id,name,district,address,lat,lon,operator\no-a9,A9,BAD,,30,114,sf\n", "Content-Type", "text/csv"); a.Status != 200 {
		t.Fatalf("import of bad rows: %s", a)
	}
	if n := len(mem.entries()); n != before {
		t.Errorf("an import of nothing left %d entries", n-before)
	}
	// A write whose entry cannot be written is reported, not hidden.
	mem.mu.Lock()
	mem.failAudit = errors.New("influxdb is down")
	mem.mu.Unlock()
	a := ts.do("PUT", "/v1/outlets/o-a7", adminKey, `{"name":"A7","district":"east","lat":30,"lon":114,"operator":"sf"}`)
	if a.Status != 503 || !strings.Contains(string(a.Body), "audit") {
		t.Errorf("audit write failed: %s", a)
	}
	if !strings.Contains(ts.logs.String(), "audit entry not written") {
		t.Error("the log does not say the audit entry was lost")
	}
}

// TestAuditRoute: admin only, newest first, in pages, CSV, bad cursors.
func TestAuditRoute(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, id := range []string{"o-1", "o-2", "o-3", "o-4", "o-5"} {
		ts.putOutlet(Outlet{ID: id, Name: id, District: "east", Lat: 30, Lon: 114, Operator: "sf", Active: true})
	}
	if a := ts.do("GET", "/v1/audit", viewerKey, ""); a.Status != 403 {
		t.Errorf("a viewer reads the audit: %s", a)
	}
	var targets []string
	path := "/v1/audit?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		var p auditPage
		a := ts.do("GET", path, adminKey, "")
		if a.Status != 200 {
			t.Fatalf("%s", a)
		}
		a.json(t, &p)
		for _, e := range p.Entries {
			targets = append(targets, e.Target)
		}
		path = ""
		if p.NextCursor != nil {
			path = "/v1/audit?limit=2&cursor=" + *p.NextCursor
			if a.Header.Get("X-Next-Cursor") != *p.NextCursor {
				t.Error("X-Next-Cursor")
			}
		}
	}
	if strings.Join(targets, ",") != "o-5,o-4,o-3,o-2,o-1" {
		t.Errorf("audit pages give %v, want newest first", targets)
	}
	a := ts.do("GET", "/v1/audit?format=csv", adminKey, "")
	rows, err := csv.NewReader(bytes.NewReader(a.Body)).ReadAll()
	if err != nil || len(rows) != 6 || strings.Join(rows[0], ",") != "at,key,method,path,target,change" || rows[1][4] != "o-5" || rows[1][1] != "test-admin" {
		t.Errorf("csv %v %v", err, rows)
	}
	for _, q := range []string{"cursor=nope", "limit=0", "from=2026-11-29T00:00:00Z&to=2026-11-28T00:00:00Z", "since=1"} {
		if a := ts.do("GET", "/v1/audit?"+q, adminKey, ""); a.Status != 400 {
			t.Errorf("%s: %s", q, a)
		}
	}
	// A window before the writes holds nothing.
	var p auditPage
	ts.do("GET", "/v1/audit?to=2020-01-01T00:00:00Z", adminKey, "").json(t, &p)
	if len(p.Entries) != 0 || p.NextCursor != nil {
		t.Errorf("an empty window: %+v", p)
	}
}

// TestAuditOnInfluxDB: the route reads what the wrapper wrote, through a
// real InfluxDB.
func TestAuditOnInfluxDB(t *testing.T) {
	ts := newInfluxTestServer(t, nil)
	ts.putOutlet(Outlet{ID: "o-i1", Name: `Quote " and \ backslash`, District: "east", Lat: 30, Lon: 114, Operator: "sf", Active: true})
	if a := ts.do("DELETE", "/v1/outlets/o-i1", adminKey, ""); a.Status != 204 {
		t.Fatal(a)
	}
	var p auditPage
	ts.do("GET", "/v1/audit", adminKey, "").json(t, &p)
	if len(p.Entries) != 2 || p.Entries[0].Method != "DELETE" || p.Entries[1].Method != "PUT" || p.Entries[1].Key != "test-admin" {
		t.Fatalf("entries %+v", p.Entries)
	}
	var change struct{ After Outlet }
	if err := json.Unmarshal(p.Entries[1].Change, &change); err != nil || change.After.Name != `Quote " and \ backslash` {
		t.Errorf("the PUT's change %s: %v", p.Entries[1].Change, err)
	}
}
