package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// Import parsers take any body an admin sends: they must never panic, must
// answer every row one way or the other, and must keep only valid outlets.

func checkImport(t *testing.T, body []byte, rows []importRow, bad importErrors, err error) {
	t.Helper()
	if err != nil {
		if _, ok := err.(*apiError); !ok {
			t.Fatalf("error of type %T: %v", err, err)
		}
		return
	}
	lines := bytes.Count(body, []byte{'\n'}) + 1
	good, invalid := checkImportRows(rows, nil, func(*Outlet) error { return nil })
	for _, o := range good {
		if f, why := o.validate(nil); f != "" {
			t.Fatalf("kept an invalid outlet (%s: %s): %+v", f, why, o)
		}
	}
	all := mergeImportErrors(bad, invalid)
	if len(all.list) > maxImportErrors || all.count() != bad.count()+invalid.count() {
		t.Fatalf("%d errors listed and %d more, of %d + %d", len(all.list), all.more, bad.count(), invalid.count())
	}
	for i, e := range all.list {
		if i > 0 && e.Line < all.list[i-1].Line {
			t.Fatalf("errors out of line order: %+v", all.list)
		}
		if e.Line < 1 || e.Line > lines {
			t.Fatalf("error on line %d of a %d-line body: %+v", e.Line, lines, e)
		}
		if e.Error == "" {
			t.Fatalf("an error without text on line %d", e.Line)
		}
	}
	for _, r := range rows {
		if r.Line < 1 || r.Line > lines {
			t.Fatalf("row on line %d of a %d-line body", r.Line, lines)
		}
	}
}

func FuzzImportCSV(f *testing.F) {
	for _, s := range []string{
		"id,name,district,address,lat,lon,operator\no-1,One,d1,,30,114,sf\n",
		"id,name,district,address,lat,lon,operator,active\no-1,\"A, \"\"b\"\"\",d1,\"x\ny\",30,114,sf,false\no-2,B,d1,,91,0,sf,\n",
		"operator,lon,lat,address,district,name,id\nsf,114,30,,d1,One,o-1\n",
		"id,name,district,address,lat,lon,operator\no-1,\"unterminated,d1,,30,114,sf\no-2,B,d1,,1,1,sf\n",
		"\uFEFFid,name,district,address,lat,lon,operator\r\no-1,One,d1,,NaN,Inf,sf\r\n",
		"id,name\n", "", "\n\n", "id,id,name,district,address,lat,lon,operator\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, bad, err := parseImportCSV(context.Background(), body)
		checkImport(t, body, rows, bad, err)
	})
}

func FuzzImportJSON(f *testing.F) {
	for _, s := range []string{
		`[{"id":"o-1","name":"One","district":"d1","lat":30,"lon":114,"operator":"sf"}]`,
		"[\n {\"id\":\"o-1\"},\n 3,\n null,\n [],\n {\"id\":\"o-2\",\"name\":\"x\",\"district\":\"d\",\"lat\":1e400,\"lon\":1,\"operator\":\"o\"}\n]",
		`[{"id":"o-1","name":"One","district":"d1","lat":30,"lon":114,"operator":"sf","active":"yes"}`,
		`[`, `]`, `{}`, `[]`, `"x"`, "[{\"id\":\"o-1\",\"id\":\"o-2\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, bad, err := parseImportJSON(context.Background(), body)
		checkImport(t, body, rows, bad, err)
	})
}

func TestLineCounter(t *testing.T) {
	body := []byte("[\n  {},\n\n  {}\n]")
	lc := lineCounter{body: body, line: 1}
	for _, tc := range []struct{ off, line int }{{0, 1}, {1, 2}, {2, 2}, {6, 4}, {len(body), 5}} {
		if got := lc.at(tc.off); got != tc.line {
			t.Errorf("at(%d) = %d, want %d", tc.off, got, tc.line)
		}
	}
}

