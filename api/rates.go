package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// byClass is parcels by packaging class, in telemetry.ClassNames order.
type byClass [telemetry.NumClasses]int64

// classCounts is byClass as the contract's JSON object: one field per
// class, in telemetry.ClassNames order (TestClassCountsAreTheClasses). A
// struct, not a MarshalJSON: encoding/json validates and copies whatever a
// marshaler returns, which was a seventh of a 10,000-outlet answer's CPU.
type classCounts struct {
	Reusable      int64 `json:"reusable"`
	Recyclable    int64 `json:"recyclable"`
	Biodegradable int64 `json:"biodegradable"`
	Original      int64 `json:"original"`
	Plastic       int64 `json:"plastic"`
	Foam          int64 `json:"foam"`
	Other         int64 `json:"other"`
}

func classCountsOf(b byClass) classCounts {
	return classCounts{b[telemetry.Reusable], b[telemetry.Recyclable], b[telemetry.Biodegradable], b[telemetry.Original],
		b[telemetry.Plastic], b[telemetry.Foam], b[telemetry.Other]}
}

func (c classCounts) counts() byClass {
	var b byClass
	b[telemetry.Reusable], b[telemetry.Recyclable], b[telemetry.Biodegradable], b[telemetry.Original] = c.Reusable, c.Recyclable, c.Biodegradable, c.Original
	b[telemetry.Plastic], b[telemetry.Foam], b[telemetry.Other] = c.Plastic, c.Foam, c.Other
	return b
}

type parcelsJSON struct {
	Total   int64       `json:"total"`
	Green   int64       `json:"green"`
	ByClass classCounts `json:"by_class"`
}

func toParcelsJSON(p metrics.Parcels) parcelsJSON {
	return parcelsJSON{Total: p.Total(), Green: p.Green(), ByClass: classCountsOf(p.ByClass)}
}

// rates are the three parcel rates of metrics-v1 (null where total is 0).
type rates struct {
	GreenRate       *float64 `json:"green_rate"`
	NoSecondaryRate *float64 `json:"no_secondary_rate"`
	ReusableRate    *float64 `json:"reusable_rate"`
}

