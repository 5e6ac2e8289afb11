// Command api measures bin/api at city scale, end to end over HTTP: 1,000
// outlets × 30 days of 5-minute reports (≈26 M points, written once by the
// simulator's history mode into a private InfluxDB 1.8.10 whose data is kept
// for the next run), bin/api as its own process with its roll-up worker,
// concurrent clients with keys. It prints latency percentiles and CPU per
// request, and beside them the naive raw-scan time of the same questions
// (internal/metrics' raw path, which reads every point of the window).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/metrics"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/testenv"
)

// apiMemLimit is the GOMEMLIMIT the bench was given, for bin/api alone:
// main takes it out of the environment, so that InfluxDB (a Go program,
// started with the bench's environment) runs with no soft limit, as it
// would on its own machine. (Until this, a run with GOMEMLIMIT limited
// InfluxDB's heap too, and its garbage collector's CPU was counted as the
// soft limit's price in the API.)
var apiMemLimit string

func main() {
	apiMemLimit = os.Getenv("GOMEMLIMIT")
	os.Unsetenv("GOMEMLIMIT")
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/api:", err)
		os.Exit(1)
	}
}

type params struct {
	Outlets, Days int
	Step          time.Duration
	Seed          int64
}

// question is one HTTP question asked of bin/api.
type question struct {
	name string
	path func(r *mrand.Rand) string
	key  string // "" the city-wide admin key
}

// result is one question measured at one city size.
type result struct {
	p50, p95, p99, max time.Duration
	apiCPU, influxCPU  float64 // seconds per request
	n                  int     // requests measured
}

// citySize is one size of the city, its own InfluxDB holding its history.
type citySize struct {
	n         int
	dir       string
	registry  []byte
	restart   time.Duration // start of bin/api → the 30-day city answered, roll-up loaded
	first     time.Duration // the same for the first start, which may have built the roll-up
	built     bool          // the first start built (part of) the roll-up from raw data
	rssMiB    float64       // bin/api's resident memory after the questions
	peakMiB   float64
	heapMiB   float64                      // the roll-up's own estimate of its index
	goHeapMiB float64                      // the Go heap in use (live objects and fragmentation, not GC headroom)
	liveMiB   float64                      // the live heap right after a forced collection
	res       map[string]map[string]result // ttl → question → result
	naive     []string
}

func run() error {
	cache, _ := os.UserCacheDir()
	var p params
	sizes := flag.String("outlets", "1000", "city sizes, comma-separated (2 bins and a counter per outlet), each its own InfluxDB, side by side")
	flag.IntVar(&p.Days, "days", 30, "days of history")
	flag.DurationVar(&p.Step, "step", 5*time.Minute, "report interval")
	flag.Int64Var(&p.Seed, "seed", 1, "simulator seed")
	root := flag.String("data", filepath.Join(cache, "greenpost", "bench-api"), "where the filled InfluxDB data is kept between runs")
	clients := flag.Int("clients", 4, "concurrent HTTP clients")
	requests := flag.Int("requests", 200, "requests per question (after 10 warm-up requests), at least")
	flag.DurationVar(&minTime, "min-time", 10*time.Second, "and at least this long per question: a fast question's p95 over half a second is the machine's noise of that half second")
	bin := flag.String("bin", "bin", "directory with api and firmware-sim (make build)")
	onlyRE := flag.String("only", "", "measure only the questions whose name matches this regular expression")
	ttls := flag.String("ttls", "0s,10s", "GP_API_CACHE_TTL of each run of bin/api (comma-separated)")
	naive := flag.Bool("naive", true, "also time the naive raw scan")
	naiveLimit := flag.Duration("naive-limit", 4*time.Minute, "give up a naive raw scan after this long")
	fillOnly := flag.Bool("fill-only", false, "fill the histories (if not yet filled), report their time and disk use, and stop")
	flag.Parse()
	only, err := regexp.Compile(*onlyRE)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	var cities []*citySize
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-outlets: %q", f)
		}
		p.Outlets = n
		cities = append(cities, &citySize{n: n, res: map[string]map[string]result{},
			dir: filepath.Join(*root, fmt.Sprintf("o%d-d%d-s%s-seed%d", p.Outlets, p.Days, p.Step, p.Seed))})
	}
	// Every history first (a fill takes minutes per 1,000 outlets, once).
	for _, c := range cities {
		p.Outlets = c.n
		if err := fill(c, p, *bin); err != nil {
			return err
		}
		if c.registry, err = os.ReadFile(filepath.Join(c.dir, "registry.csv")); err != nil {
			return err
		}
	}
	if *fillOnly {
		return nil
	}
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := hex.EncodeToString(keyBytes)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Minute}
	for _, c := range cities {
		if err := measureCity(c, client, key, *bin, strings.Split(*ttls, ","), only, *clients, *requests, *naive, *naiveLimit); err != nil {
			return fmt.Errorf("%d outlets: %w", c.n, err)
		}
	}
	sideBySide(cities, strings.Split(*ttls, ","))
	return nil
}

