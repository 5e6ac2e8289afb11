// Command apiscale measures the metrics engine (internal/metrics) at city
// scale: the simulator's city of 1,000 outlets (2 bins + 1 counter each) at
// 5-minute reports for 30 days in a private InfluxDB 1.8.10, the roll-up built from scratch and loaded after a
// restart, then concurrent clients asking for the city and its districts
// over 30 days, one outlet over 30 days, and more, beside the naive path
// that computes metrics-v1 from raw points per request.
//
// The filled data directory is kept (by default under the user cache) and
// reused when the city's settings match, so only the first run pays for
// writing ~26 M points; later runs put "now" where that history ended.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "apiscale:", err)
		os.Exit(1)
	}
}

type flags struct {
	clients  int
	duration time.Duration
	keep     bool
	verbose  bool
}

func run() error {
	cache, _ := os.UserCacheDir()
	var c cityConfig
	var f flags
	flag.IntVar(&c.Outlets, "outlets", 1000, "outlets (each with one counter and -bins bins)")
	flag.IntVar(&c.Bins, "bins", 2, "bins per outlet")
	flag.IntVar(&c.Days, "days", 30, "days of data (at most 30: older points fail telemetry-v1)")
	flag.DurationVar(&c.Step, "interval", 5*time.Minute, "report interval of every device")
	flag.Int64Var(&c.Seed, "seed", 1, "seed of the simulated city")
	bin := flag.String("bin", "bin", "directory with firmware-sim (make build)")
	dataRoot := flag.String("data", filepath.Join(cache, "greenpost", "bench-data"), "where filled data directories are kept")
	flag.IntVar(&f.clients, "clients", 4, "concurrent clients")
	flag.DurationVar(&f.duration, "duration", 20*time.Second, "how long each scenario runs")
	flag.BoolVar(&f.keep, "keep-rollup", false, "keep the persisted roll-up instead of building it again")
	flag.BoolVar(&f.verbose, "v", false, "log the roll-up worker")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the warm scenarios to this file")
	skipNaive := flag.Bool("skip-naive", false, "skip the naive path (minutes at city scale)")
	buildOnly := flag.Bool("build-only", false, "stop after building the roll-up")
	only := flag.String("only", "", "run only the warm scenarios whose names contain this")
	flag.Parse()
	ctx := context.Background()

	dir := c.dir(*dataRoot)
	filled, ok := filledConfig(dir)
	if ok {
		c = filled
	} else if err := os.RemoveAll(dir); err != nil {
		return err
	}
	in, err := startInfluxd(dir)
	if err != nil {
		return err
	}
	defer in.Stop()
	st, err := store.Open(store.Config{URL: in.URL, Bucket: in.Bucket, Timeout: 10 * time.Minute})
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Printf("# apiscale: %d outlets × %d bins + 1 counter, %d days at %v, InfluxDB 1.8.10 at %s (data %s)\n",
		c.Outlets, c.Bins, c.Days, c.Step, in.URL, dir)
	if !ok {
		fmt.Println("filling with the simulator (once; the data directory is kept for later runs) ...")
		cpu0, t0 := in.cpuSeconds(), time.Now()
		if c, err = fillCity(*bin, in, dir, c); err != nil {
			return err
		}
		el := time.Since(t0)
		fmt.Printf("| fill | %v, influxd %.0f CPU s |\n", el.Round(time.Second), in.cpuSeconds()-cpu0)
	}
	all, district, err := cityOutlets(dir)
	if err != nil {
		return err
	}
	districts := map[string]bool{}
	for _, d := range district {
		districts[d] = true
	}

	now := c.End
	opts := metrics.DefaultOptions()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if f.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rcfg := metrics.RollupConfig{Now: func() time.Time { return now }, Logger: logger}

	// 1. Build the roll-up from scratch.
	if !f.keep {
		for _, m := range []string{"rollup", "rollup_state"} {
			if err := in.Exec("DROP MEASUREMENT " + m); err != nil {
				return err
			}
		}
		roll, err := metrics.NewRollup(st, opts, rcfg)
		if err != nil {
			return err
		}
		var peak peakRSS
		peak.watch(in)
		m := measure(in)
		if err := roll.Sync(ctx); err != nil {
			return err
		}
		el, ours, theirs := m.done()
		s := roll.Stats()
		fmt.Printf("| build the roll-up from raw data, %v..%v, then fingerprint every hour | %.1f s | ours %.1f CPU s, influxd %.1f CPU s, influxd peak RSS %.0f MiB |\n",
			s.From.Format("01-02 15:04"), s.To.Format("01-02 15:04"), el.Seconds(), ours, theirs, peak.stop())
	}
	if *buildOnly {
		return nil
	}

	// 2. Restart: load the persisted roll-up, as an API replica does.
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	roll, err := metrics.NewRollup(st, opts, rcfg)
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	var workerDone sync.WaitGroup
	m := measure(in)
	workerDone.Add(1)
	go func() {
		defer workerDone.Done()
		if err := roll.Run(wctx); err != nil {
			fmt.Fprintln(os.Stderr, "roll-up worker:", err)
		}
	}()
	defer func() { stopWorker(); workerDone.Wait() }()
	<-roll.Ready()
	el, ours, theirs := m.done()
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	s := roll.Stats()
	fmt.Printf("| restart: load the persisted roll-up into memory | %.1f s | ours %.1f CPU s, influxd %.1f CPU s; Go heap +%.0f MiB (index estimate %.0f MiB, %d outlets, %d outlet-hours of %.0f bytes) |\n",
		el.Seconds(), ours, theirs, float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/(1<<20), float64(s.MemoryBytes)/(1<<20), s.Outlets, s.Hours, float64(s.HourBytes)/float64(max(1, s.Hours)))

	eng, err := metrics.NewInfluxEngine(st, opts, roll)
	if err != nil {
		return err
	}
	// The same engine with nothing shared between requests: every request
	// reads its edges and the newest minutes from InfluxDB itself.
	unshared := eng.WithLiveTTL(0)
	to := now.Truncate(time.Minute)
	w30 := metrics.Window{From: to.Add(-30 * 24 * time.Hour), To: to}
	w24 := metrics.Window{From: to.Add(-24 * time.Hour), To: to}

	cityAndDistricts := func(ctx context.Context, eng *metrics.InfluxEngine, w metrics.Window) error {
		res, err := eng.Outlets(ctx, w, all)
		if err != nil {
			return err
		}
		groups := map[string]*group{"city": {}}
		for i, r := range res {
			d := district[all[i]]
			if groups[d] == nil {
				groups[d] = &group{}
			}
			groups[d].add(r)
			groups["city"].add(r)
		}
		if len(groups) != len(districts)+1 || groups["city"].outlets != c.Outlets {
			return fmt.Errorf("groups: %d, city %d outlets", len(groups), groups["city"].outlets)
		}
		return nil
	}

	// 3. Cold: the first city question after the restart (no raw cache).
	t0 := time.Now()
	if err := cityAndDistricts(ctx, eng, w30); err != nil {
		return err
	}
	fmt.Printf("| cold: city + its districts, 30 days, first request after the restart | %.0f ms | reads the raw hour the window starts in |\n", float64(time.Since(t0).Microseconds())/1000)

	// 4. Warm, with concurrent clients, while the worker runs its cycles.
	fmt.Printf("\n%d concurrent clients, %v per scenario, roll-up worker running (cycle every 30 s):\n\n", f.clients, f.duration)
	fmt.Println("| question | requests | p50 | p95 | p99 | max | CPU per request (ours + influxd) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	scen := []struct {
		name string
		fn   func(ctx context.Context, rng *rand.Rand) error
	}{
		{"city + its districts, 30 days", func(ctx context.Context, _ *rand.Rand) error { return cityAndDistricts(ctx, eng, w30) }},
		{"city + its districts, 30 days, live reads not shared", func(ctx context.Context, _ *rand.Rand) error { return cityAndDistricts(ctx, unshared, w30) }},
		{"one outlet, 30 days", func(ctx context.Context, rng *rand.Rand) error {
			_, err := eng.Outlets(ctx, w30, []string{all[rng.IntN(len(all))]})
			return err
		}},
		{"one outlet, 30 days, live reads not shared", func(ctx context.Context, rng *rand.Rand) error {
			_, err := unshared.Outlets(ctx, w30, []string{all[rng.IntN(len(all))]})
			return err
		}},
		{"city + its districts, last 24 h", func(ctx context.Context, _ *rand.Rand) error { return cityAndDistricts(ctx, eng, w24) }},
		{"one outlet, hourly series over 30 days (720 steps)", func(ctx context.Context, rng *rand.Rand) error {
			w := metrics.Window{From: to.Add(-30 * 24 * time.Hour).Truncate(time.Hour), To: to}
			_, err := eng.Series(ctx, all[rng.IntN(len(all))], w, time.Hour)
			return err
		}},
		{"devices of the city (alerts), 30-day look-back", func(ctx context.Context, _ *rand.Rand) error {
			d, err := eng.Devices(ctx, now, 30*24*time.Hour)
			if err == nil && len(d) < c.Outlets*(c.Bins+1) {
				err = fmt.Errorf("%d devices", len(d))
			}
			return err
		}},
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, sc := range scen {
		if !strings.Contains(sc.name, *only) {
			continue
		}
		if err := load(ctx, in, sc.name, f, sc.fn); err != nil {
			return err
		}
	}
	pprof.StopCPUProfile()

	if *skipNaive {
		return nil
	}
	// 5. The naive path: metrics-v1 from raw points per request.
	fmt.Printf("\nNaive path (metrics-v1 computed from raw points per request, no roll-up), one client:\n\n")
	fmt.Println("| question | query language | runs | median | CPU per request (ours + influxd) |")
	fmt.Println("|---|---|---|---|---|")
	for _, lang := range []metrics.QueryLanguage{metrics.InfluxQL, metrics.Flux} {
		raw, err := metrics.NewRawEngine(st, opts, lang)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			name string
			runs int
			fn   func(ctx context.Context) error
		}{
			{"one outlet, 30 days", 5, func(ctx context.Context) error { _, err := raw.Outlets(ctx, w30, []string{all[7]}); return err }},
			{fmt.Sprintf("city (%d outlets), last 24 h", c.Outlets), 3, func(ctx context.Context) error { _, err := raw.Outlets(ctx, w24, all); return err }},
		} {
			var ds []time.Duration
			m := measure(in)
			for i := 0; i < q.runs; i++ {
				t0 := time.Now()
				if err := q.fn(ctx); err != nil {
					return err
				}
				ds = append(ds, time.Since(t0))
			}
			_, ours, theirs := m.done()
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			fmt.Printf("| %s | %s | %d | %s | %.3f + %.3f s |\n", q.name, lang, q.runs, ms(ds[len(ds)/2]), ours/float64(q.runs), theirs/float64(q.runs))
		}
	}
	// The same one-outlet answer from the roll-up, for the ratio.
	var ds []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		if _, err := unshared.Outlets(ctx, w30, []string{all[7]}); err != nil {
			return err
		}
		ds = append(ds, time.Since(t0))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	fmt.Printf("| one outlet, 30 days, from the roll-up, live reads not shared (same run) | auto | 20 | %s | |\n", ms(ds[len(ds)/2]))

	// Every answer above came from the engine; check it once against the
	// naive path over the whole city for the last 24 h.
	raw, _ := metrics.NewRawEngine(st, opts, metrics.InfluxQL)
	a, err := eng.Outlets(ctx, w24, all)
	if err != nil {
		return err
	}
	b, err := raw.Outlets(ctx, w24, all)
	if err != nil {
		return err
	}
	diff := 0
	for i := range all {
		if a[i] != b[i] {
			diff++
		}
	}
	fmt.Printf("\nroll-up vs naive, city, last 24 h: %d of %d outlets differ\n", diff, len(all))
	return nil
}

