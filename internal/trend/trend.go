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
