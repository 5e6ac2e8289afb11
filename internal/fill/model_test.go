package fill

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// day0 is a UTC midnight; synthetic bins start there.
var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

const step = 5 * 60_000 // ms between reports

// synthBin is a bin with a known curve: it gains rate[h] points an hour at
// UTC hour h, is emptied at emptyHour every day, and its sensor reads with
// normal noise of sigma and a glitch every glitchEvery readings.
type synthBin struct {
	rate        [24]float64
	emptyHour   int // -1: never
	sigma       float64
	glitchEvery int
	seed        uint64
}

// reports returns n days of 5-minute reports from day0 and the true level
// at each.
func (b synthBin) reports(days int) ([]Report, []float64) {
	r := rand.New(rand.NewPCG(b.seed, 7))
	var rs []Report
	var truth []float64
	level := 5.0
	for i := range days * 24 * 12 {
		t := day0 + int64(i)*step
		h := hourOf(t)
		if b.emptyHour >= 0 && h == b.emptyHour && mod(t, hourMs) == 0 {
			level = 0
		}
		// The rise of the interval ending at t, at the rate of its middle.
		level = math.Min(100, level+b.rate[hourOf(t-step/2)]/12)
		v := level + b.sigma*r.NormFloat64()
		if b.glitchEvery > 0 && i%b.glitchEvery == b.glitchEvery/2 {
			v += 30
		}
		rs = append(rs, Report{T: t, Pct: math.Max(0, math.Min(100, v))})
		truth = append(truth, level)
	}
	return rs, truth
}

// busyDay is a curve like a parcel outlet's: quiet at night, busy by day.
func busyDay(scale float64) [24]float64 {
	var c [24]float64
	for h := range c {
		switch {
		case h >= 1 && h < 13:
			c[h] = 4 * scale
		case h >= 13 && h < 16:
			c[h] = 1 * scale
		default:
			c[h] = 0.2 * scale
		}
	}
	return c
}

func TestLearnRecoversTheCurve(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  synthBin
	}{
		{"clean", synthBin{rate: busyDay(1), emptyHour: 0}},
		{"noisy, glitches, emptied at 18", synthBin{rate: busyDay(1), emptyHour: 18, sigma: 0.8, glitchEvery: 150, seed: 3}},
		{"never emptied (saturates)", synthBin{rate: busyDay(0.2), emptyHour: -1, sigma: 0.5, seed: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := tc.bin.reports(9)
			end := day0 + 8*dayMs + 10*hourMs
			p := Learn(rs, end, DefaultOptions())
			if p.Days != 7 {
				t.Errorf("days %d, want 7", p.Days)
			}
			var want [24]float64
			r := tc.bin.rate
			for h := range want {
				want[h] = 0.25*r[(h+23)%24] + 0.5*r[h] + 0.25*r[(h+1)%24]
			}
			for h := range want {
				if h == tc.bin.emptyHour {
					// Right after an emptying the readings are clamped
					// at 0, which hides part of the hour's rise.
					continue
				}
				// Each day's hour carries the noise of two readings
				// (the others cancel): σ√2/√7 over a week, less after
				// the smoothing.
				if d := math.Abs(p.Rate[h] - want[h]); d > 0.1+0.05*want[h]+0.6*tc.bin.sigma {
					t.Errorf("hour %d: rate %.3f, want %.3f", h, p.Rate[h], want[h])
				}
			}
			if tc.bin.sigma > 0 && math.Abs(p.Noise-tc.bin.sigma) > 0.25*tc.bin.sigma {
				t.Errorf("noise %.3f, want about %.3f", p.Noise, tc.bin.sigma)
			}
		})
	}
}

func TestLearnUsesOnlyWholeDaysBefore(t *testing.T) {
	b := synthBin{rate: busyDay(1), emptyHour: 0, sigma: 0.5, seed: 5}
	rs, _ := b.reports(10)
	end := day0 + 8*dayMs + 13*hourMs
	p := Learn(rs, end, DefaultOptions())
	// Reports from the day of end on, and before the week, change nothing.
	cut := slices.Clone(rs)
	for i := range cut {
		if cut[i].T >= DayStart(end) || cut[i].T < DefaultOptions().ProfileStart(end) {
			cut[i].Pct = 100 - cut[i].Pct
		}
	}
	if q := Learn(cut, end, DefaultOptions()); q != p {
		t.Errorf("reports outside the history changed the curve:\n%+v\n%+v", p, q)
	}
}

