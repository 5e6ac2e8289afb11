package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/greenpost/greenpost/internal/metrics"
)

// deps are what the HTTP layer is built from.
type deps struct {
	cfg     config
	log     *slog.Logger
	db      pinger
	reg     *registry
	engine  metrics.Engine
	fill    fillSource
	bins    binSource // each bin's fill and battery (the dashboard's outlet view)
	full    fullSource
	judge   binJudge
	targets *targetBook
	audit   auditStore
	now     clock
	promReg *prometheus.Registry
}

// route is one line of the route table. Role "" means open without a key;
// any other role also gives the handler the key's scope (scope.go), which
// every read and write of the registry applies.
type route struct {
	Method, Path string
	Role         string
	Handler      fiber.Handler
}

// routes is the one list of every route of the API (gofiber recipes). The
// OpenAPI test walks it: every route is documented, every documented route
// is here.
func routes(d *deps) []route {
	rt := &rater{reg: d.reg, engine: d.engine, targets: d.targets,
		cache: newFigureCache(d.cfg.CacheTTL, d.cfg.RequestTimeout, d.now, d.promReg)}
	al := &alerter{reg: d.reg, engine: d.engine, rater: rt, full: d.full, lookback: d.cfg.AlertLookback, targets: d.targets,
		opts: metrics.Options{Staleness: d.cfg.Staleness, FullPct: d.cfg.FullPct}}
	wr := windowRule{now: d.now, maxWindow: d.cfg.MaxWindow, loc: d.cfg.Location}
	const get, put, post, del = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete
	return []route{
		{get, "/healthz", "", getHealthz()},
		{get, "/readyz", "", getReadyz(d.db, d.reg, d.targets)},
		{get, "/metrics", "", adaptor.HTTPHandler(promhttp.HandlerFor(d.promReg, promhttp.HandlerOpts{}))},
		{get, "/openapi.json", "", getOpenAPI()},

		{get, "/v1/outlets", roleViewer, listOutlets(d.reg)},
		{post, "/v1/outlets/import", roleAdmin, importOutlets(d.reg)},
		{get, "/v1/outlets/:id", roleViewer, getOutlet(d.reg)},
		{put, "/v1/outlets/:id", roleAdmin, putOutlet(d.reg)},
		{del, "/v1/outlets/:id", roleAdmin, deleteOutlet(d.reg)},
		{get, "/v1/outlets/:id/rates", roleViewer, getOutletRates(d.reg, rt, wr)},
		{get, "/v1/outlets/:id/series", roleViewer, getSeries(d.reg, d.engine, d.fill, wr)},
		{get, "/v1/rates", roleViewer, getRates(rt, wr)},
		{get, "/v1/alerts", roleViewer, getAlerts(al, d.now)},
		{get, "/v1/waste-free", roleViewer, getWasteFree(rt, wr)},
		// The dashboard's additions (districts.go, groupseries.go, devices.go).
		{get, "/v1/districts", roleViewer, getDistricts(d.reg, d.cfg.Districts, d.cfg.TimeZone, d.targets, d.now)},
		{get, "/v1/series", roleViewer, getGroupSeries(rt, wr)},
		{get, "/v1/outlets/:id/devices", roleViewer, getOutletDevices(d.reg, al, d.bins, d.now)},
		{get, "/v1/outlets/:id/fill", roleViewer, getOutletFill(d.reg, d.bins, d.cfg.FullPct, wr)},
		{get, "/v1/collections", roleViewer, getCollections(d.reg, d.judge, d.now, d.cfg.FullPct, d.cfg.Location)},
		{get, "/v1/targets", roleViewer, getTargets(d.targets)},
		{put, "/v1/targets/:id", roleCityAdmin, putTarget(d.targets, d.cfg.Location)},
		{del, "/v1/targets/:id", roleCityAdmin, deleteTarget(d.targets)},
		{get, "/v1/audit", roleCityAdmin, getAudit(d.audit, d.cfg.Location)},
		{get, "/v1/trajectory", roleViewer, getTrajectory(rt, d.now, d.cfg.TimeZone)},

		{get, "/", "", redirectDashboard()},
		{get, "/dashboard/", "", dashboardFile("index.html")},
		{get, "/dashboard/map/wuhan.geojson", "", getDistrictOutlines()},
		{get, "/dashboard/*", "", dashboardFiles()},
	}
}

