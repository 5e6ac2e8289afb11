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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

func main() {
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

func run() error {
	cache, _ := os.UserCacheDir()
	var p params
	flag.IntVar(&p.Outlets, "outlets", 1000, "outlets (2 bins and a counter each)")
	flag.IntVar(&p.Days, "days", 30, "days of history")
	flag.DurationVar(&p.Step, "step", 5*time.Minute, "report interval")
	flag.Int64Var(&p.Seed, "seed", 1, "simulator seed")
	root := flag.String("data", filepath.Join(cache, "greenpost", "bench-api"), "where the filled InfluxDB data is kept between runs")
	clients := flag.Int("clients", 4, "concurrent HTTP clients")
	requests := flag.Int("requests", 200, "requests per question (after 10 warm-up requests)")
	bin := flag.String("bin", "bin", "directory with api and firmware-sim (make build)")
	onlyRE := flag.String("only", "", "measure only the questions whose name matches this regular expression")
	ttls := flag.String("ttls", "0s,10s", "GP_API_CACHE_TTL of each run of bin/api (comma-separated)")
	naive := flag.Bool("naive", true, "also time the naive raw scan")
	flag.Parse()
	only, err := regexp.Compile(*onlyRE)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	ctx := context.Background()

	dir := filepath.Join(*root, fmt.Sprintf("o%d-d%d-s%s-seed%d", p.Outlets, p.Days, p.Step, p.Seed))
	in, err := testenv.NewKeptInflux(dir)
	if err != nil {
		return err
	}
	defer in.Stop()
	registry := filepath.Join(dir, "registry.csv")
	// History ends at the last whole step before the data was written, so
	// the windows below (ending now) include its last hours live.
	if _, err := os.Stat(filepath.Join(dir, "filled")); err != nil {
		fmt.Printf("filling %d outlets × %d days with the simulator (once; kept in %s)\n", p.Outlets, p.Days, dir)
		t0 := time.Now()
		sim := exec.Command(filepath.Join(*bin, "firmware-sim"), "-mode", "history", "-influx", "-outlets", strconv.Itoa(p.Outlets),
			"-days", strconv.Itoa(p.Days), "-step", p.Step.String(), "-seed", strconv.FormatInt(p.Seed, 10), "-registry", registry)
		sim.Env = []string{"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket, "GP_LOG_LEVEL=warn", "PATH=" + os.Getenv("PATH")}
		sim.Stdout, sim.Stderr = os.Stdout, os.Stderr
		if err := sim.Run(); err != nil {
			return fmt.Errorf("firmware-sim: %w", err)
		}
		fmt.Printf("filled in %v\n", time.Since(t0).Round(time.Second))
		os.WriteFile(filepath.Join(dir, "filled"), []byte(time.Now().UTC().Format(time.RFC3339)), 0o644)
	}

	// bin/api as its own process, with a fresh key: first with its figure
	// cache off (every request asks the engine), then with the default TTL.
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := hex.EncodeToString(keyBytes)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Minute}
	reg, err := os.ReadFile(registry)
	if err != nil {
		return err
	}
	ids := outletIDs(reg)
	now := time.Now().UTC().Truncate(time.Minute)
	day30 := fmt.Sprintf("from=%s&to=%s", now.Add(-30*24*time.Hour).Format(time.RFC3339), now.Format(time.RFC3339))
	districts := outletDistricts(reg)
	ago20h := now.Add(-20 * time.Hour).Format(time.RFC3339)
	// A viewer key scoped to one district (ops-v1), to set a scoped
	// request's cost beside the same question asked with a district filter.
	scopedKey := key + "-scoped"
	keysFile := filepath.Join(dir, "bench-api-keys")
	if err := os.WriteFile(keysFile, []byte(keyfile.Format("viewer", "bench-scoped", []byte(scopedKey), "districts="+districts[0])+"\n"), 0o600); err != nil {
		return err
	}
	for _, ttl := range strings.Split(*ttls, ",") {
		api, err := startAPI(filepath.Join(*bin, "api"), in, key, keysFile, ttl)
		if err != nil {
			return err
		}
		if st, body, err := do(client, "POST", api.base+"/v1/outlets/import", key, "text/csv", reg); err != nil || st != 200 {
			api.stop()
			return fmt.Errorf("import: %d %s %v", st, body, err)
		}
		// Whatever is measured, the roll-up worker is let finish first: a
		// build in the background would take the CPU from every question.
		t0 := time.Now()
		for {
			st, body, err := do(client, "GET", api.base+"/v1/rates?group_by=city&"+day30, key, "", nil)
			if err == nil && st == 200 {
				break
			}
			// A first build at city scale takes minutes on a quiet machine and
			// much longer on a busy one; its rows are kept, so a later run
			// goes on from where this one stopped.
			if st != 503 || time.Since(t0) > 90*time.Minute {
				api.stop()
				return fmt.Errorf("city roll-up: %d %s %v\n%s", st, body, err, api.log.String())
			}
			time.Sleep(2 * time.Second)
		}
		fmt.Printf("\nGP_API_CACHE_TTL=%s: bin/api answered a 30-day city question %v after start (roll-up loaded or built)\n", ttl, time.Since(t0).Round(time.Second))
		questions := []struct {
			name string
			path func(r *mrand.Rand) string
			key  string // "" the city-wide admin key
		}{
			{"city, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=city&" + day30 }, ""},
			{"by district, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=district&" + day30 }, ""},
			{"one outlet's rates, 30 days", func(r *mrand.Rand) string { return "/v1/outlets/" + ids[r.IntN(len(ids))] + "/rates?" + day30 }, ""},
			{fmt.Sprintf("by outlet (%d groups), 30 days", len(ids)), func(*mrand.Rand) string { return "/v1/rates?group_by=outlet&" + day30 }, ""},
			{"waste-free, 30 days", func(*mrand.Rand) string { return "/v1/waste-free?" + day30 }, ""},
			{"alerts (devices over 30 days, 7-day rates)", func(*mrand.Rand) string { return "/v1/alerts" }, ""},
			{"collection list, city, 24 h ahead", func(*mrand.Rand) string { return "/v1/collections" }, ""},
			{"collection list, one district, 2 h ahead", func(r *mrand.Rand) string {
				return "/v1/collections?hours=2&district=" + districts[r.IntN(len(districts))]
			}, ""},
			{"collection list, city, as of 20 h ago (from memory)", func(*mrand.Rand) string { return "/v1/collections?at=" + ago20h }, ""},
			// The same district asked two ways: a filter with a city-wide
			// key, and a key scoped to it (the scope must cost no more).
			{"one district's total, filter, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=city&district=" + districts[0] + "&" + day30 }, ""},
			{"one district's total, scoped key, 30 days", func(*mrand.Rand) string { return "/v1/rates?group_by=city&" + day30 }, scopedKey},
			{"collection list, one district, filter", func(*mrand.Rand) string { return "/v1/collections?district=" + districts[0] }, ""},
			{"collection list, one district, scoped key", func(*mrand.Rand) string { return "/v1/collections" }, scopedKey},
		}
		fmt.Printf("%d concurrent clients, %d requests each question, same window:\n", *clients, *requests)
		fmt.Println("| question | p50 | p95 | p99 | max | api CPU / request | influxd CPU / request |")
		fmt.Println("|---|---|---|---|---|---|---|")
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
				time.Sleep(2 * time.Second)
			}
			if w := time.Since(t0); w > 5*time.Second {
				fmt.Printf("(%s: first answered %v after its first try: loaded or built)\n", q.name, w.Round(time.Second))
			}
			res, err := measure(client, api.base, qkey, q.path, *clients, *requests, api.pid(), in.PID())
			if err != nil {
				api.stop()
				return fmt.Errorf("%s: %w", q.name, err)
			}
			fmt.Printf("| %s | %s |\n", q.name, res)
		}
		api.stop()
	}

	if !*naive {
		return nil
	}
	// The naive path beside it: internal/metrics reading every raw point of
	// the window (no roll-up), in this process.
	st, err := store.Open(store.Config{URL: in.URL, Bucket: in.Bucket, Timeout: 10 * time.Minute})
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Println("\nnaive raw scan (internal/metrics without roll-up), one request at a time:")
	fmt.Println("| question | language | time | influxd CPU |")
	fmt.Println("|---|---|---|---|")
	for _, lang := range []metrics.QueryLanguage{metrics.InfluxQL, metrics.Flux} {
		raw, err := metrics.NewRawEngine(st, metrics.DefaultOptions(), lang)
		if err != nil {
			return err
		}
		for _, rq := range []struct {
			name    string
			w       metrics.Window
			outlets []string
		}{
			{"one outlet, 30 days", metrics.Window{From: now.Add(-30 * 24 * time.Hour), To: now}, ids[:1]},
			{"city, 24 hours", metrics.Window{From: now.Add(-24 * time.Hour), To: now}, ids},
		} {
			c0 := cpuSeconds(in.PID())
			t1 := time.Now()
			_, err := raw.Outlets(ctx, rq.w, rq.outlets)
			el := time.Since(t1)
			status := el.Round(time.Millisecond).String()
			if err != nil {
				status = "error: " + err.Error()
			}
			fmt.Printf("| %s | %v | %s | %.2f s |\n", rq.name, lang, status, cpuSeconds(in.PID())-c0)
		}
	}
	fmt.Println("(a city-wide 30-day raw scan is not run: InfluxDB's notes measured 32.7 s and 13.6 GiB for it)")
	return nil
}

