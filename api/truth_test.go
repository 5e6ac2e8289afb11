package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// TestAgreesWithSimulatorTruth checks the API against an independent
// reading of metrics-v1: internal/city's ground truth, which the simulator
// keeps from what it published. A small simulated city reports for six hours
// (every 5 minutes, with reboots and silent stretches), its registry is
// imported through the API from the simulator's own CSV, and every outlet's
// figures over the truth's window must equal the truth — on the roll-up and
// on the raw path.
func TestAgreesWithSimulatorTruth(t *testing.T) {
	in := testenv.SharedInflux(t)
	bucket := freshBucket(t, in)
	st := openStore(t, in, bucket)
	c, err := city.New(city.Config{Seed: 7, Outlets: 12, Bins: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	end := now.Add(-2 * time.Hour).Truncate(time.Millisecond)
	start := end.Add(-6 * time.Hour)
	truth := city.NewTruth(c)
	var lines []byte
	for i, ref := range c.Devices() {
		d := c.NewDevice(ref)
		step := 5 * time.Minute
		offset := time.Duration(i*37%300) * time.Second
		for k := 0; ; k++ {
			at := start.Add(offset + time.Duration(k)*step)
			if !at.Before(end) {
				break
			}
			if fr := d.FaultRand(); fr.Float64() < 0.02 {
				d.Reboot()
			}
			d.Advance(at)
			// Every fifth device goes silent for 40 minutes once: stale
			// bins and gaps in the counter's reporting.
			if i%5 == 0 && k >= 20 && k < 28 {
				continue
			}
			var m telemetry.Message
			lines, m = appendReport(t, lines, d, at, now)
			truth.Published(&m)
		}
	}
	if err := st.Write(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	rep := truth.Report(start, end)

	var reg bytes.Buffer
	if err := c.WriteRegistry(&reg, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"rollup", "raw"} {
		t.Run(mode, func(t *testing.T) {
			ts := e2eServer(t, st, bucket, mode == "rollup")
			if mode == "rollup" {
				a := ts.on(t).do("POST", "/v1/outlets/import", adminKey, reg.String(), "Content-Type", "text/csv")
				if a.Status != 200 || !bytes.Contains(a.Body, []byte(fmt.Sprintf(`"imported":%d,"errors":[]`, len(c.Outlets)))) {
					t.Fatalf("import of the simulator's registry: %s", a)
				}
			} else if err := ts.reg.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			win := "from=" + rep.From.Format(time.RFC3339) + "&to=" + rep.To.Format(time.RFC3339)
			var cityTotal, cityGreen int64
			var covered, active int
			for _, ot := range rep.Outlets {
				var r outletRates
				a := ts.on(t).do("GET", "/v1/outlets/"+ot.Outlet+"/rates?"+win, viewerKey, "")
				if a.Status != 200 {
					t.Fatalf("%s: %s", ot.Outlet, a)
				}
				a.json(t, &r)
				got := map[string]int64{}
				for c, v := range r.Parcels.ByClass.counts() {
					got[telemetry.ClassNames[c]] = v
				}
				for k, v := range got {
					if v != ot.Parcels[k] {
						t.Errorf("%s %s: API %d, truth %d", ot.Outlet, k, v, ot.Parcels[k])
					}
				}
				if r.Parcels.Total != ot.Total || r.Parcels.Green != ot.Green || r.BoxesRecovered != ot.BoxesRecovered {
					t.Errorf("%s total %d green %d boxes %d; truth %d %d %d", ot.Outlet, r.Parcels.Total, r.Parcels.Green, r.BoxesRecovered, ot.Total, ot.Green, ot.BoxesRecovered)
				}
				checkRate(t, ot.Outlet+" green_rate", r.GreenRate, deref(ot.GreenRate))
				if r.BinsReporting != ot.BinsReporting || r.Completeness.ServingMinutes != ot.ServingMinutes || r.Completeness.WindowMinutes != rep.WindowMinutes {
					t.Errorf("%s bins %d serving %d of %d; truth %d %d of %d", ot.Outlet, r.BinsReporting, r.Completeness.ServingMinutes,
						r.Completeness.WindowMinutes, ot.BinsReporting, ot.ServingMinutes, rep.WindowMinutes)
				}
				if o := c.Outlet(ot.Outlet); o.Active {
					active++
					cityTotal += ot.Total
					cityGreen += ot.Green
					if ot.BinsReporting > 0 {
						covered++
					}
				}
			}
			var ans groupsAnswer
			ts.on(t).do("GET", "/v1/rates?group_by=city&"+win, viewerKey, "").json(t, &ans)
			g := ans.Groups[0]
			if g.Outlets != active || g.CoveredOutlets != covered || g.Parcels.Total != cityTotal || g.Parcels.Green != cityGreen {
				t.Errorf("city %d outlets, %d covered, %d parcels, %d green; truth %d %d %d %d", g.Outlets, g.CoveredOutlets, g.Parcels.Total, g.Parcels.Green, active, covered, cityTotal, cityGreen)
			}
		})
	}
}
