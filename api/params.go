package main

import (
	"encoding/base64"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// query holds a request's query parameters, copied out of Fiber's buffers
// and checked against the handler's list, so a typo (`form=`) is a 400
// instead of a silently ignored filter.
type query map[string]string

// readQuery copies the query and refuses unknown or repeated parameters.
func readQuery(c *fiber.Ctx, allowed ...string) (query, error) {
	// Every route that answers CSV takes bom (sendCSV reads it).
	if slices.Contains(allowed, "format") {
		allowed = append(allowed, "bom")
	}
	q := query{}
	var err error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		key := string(k) // string() copies: nothing of Fiber's buffer is kept
		if !slices.Contains(allowed, key) {
			takes := strings.Join(allowed, ", ")
			if takes == "" {
				takes = "none"
			}
			err = errInvalid(key, "unknown parameter %q (this route takes: %s)", key, takes)
			return
		}
		if _, dup := q[key]; dup {
			err = errInvalid(key, "parameter %q given twice", key)
			return
		}
		q[key] = string(v)
	})
	return q, err
}

// takes names what a route reads of a request. The parts every route
// shares are read, checked and converted by readInput, in one place and
// one order (query, format, outlet id, window, filters); the route's own
// parameters are checked for presence only and read from input.Q.
type takes struct {
	Window *windowRule // from and to, read with this rule → input.W (nil: no window)
	Filter bool        // district and operator → input.F
	CSV    bool        // format (and bom), or Accept: text/csv → input.CSV
	ID     string      // the {id} path parameter, named for messages (outletIDName) → input.ID ("": none)
	Own    []string    // the route's own parameters
}

// input is a request as readInput read it.
type input struct {
	Q   query
	CSV bool
	ID  string
	W   metrics.Window
	F   outletFilter
}

// readInput reads what t names; a typo in a parameter name, a bad value or
// a parameter given twice is a 400 before the handler does any work.
func readInput(c *fiber.Ctx, t takes) (input, error) {
	var in input
	allowed := slices.Clone(t.Own)
	if t.Window != nil {
		allowed = append(allowed, "from", "to")
	}
	if t.Filter {
		allowed = append(allowed, "district", "operator")
	}
	if t.CSV {
		allowed = append(allowed, "format")
	}
	var err error
	if in.Q, err = readQuery(c, allowed...); err != nil {
		return in, err
	}
	if t.CSV {
		if in.CSV, err = wantCSV(c); err != nil {
			return in, err
		}
	}
	if t.ID != "" {
		if in.ID, err = pathID(c, t.ID); err != nil {
			return in, err
		}
	}
	if t.Window != nil {
		if in.W, err = t.Window.read(in.Q); err != nil {
			return in, err
		}
	}
	if t.Filter {
		if in.F, err = in.Q.filter(); err != nil {
			return in, err
		}
	}
	return in, nil
}

// param copies a path parameter (Fiber reuses the buffer it points into).
func param(c *fiber.Ctx, name string) string { return utils.CopyString(c.Params(name)) }

// What the {id} path parameters are, for messages.
const (
	outletIDName    = "outlet id"
	targetSetIDName = "target set id"
)

// pathID reads and checks an {id} path parameter (the id charset).
func pathID(c *fiber.Ctx, what string) (string, error) {
	id := param(c, "id")
	if !telemetry.ValidID(id) {
		return "", errInvalid("id", "%s: want [a-z0-9][a-z0-9_-]{0,63}", what)
	}
	return id, nil
}

// clock is the time source of handlers (fixed in tests).
type clock func() time.Time

// window reads from and to (default: the 24 h before now), rounds both
// down to whole minutes and checks from < to and the length limit. A bare
// date is its midnight in loc (the city's time zone).
func (q query) window(now time.Time, maxWindow time.Duration, loc *time.Location) (metrics.Window, error) {
	to := now
	if v, ok := q["to"]; ok {
		t, err := parseTime("to", v, loc)
		if err != nil {
			return metrics.Window{}, err
		}
		to = t
	}
	from := to.Add(-24 * time.Hour)
	if v, ok := q["from"]; ok {
		t, err := parseTime("from", v, loc)
		if err != nil {
			return metrics.Window{}, err
		}
		from = t
	}
	w := metrics.Window{From: from.UTC().Truncate(time.Minute), To: to.UTC().Truncate(time.Minute)}
	if !w.From.Before(w.To) {
		return w, errInvalid("from", "from must be before to (both rounded down to whole minutes)")
	}
	if w.To.Sub(w.From) > maxWindow {
		return w, errInvalid("to", "the window is longer than the maximum of %s", fmtDuration(maxWindow))
	}
	return w, nil
}

// spacedOffset is an offset whose + arrived as a space: a + typed into a
// URL unencoded (from=2026-12-01T00:00:00+08:00) is decoded as a space.
var spacedOffset = regexp.MustCompile(`T[0-9:.]+ ([0-9]{2}:[0-9]{2})$`)

