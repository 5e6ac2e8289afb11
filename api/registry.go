package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
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
// (docs/api.md "Registry"):
//
//	outlet_registry,id=<id> name="..",district="..",address="..",operator="..",lat=..,lon=..,active=<bool>,deleted=<bool> <ns>
//
// Every write is a whole record with all fields; the point with the latest
// time wins per id (last writer wins); a delete is a tombstone point with
// deleted=true. Each replica keeps the merged state in memory, updates it
// after its own writes and re-reads the measurement every RegistryRefresh.
const (
	measurementRegistry = "outlet_registry"
	maxNameLen          = 200
	maxAddressLen       = 500
	maxOperatorLen      = 100
)

// Outlet is one entry of the registry.
type Outlet struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	District string    `json:"district"`
	Address  string    `json:"address"`
	Lat      float64   `json:"lat"`
	Lon      float64   `json:"lon"`
	Operator string    `json:"operator"`
	Active   bool      `json:"active"`
	Updated  time.Time `json:"updated"`
}

// validate checks an outlet against the registry's rules and returns the
// name of the first bad field with the reason.
func (o *Outlet) validate(districts []string) (field, reason string) {
	switch {
	case !telemetry.ValidID(o.ID):
		return "id", "want [a-z0-9][a-z0-9_-]{0,63} (the topic charset)"
	case !validText(o.Name, maxNameLen, true):
		return "name", fmt.Sprintf("want 1 to %d characters of printable UTF-8", maxNameLen)
	case !telemetry.ValidID(o.District):
		return "district", "want [a-z0-9][a-z0-9_-]{0,63}"
	case len(districts) > 0 && !slices.Contains(districts, o.District):
		return "district", "not one of the configured districts (GP_API_DISTRICTS)"
	case !validText(o.Address, maxAddressLen, false):
		return "address", fmt.Sprintf("want at most %d characters of printable UTF-8", maxAddressLen)
	case math.IsNaN(o.Lat) || o.Lat < -90 || o.Lat > 90:
		return "lat", "want a latitude from -90 to 90"
	case math.IsNaN(o.Lon) || o.Lon < -180 || o.Lon > 180:
		return "lon", "want a longitude from -180 to 180"
	case !validText(o.Operator, maxOperatorLen, true) || o.Operator != strings.TrimSpace(o.Operator):
		return "operator", fmt.Sprintf("want 1 to %d characters of printable UTF-8, no spaces around", maxOperatorLen)
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

// influx is what the API needs of InfluxDB (internal/store implements it).
type influx interface {
	Write(ctx context.Context, lines []byte) error
	Query(ctx context.Context, flux string) ([]store.Row, error)
	Ping(ctx context.Context) error
}

var _ influx = (*store.Store)(nil)

// entry is an outlet or its tombstone, as last written.
type entry struct {
	Outlet
	Deleted bool
}

// registry is the in-memory copy of the outlet_registry measurement.
type registry struct {
	db        influx
	bucket    string
	districts []string
	log       *slog.Logger

	mu       sync.RWMutex
	entries  map[string]entry // by id, tombstones included
	ids      []string         // live ids, sorted
	loadedAt time.Time        // zero until the first successful load
	lastTS   time.Time        // the last time stamp this replica wrote
}

func newRegistry(db influx, bucket string, districts []string, log *slog.Logger) *registry {
	return &registry{db: db, bucket: bucket, districts: districts, log: log, entries: map[string]entry{}}
}

// Loaded reports whether the registry has been read from InfluxDB at least once.
func (r *registry) Loaded() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.loadedAt.IsZero()
}

// Run re-reads the registry every interval until ctx ends, so that writes by
// other replicas show up. The first load is retried quickly: until it
// succeeds the API is not ready.
func (r *registry) Run(ctx context.Context, every time.Duration) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.Load(lctx)
		cancel()
		switch {
		case err == nil:
			wait = every
		case ctx.Err() != nil:
			return
		default:
			r.log.Warn("registry load failed", "err", err)
			wait = min(every, 2*time.Second)
			if r.Loaded() {
				wait = every
			}
		}
	}
}

