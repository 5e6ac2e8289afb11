package metrics

import (
	"fmt"
	"strconv"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// This file is metrics-v1's "Targets" and "Roll-ups": the rates of a count
// of parcels, the waste-free outlet bar, and the sums of outlets into
// groups. The API maps them to its answers; it defines none of them.

// Targets are the bars a window is judged by: the values of the target set
// in force (ops-v1 "Targets as data"). A nil target is not judged.
type Targets struct {
	GreenRate       *float64
	OutletCoverage  *float64
	BinCoverage     *float64 // also the waste-free outlet's bin bar
	NoSecondaryRate *float64
}

// Meets judges a figure against a target: nil when the target is not
// judged, false for a figure of nothing (no parcels: missing data is not
// compliance), else whether it reaches the target.
func Meets(v, target *float64) *bool {
	if target == nil {
		return nil
	}
	ok := AtLeast(v, *target)
	return &ok
}

// Rates are the three parcel rates (nil where no parcel was counted).
type Rates struct {
	Green       *float64 // green / total
	NoSecondary *float64 // original / total: sent without secondary packaging
	Reusable    *float64 // reusable / total
}

// Rates returns the rates of p.
func (p Parcels) Rates() Rates {
	t := p.Total()
	return Rates{
		Green:       Ratio(p.Green(), t),
		NoSecondary: Ratio(p.ByClass[telemetry.Original], t),
		Reusable:    Ratio(p.ByClass[telemetry.Reusable], t),
	}
}

// AtLeast reports whether a rate exists and reaches the target: a rate of
// nothing (no parcels) meets no target.
func AtLeast(v *float64, target float64) bool { return v != nil && *v >= target }

// CounterReporting is the share of the window's minutes at which a counter
// was reporting (0 for an empty window).
func (o Outlet) CounterReporting() float64 {
	if o.WindowMinutes == 0 {
		return 0
	}
	return float64(o.CounterReportingMinutes) / float64(o.WindowMinutes)
}

// Silent reports whether neither a counter nor a bin reported in the window.
func (o Outlet) Silent() bool { return o.CountersReporting == 0 && o.BinsReporting == 0 }

// Miss is one failed bar of the waste-free outlet evaluation.
type Miss struct {
	Bar    string   // green_rate, covered or bin_coverage
	Value  *float64 // the outlet's figure (nil: no parcels counted)
	Target float64
	Detail string
}

// ShowBelow writes a figure that misses its target so that it never reads
// as the target: four decimals, or as many more as it takes (0.89999 is
// "0.89999", never "0.9000" beside a target of 0.9).
func ShowBelow(v, target float64) string {
	for prec := 4; prec <= 17; prec++ {
		s := strconv.FormatFloat(v, 'f', prec, 64)
		if f, err := strconv.ParseFloat(s, 64); err == nil && f < target {
			return s
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// WasteFree evaluates the waste-free outlet bar: green_rate at or above
// its target, covered, bin_coverage at or above the bin target (a bar
// whose target is nil is not judged; covered always is). It returns nil
// when the outlet passes.
func (o Outlet) WasteFree(t Targets) []Miss {
	var out []Miss
	gr := o.Parcels.Rates().Green
	if t.GreenRate != nil && !AtLeast(gr, *t.GreenRate) {
		d := "no parcels were counted in the window"
		if gr != nil {
			d = fmt.Sprintf("green_rate %s is below the target %g", ShowBelow(*gr, *t.GreenRate), *t.GreenRate)
		}
		out = append(out, Miss{Bar: "green_rate", Value: gr, Target: *t.GreenRate, Detail: d})
	}
	if !o.Covered() {
		zero := 0.0
		out = append(out, Miss{Bar: "covered", Value: &zero, Target: 1, Detail: "no recycling bin reported in the window"})
	}
	if bc := o.BinCoverage(); t.BinCoverage != nil && bc < *t.BinCoverage {
		out = append(out, Miss{Bar: "bin_coverage", Value: &bc, Target: *t.BinCoverage,
			Detail: fmt.Sprintf("bins were serving %d of %d minutes (%s), below the target %g", o.ServingMinutes, o.WindowMinutes, ShowBelow(bc, *t.BinCoverage), *t.BinCoverage)})
	}
	return out
}

// Group sums outlets into a group (district, operator, city or any other):
// parcels are summed and rated (parcel-weighted), outlet_coverage is
// covered outlets / outlets, bin_coverage the mean of the outlets'.
type Group struct {
	Outlets, Covered, WasteFree int
	WithCounter                 int // outlets with a counter report in the window
	Silent                      int // outlets with no report at all
	Parcels                     Parcels
	binCoverage, counterShare   float64
}

// Add adds one outlet's figures; t decides whether it is waste-free.
func (g *Group) Add(m Outlet, t Targets) {
	g.Outlets++
	if m.Covered() {
		g.Covered++
	}
	if m.CountersReporting > 0 {
		g.WithCounter++
	}
	if m.Silent() {
		g.Silent++
	}
	g.Parcels.Add(m.Parcels)
	g.binCoverage += m.BinCoverage()
	g.counterShare += m.CounterReporting()
	if m.meets(t) {
		g.WasteFree++
	}
}

// meets reports whether the outlet is waste-free against t: WasteFree's
// answer without its words (a city adds up thousands of outlets).
func (o Outlet) meets(t Targets) bool {
	if t.GreenRate != nil { // AtLeast(Rates().Green, …) without allocating the rates
		tot := o.Parcels.Total()
		if tot == 0 || float64(o.Parcels.Green())/float64(tot) < *t.GreenRate {
			return false
		}
	}
	return o.Covered() && (t.BinCoverage == nil || o.BinCoverage() >= *t.BinCoverage)
}

// OutletCoverage is covered outlets / outlets (nil without outlets).
func (g *Group) OutletCoverage() *float64 { return Ratio(int64(g.Covered), int64(g.Outlets)) }

// BinCoverage is the mean of the outlets' bin_coverage (nil without outlets).
func (g *Group) BinCoverage() *float64 { return g.mean(g.binCoverage) }

// CounterReporting is the mean of the outlets' counter reporting shares.
func (g *Group) CounterReporting() *float64 { return g.mean(g.counterShare) }

func (g *Group) mean(sum float64) *float64 {
	if g.Outlets == 0 {
		return nil
	}
	v := sum / float64(g.Outlets)
	return &v
}
