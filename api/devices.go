package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// deviceInfo is one device of GET /v1/outlets/{id}/devices: what an
// officer looking at one outlet needs to know of it now.
type deviceInfo struct {
	Device      string     `json:"device"`
	Kind        string     `json:"kind"`
	Online      bool       `json:"online"`       // false: it would raise device_offline now
	LastReport  *time.Time `json:"last_report"`  // its last telemetry (null: none within the lookback)
	Status      string     `json:"status"`       // its last device_status state ("" when none)
	StatusSince *time.Time `json:"status_since"` //
	FillPct     *float64   `json:"fill_pct"`     // bins: the last report's level
	Full        bool       `json:"full"`         // bins: at or above the full threshold
	BatteryPct  *float64   `json:"battery_pct"`  // bins: the last reported battery (null when never sent)
}

// devicesAnswer is GET /v1/outlets/{id}/devices.
type devicesAnswer struct {
	Outlet  string       `json:"outlet"`
	At      time.Time    `json:"at"`
	FullPct float64      `json:"full_pct"`
	Devices []deviceInfo `json:"devices"`
}

// binSource reads what the metrics engine does not carry: the bins' last
// battery level and each bin's own fill level per step.
type binSource interface {
	Batteries(ctx context.Context, outlet string, since time.Time) (map[string]float64, error)
	FillByBin(ctx context.Context, outlet string, w metrics.Window, step time.Duration) (map[string][]*float64, error)
}

// states returns every device's latest state, shared with /v1/alerts
// through the figure cache.
func (a *alerter) states(ctx context.Context, now time.Time) ([]metrics.DeviceState, error) {
	devs, err := a.rater.cache.devices(ctx, a.lookback, func(ctx context.Context) ([]metrics.DeviceState, error) {
		return a.engine.Devices(ctx, now, a.lookback)
	})
	if err != nil {
		return nil, fmt.Errorf("device states: %w", err)
	}
	return devs, nil
}

func getOutletDevices(reg *registry, al *alerter, bins binSource, now clock) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: outletIDName})
		if err != nil {
			return err
		}
		id := in.ID
		if _, ok := reg.Get(c.UserContext(), id); !ok {
			return errNotFound("no outlet %q", id)
		}
		at := now().UTC()
		devs, err := al.states(c.UserContext(), at)
		if err != nil {
			return err
		}
		batt, err := bins.Batteries(c.UserContext(), id, at.Add(-al.lookback))
		if err != nil {
			return err
		}
		out := []deviceInfo{}
		for _, d := range devs {
			if d.Outlet != id {
				continue
			}
			off := offlineReason(&d, at, al.opts.Staleness) != online
			di := deviceInfo{Device: d.Device, Kind: d.Kind.String(), Online: !off, Status: d.State}
			if !d.LastReport.IsZero() {
				t := d.LastReport.UTC()
				di.LastReport = &t
			}
			if !d.StateSince.IsZero() {
				t := d.StateSince.UTC()
				di.StatusSince = &t
			}
			if d.Kind == telemetry.KindBin && di.LastReport != nil {
				v := d.FillPct
				di.FillPct, di.Full = &v, v >= al.opts.FullPct
			}
			if v, ok := batt[d.Device]; ok {
				di.BatteryPct = &v
			}
			out = append(out, di)
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Kind != out[j].Kind {
				return out[i].Kind < out[j].Kind // bins, then the counter
			}
			return out[i].Device < out[j].Device
		})
		return c.JSON(devicesAnswer{Outlet: id, At: at, FullPct: al.opts.FullPct, Devices: out})
	}
}

// binFill is one bin's fill level per step.
type binFill struct {
	Device string  `json:"device"`
	Points []point `json:"points"`
}

// binFillAnswer is GET /v1/outlets/{id}/fill.
type binFillAnswer struct {
	Outlet  string    `json:"outlet"`
	Step    string    `json:"step"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	FullPct float64   `json:"full_pct"`
	Bins    []binFill `json:"bins"`
}

var binFillCSVHeader = []string{"device", "t", "v"}

func getOutletFill(reg *registry, bins binSource, fullPct float64, wr windowRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: outletIDName, Window: &wr, CSV: true, Own: []string{"step"}})
		if err != nil {
			return err
		}
		id, csv, w := in.ID, in.CSV, in.W
		step, stepText, err := in.Q.step(w, "15m", maxSeriesPoints)
		if err != nil {
			return err
		}
		if _, ok := reg.Get(c.UserContext(), id); !ok {
			return errNotFound("no outlet %q", id)
		}
		byBin, err := bins.FillByBin(c.UserContext(), id, w, step)
		if err != nil {
			return err
		}
		ws := steps(w, step)
		out := []binFill{}
		for dev, vals := range byBin {
			b := binFill{Device: dev, Points: make([]point, len(ws))}
			for i, s := range ws {
				b.Points[i] = point{T: s.From, V: vals[i]}
			}
			out = append(out, b)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
		if csv {
			var rows [][]string
			for _, b := range out {
				for _, p := range b.Points {
					rows = append(rows, []string{b.Device, ftime(p.T), fptr(p.V)})
				}
			}
			return sendCSV(c, binFillCSVHeader, rows)
		}
		return c.JSON(binFillAnswer{Outlet: id, Step: stepText, From: w.From, To: w.To, FullPct: fullPct, Bins: out})
	}
}

// FillByBin and Batteries of the store, for the routes above.
func (f storeFill) FillByBin(ctx context.Context, outlet string, w metrics.Window, step time.Duration) (map[string][]*float64, error) {
	return f.st.FillByBin(ctx, outlet, w.From, w.To, step)
}

func (f storeFill) Batteries(ctx context.Context, outlet string, since time.Time) (map[string]float64, error) {
	return f.st.Batteries(ctx, outlet, since)
}

var _ binSource = storeFill{}
