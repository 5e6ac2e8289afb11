package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// The registry lives in InfluxDB (GP_API_BUCKET: the telemetry bucket
// unless set), so that every API replica shares it and a restart keeps it
// (docs/api.md "Registry"; the record is internal/store's OutletRecord).
// Every write is a whole record; the latest write of an id wins (last
// writer wins); a delete is a tombstone. Each replica keeps the merged
// state in memory, updates it after its own writes and re-reads the
// records every RegistryRefresh.
const (
	maxNameLen     = 200
	maxAddressLen  = 500
	maxOperatorLen = 100
)

// Outlet is one entry of the registry.
type Outlet struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	District string  `json:"district"`
	Address  string  `json:"address"`
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Operator string  `json:"operator"`
	Active   bool    `json:"active"`
	// ActiveSince is when the outlet went into service or joined GreenPost
	// (metrics-v1 v1.1; zero: always): it is judged only from then on.
	ActiveSince time.Time `json:"active_since,omitzero"`
	Updated     time.Time `json:"updated"`
}

// fieldProblem is one bad field of an outlet and why.
type fieldProblem struct{ Field, Reason string }

func (p fieldProblem) String() string { return p.Field + ": " + p.Reason }

// joinProblems says every problem of one outlet in one line.
func joinProblems(ps []fieldProblem) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

// problems checks an outlet against the registry's rules and returns every
// bad field with its reason, in column order: a row with a bad id and a
// latitude of 95 is told both at once.
func (o *Outlet) problems(districts []string) []fieldProblem {
	var out []fieldProblem
	bad := func(field, reason string) { out = append(out, fieldProblem{field, reason}) }
	if !telemetry.ValidID(o.ID) {
		bad("id", "want [a-z0-9][a-z0-9_-]{0,63} (the topic charset)")
	}
	if !validText(o.Name, maxNameLen, true) {
		bad("name", fmt.Sprintf("want 1 to %d characters of printable UTF-8", maxNameLen))
	}
	if !telemetry.ValidID(o.District) {
		bad("district", "want [a-z0-9][a-z0-9_-]{0,63}")
	} else if len(districts) > 0 && !slices.Contains(districts, o.District) {
		bad("district", "not one of the configured districts (GP_API_DISTRICTS)")
	}
	if !validText(o.Address, maxAddressLen, false) {
		bad("address", fmt.Sprintf("want at most %d characters of printable UTF-8", maxAddressLen))
	}
	if math.IsNaN(o.Lat) || o.Lat < -90 || o.Lat > 90 {
		bad("lat", "want a latitude from -90 to 90")
	}
	if math.IsNaN(o.Lon) || o.Lon < -180 || o.Lon > 180 {
		bad("lon", "want a longitude from -180 to 180")
	}
	if !validText(o.Operator, maxOperatorLen, true) || o.Operator != strings.TrimSpace(o.Operator) {
		bad("operator", fmt.Sprintf("want 1 to %d characters of printable UTF-8, no spaces around", maxOperatorLen))
	}
	return out
}

// validate returns the first bad field and its reason ("" when valid).
func (o *Outlet) validate(districts []string) (field, reason string) {
	if ps := o.problems(districts); len(ps) > 0 {
		return ps[0].Field, ps[0].Reason
	}
	return "", ""
}

