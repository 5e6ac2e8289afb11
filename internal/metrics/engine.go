package metrics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/greenpost/greenpost/internal/store"
)

// Errors of the engine, for the API to map to HTTP answers.
var (
	// ErrBadWindow: from is not before to, or they are not whole minutes.
	ErrBadWindow = errors.New("metrics: window must be whole minutes with from before to")
	// ErrNotReady: the roll-up is still loading or building and the window
	// would need too much raw data meanwhile. Retry later (HTTP 503).
	ErrNotReady = errors.New("metrics: roll-up not ready for this window yet")
)

// runsKept is how many runs of whole pieces the engine keeps combined
// (runs.go): a window has at most two, so the last few windows asked.
// Each holds up to one summary per outlet (~1–2 KB in the simulator's
// city). headsKept is the same for the heads (one a window, and a new one
// every minute for "the last N days": ~2 KB per outlet each at 10,000
// outlets, measured), so a few: the windows of the current minute.
const (
	runsKept  = 8
	headsKept = 4
)

// maxLiveOutletHours bounds the raw data one request may read when a
// roll-up exists (outlets × hours of live raw reads): the whole city for a
// day, one outlet for years. Beyond it the answer waits for the roll-up
// (ErrNotReady) rather than let a request scan InfluxDB for minutes.
const maxLiveOutletHours = 30_000

// InfluxEngine implements Engine on InfluxDB: from the roll-up's memory
// index where it can, from raw data for the rest.
type InfluxEngine struct {
	st    *store.Store
	opts  Options
	roll  *Rollup // nil: every answer from raw data (the reference path)
	src   *sourcePicker
	cache *rawCache
	live  *liveCache
	runs  *runCache[kept] // nil: every request combines its pieces itself
	heads *runCache[head] // nil: every request evaluates every piece
	// Device states (devstate.go).
	devMu    sync.Mutex
	reports  *lastReports
	devices  *devTable
	statuses statusTable
}

var _ Engine = (*InfluxEngine)(nil)

// NewInfluxEngine returns an engine over st. With roll nil every answer is
// computed from raw data (exact, but a month of the whole city is far too
// much for one request); with the roll-up worker of the same options,
// windows are served from its index and the raw data of the edges.
//
// Wiring in a binary (see also NewRollup):
//
//	roll, err := metrics.NewRollup(st, opts, metrics.RollupConfig{Logger: log, Registerer: reg})
//	eng, err := metrics.NewInfluxEngine(st, opts, roll)
//	g.Go(func() error { return roll.Run(ctx) }) // stops on ctx, after flushing its writes
func NewInfluxEngine(st *store.Store, opts Options, roll *Rollup) (*InfluxEngine, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	e := &InfluxEngine{st: st, opts: opts, roll: roll, cache: newRawCache(6), live: newLiveCache(0), runs: newRunCache[kept](runsKept), heads: newRunCache[head](headsKept)}
	if roll != nil {
		e.live = newLiveCache(roll.cfg.LiveTTL)
		if roll.opts != opts {
			return nil, fmt.Errorf("metrics: engine options %+v differ from the roll-up's %+v", opts, roll.opts)
		}
		e.src = roll.src
		inv := e.cache.invalidate
		roll.onInvalidate.Store(&inv)
	} else {
		e.src = newSourcePicker(st, Auto)
	}
	return e, nil
}

// NewRawEngine returns an engine that reads only raw data with the given
// query language: the reference path, for tests and the naive benchmark.
func NewRawEngine(st *store.Store, opts Options, lang QueryLanguage) (*InfluxEngine, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &InfluxEngine{st: st, opts: opts, src: newSourcePicker(st, lang), cache: newRawCache(0), live: newLiveCache(0)}, nil
}

func (o Options) validate() error {
	if o.Staleness <= 0 || o.Staleness > 24*time.Hour {
		return fmt.Errorf("metrics: staleness %v: want more than 0 and at most 24h", o.Staleness)
	}
	if !(o.FullPct >= 0 && o.FullPct <= 100) {
		return fmt.Errorf("metrics: full_pct %v: want 0 to 100", o.FullPct)
	}
	return nil
}

