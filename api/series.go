package main

import (
	"context"
	"fmt"
	"time"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

// Series metrics of GET /v1/outlets/{id}/series.
var seriesMetrics = []string{"green_rate", "parcels", "fill_pct", "bin_coverage"}

// maxSeriesPoints bounds one series answer (a chart needs no more).
const maxSeriesPoints = 5000

// point is one step of a series: its start and value (null when the step
// has nothing to show). Reporting is, for parcels and green_rate, the share
// of the step's minutes in which a counter was reporting, so a chart can
// tell a dip from a gap.
type point struct {
	T         time.Time    `json:"t"`
	V         *float64     `json:"v"`
	Reporting *float64     `json:"reporting,omitempty"`
	ByClass   *classCounts `json:"by_class,omitempty"` // parcels: the step's parcels by class (a stacked chart)
}

// seriesAnswer is the whole series answer.
type seriesAnswer struct {
	Outlet string    `json:"outlet"`
	Metric string    `json:"metric"`
	Step   string    `json:"step"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// JudgedFrom: the outlet's active_since cut the window; the points
	// start here (metrics-v1 v1.1).
	JudgedFrom *time.Time `json:"judged_from,omitempty"`
	Points     []point    `json:"points"`
}

// fillSource gives the fill level of an outlet's bins per step. The metrics
// engine does not carry fill levels (they are no metrics-v1 figure), so the
// chart reads them with one small query of its own.
type fillSource interface {
	MaxFill(ctx context.Context, outlet string, w metrics.Window, step time.Duration) ([]*float64, error)
}

// steps splits w into consecutive steps from w.From (the last may be shorter).
func steps(w metrics.Window, step time.Duration) []metrics.Window {
	var out []metrics.Window
	for t := w.From; t.Before(w.To); t = t.Add(step) {
		out = append(out, metrics.Window{From: t, To: minTime(t.Add(step), w.To)})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// series builds the points of one metric from the engine (or, for
// fill_pct, the fill source).
func series(ctx context.Context, eng metrics.Engine, fill fillSource, outlet, metric string, w metrics.Window, step time.Duration) ([]point, error) {
	ws := steps(w, step)
	pts := make([]point, len(ws))
	for i, s := range ws {
		pts[i].T = s.From
	}
	if metric == "fill_pct" {
		vals, err := fill.MaxFill(ctx, outlet, w, step)
		if err != nil {
			return nil, err
		}
		for i := range pts {
			if i < len(vals) {
				pts[i].V = vals[i]
			}
		}
		return pts, nil
	}
	res, err := eng.Series(ctx, outlet, w, step)
	if err != nil {
		return nil, fmt.Errorf("series of %s: %w", outlet, err)
	}
	if len(res) != len(ws) {
		return nil, fmt.Errorf("series of %s: the engine answered %d steps for %d", outlet, len(res), len(ws))
	}
	for i, m := range res {
		switch metric {
		case "green_rate":
			pts[i].V = metrics.Ratio(m.Parcels.Green(), m.Parcels.Total())
		case "parcels":
			v := float64(m.Parcels.Total())
			bc := toParcelsJSON(m.Parcels).ByClass
			pts[i].V, pts[i].ByClass = &v, &bc
		case "bin_coverage":
			v := m.BinCoverage()
			pts[i].V = &v
		}
		if metric == "green_rate" || metric == "parcels" {
			r := m.CounterReporting()
			pts[i].Reporting = &r
		}
	}
	return pts, nil
}

// storeFill reads fill levels through internal/store.
type storeFill struct{ st *store.Store }

func (f storeFill) MaxFill(ctx context.Context, outlet string, w metrics.Window, step time.Duration) ([]*float64, error) {
	return f.st.MaxFill(ctx, outlet, w.From, w.To, step)
}

// FullSince tells since when each full bin has been full (store.FullSince).
func (f storeFill) FullSince(ctx context.Context, bins []fill.FullBin, fullPct float64, now time.Time, lookback time.Duration) (map[string]time.Time, error) {
	devices := make([]string, len(bins))
	for i, b := range bins {
		devices[i] = b.Device
	}
	return f.st.FullSince(ctx, devices, fullPct, now, lookback)
}

// trackerFull answers "full since" from the collection list's tracker,
// which asks InfluxDB (store.FullSince) only what its memory cannot tell
// (internal/fill's FullSince).
type trackerFull struct {
	t  *fill.Tracker
	st *store.Store
}

func (f trackerFull) FullSince(ctx context.Context, bins []fill.FullBin, fullPct float64, now time.Time, lookback time.Duration) (map[string]time.Time, error) {
	return f.t.FullSince(ctx, bins, fullPct, now, lookback, f.st.FullSince)
}
