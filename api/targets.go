package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
)

// Targets as data (ops-v1): dated sets of targets, stored in InfluxDB like
// the registry (GP_API_BUCKET, measurement target_set), kept in memory by
// every replica and re-read every GP_API_REGISTRY_REFRESH. A window
// [from, to) is judged by the set whose [valid_from, valid_to) holds `to`
// (the latest valid_from when several do); a null target is not judged.

// targetStore is what the target sets need of storage (internal/store
// implements it; handler tests keep them in memory).
type targetStore interface {
	WriteTargetSets(ctx context.Context, recs []store.TargetSetRecord) error
	LoadTargetSets(ctx context.Context) ([]store.TargetSetRecord, error)
}

var _ targetStore = (*store.Store)(nil)

// Indicators a set may hold a target for: the figures GreenPost computes as
// rates of a window.
var targetIndicators = []string{"green_rate", "outlet_coverage", "bin_coverage", "no_secondary_rate"}

// targetValues are a set's targets: nil is "not judged". JSON always has
// every indicator, null where not judged.
type targetValues struct {
	GreenRate       *float64 `json:"green_rate"`
	OutletCoverage  *float64 `json:"outlet_coverage"`
	BinCoverage     *float64 `json:"bin_coverage"`
	NoSecondaryRate *float64 `json:"no_secondary_rate"`
}

func (v targetValues) metrics() metrics.Targets {
	return metrics.Targets{GreenRate: v.GreenRate, OutletCoverage: v.OutletCoverage, BinCoverage: v.BinCoverage, NoSecondaryRate: v.NoSecondaryRate}
}

func (v targetValues) byName() map[string]*float64 {
	return map[string]*float64{"green_rate": v.GreenRate, "outlet_coverage": v.OutletCoverage, "bin_coverage": v.BinCoverage, "no_secondary_rate": v.NoSecondaryRate}
}

func targetValuesOf(m map[string]*float64) targetValues {
	return targetValues{GreenRate: m["green_rate"], OutletCoverage: m["outlet_coverage"], BinCoverage: m["bin_coverage"], NoSecondaryRate: m["no_secondary_rate"]}
}

// targetSet is one set as the API shows it.
type targetSet struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Source    string       `json:"source"`
	ValidFrom time.Time    `json:"valid_from"`
	ValidTo   *time.Time   `json:"valid_to"`
	Targets   targetValues `json:"targets"`
	Updated   time.Time    `json:"updated"`
}

// holds reports whether t is in the set's [valid_from, valid_to).
func (s *targetSet) holds(t time.Time) bool {
	return !t.Before(s.ValidFrom) && (s.ValidTo == nil || t.Before(*s.ValidTo))
}

// judgedBy is what every answer that judges says about its targets:
// the set's id ("set": null when no set holds the window's end) and its
// values.
type judgedBy struct {
	Set *string `json:"set"`
	targetValues
}

// setCell is the set's id for a CSV cell (empty when none judged).
func (j judgedBy) setCell() string {
	if j.Set == nil {
		return ""
	}
	return *j.Set
}

// cityPlan2025 is the shipped set: Wuhan's plan of 2024-01-15 for 2025
// (recycling devices at every outlet, 90 % green packaging), with the
// project's own waste-free bar for bin coverage. It is written with a time
// stamp of its own start, so writing it again at every start changes
// nothing, and any change an admin makes later (a PUT, a DELETE) is newer
// and wins.
var cityPlan2025 = targetSet{
	ID:   "wuhan-2025",
	Name: "Wuhan city plan for 2025: recycling devices at every express outlet, 90 % green packaging",
	Source: "Wuhan's plan for deepening the China Express Demonstration City (武汉市深化\"中国快递示范城市\"建设实施方案), " +
		"issued 2024-01-15, technology and green development; bin_coverage 0.95 is GreenPost's waste-free outlet bar",
	ValidFrom: time.Date(2024, 1, 15, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)),
	Targets:   targetValues{GreenRate: ptr(0.90), OutletCoverage: ptr(1.00), BinCoverage: ptr(0.95)},
}

func ptr(v float64) *float64 { return &v }

// targetEntry is a set or its tombstone, as last written.
type targetEntry struct {
	targetSet
	Deleted bool
}

// targetBook is this replica's copy of the target sets.
type targetBook struct {
	db    targetStore
	log   *slog.Logger
	stamp *stamper

	mu       sync.RWMutex
	entries  map[string]targetEntry
	seeded   bool
	loadedAt time.Time // zero until the first successful load
}

// Loaded reports whether the sets have been read at least once.
func (b *targetBook) Loaded() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return !b.loadedAt.IsZero()
}

