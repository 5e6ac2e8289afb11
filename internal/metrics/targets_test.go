package metrics

import (
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// TestGroupAndWasteFree: the group sums and the waste-free bar, worked by
// hand on three outlets.
func TestGroupAndWasteFree(t *testing.T) {
	tg := Targets{GreenRate: f(0.9), OutletCoverage: f(1), BinCoverage: f(0.95)}
	var a, b, c Outlet
	a.Parcels.ByClass[telemetry.Recyclable] = 95
	a.Parcels.ByClass[telemetry.Plastic] = 5
	a.BinsReporting, a.ServingMinutes, a.WindowMinutes = 1, 60, 60
	a.CountersReporting, a.CounterReportingMinutes = 1, 30
	b.Parcels.ByClass[telemetry.Original] = 1
	b.Parcels.ByClass[telemetry.Foam] = 1
	b.BinsReporting, b.ServingMinutes, b.WindowMinutes = 1, 30, 60
	b.CountersReporting, b.CounterReportingMinutes = 1, 60
	c.WindowMinutes = 60 // silent

	if m := a.WasteFree(tg); m != nil {
		t.Errorf("a: %+v, want a pass", m)
	}
	if m := b.WasteFree(tg); len(m) != 2 || m[0].Bar != "green_rate" || *m[0].Value != 0.5 || m[1].Bar != "bin_coverage" || *m[1].Value != 0.5 {
		t.Errorf("b: %+v, want green_rate 0.5 and bin_coverage 0.5", m)
	}
	if m := c.WasteFree(tg); len(m) != 3 || m[0].Value != nil || m[1].Bar != "covered" {
		t.Errorf("c: %+v, want all three bars, green_rate null", m)
	}

	var g Group
	for _, o := range []Outlet{a, b, c} {
		g.Add(o, tg)
	}
	if g.Outlets != 3 || g.Covered != 2 || g.WasteFree != 1 || g.WithCounter != 2 || g.Silent != 1 {
		t.Errorf("counts %+v", g)
	}
	if r := g.Parcels.Rates(); *r.Green != 96.0/102 || *r.NoSecondary != 1.0/102 || *r.Reusable != 0 {
		t.Errorf("rates %v %v %v", *r.Green, *r.NoSecondary, *r.Reusable)
	}
	if *g.OutletCoverage() != 2.0/3 || *g.BinCoverage() != 1.5/3 || *g.CounterReporting() != 1.5/3 {
		t.Errorf("coverage %v %v %v", *g.OutletCoverage(), *g.BinCoverage(), *g.CounterReporting())
	}
	// A target that is not judged is no bar: without a green_rate target
	// b misses bin_coverage alone, and without targets at all c misses only
	// "covered" (a bin must report).
	if m := b.WasteFree(Targets{BinCoverage: f(0.95)}); len(m) != 1 || m[0].Bar != "bin_coverage" {
		t.Errorf("b without a green_rate target: %+v", m)
	}
	if m := c.WasteFree(Targets{}); len(m) != 1 || m[0].Bar != "covered" {
		t.Errorf("c without targets: %+v", m)
	}
	// Group.Add counts waste-free outlets without WasteFree's words: the
	// two must agree on every outlet and every set of targets here.
	for _, tgs := range []Targets{tg, {}, {BinCoverage: f(0.95)}, {GreenRate: f(0.5)}, {GreenRate: f(0.9), BinCoverage: f(0.4)}} {
		for i, o := range []Outlet{a, b, c} {
			if got, want := o.meets(tgs), o.WasteFree(tgs) == nil; got != want {
				t.Errorf("outlet %d, targets %+v: meets %v, WasteFree says %v", i, tgs, got, want)
			}
		}
	}
	if Meets(f(0.5), nil) != nil || *Meets(f(0.9), f(0.9)) != true || *Meets(nil, f(0)) != false || *Meets(f(0.89), f(0.9)) != false {
		t.Error("Meets")
	}
	var empty Group
	if empty.OutletCoverage() != nil || empty.BinCoverage() != nil || empty.Parcels.Rates().Green != nil {
		t.Error("an empty group must answer null")
	}
}

func f(v float64) *float64 { return &v }

// TestShowBelowNeverReadsAsTheTarget: a miss is never written like the
// target it misses (0.8999 showed as 0.9000 beside a target of 0.90).
func TestShowBelowNeverReadsAsTheTarget(t *testing.T) {
	for _, tc := range []struct {
		v, target float64
		want      string
	}{
		{0.8999, 0.9, "0.8999"}, {0.89999, 0.9, "0.89999"}, {0.899999999, 0.9, "0.899999999"},
		{0.5, 0.9, "0.5000"}, {0.94999, 0.95, "0.94999"}, {0, 0.9, "0.0000"},
	} {
		if got := ShowBelow(tc.v, tc.target); got != tc.want {
			t.Errorf("ShowBelow(%v, %v) = %q, want %q", tc.v, tc.target, got, tc.want)
		}
	}
	o := Outlet{Parcels: Parcels{ByClass: [telemetry.NumClasses]int64{0, 89999, 0, 0, 10001}}, WindowMinutes: 100000, ServingMinutes: 94999, BinsReporting: 1}
	for _, m := range o.WasteFree(Targets{GreenRate: f(0.9), BinCoverage: f(0.95)}) {
		if strings.Contains(m.Detail, "0.9000") || strings.Contains(m.Detail, "0.9500") {
			t.Errorf("%s: %q reads as the target", m.Bar, m.Detail)
		}
	}
}
