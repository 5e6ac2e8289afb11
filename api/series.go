package main

import (
	"context"
	"fmt"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
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
	T         time.Time `json:"t"`
	V         *float64  `json:"v"`
	Reporting *float64  `json:"reporting,omitempty"`
}

// seriesAnswer is the whole series answer.
type seriesAnswer struct {
	Outlet string    `json:"outlet"`
	Metric string    `json:"metric"`
	Step   string    `json:"step"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Points []point   `json:"points"`
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
			pts[i].V = &v
		case "bin_coverage":
			v := m.BinCoverage()
			pts[i].V = &v
		}
		if metric == "green_rate" || metric == "parcels" {
			r := completenessOf(m).CounterReporting
			pts[i].Reporting = &r
		}
	}
	return pts, nil
}

// fillQuery reads fill levels from InfluxDB: the highest fill_pct any bin
// of the outlet reported within each step (null for a step without a
// report). Raw points are bucketed in Go, so steps start at the window's
// start whatever its alignment (Flux 0.65's windows align to the epoch).
type fillQuery struct {
	db     influx
	bucket string
}

func (f fillQuery) MaxFill(ctx context.Context, outlet string, w metrics.Window, step time.Duration) ([]*float64, error) {
	flux := `from(bucket: ` + store.FluxString(f.bucket) + `)
  |> range(start: ` + w.From.Format(time.RFC3339) + `, stop: ` + w.To.Format(time.RFC3339) + `)
  |> filter(fn: (r) => r._measurement == "` + telemetry.MeasurementBin + `" and r._field == "fill_pct" and r.outlet == ` + store.FluxString(outlet) + `)
  |> keep(columns: ["_time", "_value"])`
	rows, err := f.db.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("fill levels of %s: %w", outlet, err)
	}
	out := make([]*float64, len(steps(w, step)))
	for _, r := range rows {
		t, ok1 := r["_time"].(time.Time)
		v, ok2 := r["_value"].(float64)
		if !ok1 || !ok2 || t.Before(w.From) || !t.Before(w.To) {
			continue
		}
		i := int(t.Sub(w.From) / step)
		if i >= len(out) {
			continue
		}
		if out[i] == nil || v > *out[i] {
			v := v
			out[i] = &v
		}
	}
	return out, nil
}
