package main

import (
	"context"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/greenpost/greenpost/internal/metrics"
)

// Handlers are factories over their dependencies (gofiber recipes): each
// reads and checks its input, calls the domain, and writes JSON or CSV.
// Nothing of c, its parameters or its body is kept after a handler returns:
// readQuery and param copy, JSON decoding copies.

// Page sizes of GET /v1/outlets.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func getOutlet(reg *registry) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: outletIDName})
		if err != nil {
			return err
		}
		o, ok := reg.Get(c.UserContext(), in.ID)
		if !ok {
			return errNotFound("no outlet %q", in.ID)
		}
		return c.JSON(o)
	}
}

func putOutlet(reg *registry) fiber.Handler {
	return func(c *fiber.Ctx) error {
		req, err := readInput(c, takes{ID: outletIDName})
		if err != nil {
			return err
		}
		id := req.ID
		if err := requireType(c, fiber.MIMEApplicationJSON); err != nil {
			return err
		}
		in, err := decodeOutletJSON(c.Body())
		if err != nil {
			return err
		}
		o, read := in.outlet(id)
		if ps := allProblems(read, &o, reg.districts); len(ps) > 0 {
			return errInvalid(ps[0].Field, "%s", joinProblems(ps))
		}
		var before *Outlet
		if old, ok := reg.Get(c.UserContext(), id); ok {
			before = &old
		}
		out, err := reg.Put(c.UserContext(), o)
		if err != nil {
			return err
		}
		audited(c, id, map[string]any{"before": before, "after": out[0]})
		return c.JSON(out[0])
	}
}

func deleteOutlet(reg *registry) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: outletIDName})
		if err != nil {
			return err
		}
		id := in.ID
		before, _ := reg.Get(c.UserContext(), id)
		found, err := reg.Delete(c.UserContext(), id)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound("no outlet %q", id)
		}
		audited(c, id, map[string]any{"before": before})
		return c.SendStatus(http.StatusNoContent)
	}
}

// outletPage is GET /v1/outlets.
type outletPage struct {
	Outlets    []Outlet `json:"outlets"`
	NextCursor *string  `json:"next_cursor"`
	Warnings   []string `json:"warnings,omitempty"`
}

func listOutlets(reg *registry) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{Filter: true, CSV: true, Own: []string{"limit", "cursor"}})
		if err != nil {
			return err
		}
		q, csv, f := in.Q, in.CSV, in.F
		// A CSV export without a limit is the whole registry: a spreadsheet
		// has no use for a cursor.
		def := defaultPageSize
		if csv {
			def = 0
		}
		limit, err := q.limit(def, maxPageSize)
		if err != nil {
			return err
		}
		after, err := q.cursor()
		if err != nil {
			return err
		}
		page, more := reg.List(c.UserContext(), f, after, limit)
		p := outletPage{Outlets: page, Warnings: filterWarnings(visibleOutlets(c.UserContext(), reg), f)}
		if p.Outlets == nil {
			p.Outlets = []Outlet{}
		}
		if more {
			cur := encodeCursor(page[len(page)-1].ID)
			p.NextCursor = &cur
			c.Set("X-Next-Cursor", cur)
		}
		if csv {
			return sendCSV(c, outletCSVHeader, outletCSVRows(p.Outlets))
		}
		return c.JSON(p)
	}
}

// importResult is POST /v1/outlets/import.
type importResult struct {
	Imported   int           `json:"imported"`
	Errors     []importError `json:"errors"`      // the first maxImportErrors, in line order
	MoreErrors int           `json:"more_errors"` // bad rows beyond those listed
}

func importOutlets(reg *registry) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, err := readInput(c, takes{}); err != nil {
			return err
		}
		mt, err := mediaType(c)
		if err != nil {
			return err
		}
		var rows []importRow
		var bad importErrors
		switch mt {
		case "text/csv":
			rows, bad, err = parseImportCSV(c.UserContext(), c.Body())
		case fiber.MIMEApplicationJSON:
			rows, bad, err = parseImportJSON(c.UserContext(), c.Body())
		default:
			return &apiError{Code: codeMediaType, Detail: "send text/csv or application/json"}
		}
		if err != nil {
			return err
		}
		ctx := c.UserContext()
		good, invalid := checkImportRows(rows, reg.districts, func(o *Outlet) error { return reg.Writable(ctx, o) })
		bad = mergeImportErrors(bad, invalid)
		if _, err := reg.Put(c.UserContext(), good...); err != nil {
			return err
		}
		if bad.list == nil {
			bad.list = []importError{}
		}
		auditImport(c, good, bad.count())
		return c.JSON(importResult{Imported: len(good), Errors: bad.list, MoreErrors: bad.more})
	}
}