// bigJSONImport is n small elements, one a line, every third one bad.
func bigJSONImport(n int) []byte {
	var b bytes.Buffer
	b.WriteString("[\n")
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		if i%3 == 2 {
			fmt.Fprintf(&b, `{"id":"o-%d","name":"x","district":"d","lat":91,"lon":1,"operator":"o"}`, i)
		} else {
			fmt.Fprintf(&b, `{"id":"o-%d","name":"x","district":"d","lat":1,"lon":1,"operator":"o"}`, i)
		}
	}
	b.WriteString("\n]")
	return b.Bytes()
}

// TestImportJSONLinesInOnePass: the lines of a big import are right, and
// finding them looks at each byte of the body at most twice (it counted
// from the start for every element: quadratic).
func TestImportJSONLinesInOnePass(t *testing.T) {
	body := bigJSONImport(5000)
	rows, bad, err := parseImportJSON(context.Background(), body)
	if err != nil || len(rows) != 5000 || bad.count() != 0 {
		t.Fatalf("%d rows, %d errors, %v", len(rows), bad.count(), err)
	}
	for i, r := range rows {
		if r.Line != i+2 {
			t.Fatalf("element %d on line %d, want %d", i, r.Line, i+2)
		}
	}
	lc := lineCounter{body: body, line: 1}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.Token()
	for dec.More() {
		lc.at(int(dec.InputOffset()))
		var raw json.RawMessage
		dec.Decode(&raw)
	}
	if lc.scanned > 2*len(body) {
		t.Errorf("looked at %d bytes of a %d-byte body", lc.scanned, len(body))
	}
}

// stopAfter is a context that ends after its Err has been asked n times, so
// a test can end a request in the middle of parsing without a clock.
type stopAfter struct {
	context.Context
	n atomic.Int64
}

func (s *stopAfter) Err() error {
	if s.n.Add(-1) < 0 {
		return context.DeadlineExceeded
	}
	return nil
}

// TestImportStopsWhenTheRequestEnds: a request that runs out of time stops
// parsing its body (it went on for 90 s past a 15 s timeout).
func TestImportStopsWhenTheRequestEnds(t *testing.T) {
	body := bigJSONImport(5000)
	var csvBody bytes.Buffer
	csvBody.WriteString("id,name,district,address,lat,lon,operator\n")
	for i := range 5000 {
		fmt.Fprintf(&csvBody, "o-%d,x,d,,1,1,o\n", i)
	}
	for name, parse := range map[string]func(context.Context) ([]importRow, importErrors, error){
		"json": func(ctx context.Context) ([]importRow, importErrors, error) { return parseImportJSON(ctx, body) },
		"csv": func(ctx context.Context) ([]importRow, importErrors, error) {
			return parseImportCSV(ctx, csvBody.Bytes())
		},
	} {
		ctx := &stopAfter{Context: context.Background()}
		ctx.n.Store(3)
		rows, _, err := parse(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || rows != nil {
			t.Errorf("%s: %d rows, %v; want the context's error", name, len(rows), err)
		}
		if classify(err).Code != codeTimeout {
			t.Errorf("%s: answered as %q, want %q", name, classify(err).Code, codeTimeout)
		}
	}
}

// FuzzCSVGuard: csvUnguard undoes csvGuard exactly for any value, and a
// guarded cell never starts like a formula unless it is a plain number.
func FuzzCSVGuard(f *testing.F) {
	for _, s := range []string{"=HYPERLINK(\"http://x\")", "=cmd|' /C calc'!A0", "+1", "-1", "-1.5", "-2+3", "@SUM(A1)", "\tx", "\rx",
		"plain", "", "'", "''", "'quoted", "'=already", "''=twice", "1e-3", "汉字"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g := csvGuard(s)
		if back := csvUnguard(g); back != s {
			t.Fatalf("csvUnguard(csvGuard(%q)) = %q", s, back)
		}
		if g != "" && strings.IndexByte(formulaStarts, g[0]) >= 0 && !plainNumber.MatchString(g) {
			t.Fatalf("csvGuard(%q) = %q starts like a formula", s, g)
		}
		risky := s != "" && (strings.IndexByte(formulaStarts, s[0]) >= 0 || s[0] == '\'') && !plainNumber.MatchString(s)
		if changed := g != s; changed != risky {
			t.Fatalf("csvGuard(%q) = %q: changed %v, but the cell starts like a formula or a quote (not a number): %v", s, g, changed, risky)
		}
	})
}