// Load reads the latest point of every id and merges it into memory.
func (r *registry) Load(ctx context.Context) error {
	// last() per field: every write carries every field, so the fields of one
	// id all come from its latest point. Assembled in Go (no pivot needed).
	flux := `from(bucket: ` + store.FluxString(r.bucket) + `)
  |> range(start: 1970-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "` + measurementRegistry + `")
  |> last()`
	rows, err := r.db.Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("registry load: %w", err)
	}
	loaded := map[string]entry{}
	for _, row := range rows {
		id, _ := row["id"].(string)
		if id == "" {
			continue
		}
		e := loaded[id]
		e.ID = id
		if t, ok := row["_time"].(time.Time); ok && t.After(e.Updated) {
			e.Updated = t.UTC()
		}
		switch f, _ := row["_field"].(string); f {
		case "name":
			e.Name, _ = row["_value"].(string)
		case "district":
			e.District, _ = row["_value"].(string)
		case "address":
			e.Address, _ = row["_value"].(string)
		case "operator":
			e.Operator, _ = row["_value"].(string)
		case "lat":
			e.Lat, _ = row["_value"].(float64)
		case "lon":
			e.Lon, _ = row["_value"].(float64)
		case "active":
			e.Active, _ = row["_value"].(bool)
		case "deleted":
			e.Deleted, _ = row["_value"].(bool)
		}
		loaded[id] = e
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
	r.ids = r.ids[:0]
	for id, e := range r.entries {
		if !e.Deleted {
			r.ids = append(r.ids, id)
		}
	}
	sort.Strings(r.ids)
}

// stampLocked returns a write time after every earlier one of this replica,
// so two quick writes of one id never share a time stamp.
func (r *registry) stampLocked() time.Time {
	t := time.Now().UTC()
	if !t.After(r.lastTS) {
		t = r.lastTS.Add(time.Nanosecond)
	}
	r.lastTS = t
	return t
}

// Get returns a live outlet.
func (r *registry) Get(id string) (Outlet, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[id]
	if !ok || e.Deleted {
		return Outlet{}, false
	}
	return e.Outlet, true
}

// Put validates and writes outlets (one request to InfluxDB), then updates
// memory. The outlets get their write time as Updated.
func (r *registry) Put(ctx context.Context, outlets ...Outlet) ([]Outlet, error) {
	for i := range outlets {
		if f, why := outlets[i].validate(r.districts); f != "" {
			return nil, errInvalid(f, "%s: %s", f, why)
		}
	}
	es := make([]entry, len(outlets))
	r.mu.Lock()
	for i, o := range outlets {
		o.Updated = r.stampLocked()
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

// Delete writes a tombstone. It reports false when the id is not live.
func (r *registry) Delete(ctx context.Context, id string) (bool, error) {
	r.mu.Lock()
	e, ok := r.entries[id]
	if !ok || e.Deleted {
		r.mu.Unlock()
		return false, nil
	}
	t := entry{Outlet: Outlet{ID: id, Updated: r.stampLocked()}, Deleted: true}
	r.mu.Unlock()
	return true, r.write(ctx, []entry{t})
}

// write sends entries to InfluxDB in batches and merges each batch into
// memory once it is stored.
func (r *registry) write(ctx context.Context, es []entry) error {
	const batch = 5000
	var buf []byte
	for start := 0; start < len(es); start += batch {
		part := es[start:min(start+batch, len(es))]
		buf = buf[:0]
		for i := range part {
			buf = appendRegistryPoint(buf, &part[i])
		}
		if err := r.db.Write(ctx, buf); err != nil {
			return fmt.Errorf("registry write: %w", err)
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

// appendRegistryPoint writes one registry point as line protocol. The id is
// a checked id (no escaping needed as a tag); strings are escaped for
// line-protocol string fields.
func appendRegistryPoint(dst []byte, e *entry) []byte {
	dst = append(dst, measurementRegistry+",id="...)
	dst = append(dst, e.ID...)
	dst = appendStringField(dst, " name=", e.Name)
	dst = appendStringField(dst, ",district=", e.District)
	dst = appendStringField(dst, ",address=", e.Address)
	dst = appendStringField(dst, ",operator=", e.Operator)
	dst = append(dst, ",lat="...)
	dst = strconv.AppendFloat(dst, e.Lat, 'f', -1, 64)
	dst = append(dst, ",lon="...)
	dst = strconv.AppendFloat(dst, e.Lon, 'f', -1, 64)
	dst = append(dst, ",active="...)
	dst = strconv.AppendBool(dst, e.Active)
	dst = append(dst, ",deleted="...)
	dst = strconv.AppendBool(dst, e.Deleted)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, e.Updated.UnixNano(), 10)
	return append(dst, '\n')
}

func appendStringField(dst []byte, key, v string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, v[i])
	}
	return append(dst, '"')
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

// List returns up to limit outlets after the id `after`, in id order, and
// whether more follow (limit <= 0: all).
func (r *registry) List(f outletFilter, after string, limit int) (page []Outlet, more bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i := sort.SearchStrings(r.ids, after)
	if i < len(r.ids) && r.ids[i] == after {
		i++
	}
	for ; i < len(r.ids); i++ {
		e := r.entries[r.ids[i]]
		if !f.match(&e.Outlet) {
			continue
		}
		if limit > 0 && len(page) == limit {
			return page, true
		}
		page = append(page, e.Outlet)
	}
	return page, false
}

// Select returns every live outlet that matches f, in id order.
func (r *registry) Select(f outletFilter) []Outlet {
	page, _ := r.List(f, "", 0)
	return page
}
