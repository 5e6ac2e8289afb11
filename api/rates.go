package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// byClass is parcels by packaging class, in the contract's class order.
type byClass struct {
	Reusable      int64 `json:"reusable"`
	Recyclable    int64 `json:"recyclable"`
	Biodegradable int64 `json:"biodegradable"`
	Original      int64 `json:"original"`
	Plastic       int64 `json:"plastic"`
	Foam          int64 `json:"foam"`
	Other         int64 `json:"other"`
}

type parcelsJSON struct {
	Total   int64   `json:"total"`
	Green   int64   `json:"green"`
	ByClass byClass `json:"by_class"`
}

func toParcelsJSON(p metrics.Parcels) parcelsJSON {
	c := p.ByClass
	return parcelsJSON{
		Total: p.Total(), Green: p.Green(),
		ByClass: byClass{
			Reusable: c[telemetry.Reusable], Recyclable: c[telemetry.Recyclable], Biodegradable: c[telemetry.Biodegradable],
			Original: c[telemetry.Original], Plastic: c[telemetry.Plastic], Foam: c[telemetry.Foam], Other: c[telemetry.Other],
		},
	}
}

// rates are the three parcel rates of metrics-v1 (null where total is 0).
type rates struct {
	GreenRate       *float64 `json:"green_rate"`
	NoSecondaryRate *float64 `json:"no_secondary_rate"`
	ReusableRate    *float64 `json:"reusable_rate"`
}

func ratesOf(p metrics.Parcels) rates {
	t := p.Total()
	return rates{
		GreenRate:       metrics.Ratio(p.Green(), t),
		NoSecondaryRate: metrics.Ratio(p.ByClass[telemetry.Original], t),
		ReusableRate:    metrics.Ratio(p.ByClass[telemetry.Reusable], t),
	}
}

// atLeast reports whether a rate exists and reaches the target: a rate of
// nothing (no parcels) meets no target.
func atLeast(v *float64, target float64) bool { return v != nil && *v >= target }

// outletCompleteness tells how much data stands behind an outlet's figures.
type outletCompleteness struct {
	WindowMinutes           int     `json:"window_minutes"`
	ServingMinutes          int     `json:"serving_minutes"`
	CountersReporting       int     `json:"counters_reporting"`
	CounterReportingMinutes int     `json:"counter_reporting_minutes"`
	CounterReporting        float64 `json:"counter_reporting"` // share of the window with a fresh counter report
	Silent                  bool    `json:"silent"`            // neither a counter nor a bin reported in the window
}

// outletRates is GET /v1/outlets/{id}/rates (api-v1 fields first).
type outletRates struct {
	Outlet  string      `json:"outlet"`
	From    time.Time   `json:"from"`
	To      time.Time   `json:"to"`
	Parcels parcelsJSON `json:"parcels"`
	rates
	BoxesRecovered int64   `json:"boxes_recovered"`
	Covered        bool    `json:"covered"`
	BinsReporting  int     `json:"bins_reporting"`
	BinCoverage    float64 `json:"bin_coverage"`
	Meets          struct {
		GreenRate bool `json:"green_rate"`
		WasteFree bool `json:"waste_free"`
	} `json:"meets"`
	District     string             `json:"district"`
	Operator     string             `json:"operator"`
	Active       bool               `json:"active"`
	Completeness outletCompleteness `json:"completeness"`
}

func makeOutletRates(o Outlet, w metrics.Window, m metrics.Outlet, t targets) outletRates {
	r := outletRates{
		Outlet: o.ID, From: w.From, To: w.To,
		Parcels: toParcelsJSON(m.Parcels), rates: ratesOf(m.Parcels),
		BoxesRecovered: m.Parcels.BoxesRecovered,
		Covered:        m.Covered(), BinsReporting: m.BinsReporting, BinCoverage: m.BinCoverage(),
		District: o.District, Operator: o.Operator, Active: o.Active,
		Completeness: completenessOf(m),
	}
	r.Meets.GreenRate = atLeast(r.GreenRate, t.GreenRate)
	r.Meets.WasteFree = wasteFreeReasons(m, r.rates, t) == nil
	return r
}

func completenessOf(m metrics.Outlet) outletCompleteness {
	c := outletCompleteness{
		WindowMinutes: m.WindowMinutes, ServingMinutes: m.ServingMinutes,
		CountersReporting: m.CountersReporting, CounterReportingMinutes: m.CounterReportingMinutes,
		Silent: m.CountersReporting == 0 && m.BinsReporting == 0,
	}
	if m.WindowMinutes > 0 {
		c.CounterReporting = float64(m.CounterReportingMinutes) / float64(m.WindowMinutes)
	}
	return c
}