// fill writes a city's history with the simulator once; the data directory
// is kept for later runs.
func fill(c *citySize, p params, bin string) error {
	if _, err := os.Stat(filepath.Join(c.dir, "filled")); err == nil {
		fmt.Printf("%d outlets: history in %s (%.2f GiB on disk)\n", c.n, c.dir, float64(dirBytes(c.dir))/(1<<30))
		return nil
	}
	in, err := testenv.NewKeptInflux(c.dir)
	if err != nil {
		return err
	}
	defer in.Stop()
	fmt.Printf("filling %d outlets × %d days with the simulator (once; kept in %s)\n", p.Outlets, p.Days, c.dir)
	t0 := time.Now()
	end := t0.UTC().Truncate(p.Step)
	if err := os.WriteFile(filepath.Join(c.dir, "history-end"), []byte(end.Format(time.RFC3339)), 0o644); err != nil {
		return err
	}
	sim := exec.Command(filepath.Join(bin, "firmware-sim"), "-mode", "history", "-influx", "-outlets", strconv.Itoa(p.Outlets),
		"-days", strconv.Itoa(p.Days), "-end", end.Format(time.RFC3339), "-step", p.Step.String(), "-seed", strconv.FormatInt(p.Seed, 10),
		"-registry", filepath.Join(c.dir, "registry.csv"))
	sim.Env = []string{"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket, "GP_LOG_LEVEL=info", "PATH=" + os.Getenv("PATH")}
	sim.Stdout, sim.Stderr = os.Stdout, os.Stderr
	if err := sim.Run(); err != nil {
		return fmt.Errorf("firmware-sim: %w", err)
	}
	sim0, _ := testenv.ReadProcStats(in.PID())
	fmt.Printf("filled %d outlets in %v; influxd %.0f CPU s, %.2f GiB on disk\n", c.n, time.Since(t0).Round(time.Second),
		sim0.CPUSeconds, float64(dirBytes(c.dir))/(1<<30))
	return os.WriteFile(filepath.Join(c.dir, "filled"), []byte(time.Now().UTC().Format(time.RFC3339)), 0o644)
}

// measureCity starts bin/api on one city (twice: the second start is the
// restart that must load, not rebuild, the roll-up), asks every question
// and times the naive raw scan beside it.
func measureCity(c *citySize, client *http.Client, key, bin string, ttls []string, only *regexp.Regexp,
	clients, requests int, naive bool, naiveLimit time.Duration) error {
	in, err := testenv.NewKeptInflux(c.dir)
	if err != nil {
		return err
	}
	defer in.Stop()
	ids := outletIDs(c.registry)
	districts := outletDistricts(c.registry)
	now := time.Now().UTC().Truncate(time.Minute)
	// The last 30 days up to the current minute, as the dashboard asks:
	// the window moves with the clock, so the newest minutes read raw stay
	// a minute or two (a window ending at the run's start would leave an
	// ever longer stretch between the roll-up's partial hour and its end
	// to read raw by every request).
	day30 := func() string {
		to := time.Now().UTC().Truncate(time.Minute)
		return fmt.Sprintf("from=%s&to=%s", to.Add(-30*24*time.Hour).Format(time.RFC3339), to.Format(time.RFC3339))
	}
	// A city still reporting: the collection list as of an hour before the
	// history ends (history-end, written by fill), while that is within
	// the tracker's memory (9 days); else 20 hours ago.
	lastHour := now.Add(-20 * time.Hour)
	if b, err := os.ReadFile(filepath.Join(c.dir, "history-end")); err == nil {
		if end, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b))); err == nil && now.Sub(end) < 8*24*time.Hour {
			lastHour = end.Add(-time.Hour).Truncate(time.Minute)
		}
	}
	asOf := lastHour.Format(time.RFC3339)
	// A viewer key scoped to one district (ops-v1), to set a scoped
	// request's cost beside the same question asked with a district filter.
	scopedKey := key + "-scoped"
	keysFile := filepath.Join(c.dir, "bench-api-keys")
	if err := os.WriteFile(keysFile, []byte(keyfile.Format("viewer", "bench-scoped", []byte(scopedKey), "districts="+districts[0])+"\n"), 0o600); err != nil {
		return err
	}
	questions := []question{
		{"city, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=city&" + day30() }, ""},
		{"by district, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=district&" + day30() }, ""},
		{"one outlet's rates, 30 days", func(r *mrand.Rand) string { return "/v1/outlets/" + ids[r.IntN(len(ids))] + "/rates?" + day30() }, ""},
		{"by outlet, 30 days, JSON", func(*mrand.Rand) string { return "/v1/rates?group_by=outlet&" + day30() }, ""},
		{"by outlet, 30 days, CSV", func(*mrand.Rand) string { return "/v1/rates?group_by=outlet&format=csv&" + day30() }, ""},
		{"waste-free, 30 days", func(*mrand.Rand) string { return "/v1/waste-free?" + day30() }, ""},
		{"alerts (devices + 7-day rates)", func(*mrand.Rand) string { return "/v1/alerts" }, ""},
		// The same work (every device's state, every outlet's 7-day rates)
		// with a smaller answer: a history that ends hours before the run
		// leaves every device offline and every outlet silent, so the full
		// answer above is ~46,000 alerts (14 MB of JSON) at 10,000 outlets.
		{"alerts, full bins + below target", func(*mrand.Rand) string { return "/v1/alerts?kind=bin_full,below_target" }, ""},
		{"collection list, city, 24 h ahead", func(*mrand.Rand) string { return "/v1/collections" }, ""},
		{"collection list, one district, 2 h ahead", func(r *mrand.Rand) string {
			return "/v1/collections?hours=2&district=" + districts[r.IntN(len(districts))]
		}, ""},
		{"collection list, city, as of the history's last hour", func(*mrand.Rand) string { return "/v1/collections?at=" + asOf }, ""},
		// The same district asked two ways: a filter with a city-wide
		// key, and a key scoped to it (the scope must cost no more).
		{"one district's total, filter, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=city&district=" + districts[0] + "&" + day30() }, ""},
		{"one district's total, scoped key, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=city&" + day30() }, scopedKey},
		{"collection list, one district, filter", func(*mrand.Rand) string { return "/v1/collections?district=" + districts[0] }, ""},
		{"collection list, one district, scoped key", func(*mrand.Rand) string { return "/v1/collections" }, scopedKey},
	}
	start := func(ttl string) (*apiProc, time.Duration, error) {
		t0 := time.Now()
		api, err := startAPI(filepath.Join(bin, "api"), in, key, keysFile, ttl)
		if err != nil {
			return nil, 0, err
		}
		if st, body, err := do(client, "POST", api.base+"/v1/outlets/import", key, "text/csv", c.registry); err != nil || st != 200 {
			api.stop()
			return nil, 0, fmt.Errorf("import: %d %s %v", st, body, err)
		}
		// Whatever is measured, the roll-up worker is let finish first: a
		// build in the background would take the CPU from every question.
		for {
			st, body, err := do(client, "GET", api.base+"/v1/rates?group_by=city&"+day30(), key, "", nil)
			if err == nil && st == 200 {
				break
			}
			// A first build at city scale takes minutes per 1,000 outlets;
			// its rows are kept, so a later run goes on from where this one
			// stopped.
			if st != 503 || time.Since(t0) > 3*time.Hour {
				api.stop()
				return nil, 0, fmt.Errorf("city roll-up: %d %s %v\n%s", st, body, err, api.log.String())
			}
			time.Sleep(500 * time.Millisecond)
		}
		took := time.Since(t0)
		// And the collection list's tracker, which loads its days of bin
		// reports beside: its reads would take InfluxDB's CPU from the
		// first questions.
		for {
			st, body, err := do(client, "GET", api.base+"/v1/collections", key, "", nil)
			if err == nil && st == 200 {
				break
			}
			if st != 503 || time.Since(t0) > time.Hour {
				api.stop()
				return nil, 0, fmt.Errorf("collections: %d %s %v\n%s", st, body, err, api.log.String())
			}
			time.Sleep(500 * time.Millisecond)
		}
		fmt.Printf("(the collection list answered %v after the start: %s)\n", time.Since(t0).Round(100*time.Millisecond), lastLine(api.log.String(), "bin reports loaded"))
		return api, took, nil
	}
	fmt.Printf("\n## %d outlets\n", c.n)
	for i, ttl := range ttls {
		api, took, err := start(ttl)
		if err != nil {
			return err
		}
		if i == 0 {
			c.first = took
			c.built = strings.Contains(api.log.String(), `"msg":"roll-up built history"`)
			fmt.Printf("first start: the 30-day city answered after %v (%s)\n", took.Round(100*time.Millisecond),
				map[bool]string{true: "roll-up built from raw data", false: "roll-up loaded"}[c.built])
			// The restart: a second process must load what the first one
			// persisted, not rebuild it.
			api.stop()
			if api, took, err = start(ttl); err != nil {
				return err
			}
			c.restart = took
			fmt.Printf("restart: the 30-day city answered after %v; %s\n", took.Round(100*time.Millisecond), lastLine(api.log.String(), "roll-up loaded"))
		}
		c.res[ttl] = map[string]result{}
		fmt.Printf("GP_API_CACHE_TTL=%s, %d concurrent clients, at least %d requests and %v each question, same window:\n", ttl, clients, requests, minTime)
		fmt.Println("| question | p50 | p95 | p99 | max | api CPU / request | influxd CPU / request | requests |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for _, q := range questions {
			if !only.MatchString(q.name) {
				continue
			}
			qkey := key
			if q.key != "" {
				qkey = q.key
			}
			// The collection list's tracker loads at start; until then its
			// questions answer 503.
			t0 := time.Now()
			for {
				st, body, err := do(client, "GET", api.base+q.path(mrand.New(mrand.NewPCG(1, 1))), qkey, "", nil)
				if err == nil && st == 200 {
					break
				}
				if st != 503 || time.Since(t0) > 20*time.Minute {
					api.stop()
					return fmt.Errorf("%s: %d %s %v\n%s", q.name, st, body, err, api.log.String())
				}
				time.Sleep(500 * time.Millisecond)
			}
			if w := time.Since(t0); w > 5*time.Second {
				fmt.Printf("(%s: first answered %v after its first try: loaded or built)\n", q.name, w.Round(time.Second))
			}
			res, err := measure(client, api.base, qkey, q.path, clients, requests, api.pid(), in.PID())
			if err != nil {
				api.stop()
				return fmt.Errorf("%s: %w", q.name, err)
			}
			c.res[ttl][q.name] = res
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %d |\n", q.name, fmtDur(res.p50), fmtDur(res.p95), fmtDur(res.p99), fmtDur(res.max),
				fmtSec(res.apiCPU), fmtSec(res.influxCPU), res.n)
		}
		if i == 0 {
			ps, _ := testenv.ReadProcStats(api.pid())
			c.rssMiB, c.peakMiB = float64(ps.RSSKiB)/1024, float64(ps.PeakRSSKiB)/1024
			c.heapMiB = gauge(client, api.base, key, "greenpost_rollup_memory_bytes") / (1 << 20)
			c.goHeapMiB = gauge(client, api.base, key, "go_memstats_heap_inuse_bytes") / (1 << 20)
			c.liveMiB = api.liveHeap(client, key) / (1 << 20)
			fmt.Printf("bin/api RSS %.0f MiB (peak %.0f MiB); Go heap in use %.0f MiB, live after a collection %.0f MiB; roll-up index estimate %.0f MiB\n",
				c.rssMiB, c.peakMiB, c.goHeapMiB, c.liveMiB, c.heapMiB)
		}
		api.stop()
	}
	if naive {
		c.naive = naiveScan(in, ids, now, naiveLimit)
	}
	return nil
}