// measure sends requests from clients goroutines and summarizes latency and
// the CPU the API and InfluxDB spent per request.
func measure(client *http.Client, base, key string, path func(*mrand.Rand) string, clients, requests int, apiPID, influxPID int) (string, error) {
	warm := mrand.New(mrand.NewPCG(1, 2))
	for range 10 {
		if st, body, err := do(client, "GET", base+path(warm), key, "", nil); err != nil || st != 200 {
			return "", fmt.Errorf("warm-up: %d %s %v", st, body, err)
		}
	}
	a0, i0 := cpuSeconds(apiPID), cpuSeconds(influxPID)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	per := (requests + clients - 1) / clients
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(c), 7))
			for range per {
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
		return "", firstErr
	}
	n := float64(len(lat))
	apiCPU, influxCPU := (cpuSeconds(apiPID)-a0)/n, (cpuSeconds(influxPID)-i0)/n
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) string {
		return fmtDur(lat[min(len(lat)-1, int(math.Ceil(p*n))-1)])
	}
	return fmt.Sprintf("%s | %s | %s | %s | %s | %s", pct(0.5), pct(0.95), pct(0.99), fmtDur(lat[len(lat)-1]),
		fmtDur(time.Duration(apiCPU*float64(time.Second))), fmtDur(time.Duration(influxCPU*float64(time.Second)))), nil
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
	base string
	log  *testenv.SyncBuffer
}

var startedAddr = regexp.MustCompile(`"msg":"started"[^}]*"addr":"([^"]+)"`)

func startAPI(bin string, in *testenv.Influx, key, keysFile, cacheTTL string) (*apiProc, error) {
	cmd := exec.Command(bin)
	cmd.Env = []string{"GP_API_ADDR=127.0.0.1:0", "GP_API_CACHE_TTL=" + cacheTTL, "GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket,
		"GP_API_KEYS=admin:" + key, "GP_API_KEYS_FILE=" + keysFile, "GP_API_RATE_LIMIT=100000", "GP_API_RATE_BURST=100000", "GP_API_REQUEST_TIMEOUT=5m",
		"GP_API_BODY_LIMIT=16777216", "PATH=" + os.Getenv("PATH")}
	p := &apiProc{log: &testenv.SyncBuffer{}}
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

func (p *apiProc) stop() { p.Stop(syscall.SIGTERM, 30*time.Second) }