// validText accepts printable UTF-8 (spaces allowed, no control characters)
// of at most max runes.
func validText(s string, max int, required bool) bool {
	if (required && strings.TrimSpace(s) == "") || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// outletStore keeps the registry's records: internal/store on InfluxDB,
// memOutlets in handler tests.
type outletStore interface {
	WriteOutlets(ctx context.Context, recs []store.OutletRecord) error
	LoadOutlets(ctx context.Context) ([]store.OutletRecord, error)
}

var _ outletStore = (*store.Store)(nil)

// entry is an outlet or its tombstone, as last written.
type entry struct {
	Outlet
	Deleted bool
}

func (e *entry) record() store.OutletRecord {
	o := &e.Outlet
	return store.OutletRecord{ID: o.ID, Name: o.Name, District: o.District, Address: o.Address, Operator: o.Operator,
		Lat: o.Lat, Lon: o.Lon, Active: o.Active, ActiveSince: o.ActiveSince, Deleted: e.Deleted, Updated: o.Updated}
}

func entryOf(r *store.OutletRecord) entry {
	return entry{Outlet: Outlet{ID: r.ID, Name: r.Name, District: r.District, Address: r.Address, Operator: r.Operator,
		Lat: r.Lat, Lon: r.Lon, Active: r.Active, ActiveSince: r.ActiveSince, Updated: r.Updated}, Deleted: r.Deleted}
}

// registry is the in-memory copy of the outlet_registry measurement.
type registry struct {
	db        outletStore
	districts []string
	log       *slog.Logger

	mu      sync.RWMutex
	entries map[string]entry // by id, tombstones included
	// live: the live outlets in id order (copies of theirs in entries),
	// active the active ones among them; new arrays on every change, as
	// Select hands them out.
	live, active []Outlet
	// written: each live outlet's fields as answers write them in JSON
	// (outletJSON), a new map on every change.
	written  map[string]outletJSON
	loadedAt time.Time // zero until the first successful load
	stamp    *stamper  // this replica's write times
}

func newRegistry(db outletStore, districts []string, log *slog.Logger) *registry {
	return &registry{db: db, districts: districts, log: log, entries: map[string]entry{}, stamp: &stamper{}}
}

// Loaded reports whether the registry has been read from InfluxDB at least once.
func (r *registry) Loaded() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.loadedAt.IsZero()
}

