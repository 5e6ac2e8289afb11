package metrics

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpost/greenpost/internal/store"
)

// The roll-up worker: loads the persisted roll-up, builds hours as they
// close and older history, and writes rows through internal/store. The
// late-data check that re-rolls changed hours is latecheck.go.

// RollupConfig tunes the roll-up worker. Zero values take the defaults.
type RollupConfig struct {
	// Interval between cycles (default 30s). Each cycle rolls the hours that
	// closed, refreshes the current hour's partial summary, and compares
	// fingerprints to find hours that late data changed.
	Interval time.Duration
	// Grace is how long after its time a point may still arrive and be
	// counted by the next cycle without being late (default 1m). Data newer
	// than now-Grace is always read raw.
	Grace time.Duration
	// Recheck: hours closed less than this long ago are fingerprinted every
	// cycle (default 3h): what the collector's spool delivers after a short
	// outage is counted within one cycle.
	Recheck time.Duration
	// CheckHorizon: older hours are fingerprinted one day at a time, back
	// to this age (default 31 days: telemetry-v1 refuses older timestamps).
	CheckHorizon time.Duration
	// CheckEvery: the older day is fingerprinted every CheckEvery-th cycle
	// (default 4: a rotation through 31 days in 124 cycles, an hour at the
	// 30 s interval). A day's fingerprints cost InfluxDB 1.8 about 11 s of
	// CPU at 10,000 outlets (docs/metrics.md): every cycle, that was a
	// third of a core of background load.
	CheckEvery int
	// OnLate, when set, is told the hours (ns, each an hour's start) that
	// late data changed, once they are re-rolled: the collection list's
	// tracker reads them again rather than re-reading old history blindly.
	// It is called from the worker's goroutine and must not block.
	OnLate func(hours []int64)
	// Horizon: how far back the roll-up is built and kept in memory
	// (default 35 days). Windows reaching further back are read raw, within
	// the engine's limit for raw reads.
	Horizon time.Duration
	// Keep: complete days that end more than this before the newest
	// rolled hour hold their hours compact (compact.go; default 48h).
	// Negative: every complete day (tests use it to read compact days
	// everywhere).
	Keep time.Duration
	// BuildChunk is how much raw data one read covers when building
	// (default 6h: about 200k points for 1,000 outlets).
	BuildChunk time.Duration
	// LiveTTL: the engine's reads of the newest minutes (after the partial
	// hour) are shared by the requests of this long (default 5s), so that
	// a burst of city questions reads InfluxDB once. 0 takes the default;
	// negative shares nothing.
	LiveTTL time.Duration
	// Language of the queries (default Auto).
	Language QueryLanguage
	// Own is where the roll-up reads and writes its own rows (the rollup
	// and rollup_state measurements); nil: the store of the raw telemetry.
	// A separate bucket lets the telemetry bucket stay read-only to the
	// API (storage-v1: the API's token needs read only).
	Own *store.Store
	// Logger, default: discard.
	Logger *slog.Logger
	// Registerer for the worker's metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock (tests and benchmarks move it); default time.Now.
	Now func() time.Time
	// ColdDir, when set, is a directory (it must exist) where the compact
	// days' hours are kept in files instead of the Go heap (cold.go); the
	// files are removed as soon as they are made and their space freed
	// with the process or the day. Empty: all in memory.
	ColdDir string
}

func (c *RollupConfig) ensureDefaults() {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = time.Minute
	}
	if c.Recheck <= 0 {
		c.Recheck = 3 * time.Hour
	}
	if c.CheckHorizon <= 0 {
		c.CheckHorizon = 31 * 24 * time.Hour
	}
	if c.CheckEvery <= 0 {
		c.CheckEvery = 4
	}
	if c.Horizon <= 0 {
		c.Horizon = 35 * 24 * time.Hour
	}
	if c.LiveTTL == 0 {
		c.LiveTTL = 5 * time.Second
	}
	if c.Keep == 0 {
		c.Keep = defaultKeep
	}
	if c.BuildChunk < time.Hour {
		c.BuildChunk = 6 * time.Hour
	}
	c.BuildChunk = c.BuildChunk.Truncate(time.Hour)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Rollup keeps the hourly roll-up of metrics-v1: per outlet and hour, a
