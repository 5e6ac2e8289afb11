package fill

import (
	"math"
	"slices"
	"time"
)

// Report is one fill reading of a bin.
type Report struct {
	T   int64   // ms since the epoch
	Pct float64 // fill_pct
}

// Options tune the model. Zero fields take the defaults (DefaultOptions).
type Options struct {
	FullPct     float64       // a report at or above this is full (metrics-v1's full_pct)
	Staleness   time.Duration // no report within this before at: the bin is stale
	ProfileDays int           // whole days before the day of at that the daily curve is learned from
	Cycle       time.Duration // how far back before at the current cycle is looked for
}

// DefaultOptions are metrics-v1's full_pct and staleness, a week of history
// and two days of cycle.
func DefaultOptions() Options {
	return Options{FullPct: 90, Staleness: 15 * time.Minute, ProfileDays: 7, Cycle: 48 * time.Hour}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.FullPct <= 0 {
		o.FullPct = d.FullPct
	}
	if o.Staleness <= 0 {
		o.Staleness = d.Staleness
	}
	if o.ProfileDays <= 0 {
		o.ProfileDays = d.ProfileDays
	}
	if o.Cycle <= 0 {
		o.Cycle = d.Cycle
	}
	return o
}

// Constants of the model, chosen on the simulated city's backtest
// (docs/collections.md) and kept conservative.
const (
	hourMs = int64(time.Hour / time.Millisecond)
	dayMs  = 24 * hourMs

	// maxGap is the longest interval between two reports whose change is
	// taken as fill; longer gaps (an outage) say nothing about the hours
	// inside them.
	maxGap = hourMs
	// dropMin is the smallest fall in points that is an emptying when the
	// next readings confirm it; smaller falls are sensor noise.
	dropMin = 8.0
	// glitchMin is how far (points) one reading must jump from both
	// neighbours, which agree with each other, to be a sensor glitch.
	glitchMin = 8.0
	// saturated: a bin this full takes no more deposits, so its change says
	// nothing about its fill rate.
	saturated = 98.0
	// levelWindow bounds the readings whose median is the current level.
	levelWindow  = hourMs
	levelReports = 7
	// prior is the weight, in points of expected rise, of the learned day
	// against the current cycle when the cycle's pace is measured: a
	// cycle that should have risen by prior points counts as much as the
	// history.
	prior = 10.0
	// minProfileHours: below this many hours of usable intervals the
	// history is not a curve, and the cycle's own slope is used instead.
	minProfileHours = 12.0
	// paceError is how well a day's pace is known (relative σ).
	paceError = 0.15
)

// Profile is a bin's daily fill curve: the points it gains per hour at each
// hour of the day (UTC hours; in a time zone without daylight saving the
// shift to local hours changes nothing), learned by Learn.
type Profile struct {
	Rate  [24]float64 // points per hour, by hour of the day
	Hours float64     // hours of usable intervals behind the curve
	Days  int         // days with at least one usable interval
	Noise float64     // the level sensor's noise (σ, points)
	Step  float64     // points one deposit adds, on average
}

// Usable reports whether there is enough history for a curve.
func (p *Profile) Usable() bool { return p != nil && p.Hours >= minProfileHours }

// DayRise is the rise the curve expects over a whole day.
func (p *Profile) DayRise() float64 {
	var s float64
	for _, r := range p.Rate {
		s += r
	}
	return s
}

// ProfileStart is where the history of the profile used at `at` starts:
// Learn reads the reports in [ProfileStart, DayStart(at)).
func (o Options) ProfileStart(at int64) int64 {
	o = o.withDefaults()
	return DayStart(at) - int64(o.ProfileDays)*dayMs - maxGap
}

// DayStart is the start of the UTC day of t (ms). The profile changes only
// at day starts, so it can be learned once a day and kept.
func DayStart(t int64) int64 { return t - mod(t, dayMs) }