func ratesOf(p metrics.Parcels) rates {
	r := p.Rates()
	return rates{GreenRate: r.Green, NoSecondaryRate: r.NoSecondary, ReusableRate: r.Reusable}
}

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
	Outlet string    `json:"outlet"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// JudgedFrom: the outlet's active_since cut the window; its figures
	// count from here (metrics-v1 v1.1).
	JudgedFrom *time.Time  `json:"judged_from,omitempty"`
	Parcels    parcelsJSON `json:"parcels"`
	rates
	BoxesRecovered int64   `json:"boxes_recovered"`
	Covered        bool    `json:"covered"`
	BinsReporting  int     `json:"bins_reporting"`
	BinCoverage    float64 `json:"bin_coverage"`
	Meets          meets   `json:"meets"`
	// Targets names the set that judged the window and its values.
	Targets      judgedBy           `json:"targets"`
	District     string             `json:"district"`
	Operator     string             `json:"operator"`
	Active       bool               `json:"active"`
	Completeness outletCompleteness `json:"completeness"`
}

func makeOutletRates(o Outlet, w metrics.Window, m metrics.Outlet, j judgedBy) outletRates {
	r := outletRates{
		Outlet: o.ID, From: w.From, To: w.To, JudgedFrom: judgedFrom(w, o.ActiveSince),
		Parcels: toParcelsJSON(m.Parcels), rates: ratesOf(m.Parcels),
		BoxesRecovered: m.Parcels.BoxesRecovered,
		Covered:        m.Covered(), BinsReporting: m.BinsReporting, BinCoverage: m.BinCoverage(),
		District: o.District, Operator: o.Operator, Active: o.Active,
		Completeness: completenessOf(m), Targets: j,
	}
	t := j.metrics()
	bc := r.BinCoverage
	wasteFree := m.WasteFree(t) == nil
	r.Meets = meets{GreenRate: metrics.Meets(r.GreenRate, t.GreenRate), NoSecondaryRate: metrics.Meets(r.NoSecondaryRate, t.NoSecondaryRate),
		BinCoverage: metrics.Meets(&bc, t.BinCoverage), WasteFree: &wasteFree}
	return r
}

// meets says of each figure judged against a target whether it reaches it;
// a figure without a target is left out. A struct (fields in key order,
// as a map was written), not a map: one per outlet of a 10,000-outlet
// answer, and encoding/json sorts a map's keys each time.
type meets struct {
	BinCoverage     *bool `json:"bin_coverage,omitempty"`
	GreenRate       *bool `json:"green_rate,omitempty"`
	NoSecondaryRate *bool `json:"no_secondary_rate,omitempty"`
	OutletCoverage  *bool `json:"outlet_coverage,omitempty"`
	WasteFree       *bool `json:"waste_free,omitempty"`
}

// flagCell is a meets flag for CSV: empty when not judged.
func flagCell(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

func completenessOf(m metrics.Outlet) outletCompleteness {
	return outletCompleteness{
		WindowMinutes: m.WindowMinutes, ServingMinutes: m.ServingMinutes,
		CountersReporting: m.CountersReporting, CounterReportingMinutes: m.CounterReportingMinutes,
		CounterReporting: m.CounterReporting(), Silent: m.Silent(),
	}
}

// reason is one failed bar of the waste-free outlet evaluation.
type reason struct {
	Bar    string   `json:"bar"`    // green_rate, covered or bin_coverage
	Value  *float64 `json:"value"`  // the outlet's figure (null: no parcels counted)
	Target float64  `json:"target"` //
	Detail string   `json:"detail"`
}

// reasonsOf maps the engine's misses to the answer's reasons ([] when it passes).
func reasonsOf(ms []metrics.Miss) []reason {
	out := make([]reason, len(ms))
	for i, m := range ms {
		out[i] = reason{Bar: m.Bar, Value: m.Value, Target: m.Target, Detail: m.Detail}
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
	BoxesRecovered   int64             `json:"boxes_recovered"`
	Meets            meets             `json:"meets"`
	WasteFreeOutlets int               `json:"waste_free_outlets"`
	Completeness     groupCompleteness `json:"completeness"`
}

func makeGroupRates(key string, g *metrics.Group, t metrics.Targets) groupRates {
	r := groupRates{
		Key: key, Outlets: g.Outlets, CoveredOutlets: g.Covered,
		OutletCoverage: g.OutletCoverage(), BinCoverage: g.BinCoverage(),
		Parcels: toParcelsJSON(g.Parcels), rates: ratesOf(g.Parcels),
		BoxesRecovered:   g.Parcels.BoxesRecovered,
		WasteFreeOutlets: g.WasteFree,
		Completeness: groupCompleteness{CounterReporting: g.CounterReporting(),
			OutletsReportingParcels: g.WithCounter, SilentOutlets: g.Silent},
	}
	r.Meets = meets{GreenRate: metrics.Meets(r.GreenRate, t.GreenRate), OutletCoverage: metrics.Meets(r.OutletCoverage, t.OutletCoverage),
		BinCoverage: metrics.Meets(r.BinCoverage, t.BinCoverage), NoSecondaryRate: metrics.Meets(r.NoSecondaryRate, t.NoSecondaryRate)}
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

// rater computes the API's figures from the registry and the metrics
// engine, judged by the target set in force at each window's end.
type rater struct {
	reg     *registry
	engine  metrics.Engine
	targets *targetBook
	cache   *figureCache // nil: every question goes to the engine
}

// compute asks the engine for outlets over w, each over the part of w it
// is judged on (metrics-v1 v1.1: from its active_since on; outlets sharing
// that part are asked together): res[i] is outlets[i]'s answer, judged[i]
// false for an outlet whose active_since is at or after w.To (left out of
// roll-ups). res may be the figure cache's: callers must not modify it.
func (r *rater) compute(ctx context.Context, w metrics.Window, outlets []Outlet) (res []metrics.Outlet, judged []bool, err error) {
	js := make([]metrics.Judged, len(outlets))
	for i := range outlets {
		js[i] = metrics.Judged{ID: outlets[i].ID, ActiveSince: outlets[i].ActiveSince}
	}
	ask := func(ctx context.Context, jw metrics.Window, ids []string) ([]metrics.Outlet, error) {
		res, err := r.cache.get(ctx, jw, ids, func(ctx context.Context) ([]metrics.Outlet, error) {
			return r.engine.Outlets(ctx, jw, ids)
		})
		if err != nil {
			return nil, fmt.Errorf("metrics for %d outlets over %s..%s: %w", len(ids), jw.From.Format(time.RFC3339), jw.To.Format(time.RFC3339), err)
		}
		return res, nil
	}
	return metrics.OutletsJudged(ctx, ask, w, js)
}

// judgedFrom is what an answer says of the part of w an outlet was judged
// on: the start of that part when later than w.From, else nil.
func judgedFrom(w metrics.Window, since time.Time) *time.Time {
	jw, ok := metrics.JudgedWindow(w, since)
	if !ok {
		t := since.UTC()
		return &t
	}
	if jw.From.After(w.From) {
		return &jw.From
	}
	return nil
}

// outlet computes one outlet (active or not: its own rates always answer).
func (r *rater) outlet(ctx context.Context, o Outlet, w metrics.Window) (outletRates, error) {
	res, _, err := r.compute(ctx, w, []Outlet{o})
	if err != nil {
		return outletRates{}, err
	}
	// Not judged (it joined at or after to): zero figures.
	return makeOutletRates(o, w, res[0], r.targets.For(w.To)), nil
}

// groups rolls the active outlets matching f up by groupBy, in key order.
// group_by=city always answers one group, even with no outlets.
func (r *rater) groups(ctx context.Context, w metrics.Window, groupBy string, f outletFilter) ([]groupRates, judgedBy, error) {
	f.ActiveOnly = true
	outlets := r.reg.Select(ctx, f)
	j := r.targets.For(w.To)
	t := j.metrics()
	res, judged, err := r.compute(ctx, w, outlets)
	if err != nil {
		return nil, j, err
	}
	return rollUp(outlets, res, judged, groupBy, t), j, nil
}

// rollUp sums the outlets' figures (res[i] is outlets[i]'s, judged[i]
// whether it counts) into groups by groupBy, in key order (metrics-v1
// "Roll-ups"); group_by=city always gives one group. Outlets come in id
// order, so by outlet the groups are already in key order.
func rollUp(outlets []Outlet, res []metrics.Outlet, judged []bool, groupBy string, t metrics.Targets) []groupRates {
	byKey := func(x, y groupRates) int { return cmp.Compare(x.Key, y.Key) }
	if groupBy == "outlet" {
		out := make([]groupRates, 0, len(outlets))
		for i := range outlets {
			if judged[i] {
				var g metrics.Group
				g.Add(res[i], t)
				out = append(out, makeGroupRates(outlets[i].ID, &g, t))
			}
		}
		if !slices.IsSortedFunc(out, byKey) {
			slices.SortFunc(out, byKey)
		}
		return out
	}
	accs := map[string]*metrics.Group{}
	if groupBy == "city" {
		accs["city"] = &metrics.Group{}
	}
	var k string // the group of the outlet before, and its sums
	var a *metrics.Group
	for i := range outlets {
		if !judged[i] {
			continue // joined at or after to: left out, like an inactive outlet
		}
		if ki := groupKey(&outlets[i], groupBy); a == nil || ki != k {
			k, a = ki, accs[ki]
			if a == nil {
				a = &metrics.Group{}
				accs[k] = a
			}
		}
		a.Add(res[i], t)
	}
	out := make([]groupRates, 0, len(accs))
	for k, a := range accs {
		out = append(out, makeGroupRates(k, a, t))
	}
	slices.SortFunc(out, byKey)
	return out
}

// wasteFreeOutlet is one outlet of GET /v1/waste-free.
type wasteFreeOutlet struct {
	Outlet      string     `json:"outlet"`
	District    string     `json:"district"`
	Operator    string     `json:"operator"`
	JudgedFrom  *time.Time `json:"judged_from,omitempty"`
	Pass        bool       `json:"pass"`
	GreenRate   *float64   `json:"green_rate"`
	Covered     bool       `json:"covered"`
	BinCoverage float64    `json:"bin_coverage"`
	Reasons     []reason   `json:"reasons"`
}

// wasteFree evaluates every active outlet matching f, in id order.
func (r *rater) wasteFree(ctx context.Context, w metrics.Window, f outletFilter) ([]wasteFreeOutlet, judgedBy, error) {
	f.ActiveOnly = true
	outlets := r.reg.Select(ctx, f)
	j := r.targets.For(w.To)
	res, judged, err := r.compute(ctx, w, outlets)
	if err != nil {
		return nil, j, err
	}
	out := make([]wasteFreeOutlet, 0, len(outlets))
	for i, o := range outlets {
		if !judged[i] {
			continue // joined at or after to: nothing to evaluate
		}
		m := res[i]
		reasons := reasonsOf(m.WasteFree(j.metrics()))
		out = append(out, wasteFreeOutlet{
			Outlet: o.ID, District: o.District, Operator: o.Operator, JudgedFrom: judgedFrom(w, o.ActiveSince), Pass: len(reasons) == 0,
			GreenRate: m.Parcels.Rates().Green, Covered: m.Covered(), BinCoverage: m.BinCoverage(), Reasons: reasons,
		})
	}
	return out, j, nil
}