// naiveScan times internal/metrics' raw path (every point of the window
// read and computed per request, no roll-up) in this process, one request
// at a time, giving up after limit.
func naiveScan(in *testenv.Influx, ids []string, now time.Time, limit time.Duration) []string {
	var out []string
	st, err := store.Open(store.Config{URL: in.URL, Bucket: in.Bucket, Timeout: limit})
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	defer st.Close()
	fmt.Println("naive raw scan (internal/metrics without roll-up), one request at a time:")
	fmt.Println("| question | language | time | influxd CPU |")
	fmt.Println("|---|---|---|---|")
	for _, lang := range []metrics.QueryLanguage{metrics.InfluxQL, metrics.Flux} {
		raw, err := metrics.NewRawEngine(st, metrics.DefaultOptions(), lang)
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		for _, rq := range []struct {
			name    string
			w       metrics.Window
			outlets []string
		}{
			{"one outlet, 30 days", metrics.Window{From: now.Add(-30 * 24 * time.Hour), To: now}, ids[:1]},
			{"city, 24 hours", metrics.Window{From: now.Add(-24 * time.Hour), To: now}, ids},
		} {
			if lang == metrics.Flux && len(rq.outlets) > 1000 {
				continue // about 2× the InfluxQL time (measured at 1,000 outlets)
			}
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			c0 := cpuSeconds(in.PID())
			t1 := time.Now()
			_, err := raw.Outlets(ctx, rq.w, rq.outlets)
			cancel()
			status := time.Since(t1).Round(time.Millisecond).String()
			if err != nil {
				status = fmt.Sprintf("not finished in %v (%v)", limit, err)
			}
			line := fmt.Sprintf("| %s | %v | %s | %.2f s |", rq.name, lang, status, cpuSeconds(in.PID())-c0)
			fmt.Println(line)
			out = append(out, line)
		}
	}
	fmt.Println("(a city-wide 30-day raw scan is not run: InfluxDB's notes measured 32.7 s and 13.6 GiB for it at 1,000 outlets)")
	return out
}