// Learn learns the daily curve from the reports (sorted by time) in
// [o.ProfileStart(end), DayStart(end)): the change between consecutive
// readings, summed per hour of the day and divided by the time it took.
// Left out: glitches, emptyings (falls of dropMin or more), intervals
// longer than maxGap and intervals that start saturated. Noise cancels in
// the sums (each reading's error enters once with + and once with −).
func Learn(reports []Report, end int64, o Options) Profile {
	o = o.withDefaults()
	to := DayStart(end)
	from := to - int64(o.ProfileDays)*dayMs
	lo, _ := slices.BinarySearchFunc(reports, from-maxGap, cmpT)
	hi, _ := slices.BinarySearchFunc(reports, to, cmpT)
	rs := reports[lo:hi]
	bad := glitches(nil, rs)
	type interval struct {
		h     int
		dt, d float64 // hours, points
	}
	var ivs []interval
	var inc, dur [24]float64
	days := make([]bool, o.ProfileDays)
	var p Profile
	prev := -1
	for i := range rs {
		if bad[i] {
			continue
		}
		if prev >= 0 {
			a, b := rs[prev], rs[i]
			dt := b.T - a.T
			d := b.Pct - a.Pct
			mid := a.T + dt/2
			if dt > 0 && dt <= maxGap && d > -dropMin && a.Pct < saturated && mid >= from {
				iv := interval{h: int(mod(mid, dayMs) / hourMs), dt: float64(dt) / float64(hourMs), d: d}
				ivs = append(ivs, iv)
				inc[iv.h] += d
				dur[iv.h] += iv.dt
				days[(mid-from)/dayMs] = true
			}
		}
		prev = i
	}
	var all, allDur float64
	for h := range inc {
		all += inc[h]
		allDur += dur[h]
	}
	p.Hours = allDur
	for _, d := range days {
		if d {
			p.Days++
		}
	}
	if allDur == 0 {
		return p
	}
	mean := math.Max(0, all/allDur)
	var raw [24]float64
	for h := range raw {
		// An hour seen for less than one hour in all the days borrows the
		// day's mean: a curve is not learned from a few minutes.
		if dur[h] < 1 {
			raw[h] = mean
			continue
		}
		raw[h] = math.Max(0, inc[h]/dur[h])
	}
	// Each hour's rate leans on its neighbours (¼, ½, ¼): a week holds
	// few deposits per hour, and neighbouring hours are alike.
	for h := range p.Rate {
		p.Rate[h] = 0.25*raw[(h+23)%24] + 0.5*raw[h] + 0.25*raw[(h+1)%24]
	}

	// The sensor's noise and the size of one deposit, from the spread of
	// the changes: a change is a Poisson number of deposits of about one
	// size s (variance s × mean) plus two readings' errors.
	res := make([]float64, len(ivs))
	var sq, expSq float64
	for i, iv := range ivs {
		e := raw[iv.h] * iv.dt
		res[i] = iv.d - e
		sq += iv.d * iv.d
		expSq += e * e
	}
	p.Noise = madSigma(res) / math.Sqrt2
	if all > 0 {
		p.Step = math.Max(0, (sq-expSq-float64(len(ivs))*2*p.Noise*p.Noise)/all)
	}
	return p
}

// madSigma is the standard deviation of normal values estimated from their
// median absolute deviation (robust to a few wild ones).
func madSigma(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	m := median(vs)
	ds := make([]float64, len(vs))
	for i, v := range vs {
		ds[i] = math.Abs(v - m)
	}
	return 1.4826 * median(ds)
}

// State is where a bin stands at the time asked about.
type State string

// States of a bin. Quiet bins are not on the collection list.
const (
	Full    State = "full"    // the last report is at or above full_pct
	Filling State = "filling" // predicted to reach full_pct within the look-ahead
	Stale   State = "stale"   // no report within staleness
	Quiet   State = "quiet"   // none of the above
)

// Confidence grades a prediction (docs/collections.md has the rule and what
// each grade was worth on the backtest).
type Confidence string

// Confidence grades.
const (
	High   Confidence = "high"
	Medium Confidence = "medium"
	Low    Confidence = "low"
)

// Prediction is the model's answer for one bin at one time.
type Prediction struct {
	State      State
	FillPct    float64 // the last report's reading
	ReportedAt int64   // its time (ms); 0 when the bin has no report
	Rate       float64 // expected points per hour at the time asked about
	HasRate    bool
	FullAt     int64 // full: when the current run of full reports began; filling: the predicted time; else 0
	Confidence Confidence
	Pace       float64 // the current cycle's pace against the learned day (1: as usual)
	Spread     float64 // filling: the likely error of FullAt (hours, one σ)
}

// Predict judges a bin at `at` (ms) from its curve p (learned by Learn for
// this day; nil when none) and its reports, sorted by time: those in
// [at − o.Cycle, at] and the last one before them (later ones are
// ignored). A bin without a report in the cycle is Stale when it reported
// since o.ProfileStart(at) and Quiet (not listed: nothing known) when not.
// A bin below full_pct whose predicted full time is after at+ahead is
// Quiet. The prediction assumes no collection before the bin fills: the
// list is what to collect.
func Predict(p *Profile, recent []Report, at int64, ahead time.Duration, o Options) Prediction {
	return predict(p, recent, at, ahead, o.withDefaults(), nil)
}