// reason is one failed bar of the waste-free outlet evaluation.
type reason struct {
	Bar    string   `json:"bar"`    // green_rate, covered or bin_coverage
	Value  *float64 `json:"value"`  // the outlet's figure (null: no parcels counted)
	Target float64  `json:"target"` //
	Detail string   `json:"detail"`
}

// wasteFreeReasons evaluates metrics-v1's waste-free outlet bar: green_rate
// at or above target, covered, bin_coverage at or above the bin target.
// It returns nil when the outlet passes.
func wasteFreeReasons(m metrics.Outlet, r rates, t targets) []reason {
	var out []reason
	if !atLeast(r.GreenRate, t.GreenRate) {
		d := "no parcels were counted in the window"
		if r.GreenRate != nil {
			d = fmt.Sprintf("green_rate %.4f is below the target %.2f", *r.GreenRate, t.GreenRate)
		}
		out = append(out, reason{Bar: "green_rate", Value: r.GreenRate, Target: t.GreenRate, Detail: d})
	}
	if !m.Covered() {
		zero := 0.0
		out = append(out, reason{Bar: "covered", Value: &zero, Target: 1, Detail: "no recycling bin reported in the window"})
	}
	if bc := m.BinCoverage(); bc < t.BinCoverage {
		out = append(out, reason{Bar: "bin_coverage", Value: &bc, Target: t.BinCoverage,
			Detail: fmt.Sprintf("bins were serving %d of %d minutes (%.4f), below the target %.2f", m.ServingMinutes, m.WindowMinutes, bc, t.BinCoverage)})
	}
	return out
}

// groupCompleteness tells how much data stands behind a group's figures.
type groupCompleteness struct {
	CounterReporting        *float64 `json:"counter_reporting"`         // mean of the outlets' counter_reporting
	OutletsReportingParcels int      `json:"outlets_reporting_parcels"` // outlets with a counter report in the window
	SilentOutlets           int      `json:"silent_outlets"`            // outlets with no report at all in the window
}

// groupRates is one group of GET /v1/rates (api-v1 fields first).
type groupRates struct {
	Key            string      `json:"key"`
	Outlets        int         `json:"outlets"`
	CoveredOutlets int         `json:"covered_outlets"`
	OutletCoverage *float64    `json:"outlet_coverage"`
	BinCoverage    *float64    `json:"bin_coverage"`
	Parcels        parcelsJSON `json:"parcels"`
	rates
	BoxesRecovered int64 `json:"boxes_recovered"`
	Meets          struct {
		GreenRate      bool `json:"green_rate"`
		OutletCoverage bool `json:"outlet_coverage"`
	} `json:"meets"`
	WasteFreeOutlets int               `json:"waste_free_outlets"`
	Completeness     groupCompleteness `json:"completeness"`
}

// groupAcc sums outlets into a group (metrics-v1 "Roll-ups").
type groupAcc struct {
	outlets, covered, wasteFree, withCounter, silent int
	parcels                                          metrics.Parcels
	binCoverage, counterShare                        float64
}

func (g *groupAcc) add(m metrics.Outlet, t targets) {
	g.outlets++
	if m.Covered() {
		g.covered++
	}
	if m.CountersReporting > 0 {
		g.withCounter++
	}
	if m.CountersReporting == 0 && m.BinsReporting == 0 {
		g.silent++
	}
	g.parcels.Add(m.Parcels)
	g.binCoverage += m.BinCoverage()
	g.counterShare += completenessOf(m).CounterReporting
	if wasteFreeReasons(m, ratesOf(m.Parcels), t) == nil {
		g.wasteFree++
	}
}

func (g *groupAcc) result(key string, t targets) groupRates {
	r := groupRates{
		Key: key, Outlets: g.outlets, CoveredOutlets: g.covered,
		OutletCoverage: metrics.Ratio(int64(g.covered), int64(g.outlets)),
		Parcels:        toParcelsJSON(g.parcels), rates: ratesOf(g.parcels),
		BoxesRecovered:   g.parcels.BoxesRecovered,
		WasteFreeOutlets: g.wasteFree,
		Completeness:     groupCompleteness{OutletsReportingParcels: g.withCounter, SilentOutlets: g.silent},
	}
	if g.outlets > 0 {
		bc := g.binCoverage / float64(g.outlets)
		cs := g.counterShare / float64(g.outlets)
		r.BinCoverage, r.Completeness.CounterReporting = &bc, &cs
	}
	r.Meets.GreenRate = atLeast(r.GreenRate, t.GreenRate)
	r.Meets.OutletCoverage = atLeast(r.OutletCoverage, t.OutletCoverage)
	return r
}