// predictAt learns the curve for at and predicts, as the index does.
func predictAt(rs []Report, at int64, ahead time.Duration) Prediction {
	o := DefaultOptions()
	p := Learn(rs, at, o)
	return Predict(&p, rs, at, ahead, o)
}

func TestPredictFilling(t *testing.T) {
	b := synthBin{rate: busyDay(2), emptyHour: 0, sigma: 0.8, seed: 9}
	rs, truth := b.reports(9)
	// Day 8: emptied at midnight, 8 points an hour from 01:00, full soon
	// after noon.
	for _, hour := range []int64{3, 5, 8, 10} {
		at := day0 + 8*dayMs + hour*hourMs + 2*60_000
		pr := predictAt(rs, at, 24*time.Hour)
		// When the truth crosses 90.
		i, _ := slices.BinarySearchFunc(rs, at+1, cmpT)
		var want int64
		for ; i < len(rs); i++ {
			if truth[i] >= 90 {
				want = rs[i].T
				break
			}
		}
		if want == 0 {
			t.Fatalf("%02d:00: the synthetic bin never fills", hour)
		}
		if pr.State != Filling {
			t.Fatalf("%02d:00: state %s, want filling (%+v)", hour, pr.State, pr)
		}
		if d := time.Duration(pr.FullAt-want) * time.Millisecond; d.Abs() > 20*time.Minute {
			t.Errorf("%02d:00: full_at off by %v (%s, truth %s)", hour, d, time.UnixMilli(pr.FullAt).UTC(), time.UnixMilli(want).UTC())
		}
		if math.Abs(pr.Rate-8) > 1.5 {
			t.Errorf("%02d:00: rate %.2f, want about 8", hour, pr.Rate)
		}
		if pr.FullAt <= at || pr.ReportedAt > at {
			t.Errorf("%02d:00: full_at %d / reported_at %d against at %d", hour, pr.FullAt, pr.ReportedAt, at)
		}
	}
}

func TestPredictUsesNothingAfterAt(t *testing.T) {
	b := synthBin{rate: busyDay(1), emptyHour: 0, sigma: 0.8, glitchEvery: 97, seed: 11}
	rs, _ := b.reports(9)
	r := rand.New(rand.NewPCG(1, 1))
	for range 50 {
		at := day0 + 8*dayMs + r.Int64N(dayMs)
		want := predictAt(rs, at, 24*time.Hour)
		// Scramble everything after at.
		scr := slices.Clone(rs)
		for i := range scr {
			if scr[i].T > at {
				scr[i].Pct = 100 * r.Float64()
			}
		}
		if got := predictAt(scr, at, 24*time.Hour); got != want {
			t.Fatalf("at %d: reports after at changed the prediction:\n%+v\n%+v", at, want, got)
		}
	}
}

func TestEmptyingStartsANewCycle(t *testing.T) {
	// A bin that rises by day and is emptied at 06:00: just after the
	// emptying, its level is the emptied one, not the morning's.
	b := synthBin{rate: busyDay(1), emptyHour: 6, sigma: 0.5, seed: 13}
	rs, truth := b.reports(9)
	at := day0 + 8*dayMs + 6*hourMs + 20*60_000
	pr := predictAt(rs, at, 48*time.Hour)
	i, _ := slices.BinarySearchFunc(rs, at+1, cmpT)
	if pr.FillPct > 5 || truth[i-1] > 5 {
		t.Fatalf("setup: fill %.1f after the emptying", pr.FillPct)
	}
	// From about 2 points, at 4 points an hour until 13:00, then slower:
	// not full within 4 hours, whatever the morning's level was.
	if pr.State == Filling && pr.FullAt-at < 4*hourMs {
		t.Errorf("after an emptying the bin is due in %v", time.Duration(pr.FullAt-at)*time.Millisecond)
	}
	// The pace is measured over the new cycle alone: a cycle reaching back
	// over the emptying would see the level fall and call the day slow.
	at = day0 + 8*dayMs + 11*hourMs
	if pr := predictAt(rs, at, 48*time.Hour); math.Abs(pr.Pace-1) > 0.3 {
		t.Errorf("at 11:00 the pace is %.2f, want about 1", pr.Pace)
	}
}

