// Package trend fits a robust straight line to daily values and projects
// when it reaches a target: the trajectory of a district's figures
// (GET /v1/trajectory, ops-v1).
//
// The fit is Theil–Sen: the slope is the median of the slopes between all
// pairs of days, the intercept the median of what is left. A few odd days
// (a holiday, an outage, a counter that was down) move it little: up to
// 29 % of the days can be wild before the slope follows them, where one
// wild day can turn a least-squares line. Its 95 % interval is Sen's,
// from the ranks of the pairwise slopes.
package trend

import (
	"math"
	"slices"
)

// Point is one value at x (days).
type Point struct{ X, Y float64 }

// Fit is a line y = Intercept + Slope·x with the 95 % interval of its slope.
type Fit struct {
	Slope, Intercept    float64
	SlopeLow, SlopeHigh float64
	N                   int // points behind it
}

// MinPoints is the fewest points a fit is made from.
const MinPoints = 5

// TheilSen fits ps (at least MinPoints with two different x); ok is false
// when there are too few.
func TheilSen(ps []Point) (f Fit, ok bool) {
	n := len(ps)
	if n < MinPoints {
		return f, false
	}
	slopes := make([]float64, 0, n*(n-1)/2)
	for i := range ps {
		for j := i + 1; j < n; j++ {
			if dx := ps[j].X - ps[i].X; dx != 0 {
				slopes = append(slopes, (ps[j].Y-ps[i].Y)/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return f, false
	}
	slices.Sort(slopes)
	f.N = n
	f.Slope = median(slopes)
	rest := make([]float64, n)
	for i, p := range ps {
		rest[i] = p.Y - f.Slope*p.X
	}
	slices.Sort(rest)
	f.Intercept = median(rest)
	// Sen (1968): with N pairwise slopes and the variance of Kendall's S
	// (no ties), the interval runs from the slope ranked (N − C)/2 to the
	// one ranked (N + C)/2 + 1, C = 1.96·√var.
	nf := float64(n)
	c := 1.96 * math.Sqrt(nf*(nf-1)*(2*nf+5)/18)
	m := float64(len(slopes))
	lo := int(math.Floor((m - c) / 2))
	hi := int(math.Ceil((m+c)/2)) + 1
	f.SlopeLow = slopes[clamp(lo-1, 0, len(slopes)-1)]
	f.SlopeHigh = slopes[clamp(hi-1, 0, len(slopes)-1)]
	return f, true
}

// At is the line's value at x.
func (f Fit) At(x float64) float64 { return f.Intercept + f.Slope*x }

// Reach returns how many days after x0 a line through (x0, y0) with slope
// reaches target (0 when y0 already does), and false when it does not get
// there within horizon days (or goes the other way).
func Reach(y0, slope, target, horizon float64) (float64, bool) {
	if y0 >= target {
		return 0, true
	}
	if slope <= 0 {
		return 0, false
	}
	d := (target - y0) / slope
	return d, d <= horizon
}

func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func clamp(v, lo, hi int) int { return max(lo, min(hi, v)) }

// Projection is what a fit says about a target: when it is reached, in days
// from now (0: the current value meets it already), and the same with the
// interval's steeper and shallower slopes. A nil day is "not within the
// horizon" (or never: a flat or falling trend).
type Projection struct {
	Fit       Fit
	Fitted    bool    // false: too few points for a trend
	FittedNow float64 // the line's value now
	Days      *float64
	Earliest  *float64 // with the steeper slope of the interval
	Latest    *float64 // with the shallower one
}

// Project fits ps and projects from now (xNow, in the points' days) to the
// target: from the line's value now, not from the last point, so one odd
// day moves the date little. A current value (the last point's, nil when
// none) that meets the target already gives 0 days.
func Project(ps []Point, xNow float64, current *float64, target, horizon float64) Projection {
	var p Projection
	p.Fit, p.Fitted = TheilSen(ps)
	if p.Fitted {
		p.FittedNow = p.Fit.At(xNow)
	}
	zero := 0.0
	switch {
	case current != nil && *current >= target:
		p.Days, p.Earliest, p.Latest = &zero, &zero, &zero
	case p.Fitted:
		// The range turns the line about the middle of the points, where
		// the fit knows the level best, to the interval's slopes: far from
		// the middle (now is at the end) the level is as uncertain as the
		// slope makes it.
		mid := (ps[0].X + ps[len(ps)-1].X) / 2
		reach := func(slope float64) *float64 {
			y0 := p.Fit.At(mid) + slope*(xNow-mid)
			if d, ok := Reach(y0, slope, target, horizon); ok {
				return &d
			}
			return nil
		}
		p.Days, p.Earliest, p.Latest = reach(p.Fit.Slope), reach(p.Fit.SlopeHigh), reach(p.Fit.SlopeLow)
	}
	return p
}
