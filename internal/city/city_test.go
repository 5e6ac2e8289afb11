package city

import (
	"bytes"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
)

var t0 = time.Date(2026, 11, 28, 0, 0, 0, 0, Local)

func mustCity(t testing.TB, cfg Config) *City {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stream runs every device of the city over [start, start+span) in steps
// and returns each device's payloads, with the reboot fault injected from
// the device's fault stream so resets are covered too.
func stream(c *City, start time.Time, span, step time.Duration) map[string][]string {
	out := map[string][]string{}
	for _, ref := range c.Devices() {
		d := c.NewDevice(ref)
		for at := start; at.Before(start.Add(span)); at = at.Add(step) {
			d.Advance(at)
			if d.FaultRand().Float64() < 0.01 {
				d.Reboot()
			}
			out[ref.ID] = append(out[ref.ID], string(d.AppendTelemetry(nil, at.UnixMilli())))
		}
	}
	return out
}

func TestEveryPayloadDecodes(t *testing.T) {
	c := mustCity(t, Config{Seed: 7, Outlets: 30, Bins: 2})
	now := t0.Add(48 * time.Hour)
	refs := map[string]DeviceRef{}
	for _, r := range c.Devices() {
		refs[r.ID] = r
	}
	n := 0
	for id, payloads := range stream(c, t0, 48*time.Hour, 5*time.Minute) {
		ref := refs[id]
		var prevBoot, prevSeq int64 = -1, -1
		for _, p := range payloads {
			m, err := telemetry.Decode(ref.TelemetryTopic(), []byte(p), now)
			if err != nil {
				t.Fatalf("%s: %s: %v", id, p, err)
			}
			if m.Boot == prevBoot && m.Seq != prevSeq+1 {
				t.Fatalf("%s: seq %d after %d in boot %d", id, m.Seq, prevSeq, m.Boot)
			}
			if m.Boot != prevBoot && m.Seq != 0 {
				t.Fatalf("%s: boot %d starts at seq %d", id, m.Boot, m.Seq)
			}
			prevBoot, prevSeq = m.Boot, m.Seq
			n++
		}
	}
	if _, err := telemetry.Decode(c.Devices()[0].StatusTopic(), []byte(WillPayload), now); err != nil {
		t.Fatalf("will: %v", err)
	}
	if _, err := telemetry.Decode(c.Devices()[0].StatusTopic(), AppendStatus(nil, now.UnixMilli()), now); err != nil {
		t.Fatalf("status: %v", err)
	}
	if n < 30*3*500 {
		t.Fatalf("only %d payloads", n)
	}
}

func TestMalformedHaveTheirReason(t *testing.T) {
	c := mustCity(t, Config{Seed: 3, Outlets: 4, Bins: 1})
	now := t0
	r := rand.New(rand.NewPCG(1, 2))
	for _, ref := range c.Devices() {
		d := c.NewDevice(ref)
		seen := map[telemetry.Reason]bool{}
		for i := range 200 {
			d.Advance(t0.Add(time.Duration(i) * time.Minute))
			p, want := d.AppendMalformed(nil, now.UnixMilli(), r)
			_, err := telemetry.Decode(ref.TelemetryTopic(), p, now)
			if got := telemetry.ReasonOf(err); got != want {
				t.Fatalf("%s: %s: reason %q (%v), want %q", ref.ID, p, got, err, want)
			}
			seen[want] = true
		}
		want := 2
		if ref.Kind == telemetry.KindCounter {
			want = 3
		}
		if len(seen) != want {
			t.Errorf("%s: reasons %v, want %d kinds", ref.ID, seen, want)
		}
	}
}

func TestSameSeedSameCityAndData(t *testing.T) {
	registry := func(seed int64) string {
		var b bytes.Buffer
		if err := mustCity(t, Config{Seed: seed, Outlets: 200, Bins: 2}).WriteRegistry(&b, time.Time{}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if a, b := registry(42), registry(42); a != b {
		t.Fatal("same seed, different registry")
	}
	if a, b := registry(42), registry(43); a == b {
		t.Fatal("different seeds, same registry")
	}
	data := func(seed int64) map[string][]string {
		return stream(mustCity(t, Config{Seed: seed, Outlets: 20, Bins: 2}), t0, 24*time.Hour, 5*time.Minute)
	}
	a, b, other := data(42), data(42), data(43)
	for id, pa := range a {
		if !slices.Equal(pa, b[id]) {
			t.Fatalf("%s: same seed, different data", id)
		}
	}
	differ := 0
	for id, pa := range a {
		if !slices.Equal(pa, other[id]) {
			differ++
		}
	}
	if differ < len(a)/2 {
		t.Fatalf("seeds 42 and 43 share data for %d of %d devices", len(a)-differ, len(a))
	}
}

func TestRegistryCSV(t *testing.T) {
	c := mustCity(t, Config{Seed: 1, Outlets: 1300, Bins: 2})
	var b bytes.Buffer
	since := time.Date(2026, 11, 20, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))
	if err := c.WriteRegistry(&b, since); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "id,name,district,address,lat,lon,operator,active,active_since" {
		t.Fatalf("header %q", got)
	}
	for _, rec := range recs[1:] {
		if rec[8] != "2026-11-20T00:00:00Z" {
			t.Fatalf("active_since %q, want the start in UTC", rec[8])
		}
	}
	if len(recs) != 1301 {
		t.Fatalf("%d rows", len(recs)-1)
	}
	districts := map[string]int{}
	ids := map[string]bool{}
	for _, rec := range recs[1:] {
		if !telemetry.ValidID(rec[0]) || ids[rec[0]] {
			t.Fatalf("bad or repeated id %q", rec[0])
		}
		ids[rec[0]] = true
		districts[rec[2]]++
		o := c.Outlet(rec[0])
		if o == nil || o.Lat < WuhanBounds.MinLat || o.Lat > WuhanBounds.MaxLat || o.Lon < WuhanBounds.MinLon || o.Lon > WuhanBounds.MaxLon {
			t.Fatalf("%s: outside Wuhan: %v", rec[0], rec)
		}
		if rec[1] == "" || rec[3] == "" || rec[6] == "" || rec[7] != "true" {
			t.Fatalf("incomplete row %v", rec)
		}
	}
	for _, d := range Wuhan() {
		if districts[d.ID] == 0 {
			t.Errorf("district %s has no outlet", d.ID)
		}
	}
	if len(districts) != 13 {
		t.Errorf("%d districts: %v", len(districts), districts)
	}
}

// TestBelievable checks the city's character: skewed sizes, most outlets
// near the green target and some well below, bins that are emptied and
// sometimes full, batteries and radio in range.
func TestBelievable(t *testing.T) {
	c := mustCity(t, Config{Seed: 5, Outlets: 300, Bins: 2})
	var sizes []float64
	near, below := 0, 0
	for _, o := range c.Outlets {
		sizes = append(sizes, o.ParcelsPerDay)
		switch {
		case o.GreenShare >= 0.85:
			near++
		case o.GreenShare < 0.8:
			below++
		}
	}
	slices.Sort(sizes)
	if median, top := sizes[len(sizes)/2], sizes[len(sizes)*99/100]; top < 4*median {
		t.Errorf("sizes not skewed: median %.0f, 99th percentile %.0f", median, top)
	}
	if near < len(c.Outlets)*6/10 || below < len(c.Outlets)/20 {
		t.Errorf("green shares: %d near the target, %d well below", near, below)
	}

	// A week of 5-minute reports.
	full, emptied, reports := 0, 0, 0
	neverFull := 0
	var parcels, green int64
	now := t0.Add(7 * 24 * time.Hour)
	for _, ref := range c.Devices() {
		d := c.NewDevice(ref)
		binFull := false
		for at := t0; at.Before(now); at = at.Add(5 * time.Minute) {
			d.Advance(at)
			m, err := telemetry.Decode(ref.TelemetryTopic(), d.AppendTelemetry(nil, at.UnixMilli()), now)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Kind == telemetry.KindBin {
				reports++
				if m.Bin.FillPct >= FullPct {
					full++
				}
				if d.FillPct() >= FullPct {
					binFull = true
				}
				if m.Bin.Emptied {
					emptied++
				}
			}
		}
		if ref.Kind == telemetry.KindBin && !binFull {
			neverFull++
		}
		if ref.Kind == telemetry.KindCounter {
			for cl, v := range d.Parcels() {
				parcels += v
				if telemetry.Class(cl).Green() {
					green += v
				}
			}
		}
	}
	if share := float64(full) / float64(reports); share < 0.01 || share > 0.3 {
		t.Errorf("bins full in %.1f%% of reports, want a few percent", share*100)
	}
	// Some bins (the oversized ones, and bins of quiet outlets) never fill.
	if neverFull < 300*2/20 || neverFull > 300*2*6/10 {
		t.Errorf("%d of %d bins never full in a week", neverFull, 300*2)
	}
	// About one collection per bin per day or more.
	if emptied < 300*2*7*8/10 {
		t.Errorf("only %d collections", emptied)
	}
	if rate := float64(green) / float64(parcels); rate < 0.8 || rate > 0.93 {
		t.Errorf("city green rate %.3f", rate)
	}
}

func TestArrivalCurve(t *testing.T) {
	o := &Outlet{ParcelsPerDay: 1000}
	day := o.Expected(t0, t0.Add(24*time.Hour))
	if day < 999.999 || day > 1000.001 {
		t.Fatalf("a day holds %.3f parcels, want 1000", day)
	}
	night := o.Expected(t0.Add(2*time.Hour), t0.Add(3*time.Hour))
	evening := o.Expected(t0.Add(17*time.Hour), t0.Add(18*time.Hour))
	if evening < 20*night {
		t.Fatalf("evening %.1f, night %.1f: want a daily curve", evening, night)
	}
	// Splitting an interval does not change its total.
	a := o.Expected(t0.Add(90*time.Minute), t0.Add(200*time.Minute))
	b := o.Expected(t0.Add(90*time.Minute), t0.Add(133*time.Minute)) + o.Expected(t0.Add(133*time.Minute), t0.Add(200*time.Minute))
	if d := a - b; d > 1e-9 || d < -1e-9 {
		t.Fatalf("%v != %v", a, b)
	}
}

// TestSensorNoise checks what a bin's sensor reads against the true level:
// unbiased, with the documented noise and a rare glitch, always 0..100,
// and the same reading for the same device and (virtual) time.
func TestSensorNoise(t *testing.T) {
	c := mustCity(t, Config{Seed: 11, Outlets: 40, Bins: 2})
	var n, glitches int
	var sum, sum2 float64
	for _, ref := range c.Devices() {
		if ref.Kind != telemetry.KindBin {
			continue
		}
		d := c.NewDevice(ref)
		for at := t0; at.Before(t0.Add(3 * 24 * time.Hour)); at = at.Add(5 * time.Minute) {
			d.Advance(at)
			r := d.ReadingPct()
			if r < 0 || r > 100 {
				t.Fatalf("%s: reading %v", ref.ID, r)
			}
			if r != d.ReadingPct() {
				t.Fatalf("%s: two readings at one time differ", ref.ID)
			}
			truth := d.FillPct()
			if truth < 5 || truth > 95 {
				continue // clamped near the ends
			}
			e := r - truth
			if math.Abs(e) > 5*sensorSigma {
				glitches++
				continue
			}
			n++
			sum += e
			sum2 += e * e
		}
	}
	mean := sum / float64(n)
	sd := math.Sqrt(sum2/float64(n) - mean*mean)
	if math.Abs(mean) > 0.05 || math.Abs(sd-sensorSigma) > 0.1 {
		t.Errorf("sensor error: mean %.3f, σ %.3f over %d readings; want 0 and %.1f", mean, sd, n, sensorSigma)
	}
	// Glitches are one reading in sensorGlitchEvery, and most move it
	// more than 5 σ.
	share := float64(glitches) / float64(n+glitches)
	if share < 0.3/sensorGlitchEvery || share > 1.5/sensorGlitchEvery {
		t.Errorf("glitches in %.4f of readings, want about %.4f", share, 1.0/sensorGlitchEvery)
	}
}

// TestDaysDiffer checks the day-to-day factor: busier and quieter days
// around a mean of about 1, weekends by the outlet's weekend factor, and a
// day of Expected equal to the mean volume times that day's factor.
func TestDaysDiffer(t *testing.T) {
	c := mustCity(t, Config{Seed: 12, Outlets: 50, Bins: 2})
	var logs []float64
	for _, o := range c.Outlets {
		if o.DayVar < 0.1 || o.DayVar > 0.2 || o.WeekendFactor < 0.6 || o.WeekendFactor > 1.3 {
			t.Fatalf("%s: day variation %.3f, weekend factor %.3f", o.ID, o.DayVar, o.WeekendFactor)
		}
		for d := range 140 {
			day := time.Date(2026, 1, 1, 0, 0, 0, 0, Local).AddDate(0, 0, d)
			f := o.DayFactor(day.Add(13 * time.Hour))
			if got, want := o.Expected(day, day.Add(24*time.Hour)), o.ParcelsPerDay*f; math.Abs(got-want) > 1e-6*want {
				t.Fatalf("%s %s: a day holds %.3f parcels, want %.3f", o.ID, day.Format("2006-01-02"), got, want)
			}
			if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
				f /= o.WeekendFactor
			}
			logs = append(logs, math.Log(f))
		}
	}
	var sum, sum2 float64
	for _, l := range logs {
		sum += l
		sum2 += l * l
	}
	mean, sd := sum/float64(len(logs)), math.Sqrt(sum2/float64(len(logs))-(sum/float64(len(logs)))*(sum/float64(len(logs))))
	if math.Abs(mean+0.011) > 0.02 || sd < 0.08 || sd > 0.2 {
		t.Errorf("log day factor: mean %.3f, σ %.3f", mean, sd)
	}
}