// sideBySide prints every question's p95 and CPU per request at each city
// size, and the CPU per request per outlet: the cost's growth as a line.
func sideBySide(cities []*citySize, ttls []string) {
	fmt.Println("\n## Side by side")
	head := "| question |"
	rule := "|---|"
	for _, c := range cities {
		head += fmt.Sprintf(" p95 %d |", c.n)
		rule += "---|"
	}
	for _, c := range cities {
		head += fmt.Sprintf(" api CPU / req %d |", c.n)
		rule += "---|"
	}
	for _, c := range cities {
		head += fmt.Sprintf(" µs CPU / req / outlet %d |", c.n)
		rule += "---|"
	}
	for _, ttl := range ttls {
		fmt.Printf("\nGP_API_CACHE_TTL=%s\n%s\n%s\n", ttl, head, rule)
		var names []string
		for _, c := range cities {
			for q := range c.res[ttl] {
				if !slices.Contains(names, q) {
					names = append(names, q)
				}
			}
		}
		sort.Strings(names)
		for _, q := range names {
			line := "| " + q + " |"
			for _, c := range cities {
				line += " " + fmtDur(c.res[ttl][q].p95) + " |"
			}
			for _, c := range cities {
				line += " " + fmtSec(c.res[ttl][q].apiCPU) + " |"
			}
			for _, c := range cities {
				line += fmt.Sprintf(" %.1f |", c.res[ttl][q].apiCPU/float64(c.n)*1e6)
			}
			fmt.Println(line)
		}
	}
	fmt.Println("\n| outlets | first start (built?) | restart → city served | RSS after the questions | peak RSS | Go heap in use | live heap | roll-up index estimate |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, c := range cities {
		fmt.Printf("| %d | %v (%v) | %v | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB |\n", c.n, c.first.Round(100*time.Millisecond), c.built,
			c.restart.Round(100*time.Millisecond), c.rssMiB, c.peakMiB, c.goHeapMiB, c.liveMiB, c.heapMiB)
	}
	for _, c := range cities {
		for _, l := range c.naive {
			fmt.Printf("naive, %d outlets: %s\n", c.n, l)
		}
	}
}