// mediaType returns the body's media type without parameters.
func mediaType(c *fiber.Ctx) (string, error) {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil {
		return "", &apiError{Code: codeMediaType, Detail: "missing or bad Content-Type"}
	}
	return strings.ToLower(mt), nil
}

func requireType(c *fiber.Ctx, want string) error {
	mt, err := mediaType(c)
	if err != nil || mt != want {
		return &apiError{Code: codeMediaType, Detail: "send " + want}
	}
	return nil
}

// visibleOutlets are the outlets the caller may know of: those of its
// scope, so that filterWarnings tells a scoped key nothing of the rest.
func visibleOutlets(ctx context.Context, reg *registry) []Outlet {
	return reg.Select(ctx, outletFilter{})
}

// maxKnownListed bounds the known values a warning lists.
const maxKnownListed = 50

// filterWarnings says when a district or operator filter names a value no
// visible outlet has, so that an empty answer caused by a typo is not read
// as an empty city. The known values listed come from the same outlets:
// for a scoped key, a district outside its scope gets the same empty answer
// and the same warning as one that does not exist (ops-v1).
func filterWarnings(visible []Outlet, f outletFilter) []string {
	var out []string
	check := func(name, v string, of func(*Outlet) string) {
		if v == "" {
			return
		}
		known := map[string]bool{}
		for i := range visible {
			known[of(&visible[i])] = true
		}
		if known[v] {
			return
		}
		list := slices.Sorted(maps.Keys(known))
		more := ""
		if len(list) > maxKnownListed {
			more = fmt.Sprintf(" and %d more", len(list)-maxKnownListed)
			list = list[:maxKnownListed]
		}
		out = append(out, fmt.Sprintf("no outlet has %s %q; known: %s%s", name, v, strings.Join(list, ", "), more))
	}
	check("district", f.District, func(o *Outlet) string { return o.District })
	check("operator", f.Operator, func(o *Outlet) string { return o.Operator })
	return out
}

// windowRule reads a request's window with the server's clock, limit and
// the city's time zone (for bare dates).
type windowRule struct {
	now       clock
	maxWindow time.Duration
	loc       *time.Location
}

func (wr windowRule) read(q query) (metrics.Window, error) {
	return q.window(wr.now(), wr.maxWindow, wr.loc)
}

func getOutletRates(reg *registry, rt *rater, wr windowRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: outletIDName, Window: &wr})
		if err != nil {
			return err
		}
		o, ok := reg.Get(c.UserContext(), in.ID)
		if !ok {
			return errNotFound("no outlet %q", in.ID)
		}
		r, err := rt.outlet(c.UserContext(), o, in.W)
		if err != nil {
			return err
		}
		return c.JSON(r)
	}
}