// scratch is memory one caller reuses across bins, so that judging a city
// allocates nothing per bin.
type scratch struct {
	bad  []bool
	good []Report
}

func predict(p *Profile, recent []Report, at int64, ahead time.Duration, o Options, sc *scratch) Prediction {
	if sc == nil {
		sc = &scratch{}
	}
	hi, _ := slices.BinarySearchFunc(recent, at+1, cmpT)
	lo, _ := slices.BinarySearchFunc(recent, at-o.Cycle.Milliseconds(), cmpT)
	lo = min(lo, hi)
	rs := recent[lo:hi]
	if len(rs) == 0 {
		var before *Report
		if lo > 0 {
			before = &recent[lo-1]
		}
		return noCycle(before, at, o)
	}
	f := fitCycle(p, rs, o, sc)
	return f.predict(p, at, ahead, o)
}

// noCycle is the prediction of a bin without a report in the cycle:
// before is the last report before it (nil: none).
func noCycle(before *Report, at int64, o Options) Prediction {
	pr := Prediction{State: Quiet, Confidence: Low}
	if before != nil && before.T >= o.ProfileStart(at) {
		pr.State, pr.FillPct, pr.ReportedAt = Stale, before.Pct, before.T
	}
	return pr
}

// cycleFit is what the model learns from a bin's reports in the cycle
// that does not depend on the time asked about: the same reports give the
// same fit, so a caller may keep it while they do not change (index.go).
type cycleFit struct {
	last     Report // the last report
	c        curve  // the day's curve scaled by the cycle's pace
	fallback bool   // no usable curve: the cycle's slope stands in
	// fullAt and fullConf: when the trailing run of full readings began
	// (fullSince), for a bin whose last report is full.
	fullAt   int64
	fullConf Confidence
	// level: the cycle's last good readings (levelReadings), newest first,
	// that the current level is the median of once projected to `at`.
	level []Report
}

// fitCycle fits the cycle of rs, the bin's reports in [at − o.Cycle, at]
// (at least one).
func fitCycle(p *Profile, rs []Report, o Options, sc *scratch) *cycleFit {
	f := &cycleFit{last: rs[len(rs)-1]}
	sc.bad = glitches(sc.bad, rs)
	bad := sc.bad

	// The cycle: the reports since the last confirmed emptying.
	start := cycleStart(rs, bad)
	cyc, cbad := rs[start:], bad[start:]

	// The curve, scaled by the cycle's pace; without history, the cycle's
	// own robust slope as a flat curve.
	f.c = curve{pace: 1}
	f.fallback = !p.Usable()
	if !f.fallback {
		f.c.rate = p.Rate
		if p.DayRise() <= 0 {
			f.fallback = true
		}
	}
	if f.fallback {
		s := slope(cyc, cbad)
		for h := range f.c.rate {
			f.c.rate[h] = s
		}
	} else {
		f.c.pace = pace(cyc, cbad, &f.c, &sc.good)
	}
	if f.last.Pct >= o.FullPct {
		f.fullAt, f.fullConf = fullSince(rs, bad, o.FullPct)
	}
	f.level = levelReadings(cyc, bad[start:])
	return f
}

// predict answers at `at` from the fit.
func (f *cycleFit) predict(p *Profile, at int64, ahead time.Duration, o Options) Prediction {
	var pr Prediction
	c := f.c
	pr.FillPct, pr.ReportedAt = f.last.Pct, f.last.T
	pr.Pace = c.pace
	pr.Rate, pr.HasRate = c.pace*c.rate[hourOf(at)], true

	switch {
	case at-f.last.T > o.Staleness.Milliseconds():
		pr.State, pr.Confidence = Stale, Low
		return pr
	case f.last.Pct >= o.FullPct:
		pr.State = Full
		pr.FullAt, pr.Confidence = f.fullAt, f.fullConf
		return pr
	}

	level := currentLevel(f.level, f.last, at, &c)
	need := o.FullPct - level
	var t int64
	if need <= 0 {
		// The readings around the last one say it is at the threshold
		// already: due at once.
		t = at + 1000
	} else {
		var ok bool
		t, ok = c.when(at, need, at+ahead.Milliseconds())
		if !ok {
			pr.State, pr.Confidence = Quiet, Low
			return pr
		}
	}
	pr.State, pr.FullAt = Filling, t
	pr.Spread = spread(p, &c, need, t)
	pr.Confidence = grade(p, f.fallback, c.pace, pr.Spread)
	return pr
}