// gauge reads one value of bin/api's /metrics.
func gauge(client *http.Client, base, key, name string) float64 {
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// lastLine returns the last line of log containing msg ("" when none).
func lastLine(log, msg string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], msg) {
			return lines[i]
		}
	}
	return ""
}

func fmtSec(s float64) string { return fmtDur(time.Duration(s * float64(time.Second))) }

// measure sends requests from clients goroutines and summarizes latency and
// the CPU the API and InfluxDB spent per request.
// minTime is -min-time.
var minTime time.Duration

func measure(client *http.Client, base, key string, path func(*mrand.Rand) string, clients, requests int, apiPID, influxPID int) (result, error) {
	warm := mrand.New(mrand.NewPCG(1, 2))
	for range 10 {
		if st, body, err := do(client, "GET", base+path(warm), key, "", nil); err != nil || st != 200 {
			return result{}, fmt.Errorf("warm-up: %d %s %v", st, body, err)
		}
	}
	a0, i0 := cpuSeconds(apiPID), cpuSeconds(influxPID)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	per := (requests + clients - 1) / clients
	until := time.Now().Add(minTime)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(c), 7))
			for k := 0; k < per || time.Now().Before(until); k++ {
				t := time.Now()
				st, body, err := do(client, "GET", base+path(r), key, "", nil)
				d := time.Since(t)
				mu.Lock()
				if (err != nil || st != 200) && firstErr == nil {
					firstErr = fmt.Errorf("%d %s %v", st, body, err)
				}
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	n := float64(len(lat))
	apiCPU, influxCPU := (cpuSeconds(apiPID)-a0)/n, (cpuSeconds(influxPID)-i0)/n
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(math.Ceil(p*n))-1)]
	}
	return result{p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), max: lat[len(lat)-1], apiCPU: apiCPU, influxCPU: influxCPU, n: len(lat)}, nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func do(client *http.Client, method, url, key, ctype string, body []byte) (int, string, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 && len(b) > 300 {
		b = b[:300]
	}
	if resp.StatusCode == 200 {
		b = nil
	}
	return resp.StatusCode, string(b), nil
}

