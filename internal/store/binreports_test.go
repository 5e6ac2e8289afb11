package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// TestBinReports writes bin and counter points as the collector does and
// reads the bins' reports back: only bin fill levels, of the outlets
// asked for (by name in the query, or in Go beyond maxOutletFilter), with
// their boot and their time in ms.
func TestBinReports(t *testing.T) {
	in := testenv.SharedInflux(t)
	s := openStore(t, in)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	t0 := now.Add(-time.Hour)
	type rep struct {
		outlet, device string
		boot, t        int64
		pct            float64
	}
	var want []rep
	var lines []byte
	add := func(topic, payload string) {
		m, err := telemetry.Decode(topic, []byte(payload), now)
		if err != nil {
			t.Fatal(err)
		}
		lines = telemetry.AppendPoint(lines, &m)
	}
	for i, r := range []rep{
		{"br-o1", "br-b1", 3, t0.UnixMilli() + 1, 12.5},
		{"br-o1", "br-b1", 3, t0.UnixMilli() + 60_000, 13},
		{"br-o1", "br-b1", 4, t0.UnixMilli() + 120_000, 0},
		{"br-o1", "br-b2", 1, t0.UnixMilli() + 5, 99.9},
		{"br-o2", "br-b3", 1, t0.UnixMilli() + 7, 100},
	} {
		add(fmt.Sprintf("gp/v1/%s/bin/%s/telemetry", r.outlet, r.device),
			fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":%d,"fill_pct":%g,"deposits":1}`, r.t, i, r.boot, r.pct))
		want = append(want, r)
	}
	add("gp/v1/br-o1/counter/br-c1/telemetry", fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"parcels":{"recyclable":3}}`, t0.UnixMilli()+3))
	if err := s.Write(ctx, lines); err != nil {
		t.Fatal(err)
	}
	type reader func(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error
	read := func(r reader, from, to time.Time, outlets []string) []rep {
		var got []rep
		err := r(ctx, from, to, outlets, func(outlet, device string, boot, t int64, pct float64) error {
			if outlet == "br-o1" || outlet == "br-o2" {
				got = append(got, rep{outlet, device, boot, t, pct})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b rep) int {
			if a.outlet+a.device != b.outlet+b.device {
				return cmp.Compare(a.outlet+a.device, b.outlet+b.device)
			}
			return int(a.t - b.t)
		})
		return got
	}
	many := []string{"br-o1"}
	for i := range maxOutletFilter + 5 {
		many = append(many, fmt.Sprintf("br-x%d", i))
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		outlets  []string
		want     []rep
	}{
		{"all outlets", t0, now, nil, want},
		{"one outlet", t0, now, []string{"br-o1"}, want[:4]},
		{"more outlets than a query names", t0, now, many, want[:4]},
		{"no outlet", t0, now, []string{}, nil},
		{"from is inclusive, to exclusive", time.UnixMilli(t0.UnixMilli() + 5), time.UnixMilli(t0.UnixMilli() + 120_000), nil, []rep{want[1], want[3], want[4]}},
	} {
		// Both languages, and the one BinReports picks (InfluxQL on 1.8).
		for _, r := range []struct {
			name string
			read reader
		}{{"influxql", s.binReportsInfluxQL}, {"flux", s.binReportsFlux}, {"picked", s.BinReports}} {
			t.Run(tc.name+"/"+r.name, func(t *testing.T) {
				if got := read(r.read, tc.from, tc.to, tc.outlets); !slices.Equal(got, tc.want) {
					t.Errorf("got\n%v\nwant\n%v", got, tc.want)
				}
			})
		}
	}
	if s.ql.Load() != 1 {
		t.Errorf("BinReports did not pick InfluxQL on InfluxDB 1.8 (state %d)", s.ql.Load())
	}
}