// summary that combines exactly (see summary.go), persisted in the rollup
// measurement and held in memory for the engine. One Rollup serves one
// InfluxEngine of the same options.
type Rollup struct {
	own  *store.Store // the roll-up's own rows (cfg.Own, or the raw store)
	opts Options
	cfg  RollupConfig
	key  string
	src  *sourcePicker // raw telemetry
	mine *sourcePicker // the roll-up's own rows: src itself when in one bucket
	ix   *index
	met  rollupMetrics

	// onInvalidate is told which hours' raw data changed (the engine's
	// raw cache); set by NewInfluxEngine, perhaps while Run runs.
	onInvalidate atomic.Pointer[func(hours []int64)]

	// Owned by the goroutine in Run/Sync.
	mu          sync.Mutex // one worker at a time (Run and Sync)
	b0          int64      // first hour the persisted roll-up holds
	checkCursor int64      // the rotating check's next day (its end)
	cycles      int        // cycles run (the rotating check runs every CheckEvery-th)
	lastCycle   time.Time
	loaded      bool
	progress    buildProgress
	// Day rows (dayrows.go): the days whose day rows are complete, the
	// days to mark so after the next update, the blocks still to write.
	marked  map[int64]bool
	remark  map[int64]bool
	dayTodo []odKey
	// loadedRows: what the last load read (hour rows, day rows).
	loadedRows [2]int
}

type rollupMetrics struct {
	hours   *prometheus.CounterVec
	cycle   prometheus.Histogram
	errors  prometheus.Counter
	lag     prometheus.Gauge
	memory  prometheus.Gauge
	written prometheus.Counter
}