// newApp builds the Fiber app: middleware, then the route table.
func newApp(d *deps) *fiber.App {
	eh := errorHandler(d.log)
	app := fiber.New(fiber.Config{
		AppName:               "greenpost-api",
		DisableStartupMessage: true,
		BodyLimit:             d.cfg.BodyLimit,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          d.cfg.RequestTimeout + 30*time.Second,
		IdleTimeout:           60 * time.Second,
		ErrorHandler:          eh,
	})
	keys := &keyring{keys: d.cfg.Keys}
	limit := newLimiter(len(keys.keys), d.cfg.RateLimit, d.cfg.RateBurst)
	m := newHTTPMetrics(d.promReg)
	d.promReg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gp_api_registry_outlets", Help: "Outlets in this replica's copy of the registry.",
	}, func() float64 {
		return float64(len(d.reg.Select(cityWideContext(context.Background()), outletFilter{})))
	}))

	app.Use(observe(m, eh, d.cfg.RequestTimeout))
	app.Use(recover.New(recover.Config{
		EnableStackTrace: true,
		StackTraceHandler: func(c *fiber.Ctx, e any) {
			d.log.Error("panic", "method", c.Method(), "path", c.Path(), "panic", fmt.Sprint(e), "stack", string(debug.Stack()))
		},
	}))
	for _, r := range routes(d) {
		hs := []fiber.Handler{markRoute(r.Path)}
		if r.Role != "" {
			hs = append(hs, requireRole(r.Role, keys, limit))
		}
		if r.Method != http.MethodGet && r.Role != "" {
			// Every write is audited (audit.go), by construction.
			hs = append(hs, auditWrites(d.audit, d.reg.stamp, d.log))
		}
		app.Add(r.Method, r.Path, append(hs, r.Handler)...)
	}
	return app
}

// localRoute holds the matched route's pattern for the metrics.
const localRoute = "gp.route"

// markRoute records which route of the table matched (Fiber's own Route()
// cannot tell a middleware's catch-all from a route).
func markRoute(pattern string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(localRoute, pattern)
		return c.Next()
	}
}

// httpMetrics counts requests and their latency by route pattern (never the
// raw path: ids would explode the label set), method and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gp_api_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gp_api_request_duration_seconds", Help: "HTTP request latency by route pattern, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe is the outermost middleware: it bounds the request's work with a
// timeout on its user context (handlers pass it to InfluxDB), turns errors
// into problem answers itself so that the status is known, and counts the
// request.
func observe(m *httpMetrics, eh fiber.ErrorHandler, timeout time.Duration) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		ctx, cancel := context.WithTimeout(c.UserContext(), timeout)
		defer cancel()
		c.SetUserContext(ctx)
		if err := c.Next(); err != nil {
			if err := eh(c, err); err != nil {
				c.Status(http.StatusInternalServerError)
			}
		}
		route, ok := c.Locals(localRoute).(string)
		if !ok {
			route = "unmatched"
		}
		status := strconv.Itoa(c.Response().StatusCode())
		method := methodLabel(c.Method())
		m.requests.WithLabelValues(route, method, status).Inc()
		m.latency.WithLabelValues(route, method, status).Observe(time.Since(start).Seconds())
		return nil
	}
}

// methodLabel returns a constant for the method: c.Method() points into
// Fiber's reused buffers, and a label outlives the request.
func methodLabel(m string) string {
	for _, k := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch} {
		if m == k {
			return k
		}
	}
	return "OTHER"
}

// newPromRegistry is a registry of our own (not the global default), with
// the Go and process collectors.
func newPromRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