// Load reads the latest point of every id and merges it into memory.
func (r *registry) Load(ctx context.Context) error {
	recs, err := r.db.LoadOutlets(ctx)
	if err != nil {
		return err
	}
	loaded := make([]entry, len(recs))
	for i := range recs {
		loaded[i] = entryOf(&recs[i])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range loaded {
		r.mergeLocked(e)
	}
	r.loadedAt = time.Now()
	r.rebuildLocked()
	return nil
}

// mergeLocked keeps the newer of the known and the given entry: a load that
// started before one of our own writes must not undo it.
func (r *registry) mergeLocked(e entry) {
	if old, ok := r.entries[e.ID]; ok && old.Updated.After(e.Updated) {
		return
	}
	r.entries[e.ID] = e
}

func (r *registry) rebuildLocked() {
	r.live = make([]Outlet, 0, len(r.entries))
	for _, e := range r.entries {
		if !e.Deleted {
			r.live = append(r.live, e.Outlet)
		}
	}
	slices.SortFunc(r.live, func(a, b Outlet) int { return strings.Compare(a.ID, b.ID) })
	r.active = make([]Outlet, 0, len(r.live))
	// Written again only where an outlet changed: the registry is re-read
	// every GP_API_REGISTRY_REFRESH, mostly unchanged.
	prev := r.written
	r.written = make(map[string]outletJSON, len(r.live))
	for i := range r.live {
		o := &r.live[i]
		if o.Active {
			r.active = append(r.active, *o)
		}
		if e, ok := prev[o.ID]; ok && e.vals == outletValues(o) {
			r.written[o.ID] = e
		} else {
			r.written[o.ID] = newOutletJSON(o)
		}
	}
}

// Written returns each live outlet's fields written in JSON, by id: the
// map is not changed after, callers must not change it either.
func (r *registry) Written() map[string]outletJSON {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.written
}

// Every read and write below takes the request's context and applies the
// caller's scope (scope.go): an outlet outside it does not exist for reads,
// and writing it is forbidden.

// Get returns a live outlet within ctx's scope.
func (r *registry) Get(ctx context.Context, id string) (Outlet, bool) {
	s := scopeOf(ctx)
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[id]
	if !ok || e.Deleted || !s.sees(&e.Outlet) {
		return Outlet{}, false
	}
	return e.Outlet, true
}

// Writable says why ctx's scope may not write o (nil: it may): o must be
// in scope, and so must the outlet it replaces.
func (r *registry) Writable(ctx context.Context, o *Outlet) error {
	s := scopeOf(ctx)
	if !s.sees(o) {
		return &apiError{Code: codeForbidden, Detail: fmt.Sprintf("outlet %q: district %q and operator %q are outside this key's scope (%s)", o.ID, o.District, o.Operator, s)}
	}
	r.mu.RLock()
	old, ok := r.entries[o.ID]
	r.mu.RUnlock()
	if ok && !old.Deleted && !s.sees(&old.Outlet) {
		return &apiError{Code: codeForbidden, Detail: fmt.Sprintf("outlet %q is outside this key's scope (%s)", o.ID, s)}
	}
	return nil
}

// Put validates and writes outlets (one request to InfluxDB), then updates
// memory. The outlets get their write time as Updated. Every outlet must be
// writable by ctx's scope, or nothing is written.
func (r *registry) Put(ctx context.Context, outlets ...Outlet) ([]Outlet, error) {
	for i := range outlets {
		if ps := outlets[i].problems(r.districts); len(ps) > 0 {
			return nil, errInvalid(ps[0].Field, "%s", joinProblems(ps))
		}
		if err := r.Writable(ctx, &outlets[i]); err != nil {
			return nil, err
		}
	}
	es := make([]entry, len(outlets))
	r.mu.Lock()
	for i, o := range outlets {
		o.Updated = r.stamp.next()
		es[i] = entry{Outlet: o}
	}
	r.mu.Unlock()
	if err := r.write(ctx, es); err != nil {
		return nil, err
	}
	out := make([]Outlet, len(es))
	for i, e := range es {
		out[i] = e.Outlet
	}
	return out, nil
}

// Delete writes a tombstone. It reports false when the id is not live, and
// a forbidden error when the outlet is outside ctx's scope.
func (r *registry) Delete(ctx context.Context, id string) (bool, error) {
	s := scopeOf(ctx)
	r.mu.Lock()
	e, ok := r.entries[id]
	if !ok || e.Deleted {
		r.mu.Unlock()
		return false, nil
	}
	if !s.sees(&e.Outlet) {
		r.mu.Unlock()
		return false, &apiError{Code: codeForbidden, Detail: fmt.Sprintf("outlet %q is outside this key's scope (%s)", id, s)}
	}
	t := entry{Outlet: Outlet{ID: id, Updated: r.stamp.next()}, Deleted: true}
	r.mu.Unlock()
	return true, r.write(ctx, []entry{t})
}

// write sends entries to the store in batches and merges each batch into
// memory once it is stored.
func (r *registry) write(ctx context.Context, es []entry) error {
	const batch = 5000
	recs := make([]store.OutletRecord, 0, min(batch, len(es)))
	for start := 0; start < len(es); start += batch {
		part := es[start:min(start+batch, len(es))]
		recs = recs[:0]
		for i := range part {
			recs = append(recs, part[i].record())
		}
		if err := r.db.WriteOutlets(ctx, recs); err != nil {
			return err
		}
		r.mu.Lock()
		for _, e := range part {
			r.mergeLocked(e)
		}
		r.rebuildLocked()
		r.mu.Unlock()
	}
	return nil
}

// outletFilter selects outlets for lists and roll-ups; empty fields match all.
type outletFilter struct {
	District, Operator string
	ActiveOnly         bool
}

func (f outletFilter) match(o *Outlet) bool {
	return (f.District == "" || o.District == f.District) &&
		(f.Operator == "" || o.Operator == f.Operator) &&
		(!f.ActiveOnly || o.Active)
}

// List returns up to limit outlets within ctx's scope after the id `after`,
// in id order, and whether more follow (limit <= 0: all).
func (r *registry) List(ctx context.Context, f outletFilter, after string, limit int) (page []Outlet, more bool) {
	s := scopeOf(ctx)
	r.mu.RLock()
	defer r.mu.RUnlock()
	i, found := slices.BinarySearchFunc(r.live, after, func(o Outlet, id string) int { return strings.Compare(o.ID, id) })
	if found {
		i++
	}
	if limit <= 0 {
		// Room for every outlet after the id: a city's are thousands, and
		// growing the page step by step copied them over and over.
		page = make([]Outlet, 0, len(r.live)-i)
	}
	for ; i < len(r.live); i++ {
		o := &r.live[i]
		if !f.match(o) || !s.sees(o) {
			continue
		}
		if limit > 0 && len(page) == limit {
			return page, true
		}
		page = append(page, *o)
	}
	return page, false
}

// Select returns every live outlet within ctx's scope that matches f, in id
// order. The slice may be the registry's own (a city-wide question gets it
// without copying 10,000 outlets): callers must not modify it.
func (r *registry) Select(ctx context.Context, f outletFilter) []Outlet {
	if scopeOf(ctx).all && f.District == "" && f.Operator == "" {
		r.mu.RLock()
		defer r.mu.RUnlock()
		if f.ActiveOnly {
			return r.active
		}
		return r.live
	}
	page, _ := r.List(ctx, f, "", 0)
	return page
}
