package trend

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestTheilSenRecoversALine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var ps []Point
	for d := range 30 {
		ps = append(ps, Point{float64(d), 0.80 + 0.003*float64(d) + 0.004*r.NormFloat64()})
	}
	// Three wild days: a holiday, an outage, a broken counter.
	ps[5].Y, ps[17].Y, ps[23].Y = 0.3, 1.0, 0.1
	f, ok := TheilSen(ps)
	if !ok {
		t.Fatal("no fit")
	}
	if math.Abs(f.Slope-0.003) > 0.0006 || math.Abs(f.Intercept-0.80) > 0.01 {
		t.Errorf("fit %+v, want slope 0.003, intercept 0.80", f)
	}
	if !(f.SlopeLow < f.Slope && f.Slope < f.SlopeHigh) || f.SlopeLow > 0.003 || f.SlopeHigh < 0.003 {
		t.Errorf("interval [%.5f, %.5f] around %.5f does not hold the true 0.003", f.SlopeLow, f.SlopeHigh, f.Slope)
	}
	// Least squares on the same points is pulled far off by the wild days.
	var sx, sy, sxx, sxy float64
	for _, p := range ps {
		sx, sy, sxx, sxy = sx+p.X, sy+p.Y, sxx+p.X*p.X, sxy+p.X*p.Y
	}
	n := float64(len(ps))
	ls := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	if math.Abs(ls-0.003) < 2*math.Abs(f.Slope-0.003) {
		t.Errorf("least squares %.5f is as good as Theil–Sen %.5f: the wild days test nothing", ls, f.Slope)
	}
}

// TestIntervalCoverage checks that the 95 % interval holds the true slope
// about 95 % of the time on noisy lines.
func TestIntervalCoverage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	hold, runs := 0, 400
	for range runs {
		var ps []Point
		for d := range 30 {
			ps = append(ps, Point{float64(d), 0.5 + 0.002*float64(d) + 0.01*r.NormFloat64()})
		}
		f, _ := TheilSen(ps)
		if f.SlopeLow <= 0.002 && 0.002 <= f.SlopeHigh {
			hold++
		}
	}
	if share := float64(hold) / float64(runs); share < 0.91 || share > 0.99 {
		t.Errorf("the interval held the true slope in %.1f %% of runs, want about 95 %%", 100*share)
	}
}

func TestTooFewPoints(t *testing.T) {
	if _, ok := TheilSen([]Point{{0, 1}, {1, 2}, {2, 3}, {3, 4}}); ok {
		t.Error("a fit from 4 points")
	}
	if _, ok := TheilSen([]Point{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}}); ok {
		t.Error("a fit from one x")
	}
}

func TestReach(t *testing.T) {
	for _, tc := range []struct {
		y0, slope, target, horizon, days float64
		ok                               bool
	}{
		{0.8, 0.002, 0.9, 365, 50, true},
		{0.95, -0.1, 0.9, 365, 0, true}, // already there
		{0.8, 0, 0.9, 365, 0, false},
		{0.8, -0.001, 0.9, 365, 0, false},
		{0.5, 0.001, 0.9, 365, 400, false}, // beyond the horizon
	} {
		d, ok := Reach(tc.y0, tc.slope, tc.target, tc.horizon)
		if ok != tc.ok || (ok && math.Abs(d-tc.days) > 1e-9) {
			t.Errorf("%+v: %v %v", tc, d, ok)
		}
	}
}

func TestProject(t *testing.T) {
	line := func(a, b float64, n int) []Point {
		var ps []Point
		for i := range n {
			ps = append(ps, Point{float64(i) + 0.5, a + b*(float64(i)+0.5)})
		}
		return ps
	}
	f := func(v float64) *float64 { return &v }
	// 0.80 + 0.002 a day, now at day 30: 0.86, the target 0.90 twenty days on.
	p := Project(line(0.8, 0.002, 30), 30, f(0.859), 0.9, 365)
	if !p.Fitted || math.Abs(p.FittedNow-0.86) > 1e-9 || p.Days == nil || math.Abs(*p.Days-20) > 1e-6 || *p.Earliest > *p.Days || *p.Latest < *p.Days {
		t.Errorf("rising: %+v", p)
	}
	if p := Project(line(0.95, 0, 30), 30, f(0.95), 0.9, 365); p.Days == nil || *p.Days != 0 || *p.Earliest != 0 || *p.Latest != 0 {
		t.Errorf("already there: %+v", p)
	}
	if p := Project(line(0.8, 0, 30), 30, f(0.8), 0.9, 365); p.Days != nil || p.Earliest != nil || !p.Fitted {
		t.Errorf("flat: %+v", p)
	}
	if p := Project(line(0.5, 0.001, 30), 30, f(0.53), 0.9, 365); p.Days != nil {
		t.Errorf("370 days away is beyond a year: %+v", p)
	}
	if p := Project(line(0.8, 0.01, 3), 3, f(0.83), 0.9, 365); p.Fitted || p.Days != nil {
		t.Errorf("three days: %+v", p)
	}
}