// groupsAnswer is GET /v1/rates.
type groupsAnswer struct {
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`
	GroupBy  string       `json:"group_by"`
	Scope    *scopeJSON   `json:"scope,omitempty"` // a scoped key's scope; absent for the whole city
	Targets  judgedBy     `json:"targets"`
	Groups   []groupRates `json:"groups"`
	Warnings []string     `json:"warnings,omitempty"`
}

func getRates(rt *rater, wr windowRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{Window: &wr, Filter: true, CSV: true, Own: []string{"group_by"}})
		if err != nil {
			return err
		}
		csv, w, f := in.CSV, in.W, in.F
		groupBy, err := in.Q.oneOf("group_by", "district", groupBys...)
		if err != nil {
			return err
		}
		gs, j, err := rt.groups(c.UserContext(), w, groupBy, f)
		if err != nil {
			return err
		}
		if csv && groupBy == "outlet" {
			return sendCSV(c, outletGroupCSVHeader, outletGroupCSVRows(c.UserContext(), gs, j, rt.reg))
		}
		if csv {
			return sendCSV(c, groupCSVHeader, groupCSVRows(gs, j))
		}
		return c.JSON(groupsAnswer{From: w.From, To: w.To, GroupBy: groupBy, Scope: scopeOf(c.UserContext()).describe(), Targets: j, Groups: gs,
			Warnings: filterWarnings(visibleOutlets(c.UserContext(), rt.reg), f)})
	}
}

func getSeries(reg *registry, eng metrics.Engine, fill fillSource, wr windowRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{ID: outletIDName, Window: &wr, CSV: true, Own: []string{"metric", "step"}})
		if err != nil {
			return err
		}
		id, csv, w := in.ID, in.CSV, in.W
		metric, err := in.Q.required("metric", seriesMetrics...)
		if err != nil {
			return err
		}
		step, stepText, err := in.Q.step(w, "1h", maxSeriesPoints)
		if err != nil {
			return err
		}
		o, ok := reg.Get(c.UserContext(), id)
		if !ok {
			return errNotFound("no outlet %q", id)
		}
		// The series starts where the outlet is judged from (metrics-v1 v1.1).
		pts := []point{}
		if jw, ok := metrics.JudgedWindow(w, o.ActiveSince); ok {
			if pts, err = series(c.UserContext(), eng, fill, id, metric, jw, step); err != nil {
				return err
			}
		}
		if csv {
			return sendCSV(c, seriesCSVHeader, seriesCSVRows(pts))
		}
		return c.JSON(seriesAnswer{Outlet: id, Metric: metric, Step: stepText, From: w.From, To: w.To,
			JudgedFrom: judgedFrom(w, o.ActiveSince), Points: pts})
	}
}

// alertsAnswer is GET /v1/alerts.
type alertsAnswer struct {
	At       time.Time `json:"at"`
	Alerts   []alert   `json:"alerts"`
	Warnings []string  `json:"warnings,omitempty"`

	known map[string]outletJSON // the registry's outlets written (fieldRun)
}

func getAlerts(al *alerter, now clock) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{Filter: true, CSV: true, Own: []string{"kind"}})
		if err != nil {
			return err
		}
		csv, f := in.CSV, in.F
		var kinds []string
		if v, ok := in.Q["kind"]; ok {
			for _, k := range strings.Split(v, ",") {
				if _, err := (query{"kind": k}).oneOf("kind", "", alertKinds...); err != nil {
					return err
				}
				kinds = append(kinds, k)
			}
		}
		at := now().UTC()
		as, err := al.alerts(c.UserContext(), at, kinds, f)
		if err != nil {
			return err
		}
		if csv {
			return sendCSV(c, alertCSVHeader, alertCSVRows(as))
		}
		// By hand (alertsjson.go): a city's outage is tens of thousands of
		// alerts.
		a := alertsAnswer{At: at, Alerts: as, Warnings: filterWarnings(visibleOutlets(c.UserContext(), al.reg), f), known: al.reg.Written()}
		return sendBuilt(c, fiber.MIMEApplicationJSON, 256+320*len(as), func(b []byte) ([]byte, error) { return appendAlertsAnswer(b, a) })
	}
}

// wasteFreeAnswer is GET /v1/waste-free.
type wasteFreeAnswer struct {
	From     time.Time         `json:"from"`
	To       time.Time         `json:"to"`
	Targets  judgedBy          `json:"targets"`
	Passing  int               `json:"passing"`
	Outlets  []wasteFreeOutlet `json:"outlets"`
	Warnings []string          `json:"warnings,omitempty"`
}

func getWasteFree(rt *rater, wr windowRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := readInput(c, takes{Window: &wr, Filter: true, CSV: true})
		if err != nil {
			return err
		}
		csv, w, f := in.CSV, in.W, in.F
		ws, j, err := rt.wasteFree(c.UserContext(), w, f)
		if err != nil {
			return err
		}
		if csv {
			return sendCSV(c, wasteFreeCSVHeader, wasteFreeCSVRows(ws, j))
		}
		passing := 0
		for _, o := range ws {
			if o.Pass {
				passing++
			}
		}
		return c.JSON(wasteFreeAnswer{From: w.From, To: w.To, Targets: j, Passing: passing, Outlets: ws,
			Warnings: filterWarnings(visibleOutlets(c.UserContext(), rt.reg), f)})
	}
}

// pinger is what /readyz needs of InfluxDB.
type pinger interface {
	Ping(ctx context.Context) error
}

type health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func getHealthz() fiber.Handler {
	return func(c *fiber.Ctx) error { return c.JSON(health{Status: "ok"}) }
}

// getReadyz answers 200 when InfluxDB answers a ping and the registry and
// the target sets have been loaded; 503 (problem+json) otherwise.
func getReadyz(db pinger, reg *registry, targets *targetBook) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			return &apiError{Code: codeNotReady, Detail: "InfluxDB is not reachable", RetryAfter: 5 * time.Second, Err: err}
		}
		if !reg.Loaded() {
			return &apiError{Code: codeNotReady, Detail: "the outlet registry has not been loaded yet", RetryAfter: 5 * time.Second}
		}
		if !targets.Loaded() {
			return &apiError{Code: codeNotReady, Detail: "the target sets have not been loaded yet", RetryAfter: 5 * time.Second}
		}
		return c.JSON(health{Status: "ready", Checks: map[string]string{"influxdb": "ok", "registry": "ok", "targets": "ok"}})
	}
}