// TestImportErrorsCapped: a body of bad rows lists the first
// maxImportErrors errors in line order and counts the rest (a 4 MB CSV of
// bad rows made a 100 MB answer), and the good rows are still kept.
func TestImportErrorsCapped(t *testing.T) {
	ts := newTestServer(t, nil)
	var b strings.Builder
	b.WriteString("id,name,district,address,lat,lon,operator\n")
	const n = 1000
	for i := range n {
		if i == 500 {
			b.WriteString("o-good,Good,d,,1,1,o\n")
		}
		fmt.Fprintf(&b, "o-%d,x,d,,95,1,o\n", i) // lat out of range
	}
	b.WriteString("o-short,x\n") // a parse error after the validation errors
	a := ts.do("POST", "/v1/outlets/import", adminKey, b.String(), "Content-Type", "text/csv")
	var res importResult
	a.json(t, &res)
	if a.Status != 200 || res.Imported != 1 || len(res.Errors) != maxImportErrors || res.MoreErrors != n+1-maxImportErrors {
		t.Fatalf("imported %d, %d errors listed, %d more: %s", res.Imported, len(res.Errors), res.MoreErrors, a.Body[:200])
	}
	for i, e := range res.Errors {
		if e.Line != i+2 || !strings.HasPrefix(e.Error, "lat") {
			t.Fatalf("error %d: %+v, want line %d about lat", i, e, i+2)
		}
	}
	if len(a.Body) > 20<<10 {
		t.Errorf("answer of %d bytes", len(a.Body))
	}
}

// TestImportReportsEveryProblemOfARow: a row with several bad fields is
// told all of them, in column order (only the first was).
func TestImportReportsEveryProblemOfARow(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct{ ctype, body, want string }{
		{"text/csv", "id,name,district,address,lat,lon,operator\nO 1,One,jianghan,,95,114,sf\n",
			"id: want [a-z0-9][a-z0-9_-]{0,63} (the topic charset); lat: want a latitude from -90 to 90"},
		{"text/csv", "id,name,district,address,lat,lon,operator,active\no-1,,Jiang Han,,north,200,sf,maybe\n",
			`name: want 1 to 200 characters of printable UTF-8; district: want [a-z0-9][a-z0-9_-]{0,63}; lat: "north" is not a number; lon: want a longitude from -180 to 180; active: "maybe" is not true or false`},
		{"application/json", `[{"name":"One","district":"jianghan","lon":400,"operator":"sf"}]`,
			"id: required; lat: required; lon: want a longitude from -180 to 180"},
	} {
		var res importResult
		a := ts.do("POST", "/v1/outlets/import", adminKey, tc.body, "Content-Type", tc.ctype)
		a.json(t, &res)
		if a.Status != 200 || len(res.Errors) != 1 || res.Errors[0].Error != tc.want {
			t.Errorf("%s\n%s\nwant the error %q", tc.body, a, tc.want)
		}
	}
	a := ts.do("PUT", "/v1/outlets/o-1", adminKey, `{"name":"","district":"jianghan","lat":95,"lon":114,"operator":"sf"}`)
	if a.Status != 400 || !strings.Contains(string(a.Body), "name: want 1 to 200 characters of printable UTF-8; lat: want a latitude") {
		t.Errorf("PUT with two bad fields: %s", a)
	}
}
