package city

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sync"
)

// wuhanGeoJSON is Wuhan's 13 district outlines (geo/VENDORED.md says where
// they come from). It is the repository's one copy: the simulator places
// outlets inside them and the API serves the same bytes to the dashboard.
//
//go:embed geo/hu2_bei3_wu3_han4.geojson
var wuhanGeoJSON []byte

// WuhanGeoJSON returns the district outlines as a GeoJSON FeatureCollection
// whose features are named by the districts' Chinese names (District.NameZH).
// The slice is shared: callers must not change it.
func WuhanGeoJSON() []byte { return wuhanGeoJSON }

// Shape is a district's outline: one or more polygons, each an outer ring
// and possibly holes, in GeoJSON order (lon, lat).
type Shape struct {
	Name     string     // the feature's name property
	Inside   [2]float64 // a point inside it (lat, lon), from the feature's cp
	polygons [][][][2]float64
	box      Bounds
}

// Contains reports whether the point (lat, lon) lies inside the shape
// (even-odd rule over every ring, so holes are outside).
func (s *Shape) Contains(lat, lon float64) bool {
	if lat < s.box.MinLat || lat > s.box.MaxLat || lon < s.box.MinLon || lon > s.box.MaxLon {
		return false
	}
	for _, poly := range s.polygons {
		in := false
		for _, ring := range poly {
			for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
				xi, yi, xj, yj := ring[i][0], ring[i][1], ring[j][0], ring[j][1]
				if (yi > lat) != (yj > lat) && lon < (xj-xi)*(lat-yi)/(yj-yi)+xi {
					in = !in
				}
			}
		}
		if in {
			return true
		}
	}
	return false
}

// Bounds is the shape's bounding box.
func (s *Shape) Bounds() Bounds { return s.box }

// ParseShapes reads a GeoJSON FeatureCollection of Polygon and MultiPolygon
// features and returns each shape by its feature's name property.
func ParseShapes(b []byte) (map[string]*Shape, error) {
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Properties struct {
				Name string     `json:"name"`
				CP   [2]float64 `json:"cp"`
			} `json:"properties"`
			Geometry struct {
				Type        string          `json:"type"`
				Coordinates json.RawMessage `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		return nil, fmt.Errorf("district outlines: %w", err)
	}
	if fc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("district outlines: type %q, want FeatureCollection", fc.Type)
	}
	out := map[string]*Shape{}
	for i, f := range fc.Features {
		s := &Shape{Name: f.Properties.Name, Inside: [2]float64{f.Properties.CP[1], f.Properties.CP[0]},
			box: Bounds{MinLat: 90, MaxLat: -90, MinLon: 180, MaxLon: -180}}
		var err error
		switch f.Geometry.Type {
		case "Polygon":
			var p [][][2]float64
			err = json.Unmarshal(f.Geometry.Coordinates, &p)
			s.polygons = [][][][2]float64{p}
		case "MultiPolygon":
			err = json.Unmarshal(f.Geometry.Coordinates, &s.polygons)
		default:
			err = fmt.Errorf("geometry %q: want Polygon or MultiPolygon", f.Geometry.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("district outlines: feature %d (%s): %w", i, s.Name, err)
		}
		points := 0
		for _, poly := range s.polygons {
			for _, ring := range poly {
				for _, pt := range ring {
					if math.IsNaN(pt[0]) || math.IsNaN(pt[1]) {
						return nil, fmt.Errorf("district outlines: feature %d (%s): a coordinate is not a number", i, s.Name)
					}
					s.box.MinLon, s.box.MaxLon = math.Min(s.box.MinLon, pt[0]), math.Max(s.box.MaxLon, pt[0])
					s.box.MinLat, s.box.MaxLat = math.Min(s.box.MinLat, pt[1]), math.Max(s.box.MaxLat, pt[1])
					points++
				}
			}
		}
		if s.Name == "" || points < 3 {
			return nil, fmt.Errorf("district outlines: feature %d: want a name and a polygon", i)
		}
		if _, dup := out[s.Name]; dup {
			return nil, fmt.Errorf("district outlines: %s named twice", s.Name)
		}
		out[s.Name] = s
	}
	return out, nil
}

// wuhanShapes parses the embedded outlines once.
var wuhanShapes = sync.OnceValues(func() (map[string]*Shape, error) { return ParseShapes(wuhanGeoJSON) })

// WuhanShapes returns Wuhan's district outlines by district id (matched
// through the districts' Chinese names). A test checks that all 13 match.
func WuhanShapes() (map[string]*Shape, error) {
	byName, err := wuhanShapes()
	if err != nil {
		return nil, err
	}
	out := map[string]*Shape{}
	for _, d := range Wuhan() {
		s, ok := byName[d.NameZH]
		if !ok {
			return nil, fmt.Errorf("district outlines: no outline named %s (%s)", d.NameZH, d.ID)
		}
		out[d.ID] = s
	}
	return out, nil
}
