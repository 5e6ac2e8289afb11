package fill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source reads bins' fill reports from where the telemetry is stored
// (internal/store implements it over InfluxDB).
type Source interface {
	// BinReports calls fn for every bin report (a point with fill_pct) with
	// from <= time < to of the given outlets (every outlet when outlets is
	// nil), in any order; times in ms. The strings are only valid during
	// the call.
	BinReports(ctx context.Context, from, to time.Time, outlets []string, fn func(outlet, device string, boot, t int64, pct float64) error) error
}

// ErrNotReady is returned while the tracker is still loading the reports a
// question needs.
var ErrNotReady = errors.New("fill: the bins' recent reports are still being loaded")

// TrackerConfig configures a Tracker. Zero fields take the defaults.
type TrackerConfig struct {
	Source     Source
	Options    Options
	Interval   time.Duration // how often new reports are read (30 s)
	Recheck    time.Duration // how far back every fifth read looks again for late reports (3 h)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Tracker keeps every bin's recent reports in memory, follows InfluxDB, and
// judges bins at a time `at`: from memory when `at` is recent enough
// (within a day, see Keep), else from a read of the reports `at` needs.
// Both paths run the same code on the same reports, so a list reprinted
// from history equals the one printed then (late reports aside).
type Tracker struct {
	cfg TrackerConfig
	x   *index

	mu          sync.Mutex
	ready       bool
	coveredFrom int64          // ms: every report since then is in memory
	readTo      int64          // ms: reports before this have been read at least once
	warmed      int64          // the day whose curves were last learned ahead of requests
	late        map[int64]bool // hour starts (ms) told by Late, not yet read again

	reads   *prometheus.CounterVec
	seconds *prometheus.HistogramVec

	full        fullCache              // "full since" of bins full for longer than memory (fullsince.go)
	fullAnswers *prometheus.CounterVec // "full since" answers by where they came from
}

// Keep is how much history the tracker holds: the curve's days before the
// day of `at` and a day for `at` itself, plus a day for reprinting the list
// as it was in the morning. At 5-minute reports, 8 bytes a report of the
// last HotDays and the day, ~4 of the days before (compact.go): 2,000
// bins ≈ 23 MiB (measured at 1,000 outlets: greenpost_fill_report_bytes).
func (o Options) Keep() time.Duration {
	o = o.withDefaults()
	return time.Duration(o.ProfileDays+2)*24*time.Hour + time.Duration(maxGap)*time.Millisecond
}

// NewTracker returns a tracker; Run fills and follows it.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 3 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Options = cfg.Options.withDefaults()
	t := &Tracker{cfg: cfg, x: newIndex(cfg.Options),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenpost_fill_reads_total",
			Help: "Reads of bin reports by the collection list's tracker, by kind (load, poll, recheck, late, raw, tail) and result.",
		}, []string{"kind", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "greenpost_fill_read_seconds",
			Help:    "Duration of the tracker's reads of bin reports, by kind.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind"}),
		fullAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenpost_fill_full_since_total",
			Help: "Alerts' \"full since\" answers (one per full bin asked), by source: memory, tail (memory and a read of the newest reports), kept (a long-full bin's kept answer), store (asked of InfluxDB).",
		}, []string{"source"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(t.reads, t.seconds, t.fullAnswers,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "greenpost_fill_bins", Help: "Bins whose recent reports the tracker holds."},
				func() float64 { b, _, _ := t.x.stats(); return float64(b) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "greenpost_fill_reports", Help: "Bin reports the tracker holds in memory."},
				func() float64 { _, r, _ := t.x.stats(); return float64(r) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "greenpost_fill_report_bytes", Help: "Memory the tracker's bin reports take: 8 bytes a report of the last days, the compact encoding of older days."},
				func() float64 { _, _, n := t.x.stats(); return float64(n) }))
	}
	return t
}

// Ready reports whether the initial load is done.
func (t *Tracker) Ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready
}

