package metrics

import (
	"context"
	"strconv"
	"sync"

	"github.com/greenpost/greenpost/internal/store"
)

// The engine reads InfluxDB through minimal queries only (a time range, a
// measurement, tag equality, a list of fields) and computes everything in
// Go: Flux's increase/difference are not metrics-v1, Flux aggregates run
// outside storage in 1.8, and neither InfluxQL nor Flux can express the
// baseline and the per-class step rule. The same five questions are asked
// in two languages:
//
//   - Flux through /api/v2/query, which InfluxDB 1.8 (Flux 0.65) and 2.x
//     both serve (only range, filter, keep, group, window, reduce, last);
//   - InfluxQL through /query (1.x; 2.x through its v1 compatibility API
//     with a DBRP mapping), whose wide rows and tags-as-columns answers are
//     read about 3x faster, without one table per series.
//
// QueryLanguage chooses; Auto probes /query once and falls back to Flux.

// QueryLanguage selects how the engine and the roll-up read InfluxDB.
type QueryLanguage int

// Query languages.
const (
	Auto     QueryLanguage = iota // InfluxQL when /query answers for the bucket, else Flux
	Flux                          // Flux only: InfluxDB 2.x without a DBRP mapping, Cloud
	InfluxQL                      // InfluxQL only
)

func (l QueryLanguage) String() string {
	switch l {
	case Flux:
		return "flux"
	case InfluxQL:
		return "influxql"
	}
	return "auto"
}

// fingerprint is what InfluxDB says about one outlet's raw points in one
// hour: the count and the sum of seq, per measurement.
type fingerprint struct {
	counterN, counterSum, binN, binSum int64
}

type fpKey struct {
	outlet string
	hour   int64 // ns
}

// statusRow is the last device_status of one device.
type statusRow struct {
	outlet, kind, device, state string
	t                           int64
}

// source answers the engine's and the roll-up's questions.
type source interface {
	// raw reads counter points and bin reports with a <= time < e, of the
	// given outlets (all when outlets is nil).
	raw(ctx context.Context, a, e int64, outlets []string, into rawSet) error
	// fingerprints counts seq per outlet and hour in [a, e) (whole hours).
	fingerprints(ctx context.Context, a, e int64) (map[fpKey]fingerprint, error)
	// statuses returns the last device_status of each device in [a, e).
	statuses(ctx context.Context, a, e int64) ([]statusRow, error)
	// rollups streams the roll-up rows of format key v in [a, e).
	rollups(ctx context.Context, v string, a, e int64, outlets []string, fn func(outlet string, t int64, data string) error) error
	// rollupState returns the last roll-up state of format key v.
	rollupState(ctx context.Context, v string) (from, to int64, ok bool, err error)
	name() string
}

var (
	_ source = influxQLSource{}
	_ source = fluxSource{}
)

// maxOutletFilter is the most outlets a query names; above it the query
// reads every outlet and the engine drops the others (one long OR costs
// InfluxDB more than the rows it saves).
const maxOutletFilter = 64

func outletFilter(outlets []string) []string {
	if outlets == nil || len(outlets) > maxOutletFilter {
		return nil
	}
	return outlets
}

func wanted(outlets []string) map[string]bool {
	if outlets == nil {
		return nil
	}
	m := make(map[string]bool, len(outlets))
	for _, o := range outlets {
		m[o] = true
	}
	return m
}

// parseBoot reads the boot tag; a series without a readable boot is kept
// apart from every real boot.
func parseBoot(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// sourcePicker settles the query language once (Auto probes /query).
type sourcePicker struct {
	st   *store.Store
	lang QueryLanguage
	mu   sync.Mutex
	src  source
}

func newSourcePicker(st *store.Store, lang QueryLanguage) *sourcePicker {
	p := &sourcePicker{st: st, lang: lang}
	switch lang {
	case Flux:
		p.src = fluxSource{st}
	case InfluxQL:
		p.src = influxQLSource{st}
	}
	return p
}

func (p *sourcePicker) get(ctx context.Context) (source, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.src != nil {
		return p.src, nil
	}
	ql, err := p.st.SpeaksInfluxQL(ctx)
	if err != nil {
		return nil, err // a network error decides nothing
	}
	if ql {
		p.src = influxQLSource{p.st}
	} else {
		p.src = fluxSource{p.st}
	}
	return p.src, nil
}
