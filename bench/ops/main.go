// Command ops backtests the collection list's fill model (internal/fill) on
// simulator history: for many times `at`, every bin is judged from its
// reports at or before `at` only, and the prediction is compared with what
// the data then shows (the first report at or above full_pct, unless the
// bin was emptied first). Beside it, the naive baseline "linear from the
// last two reports". It prints the figures of docs/benchmarks.md.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/fill"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ops:", err)
		os.Exit(1)
	}
}

// bin is one bin's whole history.
type bin struct {
	outlet, device string
	rs             []fill.Report
	emptied        []bool // the report carried emptied=true

	// Only with -source city: the simulator's own view, for the oracle.
	sim   *city.Outlet
	level []float64 // the true level at each report
}

func run() error {
	var p params
	flag.IntVar(&p.Outlets, "outlets", 400, "outlets (2 bins each)")
	flag.IntVar(&p.Days, "days", 30, "days of history")
	flag.DurationVar(&p.Step, "step", 5*time.Minute, "report interval")
	flag.Int64Var(&p.Seed, "seed", 1, "simulator seed")
	source := flag.String("source", "influx", "influx: firmware-sim's history in InfluxDB 1.8.10, read back like the API reads it; city: the same model generated in this process (quick)")
	ats := flag.Int("ats", 200, "times at which the list is judged")
	trajectories := flag.Int("trajectories", 1000, "simulated districts per row of the trajectory's figures")
	binDir := flag.String("bin", "bin", "directory with firmware-sim (make build), for -source influx")
	flag.Parse()

	var bins []*bin
	var err error
	t0 := time.Now()
	switch *source {
	case "city":
		bins, err = fromCity(p)
	case "influx":
		bins, err = fromInflux(p, *binDir)
	default:
		err = fmt.Errorf("-source %q: want influx or city", *source)
	}
	if err != nil {
		return err
	}
	n := 0
	var first, last int64 = math.MaxInt64, 0
	for _, b := range bins {
		n += len(b.rs)
		if len(b.rs) > 0 {
			first, last = min(first, b.rs[0].T), max(last, b.rs[len(b.rs)-1].T)
		}
	}
	fmt.Printf("history: %d bins, %d reports, %s .. %s (%s, loaded in %v)\n", len(bins), n,
		time.UnixMilli(first).UTC().Format(time.RFC3339), time.UnixMilli(last).UTC().Format(time.RFC3339), *source, time.Since(t0).Round(time.Second))

	// Times: after a week and a day of history (the curve's days plus the
	// first day), before the last day (so a day ahead can be checked),
	// spread with an odd step so every hour of the day is sampled.
	o := fill.DefaultOptions()
	lo := fill.DayStart(first) + int64(o.ProfileDays+1)*24*3600_000
	hi := last - 25*3600_000
	if hi <= lo {
		return fmt.Errorf("history too short: want at least %d days", o.ProfileDays+3)
	}
	var times []int64
	for i := range *ats {
		times = append(times, lo+(hi-lo)*int64(i)/int64(*ats))
	}
	t0 = time.Now()
	res := evaluate(bins, times, o)
	fmt.Printf("judged %d bins at %d times in %v\n\n", len(bins), len(times), time.Since(t0).Round(time.Millisecond))
	res.print()
	trajectoryBench(*trajectories)
	return nil
}

type params struct {
	Outlets, Days int
	Step          time.Duration
	Seed          int64
}

// outcome is one prediction against what happened.
type outcome struct {
	at      int64
	fullAt  int64 // predicted (0: not within the look-ahead)
	truth   int64 // first full report after at before an emptying (0: none in the data)
	emptied bool  // emptied before it filled
	conf    fill.Confidence
}

type method struct {
	name string
	outs []outcome
}

type results struct {
	methods []*method
	at      int // evaluated (bin, at) pairs that were neither full nor stale
}

// evaluate judges every bin at every time with the model and the baseline.
func evaluate(bins []*bin, times []int64, o fill.Options) results {
	model, naive := &method{name: "model (internal/fill)"}, &method{name: "baseline: linear from the last two reports"}
	oracle := &method{name: "oracle: true level and rate (simulator only)"}
	var mu sync.Mutex
	work := make(chan *bin)
	var wg sync.WaitGroup
	pairs := 0
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mo, no, oo []outcome
			n := 0
			for b := range work {
				profiles := map[int64]*fill.Profile{}
				for _, at := range times {
					day := fill.DayStart(at)
					p, ok := profiles[day]
					if !ok {
						lp := fill.Learn(b.rs, at, o)
						p = &lp
						profiles[day] = p
					}
					pr := fill.Predict(p, b.rs, at, 48*time.Hour, o)
					if pr.State != fill.Filling && pr.State != fill.Quiet {
						continue
					}
					n++
					truth, emptied := b.truth(at, o.FullPct)
					mo = append(mo, outcome{at: at, fullAt: pr.FullAt, truth: truth, emptied: emptied, conf: pr.Confidence})
					no = append(no, outcome{at: at, fullAt: linear(b.rs, at, o.FullPct), truth: truth, emptied: emptied})
					if b.sim != nil {
						oo = append(oo, outcome{at: at, fullAt: b.oracle(at, o.FullPct, 48*3600_000), truth: truth, emptied: emptied})
					}
				}
			}
			mu.Lock()
			model.outs = append(model.outs, mo...)
			naive.outs = append(naive.outs, no...)
			oracle.outs = append(oracle.outs, oo...)
			pairs += n
			mu.Unlock()
		}()
	}
	for _, b := range bins {
		work <- b
	}
	close(work)
	wg.Wait()
	// The same pairs in both, whatever order the workers finished in.
	r := results{methods: []*method{model, naive}, at: pairs}
	if len(oracle.outs) > 0 {
		r.methods = append(r.methods, oracle)
	}
	return r
}