func outletIDs(csvBody []byte) []string {
	var ids []string
	for i, line := range strings.Split(string(csvBody), "\n") {
		if i == 0 || line == "" {
			continue
		}
		id, _, _ := strings.Cut(line, ",")
		ids = append(ids, id)
	}
	return ids
}

// outletDistricts returns the registry CSV's districts, each once, sorted.
func outletDistricts(csvBody []byte) []string {
	recs, _ := csv.NewReader(bytes.NewReader(csvBody)).ReadAll()
	seen := map[string]bool{}
	var ds []string
	for i, r := range recs {
		if i > 0 && len(r) > 2 && !seen[r[2]] {
			seen[r[2]] = true
			ds = append(ds, r[2])
		}
	}
	sort.Strings(ds)
	return ds
}

// cpuSeconds is a process's user+system CPU time from /proc.
func cpuSeconds(pid int) float64 {
	st, _ := testenv.ReadProcStats(pid)
	return st.CPUSeconds
}

// apiProc is bin/api running as its own process.
type apiProc struct {
	*testenv.Child
	base  string
	debug string // the profiles' listener (GP_API_DEBUG_ADDR)
	log   *testenv.SyncBuffer
}

var startedAddr = regexp.MustCompile(`"msg":"started"[^}]*"addr":"([^"]+)"`)