// NewRollup prepares the roll-up worker; Run does the work.
//
// Run it in every API replica: each keeps its own memory index; they
// write the same rows (a point is identified by its tags and time, so the
// writes are idempotent).
//
// st holds the raw telemetry, which the roll-up only reads; its own rows
// go to cfg.Own when set (another bucket), else to st as well.
func NewRollup(st *store.Store, opts Options, cfg RollupConfig) (*Rollup, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	cfg.ensureDefaults()
	ix := newIndex(cfg.Keep)
	if cfg.ColdDir != "" {
		c, err := newColdStore(cfg.ColdDir)
		if err != nil {
			return nil, err
		}
		ix.cold = c
	}
	r := &Rollup{
		own: st, opts: opts, cfg: cfg, key: rollupKey(opts),
		src:    newSourcePicker(st, cfg.Language),
		ix:     ix,
		marked: map[int64]bool{}, remark: map[int64]bool{},
		met: rollupMetrics{
			hours: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "greenpost_rollup_hours_total",
				Help: "Outlet-hours summarized by the roll-up, by why: build (first time), late (a fingerprint changed), spill (a neighbour of a late hour).",
			}, []string{"reason"}),
			cycle: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "greenpost_rollup_cycle_seconds",
				Help:    "Duration of one roll-up cycle (partial hour and fingerprint checks).",
				Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
			}),
			errors: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "greenpost_rollup_errors_total",
				Help: "Roll-up steps that failed and will be retried.",
			}),
			lag: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "greenpost_rollup_lag_seconds",
				Help: "How far the roll-up's summaries end before now (the rest is read raw).",
			}),
			memory: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "greenpost_rollup_memory_bytes",
				Help: "Estimated size of the roll-up's memory index.",
			}),
			written: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "greenpost_rollup_rows_written_total",
				Help: "Rows written to the rollup measurement.",
			}),
		},
	}
	r.mine = r.src
	if cfg.Own != nil && cfg.Own != st {
		// Its own picker: with Auto, the other bucket may answer InfluxQL
		// or only Flux independently of the telemetry bucket.
		r.own, r.mine = cfg.Own, newSourcePicker(cfg.Own, cfg.Language)
	}
	if cfg.Registerer != nil {
		cold := []prometheus.Collector{
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "greenpost_rollup_cold_written_bytes_total",
				Help: "Bytes of compact days' hours written to the cold files (GP_API_COLD_DIR), live and replaced.",
			}, func() float64 { return float64(ix.coldStats().written) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "greenpost_rollup_cold_failures_total",
				Help: "Compact days kept in memory because their cold file could not be written.",
			}, func() float64 { return float64(ix.coldStats().failed) }),
		}
		for _, c := range append([]prometheus.Collector{r.met.hours, r.met.cycle, r.met.errors, r.met.lag, r.met.memory, r.met.written}, cold...) {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// rollupKey names the options a roll-up was built with (its v tag):
// coverage depends on them, so other options never read these rows. The
// leading 1 is the roll-up's meaning; the encoding of each row carries its
// own format number (codec.go), so a denser encoding needs no rebuild.
func rollupKey(o Options) string {
	return fmt.Sprintf("1_%s_%s", o.Staleness, strconv.FormatFloat(o.FullPct, 'g', -1, 64))
}

// snapshot returns the index for a request; until the first load is done,
// an empty one (then everything is read raw, within the engine's limit):
// the snapshots of a load in progress cover the range with only part of
// its rows.
func (r *Rollup) snapshot(ctx context.Context) (*snapshot, error) {
	if s := r.ix.load(); s.ready {
		return s, ctx.Err()
	}
	return notReady, ctx.Err()
}

var notReady = &snapshot{outlets: map[string]*outletHist{}, partial: map[string]*summary{}}

// Ready is closed once the roll-up has loaded and caught up.
func (r *Rollup) Ready() <-chan struct{} { return r.ix.readyCh }

// Run keeps the roll-up until ctx ends: it loads the persisted roll-up,
// catches up, then runs a cycle every Interval and builds older history in
// between. Failed steps are logged and retried; Run returns an error only
// when InfluxDB refuses it for good (bad token or bucket). On ctx's end it
// finishes writing what it computed and returns nil.
func (r *Rollup) Run(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.cfg.Logger
	backoff := time.Second
	for ctx.Err() == nil {
		did, err := r.step(ctx, false)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.met.errors.Inc()
			var we *store.WriteError
			if errors.As(err, &we) && we.Class == store.Fatal {
				log.Error("roll-up stopped", "err", err)
				return fmt.Errorf("roll-up: %w", err)
			}
			log.Warn("roll-up step failed, will retry", "err", err, "in", backoff)
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, r.cfg.Interval)
			continue
		}
		backoff = time.Second
		if !did {
			next := r.lastCycle.Add(r.cfg.Interval)
			if !sleep(ctx, time.Until(next)) {
				break
			}
		}
	}
	log.Info("roll-up stopped")
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Sync brings the roll-up fully up to date now: load, build everything
// within the horizon, check every hour's fingerprint, refresh the partial
// hour. For tests, benchmarks and tools; a server uses Run.
func (r *Rollup) Sync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		did, err := r.step(ctx, true)
		if err != nil {
			return err
		}
		if !did {
			return nil
		}
	}
}

// step does the next piece of work and reports whether there was any.
// full (Sync) checks every hour instead of the rotating day.
func (r *Rollup) step(ctx context.Context, full bool) (bool, error) {
	src, err := r.src.get(ctx)
	if err != nil {
		return false, err
	}
	now := r.cfg.Now()
	closedEnd := floorDiv(now.Add(-r.cfg.Grace).UnixNano(), hourNS) * hourNS
	target0 := floorDiv(now.Add(-r.cfg.Horizon).UnixNano(), hourNS) * hourNS
	if !r.loaded {
		mine, err := r.mine.get(ctx)
		if err != nil {
			return false, err
		}
		if err := r.load(ctx, mine, closedEnd, target0); err != nil {
			return false, err
		}
		r.loaded = true
		return true, nil
	}
	snap := r.ix.load()
	chunk := int64(r.cfg.BuildChunk)
	switch {
	case snap.r1 < closedEnd:
		// Hours that closed: forward, a chunk at a time.
		b := min(snap.r1+chunk, closedEnd)
		return true, r.build(ctx, src, snap.r1, b, snap.r0, b)
	case snap.r0 > target0 && (full || time.Since(r.lastCycle) < r.cfg.Interval):
		// History, backwards, between cycles.
		a := max(snap.r0-chunk, target0)
		if err := r.build(ctx, src, a, snap.r0, a, snap.r1); err != nil {
			return true, err
		}
		r.buildProgress(snap.r0, a, target0)
		return true, nil
	case snap.r0 < target0:
		// Forget what fell out of the horizon (it stays in InfluxDB).
		return true, r.apply(ctx, update{r0: target0, r1: snap.r1, p: snap.p})
	}
	if !full && time.Since(r.lastCycle) < r.cfg.Interval {
		return false, nil
	}
	t0 := time.Now()
	err = r.cycle(ctx, src, now, full)
	r.met.cycle.Observe(time.Since(t0).Seconds())
	r.lastCycle = time.Now()
	if err != nil {
		return false, err
	}
	snap = r.ix.load()
	r.met.lag.Set(now.Sub(time.Unix(0, max(snap.p, snap.r1))).Seconds())
	r.met.memory.Set(float64(snap.memoryBytes()))
	return !full, nil
}