// group sums outlets like the API's district and city roll-ups.
type group struct {
	outlets, covered int
	parcels          metrics.Parcels
	coverage         float64
}

func (g *group) add(o metrics.Outlet) {
	g.outlets++
	if o.Covered() {
		g.covered++
	}
	g.parcels.Add(o.Parcels)
	g.coverage += o.BinCoverage()
}

// load runs fn from f.clients goroutines for f.duration and prints the
// latency distribution and the CPU per request.
func load(ctx context.Context, in *influxd, name string, f flags, fn func(context.Context, *rand.Rand) error) error {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	m := measure(in)
	deadline := time.Now().Add(f.duration)
	for i := 0; i < f.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := fn(ctx, rng)
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_, ours, theirs := m.done()
	if len(errs) > 0 {
		return fmt.Errorf("%s: %d errors, first: %w", name, len(errs), errs[0])
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	n := float64(len(lat))
	fmt.Printf("| %s | %d | %s | %s | %s | %s | %.1f + %.1f ms |\n", name, len(lat), ms(q(0.5)), ms(q(0.95)), ms(q(0.99)), ms(lat[len(lat)-1]), ours/n*1000, theirs/n*1000)
	return nil
}

func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
}

// measurement is wall time and CPU time of this process and of influxd.
type measurement struct {
	in      *influxd
	t0      time.Time
	ours0   float64
	theirs0 float64
}

func measure(in *influxd) measurement {
	return measurement{in: in, t0: time.Now(), ours0: selfCPU(), theirs0: in.cpuSeconds()}
}

func (m measurement) done() (time.Duration, float64, float64) {
	return time.Since(m.t0), selfCPU() - m.ours0, m.in.cpuSeconds() - m.theirs0
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSS samples influxd's resident memory until stop.
type peakRSS struct {
	mu     sync.Mutex
	max    float64
	stopCh chan struct{}
	done   chan struct{}
}

func (p *peakRSS) watch(in *influxd) {
	p.stopCh, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			r := in.rssMiB()
			p.mu.Lock()
			p.max = max(p.max, r)
			p.mu.Unlock()
			select {
			case <-p.stopCh:
				return
			case <-t.C:
			}
		}
	}()
}

func (p *peakRSS) stop() float64 {
	close(p.stopCh)
	<-p.done
	return p.max
}