// Group keys of GET /v1/rates.
var groupBys = []string{"outlet", "district", "operator", "city"}

func groupKey(o *Outlet, groupBy string) string {
	switch groupBy {
	case "outlet":
		return o.ID
	case "district":
		return o.District
	case "operator":
		return o.Operator
	}
	return "city"
}

// rater computes the API's figures from the registry and the metrics engine.
type rater struct {
	reg     *registry
	engine  metrics.Engine
	targets targets
	cache   *figureCache // nil: every question goes to the engine
}

// compute asks the engine for outlets over w. Every outlet is answered (the
// engine promises it); a missing one would be a bug, and is counted as an
// outlet with no data rather than dropped.
func (r *rater) compute(ctx context.Context, w metrics.Window, outlets []Outlet) (map[string]metrics.Outlet, error) {
	if len(outlets) == 0 {
		return map[string]metrics.Outlet{}, nil
	}
	ids := make([]string, len(outlets))
	for i := range outlets {
		ids[i] = outlets[i].ID
	}
	res, err := r.cache.get(ctx, w, ids, func(ctx context.Context) (map[string]metrics.Outlet, error) {
		return r.engine.Outlets(ctx, w, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("metrics for %d outlets over %s..%s: %w", len(ids), w.From.Format(time.RFC3339), w.To.Format(time.RFC3339), err)
	}
	for _, id := range ids {
		if _, ok := res[id]; !ok {
			// The answer may be shared (cache): fill a copy, never it.
			filled := make(map[string]metrics.Outlet, len(ids))
			for k, v := range res {
				filled[k] = v
			}
			for _, id := range ids {
				if _, ok := filled[id]; !ok {
					filled[id] = metrics.Outlet{WindowMinutes: w.Minutes()}
				}
			}
			return filled, nil
		}
	}
	return res, nil
}

// outlet computes one outlet (active or not: its own rates always answer).
func (r *rater) outlet(ctx context.Context, o Outlet, w metrics.Window) (outletRates, error) {
	res, err := r.compute(ctx, w, []Outlet{o})
	if err != nil {
		return outletRates{}, err
	}
	return makeOutletRates(o, w, res[o.ID], r.targets), nil
}

// groups rolls the active outlets matching f up by groupBy, in key order.
// group_by=city always answers one group, even with no outlets.
func (r *rater) groups(ctx context.Context, w metrics.Window, groupBy string, f outletFilter) ([]groupRates, error) {
	f.ActiveOnly = true
	outlets := r.reg.Select(f)
	res, err := r.compute(ctx, w, outlets)
	if err != nil {
		return nil, err
	}
	accs := map[string]*groupAcc{}
	if groupBy == "city" {
		accs["city"] = &groupAcc{}
	}
	for i := range outlets {
		k := groupKey(&outlets[i], groupBy)
		a := accs[k]
		if a == nil {
			a = &groupAcc{}
			accs[k] = a
		}
		a.add(res[outlets[i].ID], r.targets)
	}
	out := make([]groupRates, 0, len(accs))
	for k, a := range accs {
		out = append(out, a.result(k, r.targets))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// wasteFreeOutlet is one outlet of GET /v1/waste-free.
type wasteFreeOutlet struct {
	Outlet      string   `json:"outlet"`
	District    string   `json:"district"`
	Operator    string   `json:"operator"`
	Pass        bool     `json:"pass"`
	GreenRate   *float64 `json:"green_rate"`
	Covered     bool     `json:"covered"`
	BinCoverage float64  `json:"bin_coverage"`
	Reasons     []reason `json:"reasons"`
}

// wasteFree evaluates every active outlet matching f, in id order.
func (r *rater) wasteFree(ctx context.Context, w metrics.Window, f outletFilter) ([]wasteFreeOutlet, error) {
	f.ActiveOnly = true
	outlets := r.reg.Select(f)
	res, err := r.compute(ctx, w, outlets)
	if err != nil {
		return nil, err
	}
	out := make([]wasteFreeOutlet, len(outlets))
	for i, o := range outlets {
		m := res[o.ID]
		rs := ratesOf(m.Parcels)
		reasons := wasteFreeReasons(m, rs, r.targets)
		if reasons == nil {
			reasons = []reason{}
		}
		out[i] = wasteFreeOutlet{
			Outlet: o.ID, District: o.District, Operator: o.Operator, Pass: len(reasons) == 0,
			GreenRate: rs.GreenRate, Covered: m.Covered(), BinCoverage: m.BinCoverage(), Reasons: reasons,
		}
	}
	return out, nil
}