// buildProgress logs how far the backwards build of history has come
// (every buildLogEvery, and when it is done): hours summarized from raw
// data of those left, the rate and what remains, so that a first build at
// city scale, which takes minutes per 1,000 outlets, says so.
func (r *Rollup) buildProgress(prevR0, r0, target0 int64) {
	now := time.Now()
	if r.progress.start.IsZero() {
		r.progress.start, r.progress.from, r.progress.logged = now, prevR0, now
	}
	done := (r.progress.from - r0) / hourNS
	left := (r0 - target0) / hourNS
	el := now.Sub(r.progress.start)
	if left == 0 {
		r.cfg.Logger.Info("roll-up built history", "hours", done, "to", time.Unix(0, r.progress.from).UTC(), "from", time.Unix(0, r0).UTC(),
			"took", el.Round(time.Millisecond))
		r.progress = buildProgress{}
		return
	}
	if now.Sub(r.progress.logged) < buildLogEvery {
		return
	}
	r.progress.logged = now
	eta := time.Duration(float64(el) / float64(done) * float64(left))
	r.cfg.Logger.Info("roll-up build progress", "hours_done", done, "hours_left", left,
		"percent", 100*done/(done+left), "elapsed", el.Round(time.Second), "eta", eta.Round(time.Second))
}

// buildLogEvery is how often a build of history logs its progress.
const buildLogEvery = 10 * time.Second

// buildProgress is the state of a backwards build, for its log lines.
type buildProgress struct {
	start, logged time.Time
	from          int64 // where the build started (its end, going back)
}

// load reads the persisted roll-up (as far as the horizon) into memory;
// src is the source of the roll-up's own rows.
func (r *Rollup) load(ctx context.Context, src source, closedEnd, target0 int64) error {
	from, to, ok, err := src.rollupState(ctx, r.key)
	if err != nil {
		return fmt.Errorf("reading roll-up state: %w", err)
	}
	r0, r1 := closedEnd, closedEnd
	if ok && to > target0 && from < to {
		r0, r1 = max(from, target0), min(to, closedEnd)
		r.b0 = from
	} else {
		r.b0 = closedEnd
	}
	t0 := time.Now()
	marks, err := r.readDayMarks(ctx, src, floorDiv(r0, dayNS)*dayNS, r1)
	if err != nil {
		return fmt.Errorf("loading roll-up day marks: %w", err)
	}
	// A week at a time from a midnight (a day is never split), each week
	// applied before the next is read: the rows of the whole horizon at
	// once would hold every hour uncompacted (compact.go) in memory. The
	// range is the whole [r0, r1) from the first week on, so that no day's
	// completeness changes between weeks (the snapshot is not ready, no
	// request reads it).
	rows, dayRows := 0, 0
	chunk := 7 * dayNS
	for a := floorDiv(r0, dayNS) * dayNS; a < r1; a += chunk {
		b := min(a+chunk, r1)
		// Whole days with complete day rows come from them (dayrows.go);
		// every other hour from its own row.
		days := map[int64]bool{}
		var ranges [][2]int64
		for d := a; d < b; d += dayNS {
			if marks[d] && d >= r0 && d+dayNS <= r1 {
				days[d] = true
				r.marked[d] = true
				continue
			}
			if lo, hi := max(d, r0), min(d+dayNS, b); lo < hi {
				ranges = append(ranges, [2]int64{lo, hi})
			}
		}
		u := update{r0: r0, r1: r1, p: r1, ready: b == r1}
		if len(days) > 0 {
			if u.days, err = r.readDayRows(ctx, src, a, b, days); err != nil {
				return fmt.Errorf("loading roll-up day rows: %w", err)
			}
		}
		for _, rg := range coalesce(ranges) {
			if err := r.loadHours(ctx, src, rg[0], rg[1], &u.hours); err != nil {
				return fmt.Errorf("loading roll-up: %w", err)
			}
		}
		rows += len(u.hours)
		dayRows += len(u.days)
		if err := r.apply(ctx, u); err != nil {
			return err
		}
	}
	r.loadedRows = [2]int{rows, dayRows}
	r.cfg.Logger.Info("roll-up loaded", "rows", rows, "day_rows", dayRows, "from", time.Unix(0, r0).UTC(), "to", time.Unix(0, r1).UTC(), "took", time.Since(t0).Round(time.Millisecond), "query", src.name())
	r.checkCursor = r1
	if !r.ix.load().ready { // nothing was persisted: no week was read
		return r.apply(ctx, update{r0: r0, r1: r1, p: r1, ready: true})
	}
	return nil
}