// grade is the confidence rule of a filling bin (docs/collections.md):
//   - low: no usable curve (the cycle's slope stands in), under two days of
//     history, a pace off by half or more, or a spread over 90 minutes;
//   - high: five days of history or more, a pace within a third of the
//     usual day, and a spread of 30 minutes or less;
//   - medium: the rest.
func grade(p *Profile, fallback bool, pace, spread float64) Confidence {
	switch {
	case fallback || p.Days < 2 || pace <= 0.5 || pace >= 2 || spread > 1.5:
		return Low
	case p.Days >= 5 && pace >= 2.0/3 && pace <= 1.5 && spread <= 0.5:
		return High
	}
	return Medium
}

// spread estimates how far off a filling bin's full time is likely to be
// (one σ, hours): the uncertainty of the rise still needed — deposits
// come one item at a time (variance Step × need), the day's pace is known
// to about paceError, the level to about the sensor's noise — divided by
// the rate at the predicted time. A bin predicted to fill just as its
// evening ends (the rate falling to nothing) may as well fill tomorrow.
func spread(p *Profile, c *curve, need float64, t int64) float64 {
	var step, noise float64
	if p.Usable() {
		step, noise = p.Step, p.Noise
	}
	// A bin due at once (its level projected past full) needs no more
	// rise: only the sensor's noise is left (a negative need would make
	// the variance negative and the spread NaN).
	need = math.Max(need, 0)
	v := step*need + paceError*paceError*need*need + noise*noise
	// The rate around t: over the hour after it, so that a crossing just
	// before a quiet hour counts as fragile.
	r := math.Min(c.rate[hourOf(t)], c.rate[hourOf(t+hourMs)]) * c.pace
	return math.Sqrt(v) / math.Max(r, 0.05)
}

// curve is a daily curve scaled by a pace.
type curve struct {
	rate [24]float64
	pace float64
}

// rise is the curve's expected rise over [a, b).
func (c *curve) rise(a, b int64) float64 {
	var s float64
	for a < b {
		end := min(b, a-mod(a, hourMs)+hourMs)
		s += c.rate[hourOf(a)] * float64(end-a) / float64(hourMs)
		a = end
	}
	return s * c.pace
}

// when is the first time after from at which the curve has risen by need,
// if that is at or before limit.
func (c *curve) when(from int64, need float64, limit int64) (int64, bool) {
	a := from
	for a < limit {
		end := min(limit, a-mod(a, hourMs)+hourMs)
		r := c.rate[hourOf(a)] * c.pace
		gain := r * float64(end-a) / float64(hourMs)
		if r > 0 && gain >= need {
			return a + int64(need/r*float64(hourMs)), true
		}
		need -= gain
		a = end
	}
	return 0, false
}

// glitches marks single readings that jump away from both neighbours, which
// agree with each other: a sensor glitch, not the bin. The first and the
// last reading have only one neighbour and are never marked.
func glitches(bad []bool, rs []Report) []bool {
	bad = slices.Grow(bad[:0], len(rs))[:len(rs)]
	clear(bad)
	for i := 1; i+1 < len(rs); i++ {
		a := rs[i].Pct - rs[i-1].Pct
		if a < glitchMin && a > -glitchMin {
			continue
		}
		b := rs[i+1].Pct - rs[i].Pct
		if math.Abs(a) >= glitchMin && math.Abs(b) >= glitchMin && (a > 0) != (b > 0) &&
			math.Abs(rs[i+1].Pct-rs[i-1].Pct) < math.Min(math.Abs(a), math.Abs(b))/2 {
			bad[i] = true
		}
	}
	return bad
}

// cycleStart returns the index of the first report after the last
// confirmed emptying (0 when there is none): a fall of dropMin or more
// from a good reading, where the median of the next readings (up to
// three, the fall's own included) stays that far down.
func cycleStart(rs []Report, bad []bool) int {
	prev := -1
	start := 0
	for i := range rs {
		if bad[i] {
			continue
		}
		if prev >= 0 && rs[prev].Pct-rs[i].Pct >= dropMin {
			var arr [3]float64
			next := arr[:0]
			for j := i; j < len(rs) && len(next) < 3; j++ {
				if !bad[j] {
					next = append(next, rs[j].Pct)
				}
			}
			if median3(next) <= rs[prev].Pct-dropMin {
				start = i
			}
		}
		prev = i
	}
	return start
}

