package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// freshStore is a store on a database of its own on the shared influxd,
// for measurements a test reads whole.
func freshStore(t *testing.T, in *testenv.Influx) *Store {
	t.Helper()
	db := fmt.Sprintf("store_%d", time.Now().UnixNano())
	if err := in.Exec("CREATE DATABASE " + db); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{URL: in.URL, Bucket: db + "/autogen", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func f64(v float64) *float64 { return &v }

// TestTargetSetsRoundTrip writes target sets to a real InfluxDB and reads
// them back: null targets stay null, an open end stays open, the latest
// write of an id wins, a tombstone reads as one.
func TestTargetSetsRoundTrip(t *testing.T) {
	s := freshStore(t, testenv.SharedInflux(t))
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	from := time.Date(2024, 1, 14, 16, 0, 0, 0, time.UTC)
	first := []TargetSetRecord{
		{ID: "wuhan-2025", Name: `City plan "2025"`, Source: "武汉市深化「中国快递示范城市」建设实施方案, 2024-01-15", ValidFrom: from,
			Targets: map[string]*float64{"green_rate": f64(0.9), "outlet_coverage": f64(1), "bin_coverage": f64(0.95), "no_secondary_rate": nil}, Updated: t0},
		{ID: "spb-2023", Name: "9218", ValidFrom: from, ValidTo: from.AddDate(1, 0, 0), Targets: map[string]*float64{"no_secondary_rate": f64(0.9)}, Updated: t0},
		{ID: "gone", Name: "x", ValidFrom: from, Targets: map[string]*float64{}, Updated: t0},
	}
	if err := s.WriteTargetSets(ctx, first); err != nil {
		t.Fatal(err)
	}
	later := []TargetSetRecord{
		{ID: "spb-2023", Name: "9218 (renamed)", ValidFrom: from, Targets: map[string]*float64{"no_secondary_rate": f64(0.85)}, Updated: t0.Add(time.Second)}, // valid_to cleared
		{ID: "gone", Deleted: true, Updated: t0.Add(time.Second)},
	}
	if err := s.WriteTargetSets(ctx, later); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadTargetSets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]TargetSetRecord{"wuhan-2025": first[0], "spb-2023": later[0], "gone": later[1]}
	if len(got) != len(want) {
		t.Fatalf("loaded %+v", got)
	}
	for _, g := range got {
		w := want[g.ID]
		if w.Targets == nil {
			w.Targets = map[string]*float64{}
		}
		if g.Targets == nil {
			g.Targets = map[string]*float64{}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", g.ID, g, w)
		}
	}
}

// TestAuditNewestFirstInPages writes audit entries (two at one time, by two
// keys, and nasty text) and reads them back newest first, page by page.
func TestAuditNewestFirstInPages(t *testing.T) {
	s := freshStore(t, testenv.SharedInflux(t))
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	var all []AuditRecord
	for i := range 7 {
		r := AuditRecord{At: t0.Add(time.Duration(i) * time.Minute), Key: "ops team", Method: "PUT",
			Path: fmt.Sprintf("/v1/outlets/o-%d", i), Target: fmt.Sprintf("o-%d", i), Change: fmt.Sprintf(`{"after":{"name":"a \"q\" \\ %d, =x"}}`, i)}
		all = append(all, r)
	}
	// Another key at the same time as entry 3.
	all = append(all, AuditRecord{At: all[3].At, Key: "bureau,admin=1", Method: "DELETE", Path: "/v1/targets/x", Target: "x", Change: `{}`})
	for _, r := range all {
		if err := s.WriteAudit(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Newest first; at one time, key names in reverse order.
	want := []AuditRecord{all[6], all[5], all[4], all[3], all[7], all[2], all[1], all[0]}
	var got []AuditRecord
	var before time.Time
	var beforeKey string
	for range 10 {
		page, err := s.ReadAudit(ctx, t0, t0.Add(time.Hour), before, beforeKey, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		before, beforeKey = page[len(page)-1].At, page[len(page)-1].Key
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pages:\ngot  %+v\nwant %+v", got, want)
	}
	// The window: from inclusive, to exclusive.
	page, err := s.ReadAudit(ctx, all[1].At, all[5].At, time.Time{}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(page, []AuditRecord{all[4], all[3], all[7], all[2], all[1]}) {
		t.Errorf("window: %+v", page)
	}
}
