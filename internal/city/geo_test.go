package city

import (
	"strings"
	"testing"
	"unicode"
)

// TestWuhanOutlines: the vendored outlines hold exactly Wuhan's 13
// districts under their Chinese names, and each district's inner point
// lies inside its own outline only.
func TestWuhanOutlines(t *testing.T) {
	byName, err := ParseShapes(WuhanGeoJSON())
	if err != nil {
		t.Fatal(err)
	}
	if len(byName) != 13 {
		t.Errorf("%d outlines, want 13", len(byName))
	}
	shapes, err := WuhanShapes()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Wuhan() {
		s := shapes[d.ID]
		if s == nil || s.Name != d.NameZH || !strings.HasSuffix(d.NameZH, "区") || d.Name == "" || len(d.Streets) == 0 {
			t.Errorf("%s: outline %v, names %q %q, %d streets", d.ID, s, d.NameZH, d.Name, len(d.Streets))
			continue
		}
		for id, o := range shapes {
			if in := o.Contains(s.Inside[0], s.Inside[1]); in != (id == d.ID) {
				t.Errorf("%s's inner point inside %s: %v", d.ID, id, in)
			}
		}
		if b := s.Bounds(); b.MinLat < WuhanBounds.MinLat || b.MaxLat > WuhanBounds.MaxLat || b.MinLon < WuhanBounds.MinLon || b.MaxLon > WuhanBounds.MaxLon {
			t.Errorf("%s reaches outside WuhanBounds: %+v", d.ID, b)
		}
	}
}

func TestShapeContains(t *testing.T) {
	// A square with a square hole, and a second square apart from it.
	s, err := ParseShapes([]byte(`{"type":"FeatureCollection","features":[{"properties":{"name":"x"},"geometry":{"type":"MultiPolygon","coordinates":[
		[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]],
		[[[20,0],[22,0],[22,2],[20,2],[20,0]]]]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	x := s["x"]
	for _, tc := range []struct {
		lat, lon float64
		in       bool
	}{
		{1, 1, true}, {5, 5, false}, {3, 5, true}, {1, 21, true}, {1, 15, false}, {11, 5, false}, {-1, 5, false},
	} {
		if got := x.Contains(tc.lat, tc.lon); got != tc.in {
			t.Errorf("(%v, %v): %v, want %v", tc.lat, tc.lon, got, tc.in)
		}
	}
	for _, bad := range []string{`[]`, `{"type":"Feature"}`, `{"type":"FeatureCollection","features":[{"properties":{"name":"a"},"geometry":{"type":"Point","coordinates":[1,2]}}]}`,
		`{"type":"FeatureCollection","features":[{"properties":{"name":""},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}`,
		`{"type":"FeatureCollection","features":[{"properties":{"name":"a"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}},{"properties":{"name":"a"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}}]}`} {
		if _, err := ParseShapes([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestOutletsInsideTheirDistrict: every simulated outlet of Wuhan lies
// inside its own district's outline, and has a Chinese name and address in
// that district; names are unique.
func TestOutletsInsideTheirDistrict(t *testing.T) {
	c := mustCity(t, Config{Seed: 1, Outlets: 1300, Bins: 2})
	shapes, err := WuhanShapes()
	if err != nil {
		t.Fatal(err)
	}
	zh := map[string]string{}
	for _, d := range Wuhan() {
		zh[d.ID] = d.NameZH
	}
	names := map[string]string{}
	for _, o := range c.Outlets {
		if !shapes[o.District].Contains(o.Lat, o.Lon) {
			t.Errorf("%s (%s) at %v,%v is outside its district", o.ID, o.District, o.Lat, o.Lon)
		}
		if !hasHan(o.Name) || !strings.HasPrefix(o.Address, "武汉市"+zh[o.District]) || !strings.HasSuffix(o.Address, "号") {
			t.Errorf("%s: name %q, address %q", o.ID, o.Name, o.Address)
		}
		if other, dup := names[o.Name]; dup {
			t.Errorf("%s and %s are both named %q", other, o.ID, o.Name)
		}
		names[o.Name] = o.ID
	}
}

// TestShapesChangeOnlyPlaces: placing outlets inside their outlines moves
// some of them and changes nothing else of the city.
func TestShapesChangeOnlyPlaces(t *testing.T) {
	with := mustCity(t, Config{Seed: 3, Outlets: 400, Bins: 2})
	without := mustCity(t, Config{Seed: 3, Outlets: 400, Bins: 2, Districts: Wuhan()})
	moved := 0
	for i, a := range with.Outlets {
		b := *without.Outlets[i]
		if a.Lat != b.Lat || a.Lon != b.Lon {
			moved++
		}
		b.Lat, b.Lon = a.Lat, a.Lon
		if a.Name != b.Name || a.Address != b.Address || a.ParcelsPerDay != b.ParcelsPerDay || a.Mix != b.Mix || a.BinCapacity != b.BinCapacity || a.Operator != b.Operator {
			t.Fatalf("%s differs beyond its place", a.ID)
		}
	}
	if moved == 0 {
		t.Error("no outlet was moved into its outline: the test proves nothing")
	}
}

// TestCustomDistrictsKeepEnglishNames: districts from a -districts file
// (no Chinese name, no outline) keep the English names.
func TestCustomDistrictsKeepEnglishNames(t *testing.T) {
	c := mustCity(t, Config{Seed: 3, Outlets: 5, Districts: []District{{ID: "north", Name: "North", Lat: 10, Lon: 10, Spread: 0.1, Weight: 1}}, Bounds: Bounds{0, 20, 0, 20}})
	for _, o := range c.Outlets {
		if hasHan(o.Name) || !strings.Contains(o.Address, "North District") {
			t.Errorf("%s: %q, %q", o.ID, o.Name, o.Address)
		}
	}
}

func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}