func startAPI(bin string, in *testenv.Influx, key, keysFile, cacheTTL string) (*apiProc, error) {
	cmd := exec.Command(bin)
	cmd.Env = []string{"GP_API_ADDR=127.0.0.1:0", "GP_API_CACHE_TTL=" + cacheTTL, "GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket,
		"GP_API_KEYS=admin:" + key, "GP_API_KEYS_FILE=" + keysFile, "GP_API_RATE_LIMIT=100000", "GP_API_RATE_BURST=100000", "GP_API_REQUEST_TIMEOUT=5m",
		"GP_API_BODY_LIMIT=16777216", "PATH=" + os.Getenv("PATH")}
	// The Go runtime's soft memory limit, as a deployment sets it
	// (deploy/cluster): the bench passes its own on (apiMemLimit).
	if apiMemLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+apiMemLimit)
	}
	// Where the roll-up keeps its old days (GP_API_COLD_DIR; "memory" to
	// compare with the heap), as the bench is given it.
	if v := os.Getenv("GP_API_COLD_DIR"); v != "" {
		cmd.Env = append(cmd.Env, "GP_API_COLD_DIR="+v)
	}
	// And the profiles' listener, to see where a question's CPU goes
	// (go tool pprof http://ADDR/debug/pprof/profile while it runs) and
	// to measure the live heap (a heap profile with gc=1 collects first).
	p := &apiProc{log: &testenv.SyncBuffer{}}
	p.debug = os.Getenv("GP_API_DEBUG_ADDR")
	if p.debug == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p.debug = l.Addr().String()
		l.Close()
	}
	cmd.Env = append(cmd.Env, "GP_API_DEBUG_ADDR="+p.debug)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	c, err := testenv.StartChild(cmd, nil)
	if err != nil {
		return nil, err
	}
	p.Child = c
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := startedAddr.FindStringSubmatch(p.log.String()); m != nil {
			p.base = "http://" + m[1]
			return p, nil
		}
		select {
		case <-p.Done():
			return nil, errors.New("bin/api exited:\n" + p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, errors.New("bin/api did not start:\n" + p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *apiProc) pid() int { return p.PID() }

// liveHeap is bin/api's live heap: a heap profile asked with gc=1 runs a
// collection first, then the runtime's own gauge says what is left (0:
// not measured).
func (p *apiProc) liveHeap(client *http.Client, key string) float64 {
	resp, err := client.Get("http://" + p.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return gauge(client, p.base, key, "go_memstats_heap_alloc_bytes")
}

func (p *apiProc) stop() { p.Stop(syscall.SIGTERM, 30*time.Second) }

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