func TestAGlitchIsNotAnEmptying(t *testing.T) {
	b := synthBin{rate: busyDay(2), emptyHour: 0, sigma: 0.5, seed: 17}
	rs, _ := b.reports(9)
	at := day0 + 8*dayMs + 9*hourMs + 1*60_000
	want := predictAt(rs, at, 24*time.Hour)
	// One reading, an hour before at, reads 40 points low; another, half
	// an hour before, 30 points high.
	g := slices.Clone(rs)
	i, _ := slices.BinarySearchFunc(g, at-hourMs, cmpT)
	g[i].Pct = math.Max(0, g[i].Pct-40)
	j, _ := slices.BinarySearchFunc(g, at-hourMs/2, cmpT)
	g[j].Pct = math.Min(100, g[j].Pct+30)
	got := predictAt(g, at, 24*time.Hour)
	if got.State != Filling || want.State != Filling {
		t.Fatalf("states %s and %s, want filling", want.State, got.State)
	}
	if d := time.Duration(got.FullAt-want.FullAt) * time.Millisecond; d.Abs() > 5*time.Minute {
		t.Errorf("two glitches moved full_at by %v", d)
	}
}

func TestABinThatDoesNotFill(t *testing.T) {
	b := synthBin{emptyHour: -1, sigma: 0.8, seed: 19} // rate 0 everywhere
	rs, _ := b.reports(9)
	at := day0 + 8*dayMs + 12*hourMs
	pr := predictAt(rs, at, 168*time.Hour)
	if pr.State != Quiet {
		t.Errorf("a bin that does not fill: %+v", pr)
	}
}

func TestFullSince(t *testing.T) {
	at := day0 + 10*hourMs
	rs := []Report{{at - 40*60_000, 85}, {at - 35*60_000, 88}, {at - 30*60_000, 91}, {at - 25*60_000, 89.5},
		{at - 20*60_000, 92}, {at - 15*60_000, 93}, {at - 10*60_000, 60} /* glitch */, {at - 5*60_000, 95}}
	pr := Predict(nil, rs, at, 2*time.Hour, DefaultOptions())
	if pr.State != Full || pr.FullAt != at-20*60_000 || pr.Confidence != High {
		t.Errorf("full since: %+v, want full since %d, high", pr, at-20*60_000)
	}
	// The last reading alone above: a glitch perhaps.
	rs2 := []Report{{at - 15*60_000, 60}, {at - 10*60_000, 61}, {at - 5*60_000, 95}}
	if pr := Predict(nil, rs2, at, 2*time.Hour, DefaultOptions()); pr.State != Full || pr.FullAt != at-5*60_000 || pr.Confidence != Medium {
		t.Errorf("one full reading: %+v", pr)
	}
}

func TestStaleAndUnknown(t *testing.T) {
	o := DefaultOptions()
	at := day0 + 8*dayMs + 10*hourMs
	for _, tc := range []struct {
		name    string
		rs      []Report
		state   State
		lastPct float64
	}{
		{"last report 16 minutes old", []Report{{at - 30*60_000, 40}, {at - 16*60_000, 41}}, Stale, 41},
		{"last report 15 minutes old (the limit is fresh)", []Report{{at - 20*60_000, 40}, {at - 15*60_000, 41}}, Quiet, 41},
		{"silent for three days, heard within the week", []Report{{at - 3*dayMs, 33}}, Stale, 33},
		{"silent since before the week", []Report{{o.ProfileStart(at) - 1, 33}}, Quiet, 0},
		{"no report", nil, Quiet, 0},
		{"only reports after at", []Report{{at + 1, 50}}, Quiet, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := Predict(nil, tc.rs, at, 2*time.Hour, o)
			if pr.State != tc.state || pr.FillPct != tc.lastPct {
				t.Errorf("%+v, want %s with fill %.0f", pr, tc.state, tc.lastPct)
			}
			if pr.State == Stale && (pr.FullAt != 0 || pr.Confidence != Low) {
				t.Errorf("a stale bin has a full time or more than low confidence: %+v", pr)
			}
		})
	}
}

func TestWithoutHistoryTheSlopeStandsIn(t *testing.T) {
	at := day0 + 10*hourMs
	var rs []Report
	for i := range 24 {
		rs = append(rs, Report{T: at - int64(24-i)*step, Pct: 50 + float64(i)*0.5}) // 6 points an hour
	}
	pr := Predict(nil, rs, at, 24*time.Hour, DefaultOptions())
	if pr.State != Filling || pr.Confidence != Low {
		t.Fatalf("%+v", pr)
	}
	// From 61.5 at 6 points an hour: 4 h 45 min to 90.
	want := rs[len(rs)-1].T + int64(28.5/6*float64(hourMs))
	if d := time.Duration(pr.FullAt-want) * time.Millisecond; d.Abs() > 10*time.Minute {
		t.Errorf("full_at off by %v", d)
	}
}

