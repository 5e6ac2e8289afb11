package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/fill"
)

// TestCollectionsJSONIsEncodingJSON: the hand-written list is byte for
// byte what json.Marshal writes, for bins with every kind of string, time
// and value, an outlet's bins together and apart, with the registry's
// outlets written before (knownOf) or not.
func TestCollectionsJSONIsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	pick := func() string { return alertStrings[rng.IntN(len(alertStrings))] }
	values := []float64{0, 1, 90, 99.99, 1e-7, 1e21, 12.34}
	for n := range 200 {
		a := collectionsAnswer{At: time.UnixMilli(1_800_000_000_000 + rng.Int64N(1e9)).UTC(), Hours: 1 + rng.IntN(168), FullPct: values[rng.IntN(len(values))]}
		if n%9 != 0 {
			a.Bins = []collectionBin{}
		}
		for range rng.IntN(10) {
			var cb collectionBin
			if len(a.Bins) > 0 && rng.IntN(2) == 0 {
				cb = a.Bins[len(a.Bins)-1] // the same outlet's next bin
				if rng.IntN(4) == 0 {
					cb.Operator = pick()
				}
			} else {
				cb = collectionBin{Outlet: pick(), Name: pick(), District: pick(), Address: pick(), Operator: pick()}
			}
			cb.Device, cb.State, cb.Confidence = pick(), pick(), pick()
			cb.FillPct = values[rng.IntN(len(values))]
			cb.ReportedAt = time.UnixMilli(1_790_000_000_000 + rng.Int64N(1e10)).UTC()
			cb.Rate, cb.FullAt = nil, nil
			if rng.IntN(2) == 0 {
				r := rng.Float64() * 20
				cb.Rate = &r
			}
			if rng.IntN(2) == 0 {
				ft := cb.ReportedAt.Add(time.Duration(rng.Int64N(1e13)))
				cb.FullAt = &ft
			}
			a.Bins = append(a.Bins, cb)
		}
		if n%2 == 0 {
			a.known = knownOf(rng, a.Bins, func(cb collectionBin) Outlet {
				return Outlet{ID: cb.Outlet, Name: cb.Name, District: cb.District, Address: cb.Address, Operator: cb.Operator}
			})
		}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendCollectionsAnswer(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("answer %d:\n got %s\nwant %s", n, got, want)
		}
	}
}

// TestCollectionOrder: the positions come in ops-v1's order (state, full
// or reported time, outlet, device), whether the judge listed the bins by
// outlet and device or not.
func TestCollectionOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 3))
	states := []fill.State{fill.Full, fill.Filling, fill.Stale}
	for n := range 100 {
		var judged []fill.Bin
		seen := map[[2]string]bool{}
		for range rng.IntN(200) {
			b := fill.Bin{Outlet: fmt.Sprintf("o-%02d", rng.IntN(30)), Device: fmt.Sprintf("b-%d", rng.IntN(3))}
			if seen[[2]string{b.Outlet, b.Device}] {
				continue // a bin is listed once
			}
			seen[[2]string{b.Outlet, b.Device}] = true
			b.State = states[rng.IntN(3)]
			b.FullAt, b.ReportedAt = int64(rng.IntN(5)), int64(rng.IntN(5))
			judged = append(judged, b)
		}
		if n%2 == 0 {
			slices.SortFunc(judged, func(a, b fill.Bin) int {
				return cmp.Or(cmp.Compare(a.Outlet, b.Outlet), cmp.Compare(a.Device, b.Device))
			})
		}
		want := slices.Clone(judged)
		slices.SortFunc(want, func(a, b fill.Bin) int {
			if c := cmp.Compare(stateOrder(a.State), stateOrder(b.State)); c != 0 {
				return c
			}
			ka, kb := a.FullAt, b.FullAt
			if a.State == fill.Stale {
				ka, kb = a.ReportedAt, b.ReportedAt
			}
			return cmp.Or(cmp.Compare(ka, kb), cmp.Compare(a.Outlet, b.Outlet), cmp.Compare(a.Device, b.Device))
		})
		for j, i := range collectionOrder(judged) {
			if judged[i] != want[j] {
				t.Fatalf("list %d, row %d: %+v, want %+v", n, j, judged[i], want[j])
			}
		}
	}
}

// BenchmarkCollectionsJSON writes a city's list when every bin is stale:
// 20,000 bins of 10,000 outlets in no order of outlet, with the outlets'
// fields escaped for each bin ("escaped") or taken from the registry's
// written ones ("known").
func BenchmarkCollectionsJSON(b *testing.B) {
	a := collectionsAnswer{At: time.Now().UTC(), Hours: 24, FullPct: 90}
	known := map[string]outletJSON{}
	for i := range 20000 {
		o := Outlet{ID: fmt.Sprintf("o-%05d", (i*7919)%10000), District: "hanyang", Operator: "ems"}
		o.Name, o.Address = "汉阳区钟家村快递站"+o.ID, "武汉市汉阳区钟家村街道 "+o.ID+" 号"
		known[o.ID] = newOutletJSON(&o)
		r := 1.25
		a.Bins = append(a.Bins, collectionBin{Outlet: o.ID, Name: o.Name, District: o.District, Address: o.Address, Operator: o.Operator,
			Device: fmt.Sprintf("b-%05d", i), FillPct: 41.5, ReportedAt: time.UnixMilli(1_790_000_000_000 + int64(i)*997).UTC(), Rate: &r,
			State: "stale", Confidence: "low"})
	}
	for _, k := range []struct {
		name  string
		known map[string]outletJSON
	}{{"escaped", nil}, {"known", known}} {
		b.Run(k.name, func(b *testing.B) {
			a.known = k.known
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = appendCollectionsAnswer(buf[:0], a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