// truth is the time of the first report after at at or above full that the
// next report confirms (a single reading above the threshold may be a
// glitch of the sensor, which the model is not asked to foresee), unless a
// report in between says the bin was emptied (then emptied is true).
func (b *bin) truth(at int64, full float64) (int64, bool) {
	i := sort.Search(len(b.rs), func(i int) bool { return b.rs[i].T > at })
	for ; i+1 < len(b.rs); i++ {
		if b.emptied[i] {
			return 0, true
		}
		if b.rs[i].Pct >= full && b.rs[i+1].Pct >= full && !b.emptied[i+1] {
			return b.rs[i].T, false
		}
	}
	return 0, false
}

// linear is the naive baseline: the straight line through the last two
// reports at or before at, when it rises.
func linear(rs []fill.Report, at int64, full float64) int64 {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].T > at })
	if i < 2 {
		return 0
	}
	a, b := rs[i-2], rs[i-1]
	if b.T <= a.T || b.Pct <= a.Pct || b.Pct >= full {
		return 0
	}
	perMs := (b.Pct - a.Pct) / float64(b.T-a.T)
	t := b.T + int64((full-b.Pct)/perMs)
	return max(t, at+1000)
}

// stats of one method at one look-ahead.
type stats struct {
	named, filled, hit, emptiedFirst int
	errs                             []float64 // minutes, over named bins that then filled
	signed                           []float64
}

func (m *method) within(ahead int64, conf fill.Confidence) stats {
	var s stats
	for _, o := range m.outs {
		if conf != "" && o.conf != conf {
			continue
		}
		named := o.fullAt != 0 && o.fullAt-o.at <= ahead
		filled := o.truth != 0 && o.truth-o.at <= ahead
		if named {
			s.named++
			if o.truth != 0 {
				s.errs = append(s.errs, math.Abs(float64(o.fullAt-o.truth))/60000)
				s.signed = append(s.signed, float64(o.fullAt-o.truth)/60000)
			}
			if o.emptied {
				s.emptiedFirst++
			}
		}
		if filled {
			s.filled++
			if named {
				s.hit++
			}
		}
	}
	return s
}

func pct(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (r results) print() {
	fmt.Printf("%d (bin, at) pairs below full and reporting\n\n", r.at)
	fmt.Println("| method | look-ahead | named | filled | recall | precision | emptied first | median error | p90 error | median signed error |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, ahead := range []time.Duration{2 * time.Hour, 24 * time.Hour} {
		for _, m := range r.methods {
			s := m.within(ahead.Milliseconds(), "")
			fmt.Printf("| %s | %s | %d | %d | %.1f %% | %.1f %% | %.1f %% | %.0f min | %.0f min | %+.0f min |\n", m.name, fmtAhead(ahead),
				s.named, s.filled, 100*ratio(s.hit, s.filled), 100*ratio(s.hit, s.named), 100*ratio(s.emptiedFirst, s.named),
				pct(s.errs, 0.5), pct(s.errs, 0.9), pct(s.signed, 0.5))
		}
	}
	fmt.Println("\nby confidence (model):")
	fmt.Println("| look-ahead | confidence | named | precision | median error | p90 error |")
	fmt.Println("|---|---|---|---|---|---|")
	m := r.methods[0]
	for _, ahead := range []time.Duration{2 * time.Hour, 24 * time.Hour} {
		for _, c := range []fill.Confidence{fill.High, fill.Medium, fill.Low} {
			s := m.within(ahead.Milliseconds(), c)
			fmt.Printf("| %s | %s | %d | %.1f %% | %.0f min | %.0f min |\n", fmtAhead(ahead), c, s.named, 100*ratio(s.hit, s.named), pct(s.errs, 0.5), pct(s.errs, 0.9))
		}
	}
}

func fmtAhead(d time.Duration) string { return fmt.Sprintf("%d h", int(d.Hours())) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