func TestConfidenceGrades(t *testing.T) {
	p := &Profile{Days: 7, Hours: 160}
	for _, tc := range []struct {
		pace, spread float64
		fallback     bool
		days         int
		want         Confidence
	}{
		{1, 0.3, false, 7, High},
		{1, 0.6, false, 7, Medium},
		{1.6, 0.3, false, 7, Medium},
		{1, 0.3, false, 4, Medium},
		{1, 2, false, 7, Low},
		{0.4, 0.3, false, 7, Low},
		{1, 0.3, true, 7, Low},
		{1, 0.3, false, 1, Low},
	} {
		p.Days = tc.days
		if got := grade(p, tc.fallback, tc.pace, tc.spread); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
}

// TestDueAtOnceHasASpread: a bin whose last reading is just below full
// but whose level, projected to now, is above it is due at once; its
// spread is the sensor's noise over the rate (the rise still needed is
// none), not the square root of a negative variance.
func TestDueAtOnceHasASpread(t *testing.T) {
	p := Profile{Hours: 200, Days: 7, Noise: 0.2, Step: 2}
	for h := range p.Rate {
		p.Rate[h] = 8
	}
	var rs []Report
	last := day0 + 8*dayMs + 12*hourMs
	for i := 60; i >= 0; i-- {
		rs = append(rs, Report{T: last - int64(i)*step, Pct: 89.9 - float64(i)*8.0/12})
	}
	at := last + 4*60_000
	pr := Predict(&p, rs, at, 2*time.Hour, DefaultOptions())
	if pr.State != Filling || pr.FullAt != at+1000 {
		t.Fatalf("want filling, due at once: %+v", pr)
	}
	if want := 0.2 / 8; math.Abs(pr.Spread-want) > 1e-9 || pr.Confidence != High {
		t.Fatalf("spread %v confidence %s, want %v and high", pr.Spread, pr.Confidence, want)
	}
}

// FuzzPredict holds the model's promises on any reports: no panic, a
// filling bin's full time within (at, at+ahead], a full bin's at or before
// at, nothing depends on reports after at.
func FuzzPredict(f *testing.F) {
	f.Add([]byte{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, uint16(5), uint8(2))
	f.Add([]byte{90, 91, 0, 1, 2, 200, 3, 4}, uint16(60), uint8(24))
	f.Fuzz(func(t *testing.T, b []byte, gapMin uint16, aheadH uint8) {
		o := DefaultOptions()
		at := day0 + 8*dayMs + 12*hourMs
		gap := int64(gapMin%600+1) * 60_000
		var rs []Report
		for i, v := range b {
			rs = append(rs, Report{T: at - int64(len(b)-1-i)*gap, Pct: float64(v) / 2})
		}
		ahead := time.Duration(aheadH%168+1) * time.Hour
		p := Learn(rs, at, o)
		pr := Predict(&p, rs, at, ahead, o)
		switch pr.State {
		case Filling:
			if pr.FullAt <= at || pr.FullAt > at+ahead.Milliseconds() {
				t.Fatalf("filling with full_at %d outside (%d, %d]", pr.FullAt, at, at+ahead.Milliseconds())
			}
		case Full:
			if pr.FullAt > at || pr.FullAt == 0 {
				t.Fatalf("full since %d, at %d", pr.FullAt, at)
			}
		case Stale, Quiet:
			if pr.FullAt != 0 {
				t.Fatalf("%s with full_at", pr.State)
			}
		default:
			t.Fatalf("state %q", pr.State)
		}
		if math.IsNaN(pr.Rate) || math.IsInf(pr.Rate, 0) || pr.Rate < 0 {
			t.Fatalf("rate %v", pr.Rate)
		}
		if math.IsNaN(pr.Spread) || pr.Spread < 0 {
			t.Fatalf("spread %v", pr.Spread)
		}
		later := append(slices.Clone(rs), Report{T: at + 1, Pct: 99}, Report{T: at + gap, Pct: 0})
		if q := Predict(&p, later, at, ahead, o); q != pr {
			t.Fatalf("a report after at changed the prediction")
		}
	})
}
