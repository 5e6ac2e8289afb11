package main

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/errgroup"

	"github.com/greenpost/greenpost/internal/metrics"
)

// Metrics of GET /v1/series (the city's and the districts' trends):
// metrics-v1's roll-ups per step. outlet_coverage is the plan's second
// target, so its trend is a series too.
var groupSeriesMetrics = []string{"green_rate", "parcels", "bin_coverage", "outlet_coverage"}

// Group keys of GET /v1/series.
var groupSeriesBys = []string{"city", "district"}

// maxGroupSeriesSteps bounds a group series: every step is one engine
// question over all the group's outlets (a month by the hour fits).
const maxGroupSeriesSteps = 800

// groupSeriesSteps is how many steps' engine questions run at once.
const groupSeriesSteps = 2

// groupSeries is one group's points.
type groupSeries struct {
	Key    string  `json:"key"`
	Points []point `json:"points"`
}

// groupSeriesAnswer is GET /v1/series.
type groupSeriesAnswer struct {
	GroupBy string        `json:"group_by"`
	Metric  string        `json:"metric"`
	Step    string        `json:"step"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Targets judgedBy      `json:"targets"` // the set that judges the whole window
	Series  []groupSeries `json:"series"`
}

// groupSeriesOf computes the metric of every group per step of w. Each
// step is an ordinary roll-up (rater.compute, so steps share the figure
// cache with /v1/rates): the outlets' figures over that step, summed into
// groups exactly as GET /v1/rates sums them (metrics-v1 "Roll-ups"). Each
// point's reporting is the group's counter_reporting over the step.
func (r *rater) groupSeriesOf(ctx context.Context, w metrics.Window, step time.Duration, groupBy, metric string, f outletFilter) ([]groupSeries, error) {
	return r.groupSeriesOver(ctx, steps(w, step), groupBy, metric, f)
}

// groupSeriesOver is groupSeriesOf over given consecutive windows (the
// trajectory's days run from the city's midnights).
func (r *rater) groupSeriesOver(ctx context.Context, ws []metrics.Window, groupBy, metric string, f outletFilter) ([]groupSeries, error) {
	f.ActiveOnly = true
	outlets := r.reg.Select(ctx, f)
	perStep := make([][]groupRates, len(ws))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(groupSeriesSteps)
	for i, s := range ws {
		g.Go(func() error {
			res, judged, err := r.compute(gctx, s, outlets)
			if err != nil {
				return err
			}
			// Each step judged by the set in force at its end, like any window.
			perStep[i] = rollUp(outlets, res, judged, groupBy, r.targets.For(s.To).metrics()) // each step its own slot: no lock
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Every step has the same groups in the same (key) order: one outlet list.
	var out []groupSeries
	for i, gs := range perStep {
		for j, gr := range gs {
			if i == 0 {
				out = append(out, groupSeries{Key: gr.Key, Points: make([]point, len(ws))})
			}
			out[j].Points[i] = groupPoint(ws[i].From, gr, metric)
		}
	}
	if out == nil {
		out = []groupSeries{}
	}
	return out, nil
}

// groupPoint is one step of a group's series.
func groupPoint(t time.Time, g groupRates, metric string) point {
	p := point{T: t, Reporting: g.Completeness.CounterReporting}
	switch metric {
	case "green_rate":
		p.V = g.GreenRate
	case "parcels":
		v := float64(g.Parcels.Total)
		bc := g.Parcels.ByClass
		p.V, p.ByClass = &v, &bc
	case "bin_coverage":
		p.V = g.BinCoverage
	case "outlet_coverage":
		p.V = g.OutletCoverage
	}
	return p
}

var groupSeriesCSVHeader = []string{"key", "t", "v", "reporting"}

func getGroupSeries(rt *rater, wr windowRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{Window: &wr, Filter: true, CSV: true, Own: []string{"group_by", "metric", "step"}})
		if err != nil {
			return err
		}
		q, csv, w, f := in.Q, in.CSV, in.W, in.F
		groupBy, err := q.oneOf("group_by", "city", groupSeriesBys...)
		if err != nil {
			return err
		}
		metric, err := q.required("metric", groupSeriesMetrics...)
		if err != nil {
			return err
		}
		step, stepText, err := q.step(w, "1h", maxGroupSeriesSteps)
		if err != nil {
			return err
		}
		ss, err := rt.groupSeriesOf(c.UserContext(), w, step, groupBy, metric, f)
		if err != nil {
			return err
		}
		if csv {
			var rows [][]string
			for _, s := range ss {
				for _, r := range seriesCSVRows(s.Points) {
					rows = append(rows, append([]string{s.Key}, r...))
				}
			}
			return sendCSV(c, groupSeriesCSVHeader, rows)
		}
		return c.JSON(groupSeriesAnswer{GroupBy: groupBy, Metric: metric, Step: stepText, From: w.From, To: w.To, Targets: rt.targets.For(w.To), Series: ss})
	}
}