// Run loads the last Keep of reports (a day per read, oldest first), then
// every Interval reads what came since the last read (with a margin for
// reports stored a little late); every fifth time it reads the last
// Recheck again (a report stored late is in memory within 5 intervals when
// it is less than Recheck old), and it reads again the older hours that
// Late was told of (the roll-up's late-data check finds reports stored
// later still: a collector's spool replayed after a long outage); every
// 120th it drops what fell out of Keep. It returns when ctx ends; failed
// reads are logged, counted and retried at the next interval.
//
// (It used to re-read a rotating 6-hour slice of older history every
// fifth time, on its own: ~7 s of InfluxDB 1.8's CPU every 150 s at
// 10,000 outlets, in the background of every question, to find reports
// the roll-up's check finds anyway.)
func (t *Tracker) Run(ctx context.Context) error {
	keep := t.cfg.Options.Keep()
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		now := t.cfg.Now()
		err := t.load(ctx, now.Add(-keep), now)
		if err == nil {
			t.warm(now)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		t.cfg.Logger.Warn("loading bin reports failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := t.cfg.Now()
		t.mu.Lock()
		from := time.UnixMilli(t.readTo).Add(-2 * time.Minute)
		t.mu.Unlock()
		kind := "poll"
		if n%5 == 0 {
			from, kind = now.Add(-t.cfg.Recheck), "recheck"
		}
		err := t.read(ctx, kind, from, now)
		if err == nil {
			kind, err = "late", t.readLate(ctx, now)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t.cfg.Logger.Warn("reading bin reports failed", "kind", kind, "err", err)
			continue
		}
		t.warm(now)
		if n%120 == 0 {
			t.trim(now.Add(-keep))
		}
	}
}

// Late tells the tracker that reports of the hours starting at the given
// times changed in InfluxDB after they were read (the roll-up's late-data
// check: metrics.RollupConfig.OnLate). The next interval reads those hours
// again, those within memory. It does not block.
func (t *Tracker) Late(hours []time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.late == nil {
		t.late = map[int64]bool{}
	}
	for _, h := range hours {
		t.late[h.UnixMilli()] = true
	}
}

// readLate reads again the hours Late was told of, runs of consecutive
// hours in one read each; those it could not read stay for the next time.
// Hours within memory only, and not those the recheck reads anyway (the
// last Recheck before now).
func (t *Tracker) readLate(ctx context.Context, now time.Time) error {
	recent := now.Add(-t.cfg.Recheck).UnixMilli()
	t.mu.Lock()
	var hours []int64
	for h := range t.late {
		if h+hourMs > t.coveredFrom && h < recent {
			hours = append(hours, h)
		}
	}
	t.late = nil
	t.mu.Unlock()
	slices.Sort(hours)
	for i := 0; i < len(hours); {
		j := i + 1
		for j < len(hours) && hours[j] == hours[j-1]+hourMs {
			j++
		}
		if err := t.read(ctx, "late", time.UnixMilli(hours[i]), time.UnixMilli(hours[j-1]+hourMs)); err != nil {
			t.Late(msTimes(hours[i:]))
			return err
		}
		i = j
	}
	return nil
}

func msTimes(ms []int64) []time.Time {
	out := make([]time.Time, len(ms))
	for i, m := range ms {
		out[i] = time.UnixMilli(m)
	}
	return out
}

// warm, once the day of now begins, compacts the days that fell HotDays
// behind it and learns every bin's curve for it, so that no request pays
// for that (about a millisecond a bin).
func (t *Tracker) warm(now time.Time) {
	day := DayStart(now.UnixMilli())
	if day == t.warmed {
		return
	}
	t.warmed = day
	t.x.compact(day - HotDays*dayMs)
	var buf []Report
	for _, v := range t.x.views(nil) {
		v.profile(day, t.cfg.Options, &buf)
	}
}

// load reads [from, to) a day at a time and marks the tracker ready. A
// read is held whole in memory before it is merged (~280 MiB for a day of
// 20,000 bins' reports); reads of 6 hours held a quarter of that but took
// the load from 310 s to 629 s at 10,000 outlets (InfluxDB's cost per
// query and series).
func (t *Tracker) load(ctx context.Context, from, to time.Time) error {
	start := time.Now()
	split := DayStart(to.UnixMilli()) - HotDays*dayMs
	for a := from; a.Before(to); a = a.Add(24 * time.Hour) {
		if err := t.read(ctx, "load", a, minTime(a.Add(24*time.Hour), to)); err != nil {
			return err
		}
		// Each day compact as soon as it is in: the load never holds the
		// whole of memory at 8 bytes a report.
		t.x.compact(split)
	}
	t.mu.Lock()
	t.ready, t.coveredFrom = true, from.UnixMilli()
	t.mu.Unlock()
	bins, reports, bytes := t.x.stats()
	t.cfg.Logger.Info("bin reports loaded", "bins", bins, "reports", reports, "bytes", bytes, "from", from, "seconds", time.Since(start).Seconds())
	return nil
}

// read reads [from, to) into memory.
func (t *Tracker) read(ctx context.Context, kind string, from, to time.Time) error {
	start := time.Now()
	in, err := t.fetch(ctx, from, to, nil)
	t.seconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		t.reads.WithLabelValues(kind, "error").Inc()
		return err
	}
	t.reads.WithLabelValues(kind, "ok").Inc()
	t.x.merge(in)
	t.mu.Lock()
	t.readTo = max(t.readTo, to.UnixMilli())
	t.mu.Unlock()
	return nil
}

