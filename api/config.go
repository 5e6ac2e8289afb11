package main

import (
	"crypto/sha256"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// The API's settings beyond runtime-v1 (documented in docs/api.md).
var extraSettings = []string{
	"GP_API_BUCKET", "GP_API_MAX_WINDOW", "GP_API_REQUEST_TIMEOUT", "GP_API_BODY_LIMIT",
	"GP_API_RATE_LIMIT", "GP_API_RATE_BURST", "GP_API_REGISTRY_REFRESH", "GP_API_DISTRICTS",
	"GP_API_STALENESS", "GP_API_FULL_PCT", "GP_API_ALERT_LOOKBACK", "GP_API_CACHE_TTL",
	"GP_API_TIME_ZONE", "GP_API_DEBUG_ADDR", "GP_API_COLD_DIR",
}

func init() { settings.Extra = append(settings.Extra, extraSettings...) }

// Roles of API keys, and what a route needs: roleCityAdmin is an admin key
// without scope (targets and the audit, ops-v1); no key has it as its role.
const (
	roleViewer    = "viewer"
	roleAdmin     = "admin"
	roleCityAdmin = "admin without scope"
)

// apiKey is a configured key: only its SHA-256 is kept.
type apiKey struct {
	Role, Name string
	Hash       [sha256.Size]byte
	Scope      scope // what it may see (scope.go); cityWide without scope fields
}

// config is everything the API reads at start (runtime-v1 and the extra
// settings above).
type config struct {
	Addr                                      string
	InfluxURL, InfluxToken, InfluxOrg, Bucket string
	// APIBucket holds the API's own measurements (outlet_registry, rollup,
	// rollup_state); by default Bucket. Another bucket leaves the API only
	// reading the telemetry bucket, as storage-v1 wants of its token.
	APIBucket string
	Keys      []apiKey
	LogLevel  slog.Level

	MaxWindow       time.Duration // longest from..to a request may ask for
	RequestTimeout  time.Duration // bound on each request's work (InfluxDB included)
	BodyLimit       int           // bytes
	RateLimit       float64       // requests per second per key (token refill)
	RateBurst       int           // bucket size per key
	RegistryRefresh time.Duration // how often replicas re-read the shared registry
	Districts       []string      // when set, the only districts an outlet may have
	Staleness       time.Duration // metrics-v1 staleness (also: device offline after this)
	FullPct         float64       // metrics-v1 full threshold
	AlertLookback   time.Duration // devices silent for longer than this drop out of alerts
	CacheTTL        time.Duration // how long an engine answer is reused (0: never)
	// TimeZone is the city's IANA zone (Asia/Shanghai): the dashboard counts
	// days and shows times in it, and a bare date in from/to is its midnight
	// there (Location).
	TimeZone string
	Location *time.Location
	// DebugAddr, when set, serves Go's profiles (net/http/pprof) on a
	// listener of its own, without keys: a loopback address only.
	DebugAddr string
	// ColdDir is where the roll-up keeps its old days' hours in files
	// (internal/metrics, cold.go); "" keeps them in memory. Unset, the
	// system's temporary directory (coldDirDefault).
	ColdDir        string
	coldDirDefault bool
}

// coldInMemory is the GP_API_COLD_DIR that keeps old days in memory.
const coldInMemory = "memory"

func loadConfig(getenv func(string) string) (config, error) {
	var err error
	r := settings.NewReader(getenv)
	c := config{
		Addr:        r.Addr("GP_API_ADDR", "127.0.0.1:8080"),
		InfluxURL:   r.URL("GP_INFLUX_URL", "http://127.0.0.1:8086", "http", "https"),
		InfluxToken: r.String("GP_INFLUX_TOKEN", ""),
		InfluxOrg:   r.String("GP_INFLUX_ORG", ""),
		Bucket:      r.String("GP_INFLUX_BUCKET", "gp"),
		LogLevel:    r.LogLevel(),

		MaxWindow:       r.Duration("GP_API_MAX_WINDOW", 93*24*time.Hour, time.Minute, 3660*24*time.Hour),
		RequestTimeout:  r.Duration("GP_API_REQUEST_TIMEOUT", 15*time.Second, 100*time.Millisecond, 10*time.Minute),
		BodyLimit:       r.Int("GP_API_BODY_LIMIT", 4<<20, 1<<10, 1<<30),
		RateLimit:       readFloat(r, "GP_API_RATE_LIMIT", 50, 0.01, 1e6),
		RateBurst:       r.Int("GP_API_RATE_BURST", 100, 1, 1e6),
		RegistryRefresh: r.Duration("GP_API_REGISTRY_REFRESH", 30*time.Second, time.Second, 24*time.Hour),
		Staleness:       r.Duration("GP_API_STALENESS", 15*time.Minute, time.Minute, 24*time.Hour),
		FullPct:         readFloat(r, "GP_API_FULL_PCT", 90, 0, 100),
		AlertLookback:   r.Duration("GP_API_ALERT_LOOKBACK", 30*24*time.Hour, time.Hour, 366*24*time.Hour),
		CacheTTL:        r.Duration("GP_API_CACHE_TTL", 10*time.Second, 0, time.Hour),
	}
	c.APIBucket = r.String("GP_API_BUCKET", c.Bucket)
	switch v := r.String("GP_API_COLD_DIR", ""); v {
	case "":
		c.ColdDir, c.coldDirDefault = os.TempDir(), true
	case coldInMemory:
	default:
		if st, err := os.Stat(v); err != nil || !st.IsDir() {
			r.Problem("GP_API_COLD_DIR", "%q: want an existing directory the API may write (or %q)", v, coldInMemory)
		}
		c.ColdDir = v
	}
	if v := r.String("GP_API_DEBUG_ADDR", ""); v != "" {
		// The profiles have no keys: only a loopback address is taken.
		c.DebugAddr = r.Addr("GP_API_DEBUG_ADDR", "")
		if host, _, err := net.SplitHostPort(v); err == nil && !isLoopback(host) {
			r.Problem("GP_API_DEBUG_ADDR", "%q: the profiles have no keys, so the host must be loopback (127.0.0.1, ::1 or localhost)", v)
		}
	}
	c.TimeZone = r.String("GP_API_TIME_ZONE", "Asia/Shanghai")
	if c.Location, err = time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" || c.TimeZone == "Local" {
		r.Problem("GP_API_TIME_ZONE", "%q: want an IANA time zone such as Asia/Shanghai", c.TimeZone)
		c.Location = time.UTC
	}
	if v := r.String("GP_API_DISTRICTS", ""); v != "" {
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			if !telemetry.ValidID(d) {
				r.Problem("GP_API_DISTRICTS", "%q: want comma-separated districts of [a-z0-9][a-z0-9_-]{0,63}", d)
				continue
			}
			c.Districts = append(c.Districts, d)
		}
	}
	if f := r.File("GP_API_KEYS_FILE"); f != "" {
		c.Keys = append(c.Keys, readKeysFile(r, f)...)
	}
	if v := r.String("GP_API_KEYS", ""); v != "" {
		c.Keys = append(c.Keys, parseDevKeys(r, v)...)
	}
	return c, r.Err()
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readKeysFile reads `<role> <name> <sha256 hex of key> [districts=...]
// [operators=...]` lines (internal/keyfile, ops-v1); blank lines and lines
// starting with # are skipped.
func readKeysFile(r *settings.Reader, path string) []apiKey {
	const usage = "want `<viewer|admin> <name> <sha256 hex> [districts=<id>,...] [operators=<name>,...]`"
	entries, problems := keyfile.Read(path, usage, roleViewer, roleAdmin)
	for _, p := range problems {
		r.Problem("GP_API_KEYS_FILE", "%s", p)
	}
	var keys []apiKey
	for _, e := range entries {
		s, err := parseScope(e.More)
		if err != nil {
			r.Problem("GP_API_KEYS_FILE", "line %d: %v", e.Line, err)
			continue
		}
		keys = append(keys, apiKey{Role: e.Role, Name: e.Name, Hash: e.Hash, Scope: s})
	}
	return keys
}

// parseDevKeys reads the development form `role:key,role:key`.
func parseDevKeys(r *settings.Reader, v string) []apiKey {
	var keys []apiKey
	for i, item := range strings.Split(v, ",") {
		role, key, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || !validRole(role) || len(key) < 8 {
			r.Problem("GP_API_KEYS", "item %d: want role:key with role viewer or admin and a key of 8 or more characters", i+1)
			continue
		}
		keys = append(keys, apiKey{Role: role, Name: "dev-" + role, Hash: sha256.Sum256([]byte(key)), Scope: cityWide})
	}
	return keys
}

func validRole(s string) bool { return s == roleViewer || s == roleAdmin }

// readFloat parses a finite number within [min, max].
func readFloat(r *settings.Reader, name string, def, min, max float64) float64 {
	v := r.String(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < min || f > max {
		r.Problem(name, "%q: want a number from %g to %g", v, min, max)
		return def
	}
	return f
}