func newTargetBook(db targetStore, stamp *stamper, log *slog.Logger) *targetBook {
	return &targetBook{db: db, stamp: stamp, log: log, entries: map[string]targetEntry{}}
}

// Load writes the shipped set (once per process; idempotent, see
// cityPlan2025), then reads every set and merges it into memory.
func (b *targetBook) Load(ctx context.Context) error {
	b.mu.RLock()
	seeded := b.seeded
	b.mu.RUnlock()
	if !seeded {
		seed := cityPlan2025
		seed.Updated = seed.ValidFrom.UTC()
		if err := b.db.WriteTargetSets(ctx, []store.TargetSetRecord{recordOf(targetEntry{targetSet: seed})}); err != nil {
			return fmt.Errorf("writing the shipped target set: %w", err)
		}
		b.mu.Lock()
		b.seeded = true
		b.mu.Unlock()
	}
	recs, err := b.db.LoadTargetSets(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range recs {
		b.mergeLocked(entryOfSet(&recs[i]))
	}
	b.loadedAt = time.Now()
	return nil
}

func (b *targetBook) mergeLocked(e targetEntry) {
	if old, ok := b.entries[e.ID]; ok && old.Updated.After(e.Updated) {
		return
	}
	b.entries[e.ID] = e
}

func recordOf(e targetEntry) store.TargetSetRecord {
	r := store.TargetSetRecord{ID: e.ID, Name: e.Name, Source: e.Source, ValidFrom: e.ValidFrom, Targets: e.Targets.byName(),
		Deleted: e.Deleted, Updated: e.Updated}
	if e.ValidTo != nil {
		r.ValidTo = *e.ValidTo
	}
	return r
}

func entryOfSet(r *store.TargetSetRecord) targetEntry {
	e := targetEntry{targetSet: targetSet{ID: r.ID, Name: r.Name, Source: r.Source, ValidFrom: r.ValidFrom.UTC(),
		Targets: targetValuesOf(r.Targets), Updated: r.Updated.UTC()}, Deleted: r.Deleted}
	if !r.ValidTo.IsZero() {
		t := r.ValidTo.UTC()
		e.ValidTo = &t
	}
	return e
}

// List returns every live set by valid_from, then id.
func (b *targetBook) List() []targetSet {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := []targetSet{}
	for _, e := range b.entries {
		if !e.Deleted {
			out = append(out, e.targetSet)
		}
	}
	slices.SortFunc(out, func(a, b targetSet) int {
		if c := a.ValidFrom.Compare(b.ValidFrom); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// For returns the set that judges a window ending at to: the one whose
// [valid_from, valid_to) holds to, the latest valid_from when several do
// (then the greater id, so that the choice never depends on map order).
func (b *targetBook) For(to time.Time) judgedBy {
	var best *targetSet
	for _, s := range b.List() {
		if s.holds(to) && (best == nil || !s.ValidFrom.Before(best.ValidFrom)) {
			s := s
			best = &s
		}
	}
	if best == nil {
		return judgedBy{}
	}
	id := best.ID
	return judgedBy{Set: &id, targetValues: best.Targets}
}

// Get returns a live set.
func (b *targetBook) Get(id string) (targetSet, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	e, ok := b.entries[id]
	return e.targetSet, ok && !e.Deleted
}

// Put writes a whole set; it returns the set as stored and the one it
// replaced (nil when new).
func (b *targetBook) Put(ctx context.Context, s targetSet) (targetSet, *targetSet, error) {
	old, existed := b.Get(s.ID)
	s.Updated = b.stamp.next()
	e := targetEntry{targetSet: s}
	if err := b.db.WriteTargetSets(ctx, []store.TargetSetRecord{recordOf(e)}); err != nil {
		return targetSet{}, nil, fmt.Errorf("target set write: %w", err)
	}
	b.mu.Lock()
	b.mergeLocked(e)
	b.mu.Unlock()
	if existed {
		return s, &old, nil
	}
	return s, nil, nil
}

// Delete writes a tombstone; it returns the deleted set, or false when the
// id is not live.
func (b *targetBook) Delete(ctx context.Context, id string) (targetSet, bool, error) {
	old, ok := b.Get(id)
	if !ok {
		return targetSet{}, false, nil
	}
	e := targetEntry{targetSet: targetSet{ID: id, Updated: b.stamp.next()}, Deleted: true}
	if err := b.db.WriteTargetSets(ctx, []store.TargetSetRecord{recordOf(e)}); err != nil {
		return targetSet{}, false, fmt.Errorf("target set write: %w", err)
	}
	b.mu.Lock()
	b.mergeLocked(e)
	b.mu.Unlock()
	return old, true, nil
}

// targetSetInput is a PUT body: a whole set (id, if given, must be the
// path's; updated is ignored, so a GET answer can be PUT back).
type targetSetInput struct {
	ID        *string             `json:"id"`
	Name      *string             `json:"name"`
	Source    *string             `json:"source"`
	ValidFrom *string             `json:"valid_from"`
	ValidTo   *string             `json:"valid_to"`
	Targets   map[string]*float64 `json:"targets"`
	Updated   *string             `json:"updated"`
}

// decodeTargetSet reads and checks a PUT body.
func decodeTargetSet(id string, body []byte, loc *time.Location) (targetSet, error) {
	var in targetSetInput
	if err := decodeStrict(body, &in); err != nil {
		return targetSet{}, err
	}
	if in.ID != nil && *in.ID != id {
		return targetSet{}, errInvalid("id", "id: the body's id %q is not the path's %q", *in.ID, id)
	}
	s := targetSet{ID: id}
	switch {
	case in.Name == nil || !validText(*in.Name, maxNameLen, true):
		return s, errInvalid("name", "name: want 1 to %d characters of printable UTF-8", maxNameLen)
	case in.Source != nil && !validText(*in.Source, maxAddressLen, false):
		return s, errInvalid("source", "source: want at most %d characters of printable UTF-8", maxAddressLen)
	case in.ValidFrom == nil:
		return s, errInvalid("valid_from", "valid_from: required (RFC 3339)")
	case in.Targets == nil:
		return s, errInvalid("targets", "targets: required: an object of %s (a number from 0 to 1, or null: not judged)", strings.Join(targetIndicators, ", "))
	}
	s.Name = *in.Name
	if in.Source != nil {
		s.Source = *in.Source
	}
	from, err := parseTime("valid_from", *in.ValidFrom, loc)
	if err != nil {
		return s, err
	}
	s.ValidFrom = from.UTC()
	if in.ValidTo != nil {
		to, err := parseTime("valid_to", *in.ValidTo, loc)
		if err != nil {
			return s, err
		}
		if !to.After(from) {
			return s, errInvalid("valid_to", "valid_to: must be after valid_from (or null: open-ended)")
		}
		to = to.UTC()
		s.ValidTo = &to
	}
	for k, v := range in.Targets {
		if !slices.Contains(targetIndicators, k) {
			return s, errInvalid("targets", "targets: unknown indicator %q (want %s)", k, strings.Join(targetIndicators, ", "))
		}
		if v != nil && !(*v >= 0 && *v <= 1) {
			return s, errInvalid("targets", "targets.%s: want a number from 0 to 1, or null", k)
		}
	}
	s.Targets = targetValuesOf(in.Targets)
	return s, nil
}

// targetsAnswer is GET /v1/targets.
type targetsAnswer struct {
	Sets []targetSet `json:"sets"`
}

var targetCSVHeader = append(append([]string{"id", "name", "source", "valid_from", "valid_to"}, targetIndicators...), "updated")

func getTargets(book *targetBook) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{CSV: true})
		if err != nil {
			return err
		}
		csv := in.CSV
		sets := book.List()
		if csv {
			rows := make([][]string, len(sets))
			for i, s := range sets {
				to := ""
				if s.ValidTo != nil {
					to = ftime(*s.ValidTo)
				}
				rows[i] = []string{s.ID, s.Name, s.Source, ftime(s.ValidFrom), to}
				vals := s.Targets.byName()
				for _, k := range targetIndicators {
					rows[i] = append(rows[i], fptr(vals[k]))
				}
				rows[i] = append(rows[i], ftime(s.Updated))
			}
			return sendCSV(c, targetCSVHeader, rows)
		}
		return c.JSON(targetsAnswer{Sets: sets})
	}
}

func putTarget(book *targetBook, loc *time.Location) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: targetSetIDName})
		if err != nil {
			return err
		}
		id := in.ID
		if err := requireType(c, fiber.MIMEApplicationJSON); err != nil {
			return err
		}
		s, err := decodeTargetSet(id, c.Body(), loc)
		if err != nil {
			return err
		}
		out, old, err := book.Put(c.UserContext(), s)
		if err != nil {
			return err
		}
		audited(c, id, map[string]any{"before": old, "after": out})
		return c.JSON(out)
	}
}

func deleteTarget(book *targetBook) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: targetSetIDName})
		if err != nil {
			return err
		}
		id := in.ID
		old, found, err := book.Delete(c.UserContext(), id)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound("no target set %q", id)
		}
		audited(c, id, map[string]any{"before": old})
		return c.SendStatus(fiber.StatusNoContent)
	}
}