// loadHours reads the hour rows of [a, b) into hours.
func (r *Rollup) loadHours(ctx context.Context, src source, a, b int64, hours *[]hourUpdate) error {
	return src.rollups(ctx, r.key, a, b, nil, func(outlet string, t int64, data string) error {
		if data == "" {
			return nil // a tombstone: the hour lost its data
		}
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return fmt.Errorf("roll-up row %s %v: %w", outlet, time.Unix(0, t).UTC(), err)
		}
		*hours = append(*hours, hourUpdate{outlet: outlet, hour: t, data: b})
		return nil
	})
}

// build summarizes every outlet over the hours [a, b) from raw data,
// writes the rows and then sets the index's range to [r0, r1).
func (r *Rollup) build(ctx context.Context, src source, a, b, r0, r1 int64) error {
	t0 := time.Now()
	sums, err := r.summarize(ctx, src, a, b, nil)
	if err != nil {
		return err
	}
	t1 := time.Now()
	old := r.ix.load()
	ups, err := r.persist(ctx, old, sums, a, b, nil)
	if err != nil {
		return err
	}
	t2 := time.Now()
	defer func() {
		r.cfg.Logger.Debug("roll-up built", "from", time.Unix(0, a).UTC(), "to", time.Unix(0, b).UTC(), "outlet_hours", len(ups),
			"read_and_summarize", t1.Sub(t0).Round(time.Millisecond), "write", t2.Sub(t1).Round(time.Millisecond), "index", time.Since(t2).Round(time.Millisecond))
	}()
	r.met.hours.WithLabelValues("build").Add(float64(len(ups)))
	u := update{hours: ups, r0: r0, r1: r1, p: old.p}
	if r1 != old.r1 {
		// The partial hour is rolled now; the next cycle starts a new one.
		u.p, u.partial = r1, map[string]*summary{}
	}
	if err := r.apply(ctx, u); err != nil {
		return err
	}
	r.b0 = min(r.b0, r0)
	return r.writeState(ctx)
}

// summarize reads raw data for [a - staleness, b) and summarizes each
// outlet's hours in [a, b): only the given outlets when not nil.
func (r *Rollup) summarize(ctx context.Context, src source, a, b int64, outlets []string) (map[string]map[int64]*summary, error) {
	rs := rawSet{}
	if err := src.raw(ctx, a-r.opts.Staleness.Nanoseconds(), b, outlets, rs); err != nil {
		return nil, err
	}
	rs.normalize()
	out := map[string]map[int64]*summary{}
	for o, raw := range rs {
		for h := a; h < b; h += hourNS {
			s := summarizeRaw(raw, h, h+hourNS, r.opts, nil)
			if s.empty() {
				continue
			}
			if out[o] == nil {
				out[o] = map[int64]*summary{}
			}
			out[o][h] = &s
		}
	}
	return out, nil
}

