// Package metrics computes the figures of metrics-v1 (docs/metrics.md):
// parcels by class over a window with counter resets and the 24 h baseline,
// bin coverage by the minute, and how complete the data behind each figure is.
//
// This file is the boundary between the computation (this package) and the
// HTTP API (api/): the API knows the registry (districts, operators, active
// outlets) and sums outlets into groups; this package knows the data.
//
// The Engine is NewInfluxEngine over the hourly roll-up kept by NewRollup
// (worker.go: wiring; latecheck.go: late data); NewRawEngine is
// metrics-v1 read literally on raw points, the reference the roll-up is
// tested against. How it works and what it costs: docs/metrics.md.
package metrics

import (
	"context"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// Window is the half-open interval [From, To), both whole minutes in UTC.
type Window struct{ From, To time.Time }

// Minutes is the number of whole minutes in the window.
func (w Window) Minutes() int { return int(w.To.Sub(w.From) / time.Minute) }

// Options are the tunables of metrics-v1.
type Options struct {
	Staleness time.Duration // a bin report serves for this long (default 15 min)
	FullPct   float64       // a bin at or above this fill_pct is not serving (default 90)
}

// DefaultOptions returns metrics-v1's defaults.
func DefaultOptions() Options { return Options{Staleness: 15 * time.Minute, FullPct: 90} }

// Parcels are counts over a window: the increase of every class and of
// boxes_recovered, summed over an outlet's counter series.
type Parcels struct {
	ByClass        [telemetry.NumClasses]int64
	BoxesRecovered int64
}

// Total is the sum of all seven classes.
func (p Parcels) Total() int64 {
	var t int64
	for _, v := range p.ByClass {
		t += v
	}
	return t
}

// Green is reusable + recyclable + biodegradable + original.
func (p Parcels) Green() int64 {
	var g int64
	for c, v := range p.ByClass {
		if telemetry.Class(c).Green() {
			g += v
		}
	}
	return g
}

// Add adds q to p.
func (p *Parcels) Add(q Parcels) {
	for c := range p.ByClass {
		p.ByClass[c] += q.ByClass[c]
	}
	p.BoxesRecovered += q.BoxesRecovered
}

// Ratio returns num/den, or nil when den is 0 (metrics-v1: rates are null
// where the denominator is 0).
func Ratio(num, den int64) *float64 {
	if den == 0 {
		return nil
	}
	r := float64(num) / float64(den)
	return &r
}

// Outlet is what metrics-v1 defines for one outlet over one window, plus
// how complete the data behind it is.
type Outlet struct {
	Parcels        Parcels
	BinsReporting  int // distinct bin devices (all boots as one) with a report in the window
	ServingMinutes int // minutes of the window at which at least one bin was serving
	WindowMinutes  int

	// Completeness, so a low rate can be told from missing data.
	CountersReporting       int // distinct counter devices with a report in the window
	CounterReportingMinutes int // minutes at which some counter's last report was at most Staleness old
}

// BinCoverage is ServingMinutes / WindowMinutes (0 for an empty window).
func (o Outlet) BinCoverage() float64 {
	if o.WindowMinutes == 0 {
		return 0
	}
	return float64(o.ServingMinutes) / float64(o.WindowMinutes)
}

// Covered reports whether at least one bin reported in the window.
func (o Outlet) Covered() bool { return o.BinsReporting > 0 }

// DeviceState is the latest known state of one device, for alerts.
type DeviceState struct {
	Outlet, Device string
	Kind           telemetry.Kind
	LastReport     time.Time // time of the last telemetry point; zero when none
	FillPct        float64   // bins: fill_pct of the last report
	State          string    // last device_status state ("" when none)
	StateSince     time.Time // time of that status
}

// Engine answers metrics-v1 questions from the data in InfluxDB.
type Engine interface {
	// Outlets computes each listed outlet over w: one answer per outlet,
	// in the order of outlets (a city's thousands are added up by position,
	// not looked up by id). One with no data has zero counts and
	// WindowMinutes set.
	Outlets(ctx context.Context, w Window, outlets []string) ([]Outlet, error)
	// Series computes one outlet over consecutive steps of w, starting at
	// w.From (the last step may be shorter).
	Series(ctx context.Context, outlet string, w Window, step time.Duration) ([]Outlet, error)
	// Devices returns the latest state of every device seen in the last
	// lookback before now.
	Devices(ctx context.Context, now time.Time, lookback time.Duration) ([]DeviceState, error)
}