// fetch reads the reports of [from, to) of the given outlets (nil: all),
// grouped by bin, each bin's in time order.
func (t *Tracker) fetch(ctx context.Context, from, to time.Time, outlets []string) ([]binReports, error) {
	byBin := map[binKey]int{}
	var out []binReports
	var boots [][]int64
	err := t.cfg.Source.BinReports(ctx, from, to, outlets, func(outlet, device string, boot, ts int64, pct float64) error {
		k := binKey{outlet, device}
		i, ok := byBin[k]
		if !ok {
			// Strings of a scan are only valid during the call.
			k = binKey{string([]byte(outlet)), string([]byte(device))}
			i = len(out)
			byBin[k] = i
			out = append(out, binReports{key: k})
			boots = append(boots, nil)
		}
		out[i].rs = append(out[i].rs, Report{T: ts, Pct: pct})
		boots[i] = append(boots[i], boot)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bin reports %s..%s: %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	for i := range out {
		// By time, and of two reports at one time (two boots) the later
		// boot last: the merge keeps the last (metrics-v1's engine decides
		// the same way).
		idx := make([]int, len(out[i].rs))
		for j := range idx {
			idx[j] = j
		}
		rs, bs := out[i].rs, boots[i]
		slices.SortFunc(idx, func(a, b int) int {
			if c := cmp.Compare(rs[a].T, rs[b].T); c != 0 {
				return c
			}
			return cmp.Compare(bs[a], bs[b])
		})
		sorted := make([]Report, len(rs))
		for j, k := range idx {
			sorted[j] = rs[k]
		}
		out[i].rs = sorted
	}
	return out, nil
}

// trim drops what fell out of Keep. Memory's start moves first, so that a
// reader that takes the bins' reports and then the start (FullSince) never
// takes a start older than the reports it has.
func (t *Tracker) trim(before time.Time) {
	t.mu.Lock()
	t.coveredFrom = max(t.coveredFrom, before.UnixMilli())
	t.mu.Unlock()
	t.x.trim(before.UnixMilli())
}

// Judge predicts every bin of the given outlets (all when outlets is nil)
// at `at`, looking ahead `ahead`, and returns the bins that are full,
// filling within the look-ahead, or stale, in outlet and device order.
// It answers from memory when memory holds every report the question
// needs; otherwise it reads them (ErrNotReady while memory is loading and
// the question is about the recent past).
func (t *Tracker) Judge(ctx context.Context, at time.Time, ahead time.Duration, outlets []string) ([]Bin, error) {
	a := at.UnixMilli()
	need := t.cfg.Options.ProfileStart(a)
	var want map[string]bool
	if outlets != nil {
		want = make(map[string]bool, len(outlets))
		for _, o := range outlets {
			want[o] = true
		}
	}
	t.mu.Lock()
	ready, covered := t.ready, t.coveredFrom
	t.mu.Unlock()
	if ready && need >= covered {
		return t.x.judge(t.x.views(want), a, ahead), nil
	}
	if !ready && at.After(t.cfg.Now().Add(-t.cfg.Options.Keep())) {
		return nil, ErrNotReady
	}
	if outlets != nil && len(outlets) == 0 {
		return nil, nil
	}
	// Older than memory: read what this question needs into an index of
	// its own and judge it with the same code.
	start := time.Now()
	in, err := t.fetch(ctx, time.UnixMilli(need), time.UnixMilli(a+1), outlets)
	t.seconds.WithLabelValues("raw").Observe(time.Since(start).Seconds())
	if err != nil {
		t.reads.WithLabelValues("raw", "error").Inc()
		return nil, err
	}
	t.reads.WithLabelValues("raw", "ok").Inc()
	x := newIndex(t.cfg.Options)
	x.merge(in)
	return x.judge(x.views(want), a, ahead), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
