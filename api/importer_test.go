package main

import (
	"bytes"
	"strings"
	"testing"
)

// Import parsers take any body an admin sends: they must never panic, must
// answer every row one way or the other, and must keep only valid outlets.

func checkImport(t *testing.T, body []byte, rows []importRow, bad []importError, err error) {
	t.Helper()
	if err != nil {
		if _, ok := err.(*apiError); !ok {
			t.Fatalf("error of type %T: %v", err, err)
		}
		return
	}
	lines := bytes.Count(body, []byte{'\n'}) + 1
	good, invalid := checkImportRows(rows, nil)
	for _, o := range good {
		if f, why := o.validate(nil); f != "" {
			t.Fatalf("kept an invalid outlet (%s: %s): %+v", f, why, o)
		}
	}
	for _, e := range append(bad, invalid...) {
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
		rows, bad, err := parseImportCSV(body)
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
		rows, bad, err := parseImportJSON(body)
		checkImport(t, body, rows, bad, err)
	})
}

func TestLineAt(t *testing.T) {
	body := []byte("[\n  {},\n\n  {}\n]")
	for _, tc := range []struct{ off, line int }{{0, 1}, {1, 2}, {2, 2}, {6, 4}, {len(body), 5}} {
		if got := lineAt(body, tc.off); got != tc.line {
			t.Errorf("lineAt(%d) = %d, want %d", tc.off, got, tc.line)
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
	})
}