// persist writes the summaries of [a, b) (for the given outlets, or all)
// and returns the index updates: every outlet-hour whose content changed,
// including hours that lost their data (written as a tombstone row).
func (r *Rollup) persist(ctx context.Context, old *snapshot, sums map[string]map[int64]*summary, a, b int64, outlets []string) ([]hourUpdate, error) {
	// A restart must not trust the day rows of a day whose hours change.
	if err := r.unmarkDays(ctx, a, b); err != nil {
		return nil, err
	}
	var ups []hourUpdate
	var lines []byte
	var buf []byte
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		err := r.write(ctx, lines)
		lines = lines[:0]
		return err
	}
	n := 0
	write := func(outlet string, h int64, s *summary) error {
		var data []byte
		var serving, counting int64
		if s != nil {
			buf = appendSummary(buf[:0], s, h)
			data, serving, counting = buf, s.serving, s.counting
		}
		lines = store.AppendRollupRow(lines, outlet, r.key, h, data, serving, counting)
		n++
		if n%5000 == 0 {
			return flush()
		}
		return nil
	}
	consider := map[string]bool{}
	if outlets == nil {
		for o := range old.outlets {
			consider[o] = true
		}
		for o := range sums {
			consider[o] = true
		}
	} else {
		for _, o := range outlets {
			consider[o] = true
		}
	}
	names := make([]string, 0, len(consider))
	for o := range consider {
		names = append(names, o)
	}
	sort.Strings(names)
	var op opener
	for _, o := range names {
		for h := a; h < b; h += hourNS {
			s := sums[o][h]
			var prev []byte
			if h >= old.r0 && h < old.r1 {
				var err error
				if prev, err = old.hourVia(&op, o, h); err != nil {
					return nil, err
				}
			}
			if s == nil {
				if prev == nil {
					continue
				}
				if err := write(o, h, nil); err != nil {
					return nil, err
				}
				ups = append(ups, hourUpdate{outlet: o, hour: h})
				continue
			}
			data := appendSummary(nil, s, h)
			if prev != nil && string(prev) == string(data) {
				continue
			}
			if err := write(o, h, s); err != nil {
				return nil, err
			}
			ups = append(ups, hourUpdate{outlet: o, hour: h, data: data})
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	r.met.written.Add(float64(n))
	return ups, nil
}

func (r *Rollup) writeState(ctx context.Context) error {
	snap := r.ix.load()
	return r.write(ctx, store.AppendRollupState(nil, r.key, min(r.b0, snap.r0), snap.r1, r.cfg.Now().UnixNano()))
}

// RollupStats describes the roll-up's memory index.
type RollupStats struct {
	From, To    time.Time // closed hours rolled: [From, To)
	PartialTo   time.Time // the current hour is summarized up to here
	Outlets     int       // outlets with data in the index
	MemoryBytes int64     // estimated size of the index
	Hours       int       // outlet-hours with data in the index
	HourBytes   int64     // their encoded size
	// CompactDays are outlet-days kept compact (compact.go), in
	// CompactBytes (their hours are counted above as well), of which
	// ColdDays are in files (cold.go) rather than the heap.
	CompactDays  int
	CompactBytes int64
	ColdDays     int
	// ColdWritten is what the cold files took in (live and replaced);
	// ColdFailed counts blocks kept in memory because a write failed.
	ColdWritten, ColdFailed int64
}

// Stats returns the current state of the memory index.
func (r *Rollup) Stats() RollupStats {
	s := r.ix.load()
	st := RollupStats{
		From: time.Unix(0, s.r0).UTC(), To: time.Unix(0, s.r1).UTC(), PartialTo: time.Unix(0, max(s.p, s.r1)).UTC(),
		Outlets: len(s.outlets), MemoryBytes: s.memoryBytes(),
	}
	cs := r.ix.coldStats()
	st.ColdWritten, st.ColdFailed = cs.written, cs.failed
	for _, h := range s.outlets {
		for _, b := range h.days {
			if b == nil {
				continue
			}
			if b.isCompact() {
				st.CompactDays++
				if b.cold != nil {
					st.ColdDays++
					st.CompactBytes += int64(b.cold.n)
				} else {
					st.CompactBytes += int64(len(b.z))
				}
				if b, _ = b.unpack(); b == nil {
					continue
				}
			}
			for i := 0; i < 24; i++ {
				if d := b.hour(i); d != nil {
					st.Hours++
					st.HourBytes += int64(len(d))
				}
			}
		}
	}
	return st
}