// pace measures how fast the cycle rose against the curve's expectation:
// (observed + prior) / (expected + prior), between 0.2 and 5. Levels at
// both ends are medians of up to three readings.
func pace(cyc []Report, bad []bool, c *curve, buf *[]Report) float64 {
	good := (*buf)[:0]
	for i, r := range cyc {
		if !bad[i] {
			good = append(good, r)
		}
	}
	*buf = good
	if len(good) < 4 {
		return 1
	}
	n := min(3, len(good)/2)
	head, tail := good[:n], good[len(good)-n:]
	unit := curve{rate: c.rate, pace: 1}
	// Both ends projected to the middle reading of their group, so the
	// medians compare levels at two known times.
	t0, t1 := head[n/2].T, tail[n/2].T
	lv := func(g []Report, t int64) float64 {
		var arr [3]float64
		vs := arr[:len(g)]
		for i, r := range g {
			if r.T <= t {
				vs[i] = r.Pct + unit.rise(r.T, t)
			} else {
				vs[i] = r.Pct - unit.rise(t, r.T)
			}
		}
		return median3(vs)
	}
	obs := lv(tail, t1) - lv(head, t0)
	exp := unit.rise(t0, t1)
	k := (math.Max(0, obs) + prior) / (exp + prior)
	return math.Max(0.2, math.Min(5, k))
}

// levelReadings returns the cycle's last good readings within
// levelWindow of its last one (at most levelReports), newest first: the
// current level is their median once each is projected to the time asked
// about (currentLevel).
func levelReadings(cyc []Report, bad []bool) []Report {
	last := cyc[len(cyc)-1].T
	var out []Report
	for i := len(cyc) - 1; i >= 0 && len(out) < levelReports && last-cyc[i].T <= levelWindow; i-- {
		if bad[i] {
			continue
		}
		out = append(out, cyc[i])
	}
	return out
}

// currentLevel is the median of the level readings, each projected to at
// along the curve; without any, the last reading projected.
func currentLevel(level []Report, last Report, at int64, c *curve) float64 {
	if len(level) == 0 {
		return last.Pct + c.rise(last.T, at)
	}
	var arr [levelReports]float64
	vs := arr[:0]
	for _, r := range level {
		vs = append(vs, r.Pct+c.rise(r.T, at))
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// slope is the Theil–Sen slope (points per hour) of the cycle's good
// readings, at least 0: the median of the slopes between pairs, which a few
// wild readings cannot move. Only the last 48 readings are used.
func slope(cyc []Report, bad []bool) float64 {
	var good []Report
	for i, r := range cyc {
		if !bad[i] {
			good = append(good, r)
		}
	}
	if len(good) > 48 {
		good = good[len(good)-48:]
	}
	var ss []float64
	for i := range good {
		for j := i + 1; j < len(good); j++ {
			if dt := good[j].T - good[i].T; dt > 0 {
				ss = append(ss, (good[j].Pct-good[i].Pct)/(float64(dt)/float64(hourMs)))
			}
		}
	}
	if len(ss) == 0 {
		return 0
	}
	return math.Max(0, median(ss))
}

// fullSince returns when the trailing run of full readings began, and how
// sure that is: high when the last two good readings are full, medium when
// only the last one is (it may be a glitch).
func fullSince(rs []Report, bad []bool, full float64) (int64, Confidence) {
	since := rs[len(rs)-1].T
	n := 0
	for i := len(rs) - 1; i >= 0; i-- {
		if bad[i] && i != len(rs)-1 {
			continue
		}
		if rs[i].Pct < full {
			break
		}
		since = rs[i].T
		n++
	}
	if n >= 2 {
		return since, High
	}
	return since, Medium
}

// median3 is the median of at most three values, without allocating.
func median3(vs []float64) float64 {
	switch len(vs) {
	case 0:
		return 0
	case 1:
		return vs[0]
	case 2:
		return (vs[0] + vs[1]) / 2
	}
	a, b, c := vs[0], vs[1], vs[2]
	return max(min(a, b), min(max(a, b), c))
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func hourOf(t int64) int { return int(mod(t, dayMs) / hourMs) }

func mod(a, m int64) int64 { return ((a % m) + m) % m }

func cmpT(r Report, t int64) int {
	switch {
	case r.T < t:
		return -1
	case r.T > t:
		return 1
	}
	return 0
}