func (w Window) check() error {
	if !w.From.Before(w.To) || !w.From.Truncate(time.Minute).Equal(w.From) || !w.To.Truncate(time.Minute).Equal(w.To) {
		return ErrBadWindow
	}
	return nil
}

// Outlets computes each listed outlet over w.
func (e *InfluxEngine) Outlets(ctx context.Context, w Window, outlets []string) ([]Outlet, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	res, err := e.evaluate(ctx, []Window{w}, outlets)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// Series computes one outlet over consecutive steps of w.
func (e *InfluxEngine) Series(ctx context.Context, outlet string, w Window, step time.Duration) ([]Outlet, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	if step < time.Minute || step%time.Minute != 0 {
		return nil, fmt.Errorf("metrics: step %v: want whole minutes", step)
	}
	if n := w.To.Sub(w.From) / step; n > 100_000 {
		return nil, fmt.Errorf("metrics: %d steps: too many", n)
	}
	var ws []Window
	for f := w.From; f.Before(w.To); f = f.Add(step) {
		t := f.Add(step)
		if t.After(w.To) {
			t = w.To
		}
		ws = append(ws, Window{From: f, To: t})
	}
	res, err := e.evaluate(ctx, ws, []string{outlet})
	if err != nil {
		return nil, err
	}
	out := make([]Outlet, len(ws))
	for i := range ws {
		out[i] = res[i][0]
	}
	return out, nil
}

// evaluate answers every outlet over every window: res[window][outlet].
func (e *InfluxEngine) evaluate(ctx context.Context, ws []Window, outlets []string) ([][]Outlet, error) {
	src, err := e.src.get(ctx)
	if err != nil {
		return nil, err
	}
	if e.roll == nil {
		return e.evaluateRaw(ctx, src, ws, outlets)
	}
	snap, err := e.roll.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	plans := make([][]piece, len(ws))
	for i, w := range ws {
		plans[i] = planWindow(snap, w, e.opts.Staleness)
	}
	needs := needsOf(plans)
	many := len(outlets) > maxOutletFilter
	// Closed hours: from the cache when it has them; a request for many
	// outlets reads them for the whole city and fills the cache; a small
	// request reads just its outlets, along with its live ranges.
	cached := map[int64]rawSet{}
	var fetchHours []int64
	for _, h := range needs.hours {
		if rs := e.cache.peek(h); rs != nil {
			cached[h] = rs
		} else if many || e.live.promoted([2]int64{h, h + hourNS}) {
			// A small request's hour is read for the city too once many
			// small requests have read it apart within a ttl (one
			// outlet's questions across a city: liveCache).
			fetchHours = append(fetchHours, h)
		} else {
			needs.live = append(needs.live, [2]int64{h, h + hourNS})
		}
	}
	needs.live = coalesce(needs.live)
	n := len(outlets)
	if many {
		n = max(n, len(snap.outlets))
	}
	if float64(n)*span(needs.live).Hours() > maxLiveOutletHours {
		return nil, fmt.Errorf("%w: %d outlets × %v of raw data", ErrNotReady, len(outlets), span(needs.live))
	}

	type liveRead struct {
		a, e int64
		data rawSet
	}
	lives := make([]liveRead, len(needs.live))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	filter, fkey := outlets, "*"
	if many {
		filter = nil
	} else {
		sorted := append([]string(nil), outlets...)
		sort.Strings(sorted)
		fkey = strings.Join(sorted, ",")
	}
	for i, r := range needs.live {
		g.Go(func() error {
			read := func(ctx context.Context, all bool) (rawSet, error) {
				rs := rawSet{}
				f := filter
				if all {
					f = nil
				}
				if err := src.raw(ctx, r[0], r[1], f, rs); err != nil {
					return nil, err
				}
				rs.normalize()
				return rs, nil
			}
			k := liveKey{r[0], r[1], fkey}
			var rs rawSet
			var err error
			if many {
				rs, err = e.live.get(gctx, k, func(ctx context.Context) (rawSet, error) { return read(ctx, true) })
			} else {
				// The city's read of the range may serve it, when a city
				// question would be let read it (and the roll-up has
				// loaded: before, the range may be the whole window and
				// the city's size is not known).
				city := snap.ready && float64(len(snap.outlets))*span([][2]int64{r}).Hours() <= maxLiveOutletHours
				rs, err = e.live.getSome(gctx, k, city, read)
			}
			lives[i] = liveRead{r[0], r[1], rs}
			return err
		})
	}
	for _, h := range fetchHours {
		g.Go(func() error {
			rs, err := e.cache.get(gctx, h, func(ctx context.Context) (rawSet, error) {
				rs := rawSet{}
				if err := src.raw(ctx, h, h+hourNS, nil, rs); err != nil {
					return nil, err
				}
				rs.normalize()
				return rs, nil
			})
			if err != nil {
				return err
			}
			mu.Lock()
			cached[h] = rs
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rawFor := func(p piece) rawSet {
		if rs, ok := cached[p.cacheHour]; ok && p.cacheHour >= 0 {
			return rs
		}
		for _, l := range lives {
			if l.a <= p.start && p.end <= l.e {
				return l.data
			}
		}
		return nil
	}
	res := make([][]Outlet, len(ws))
	a := &acc{intern: &interner{shared: snap.names, local: map[string]string{}}}
	if len(ws) == 1 {
		// One window (not a series of steps, whose runs are short and
		// many): its runs and heads are kept for the requests after it.
		// Its cut raw pieces are not: a head holds them, and keeping them
		// apart as well cost ~4 KB per outlet and window at 10,000 outlets
		// for the rare window that shares a from but not a head.
		a.runs, a.heads = e.runs, e.heads
	}
	hists := snap.hists(outlets)
	for i, w := range ws {
		res[i] = make([]Outlet, len(outlets))
		for j, o := range outlets {
			if res[i][j], err = a.eval(snap, o, hists[j], w, plans[i], e.opts, rawFor); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// evaluateRaw is metrics-v1 on raw data only: one read of everything the
// windows need, then the reference computation.
func (e *InfluxEngine) evaluateRaw(ctx context.Context, src source, ws []Window, outlets []string) ([][]Outlet, error) {
	from, to := ws[0].From, ws[0].To
	for _, w := range ws {
		if w.From.Before(from) {
			from = w.From
		}
		if w.To.After(to) {
			to = w.To
		}
	}
	rs := rawSet{}
	filter := outlets
	if len(outlets) > maxOutletFilter {
		filter = nil
	}
	look := from.Add(-24 * time.Hour)
	if st := from.Add(-e.opts.Staleness); st.Before(look) {
		look = st
	}
	if err := src.raw(ctx, look.UnixNano(), to.UnixNano(), filter, rs); err != nil {
		return nil, err
	}
	rs.normalize()
	res := make([][]Outlet, len(ws))
	for i, w := range ws {
		res[i] = make([]Outlet, len(outlets))
		for j, o := range outlets {
			res[i][j] = referenceOutlet(rs[o], w, e.opts)
		}
	}
	return res, nil
}

// Ready is closed once the engine's roll-up has loaded (at once for an
// engine without one).
func (e *InfluxEngine) Ready() <-chan struct{} {
	if e.roll == nil {
		return closedChan
	}
	return e.roll.Ready()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// WithLiveTTL returns an engine that shares the roll-up and the raw-hour
// cache with e but shares its live reads for ttl instead (0: never), for
// comparisons and for callers that want every answer read to the moment.
func (e *InfluxEngine) WithLiveTTL(ttl time.Duration) *InfluxEngine {
	c := &InfluxEngine{st: e.st, opts: e.opts, roll: e.roll, src: e.src, cache: e.cache, live: newLiveCache(ttl), runs: e.runs}
	return c
}