// parseTime reads an RFC 3339 time, forgiving what people type: an offset
// whose + became a space, and a bare date (2026-12-01), which is that day's
// midnight in loc.
func parseTime(name, v string, loc *time.Location) (time.Time, error) {
	var t time.Time
	var err error
	if len(v) == len(time.DateOnly) {
		t, err = time.ParseInLocation(time.DateOnly, v, loc)
	} else {
		if m := spacedOffset.FindStringSubmatchIndex(v); m != nil {
			v = v[:m[2]-1] + "+" + v[m[2]:]
		}
		t, err = time.Parse(time.RFC3339Nano, v)
	}
	if err != nil {
		msg := "%s: want an RFC 3339 time such as 2026-11-28T10:00:00+08:00 or a date such as 2026-11-28"
		if strings.Contains(v, " ") {
			msg += " (in a URL, write + as %%2B)"
		}
		return t, errInvalid(name, msg, name)
	}
	// Before 1970 or after 9999 only makes trouble downstream.
	if t.Year() < 1970 || t.Year() > 9999 {
		return t, errInvalid(name, "%s: out of range", name)
	}
	return t, nil
}

// step reads a series step: a whole number of minutes written as a Go
// duration (15m, 1h) or days (1d, 7d); at most maxPoints steps fit the
// window. A step longer than the window is bounded by it (one point for the
// whole window, and the text says the step used): step=2562047h once
// overflowed the point count.
func (q query) step(w metrics.Window, def string, maxPoints int) (time.Duration, string, error) {
	s, ok := q["step"]
	if !ok {
		s = def
	}
	span := w.To.Sub(w.From)
	var d time.Duration
	var err error
	if n, found := strings.CutSuffix(s, "d"); found {
		var days int
		days, err = strconv.Atoi(n)
		// Bounded before the multiplication, which could overflow.
		days = max(0, min(days, int(span/(24*time.Hour))+1))
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	switch {
	case err != nil || d < time.Minute || d%time.Minute != 0:
		return 0, s, errInvalid("step", "step: want a whole number of minutes such as 15m, 1h or 1d")
	case d > span:
		return span, fmtDuration(span), nil
	case (span+d-1)/d > time.Duration(maxPoints):
		return 0, s, errInvalid("step", "step: the window would have more than %d points", maxPoints)
	}
	return d, s, nil
}

// oneOf reads an enumerated parameter.
func (q query) oneOf(name, def string, values ...string) (string, error) {
	v, ok := q[name]
	if !ok {
		return def, nil
	}
	if !slices.Contains(values, v) {
		return "", errInvalid(name, "%s: want one of %s", name, strings.Join(values, ", "))
	}
	return v, nil
}

// operator reads the optional operator filter: the registry's operator
// rule (printable text, e.g. "SF Express").
func (q query) operator() (string, error) {
	v, ok := q["operator"]
	if !ok {
		return "", nil
	}
	if !validText(v, maxOperatorLen, true) || v != strings.TrimSpace(v) {
		return "", errInvalid("operator", "operator: want 1 to %d characters of printable UTF-8", maxOperatorLen)
	}
	return v, nil
}

// required reads a parameter that must be given, one of values.
func (q query) required(name string, values ...string) (string, error) {
	if _, ok := q[name]; !ok {
		return "", errInvalid(name, "%s: required (one of %s)", name, strings.Join(values, ", "))
	}
	return q.oneOf(name, "", values...)
}

// filter reads the district and operator filters.
func (q query) filter() (outletFilter, error) {
	var f outletFilter
	var err error
	if f.District, err = q.id("district"); err != nil {
		return f, err
	}
	f.Operator, err = q.operator()
	return f, err
}

// id reads an optional parameter in the id charset (district).
func (q query) id(name string) (string, error) {
	v, ok := q[name]
	if !ok {
		return "", nil
	}
	if !telemetry.ValidID(v) {
		return "", errInvalid(name, "%s: want [a-z0-9][a-z0-9_-]{0,63}", name)
	}
	return v, nil
}

// limit reads a page size in [1, max].
func (q query) limit(def, max int) (int, error) {
	v, ok := q["limit"]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errInvalid("limit", "limit: want an integer from 1 to %d", max)
	}
	return n, nil
}

// Cursors are opaque to clients: base64url of the last id of a page.
func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

func (q query) cursor() (string, error) {
	v, ok := q["cursor"]
	if !ok {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || !telemetry.ValidID(string(b)) {
		return "", errInvalid("cursor", "cursor: not a cursor this API gave out")
	}
	return string(b), nil
}

// wantCSV reads ?format= and the Accept header: CSV when asked for by
// either, JSON otherwise.
func wantCSV(c *fiber.Ctx) (bool, error) {
	switch f := c.Query("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, errInvalid("format", "format: want csv or json")
	}
	return c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv", nil
}

func fmtDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}
