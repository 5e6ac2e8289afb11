package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

func TestOutletLineProtocolEscaping(t *testing.T) {
	o := OutletRecord{ID: "o-1", Name: `a "b" \c\`, District: "d", Address: "x,y=z w", Operator: "op", Lat: -1.25, Lon: 100, Active: true,
		Updated: time.Unix(1764324000, 123)}
	got := string(AppendOutlet(nil, &o))
	want := `outlet_registry,id=o-1 name="a \"b\" \\c\\",district="d",address="x,y=z w",operator="op",lat=-1.25,lon=100,active=true,active_since="",deleted=false 1764324000000000123` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	o.ActiveSince = time.Date(2026, 11, 1, 8, 30, 0, 0, time.FixedZone("", 8*3600))
	if got := string(AppendOutlet(nil, &o)); !strings.Contains(got, `active_since="2026-11-01T00:30:00Z"`) {
		t.Errorf("active_since not written in UTC: %s", got)
	}
}

// TestOutletsRoundTrip writes records to a real InfluxDB and reads them
// back: the latest write of an id wins, tombstones come back as such, and
// an active_since written and then cleared reads as cleared.
func TestOutletsRoundTrip(t *testing.T) {
	in := testenv.SharedInflux(t)
	s := openStore(t, in)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	first := []OutletRecord{
		{ID: "rt-1", Name: `Name "with" quotes, 汉字 \ and = signs`, District: "d1", Address: "a, b", Operator: "op", Lat: 30.5, Lon: 114.25, Active: true, ActiveSince: since, Updated: t0},
		{ID: "rt-2", Name: "Two", District: "d2", Operator: "op", Active: true, Updated: t0},
		{ID: "rt-3", Name: "Three", District: "d2", Operator: "op", Updated: t0},
	}
	if err := s.WriteOutlets(ctx, first); err != nil {
		t.Fatal(err)
	}
	later := []OutletRecord{
		{ID: "rt-1", Name: "Renamed", District: "d1", Operator: "op", Active: false, Updated: t0.Add(time.Second)}, // active_since cleared
		{ID: "rt-3", Deleted: true, Updated: t0.Add(time.Second)},
	}
	if err := s.WriteOutlets(ctx, later); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadOutlets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]OutletRecord{}
	for _, o := range got {
		byID[o.ID] = o
	}
	want := map[string]OutletRecord{"rt-1": later[0], "rt-2": first[1], "rt-3": later[1]}
	if len(byID) != len(want) {
		t.Fatalf("loaded %d records %+v, want %d", len(byID), got, len(want))
	}
	for id, w := range want {
		if g := byID[id]; g != w {
			t.Errorf("%s: loaded %+v, want %+v", id, g, w)
		}
	}
	// The first write, alone, keeps its active_since.
	if err := s.WriteOutlets(ctx, []OutletRecord{{ID: "rt-4", Name: "Four", District: "d", Operator: "op", Active: true, ActiveSince: since, Updated: t0}}); err != nil {
		t.Fatal(err)
	}
	got, err = s.LoadOutlets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range got {
		if o.ID == "rt-4" && !o.ActiveSince.Equal(since) {
			t.Errorf("rt-4 active_since %v, want %v", o.ActiveSince, since)
		}
	}
}
