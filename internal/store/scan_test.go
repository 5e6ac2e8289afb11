package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestScans reads the same points back with FluxScan and InfluxQLScan,
// including integers beyond 2^53 and strings that need CSV quoting, and
// checks that errors inside an answer are errors, not empty results.
func TestScans(t *testing.T) {
	in := testenv.SharedInflux(t)
	s := openStore(t, in)
	ctx := context.Background()
	base := time.Date(2031, 1, 2, 3, 0, 0, 0, time.UTC)
	var lines strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&lines, "scan_m,dev=d%d big=%di,txt=\"a, \\\"b\\\"\" %d\n", i, int64(1)<<60+int64(i), base.Add(time.Duration(i)*time.Second).UnixNano())
	}
	if err := s.Write(ctx, []byte(lines.String())); err != nil {
		t.Fatal(err)
	}

	var flux []string
	q := fmt.Sprintf(`from(bucket: %s) |> range(start: %s, stop: %s) |> filter(fn: (r) => r._measurement == "scan_m")`,
		FluxString(s.Bucket()), base.Format(time.RFC3339), base.Add(time.Minute).Format(time.RFC3339))
	err := s.FluxScan(ctx, q, []string{"dev", "_field", "_value", "no_such_column"}, func(v []string) error {
		flux = append(flux, strings.Join(v, "|"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 0; i < 3; i++ {
		want[fmt.Sprintf("d%d|big|%d|", i, int64(1)<<60+int64(i))] = true
		want[fmt.Sprintf("d%d|txt|a, \"b\"|", i)] = true
	}
	if len(flux) != len(want) {
		t.Errorf("flux: %d rows %q, want %d", len(flux), flux, len(want))
	}
	for _, r := range flux {
		if !want[r] {
			t.Errorf("flux: unexpected row %q", r)
		}
	}

	var ql []string
	err = s.InfluxQLScan(ctx, fmt.Sprintf(`SELECT "big","txt","dev" FROM "scan_m" WHERE time >= %d AND time < %d`, base.UnixNano(), base.Add(time.Minute).UnixNano()),
		func(stmt int, m string, tags map[string]string, row []json.RawMessage) error {
			var txt, dev string
			json.Unmarshal(row[2], &txt)
			json.Unmarshal(row[3], &dev)
			ql = append(ql, fmt.Sprintf("%d|%s|%s|%s|%s", stmt, m, row[1], txt, dev))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		w := fmt.Sprintf("0|scan_m|%d|a, \"b\"|d%d", int64(1)<<60+int64(i), i)
		if i >= len(ql) || ql[i] != w {
			t.Errorf("influxql row %d = %q, want %q", i, ql, w)
		}
	}

	for name, err := range map[string]error{
		"flux syntax":          s.FluxScan(ctx, `from(bucket: "gp/autogen") |> nonsense(`, nil, func([]string) error { return nil }),
		"flux runtime":         s.FluxScan(ctx, strings.Replace(q, `"scan_m")`, `"scan_m" and r._field == "txt") |> map(fn: (r) => ({r with x: int(v: r._value)}))`, 1), nil, func([]string) error { return nil }),
		"influxql syntax":      s.InfluxQLScan(ctx, `SELEKT 1`, func(int, string, map[string]string, []json.RawMessage) error { return nil }),
		"influxql no database": (&Store{cfg: Config{URL: in.URL, Bucket: "nope/autogen"}, client: s.client}).InfluxQLScan(ctx, `SELECT * FROM x`, func(int, string, map[string]string, []json.RawMessage) error { return nil }),
	} {
		// 1.8 answers a Flux compile error with HTTP 500 (so: retryable,
		// like any 5xx); what matters is that no error reads as "no rows".
		var we *WriteError
		if !errors.As(err, &we) {
			t.Errorf("%s: err %v; want a *WriteError", name, err)
		}
	}
	if got := InfluxQLString(`a'b\c`); got != `'a\'b\\c'` {
		t.Errorf("InfluxQLString = %s", got)
	}
}

func TestSplitRows(t *testing.T) {
	tests := []struct {
		in   string
		want []string // rows, values joined by |
	}{
		{`[]`, nil},
		{`null`, nil},
		{`[[1,2.5,"a"],[3,null,"b,c"]]`, []string{`1|2.5|"a"`, `3|null|"b,c"`}},
		{` [ [ 1 , "x\"],[" ] , [ -2e3 ] ] `, []string{`1|"x\"],["`, `-2e3`}},
		{`[[true,{"k":[1,2]},[3,[4]]]]`, []string{`true|{"k":[1,2]}|[3,[4]]`}},
	}
	for _, tt := range tests {
		var got []string
		var row []json.RawMessage
		err := splitRows(json.RawMessage(tt.in), &row, func(r []json.RawMessage) error {
			var parts []string
			for _, v := range r {
				parts = append(parts, string(v))
			}
			got = append(got, strings.Join(parts, "|"))
			return nil
		})
		if err != nil || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("splitRows(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
