// Command live-bench measures the live path at city scale on this machine:
// `make bench-live` (docs/benchmarks.md, "Live path at 10,000 outlets").
//
// Every device of the city (2 bins and 1 counter per outlet by default, each
// its own MQTT connection) publishes through Mosquitto and bin/collector
// into a fresh InfluxDB 1.8.10, with bin/api reading it. The devices are run
// by several firmware-sim load processes, each a -slice of the city (one
// process may open 20,000 files here). A broker holds one file per
// connection and cannot be given more than that limit either (no
// CAP_SYS_RESOURCE), so past ~19,000 devices they are split over several
// brokers, each with its own collector, as a deployment past one broker
// would be.
//
// Two phases: the city's real cadence (each device every 5 minutes), then
// 60× that. Each phase checks zero loss (every acknowledged message of
// every device is a point in InfluxDB; the collectors' dead letters, invalid
// messages and rejected points are 0) and measures publish → visible in
// /v1/rates (probe.go), CPU per message of each process, and the machine's
// load and idle share.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "live-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, dir, out       string
	outlets, bins       int
	procs, brokers      int
	sample              int
	seed                int64
	cadence             time.Duration
	phase1, phase2      time.Duration
	speedup             float64
	poll, groupEvery    time.Duration
	keep                bool
	devicesPerBrokerMax int
}

type phase struct {
	Name     string  `json:"name"`
	Duration float64 `json:"duration_s"`
	Rate     float64 `json:"target_rate"`
	PerDev   int     `json:"messages_per_device"`

	From, To         time.Time          `json:"-"`
	Acked            int64              `json:"acked"`
	Stored           int64              `json:"stored"`
	DevicesChecked   int                `json:"devices_checked"`
	DevicesMismatch  int                `json:"devices_mismatch"`
	FirstMismatch    string             `json:"first_mismatch,omitempty"`
	PublishSeconds   float64            `json:"publish_seconds"`
	DrainSeconds     float64            `json:"drain_seconds"` // last ack → all stored
	ConnectSeconds   float64            `json:"connect_seconds"`
	CPU              map[string]float64 `json:"cpu_seconds"`
	Idle             float64            `json:"idle_share"`
	Load1            float64            `json:"load1"`
	Load1Max         float64            `json:"load1_max"`
	OwnLat           []float64          `json:"-"`
	GroupLat         []float64          `json:"-"`
	OwnP             string             `json:"latency_own"`
	GroupP           string             `json:"latency_group"`
	Unseen           int                `json:"unseen"`
	FinalMatches     int                `json:"final_matches"`
	Sampled          int                `json:"sampled_outlets"`
	WatchedSeen      int                `json:"watched_seen"`
	WatchedAcked     int64              `json:"watched_acked"`
	PollErrors       int                `json:"poll_errors"`
	LastPollError    string             `json:"last_poll_error,omitempty"`
	OwnSecs, GrpSecs []float64          `json:"-"`
	Counters         map[string]float64 `json:"collector_counters"`
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder with collector, api and firmware-sim")
	flag.IntVar(&o.outlets, "outlets", 10000, "outlets of the city")
	flag.IntVar(&o.bins, "bins", 2, "bins per outlet (each outlet also has one parcel counter)")
	flag.IntVar(&o.procs, "procs", 0, "firmware-sim processes (0: enough for ≤ 8,000 devices each, at least 2, a multiple of the brokers)")
	flag.IntVar(&o.brokers, "brokers", 0, "brokers, each with its own collector (0: as few as the open-file limit allows)")
	flag.IntVar(&o.sample, "sample", 24, "outlets whose parcel totals the poller follows")
	flag.Int64Var(&o.seed, "seed", 1, "the city's seed")
	flag.DurationVar(&o.cadence, "cadence", 5*time.Minute, "the city's report interval per device")
	flag.DurationVar(&o.phase1, "phase1", 5*time.Minute, "length of the real-cadence phase (0: skip)")
	flag.DurationVar(&o.phase2, "phase2", 5*time.Minute, "length of the fast phase (0: skip)")
	flag.Float64Var(&o.speedup, "speedup", 60, "the fast phase's rate as a multiple of the real cadence")
	flag.DurationVar(&o.poll, "poll", time.Second, "how often each sampled outlet's rates are asked")
	flag.DurationVar(&o.groupEvery, "group-every", 5*time.Second, "how often /v1/rates?group_by=outlet is asked (0: never)")
	flag.StringVar(&o.out, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, data) at the end")
	flag.Parse()

	devices := o.outlets * (o.bins + 1)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	// Each broker needs a file per connection and a few of its own.
	o.devicesPerBrokerMax = int(lim.Max) - 1000
	if o.brokers == 0 {
		o.brokers = (devices + o.devicesPerBrokerMax - 1) / o.devicesPerBrokerMax
	}
	if o.procs == 0 {
		o.procs = max(2, (devices+7999)/8000)
		o.procs = (o.procs + o.brokers - 1) / o.brokers * o.brokers
	}
	if o.procs%o.brokers != 0 || devices/o.brokers > o.devicesPerBrokerMax || devices/o.procs > int(lim.Max)-100 {
		return fmt.Errorf("%d devices over %d brokers and %d processes: each may open %d files", devices, o.brokers, o.procs, lim.Max)
	}
	c, err := city.New(city.Config{Seed: o.seed, Outlets: o.outlets, Bins: o.bins})
	if err != nil {
		return err
	}
	if o.dir, err = os.MkdirTemp("", "gp-bench-live-"); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(o.dir)
	}
	logf("%d outlets, %d devices: %d firmware-sim processes, %d broker(s) with a collector each (open-file limit %d); data and logs in %s",
		o.outlets, devices, o.procs, o.brokers, lim.Max, o.dir)
	s, err := startStack(o, o.brokers)
	if err != nil {
		return err
	}
	defer s.stop()

	// The sampled outlets, spread over the city (and so over the slices).
	topics := map[string]string{}
	var sampled []string
	for i := range min(o.sample, o.outlets) {
		out := c.Outlets[i*o.outlets/min(o.sample, o.outlets)]
		sampled = append(sampled, out.ID)
		topics[telemetry.TelemetryTopic(out.ID, telemetry.KindCounter, out.Counter)] = out.ID
		for _, b := range out.BinIDs {
			topics[telemetry.TelemetryTopic(out.ID, telemetry.KindBin, b)] = out.ID
		}
	}
	var urls []string
	for _, b := range s.brokers {
		urls = append(urls, b.URL)
	}
	w, err := watch(urls, topics)
	if err != nil {
		return err
	}
	defer w.close()

	// The registry first, then wait for the roll-up worker's first build (on
	// an empty database it still walks the whole look-back for every
	// outlet): until then a city-wide window answers 503.
	var reg bytes.Buffer
	since := time.Now().UTC().Truncate(time.Minute)
	if err := c.WriteRegistry(&reg, since); err != nil {
		return err
	}
	if err := s.importRegistry(reg.Bytes()); err != nil {
		return err
	}
	t0 := time.Now()
	for {
		var v any
		win := "from=" + since.Add(-time.Hour).Format(time.RFC3339) + "&to=" + nowWindowEnd().Format(time.RFC3339)
		err := s.get("/v1/rates?group_by=city&"+win, &v)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "503") || time.Since(t0) > 60*time.Minute {
			return fmt.Errorf("roll-up: %w", err)
		}
		time.Sleep(time.Second)
	}
	rollupReady := time.Since(t0)
	logf("registry of %d outlets imported; the city's figures answer after %.0f s (roll-up's first build)", o.outlets, rollupReady.Seconds())

	var phases []*phase
	realRate := float64(devices) / o.cadence.Seconds()
	for _, p := range []struct {
		name  string
		dur   time.Duration
		speed float64
	}{{"real cadence", o.phase1, 1}, {fmt.Sprintf("%g× the cadence", o.speedup), o.phase2, o.speedup}} {
		if p.dur <= 0 {
			continue
		}
		ph := &phase{Name: p.name, Duration: p.dur.Seconds(), Rate: realRate * p.speed,
			PerDev: max(1, int(math.Round(p.dur.Seconds()*p.speed/o.cadence.Seconds())))}
		if err := runPhase(o, s, w, ph, sampled, len(phases) == 0, c); err != nil {
			return fmt.Errorf("%s: %w", ph.Name, err)
		}
		phases = append(phases, ph)
	}
	report(o, devices, phases, rollupReady)
	if o.out != "" {
		b, _ := json.MarshalIndent(phases, "", "  ")
		return os.WriteFile(o.out, b, 0o644)
	}
	return nil
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// simResult is one firmware-sim process's summary line and truth.
type simResult struct {
	Acked          int64     `json:"acked"`
	Seconds        float64   `json:"seconds"`
	ConnectSeconds float64   `json:"connect_seconds"`
	CPUSeconds     float64   `json:"cpu_seconds"`
	FirstPublish   time.Time `json:"first_publish"`
	LastAck        time.Time `json:"last_ack"`
	truth          map[string]int64
}

func runPhase(o options, s *stack, w *watcher, ph *phase, sampled []string, first bool, c *city.City) error {
	// The window starts at a whole minute after every earlier message, so
	// an earlier phase's points are before it (the API rounds to minutes).
	ph.From = time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	if first {
		ph.From = time.Now().UTC().Truncate(time.Minute)
	}
	sleepUntil(context.Background(), ph.From)
	ph.To = ph.From.Add(24 * time.Hour)
	logf("== %s: %.0f msg/s for %v (%d per device), window from %s", ph.Name, ph.Rate, time.Duration(ph.Duration*float64(time.Second)),
		ph.PerDev, ph.From.Format(time.RFC3339))

	cpu0 := readCPU(s.procs())
	stat0 := readStat()
	results := make([]simResult, o.procs)
	errs := make([]error, o.procs)
	var wg sync.WaitGroup
	devices := o.outlets * (o.bins + 1)
	for k := 1; k <= o.procs; k++ {
		var cfgSlice struct{ lo, hi int }
		cfgSlice.lo, cfgSlice.hi = (k-1)*o.outlets/o.procs, k*o.outlets/o.procs
		sliceDevices := (cfgSlice.hi - cfgSlice.lo) * (o.bins + 1)
		broker := s.brokers[(k-1)*len(s.brokers)/o.procs]
		truth := filepath.Join(o.dir, fmt.Sprintf("truth-%s-%d.json", strings.Fields(ph.Name)[0], k))
		args := []string{"-mode", "load", "-outlets", strconv.Itoa(o.outlets), "-bins", strconv.Itoa(o.bins),
			"-seed", strconv.FormatInt(o.seed, 10), "-slice", fmt.Sprintf("%d/%d", k, o.procs),
			"-messages", strconv.Itoa(sliceDevices * ph.PerDev), "-rate", fmt.Sprint(ph.Rate * float64(sliceDevices) / float64(devices)),
			"-interval", o.cadence.String(), "-truth", truth, "-ack-timeout", "5m"}
		cmd := exec.Command(filepath.Join(o.bin, "firmware-sim"), args...)
		cmd.Env = append(os.Environ(), "GP_MQTT_URL="+broker.URL, "GP_LOG_LEVEL=warn")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		logPath := filepath.Join(o.dir, fmt.Sprintf("sim-%s-%d.log", strings.Fields(ph.Name)[0], k))
		wg.Go(func() {
			lf, err := os.Create(logPath)
			if err != nil {
				errs[k-1] = err
				return
			}
			defer lf.Close()
			cmd.Stderr = lf
			out, err := cmd.Output()
			if err != nil {
				errs[k-1] = fmt.Errorf("firmware-sim %d/%d: %w\n%s", k, o.procs, err, tail(logPath))
				return
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			r := &results[k-1]
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), r); err != nil {
				errs[k-1] = fmt.Errorf("firmware-sim %d summary %q: %w", k, lines[len(lines)-1], err)
				return
			}
			var t struct{ Acked map[string]int64 }
			b, err := os.ReadFile(truth)
			if err == nil {
				err = json.Unmarshal(b, &t)
			}
			if err != nil {
				errs[k-1] = fmt.Errorf("firmware-sim %d truth: %w", k, err)
			}
			r.truth = t.Acked
		})
	}
	pl := startPoller(s, sampled, ph.From, ph.To, o.poll, o.groupEvery)
	var loads []float64
	stopLoad := make(chan struct{})
	var lw sync.WaitGroup
	lw.Go(func() {
		for {
			loads = append(loads, load1())
			select {
			case <-stopLoad:
				return
			case <-time.After(5 * time.Second):
			}
		}
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		pl.halt()
		close(stopLoad)
		lw.Wait()
		return err
	}
	var first0, lastAck time.Time
	truth := map[string]int64{}
	for _, r := range results {
		ph.Acked += r.Acked
		ph.ConnectSeconds = max(ph.ConnectSeconds, r.ConnectSeconds)
		if first0.IsZero() || r.FirstPublish.Before(first0) {
			first0 = r.FirstPublish
		}
		if r.LastAck.After(lastAck) {
			lastAck = r.LastAck
		}
		for id, n := range r.truth {
			truth[id] = n
		}
	}
	ph.PublishSeconds = lastAck.Sub(first0).Seconds()
	logf("   published: %d acknowledged in %.1f s (connect %.1f s); waiting until InfluxDB holds them", ph.Acked, ph.PublishSeconds, ph.ConnectSeconds)

	// Zero loss, in total: every acknowledged message is a point.
	q := fmt.Sprintf("SELECT count(seq) FROM bin, counter WHERE time >= '%s'", ph.From.Format(time.RFC3339))
	deadline := time.Now().Add(10 * time.Minute)
	for {
		n, _, err := s.count(q, "")
		if err == nil {
			ph.Stored = n
		}
		if err == nil && n >= ph.Acked {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	ph.DrainSeconds = time.Since(lastAck).Seconds()
	if ph.Stored != ph.Acked {
		logf("   LOSS: %d stored of %d acknowledged", ph.Stored, ph.Acked)
	}
	// The API's last answers must come to metrics-v1's totals from the
	// subscriber's stream (the figure cache and live reads lag by seconds).
	targets := map[string][]target{}
	finals := map[string]answer{}
	for _, id := range sampled {
		targets[id], finals[id] = w.targets(id, ph.From, ph.To)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		ph.FinalMatches = 0
		for _, id := range sampled {
			f := finals[id]
			own, group, ok := pl.latest(id)
			if ok && own.parcels == f.parcels && own.bins == f.bins && own.counters == f.counters &&
				(o.groupEvery == 0 || group.parcels == f.parcels) {
				ph.FinalMatches++
			}
		}
		if ph.FinalMatches == len(sampled) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	pl.halt()
	close(stopLoad)
	lw.Wait()
	ph.CPU = cpuSince(cpu0, readCPU(s.procs()))
	var simCPU float64
	for _, r := range results {
		simCPU += r.CPUSeconds
	}
	ph.CPU["firmware-sim"] = simCPU
	ph.Idle = readStat().idleSince(stat0)
	ph.Load1 = load1()
	for _, l := range loads {
		ph.Load1Max = max(ph.Load1Max, l)
	}

	// Zero loss, per device: each device's points in the window against
	// the acknowledged messages the simulators counted for it.
	_, by, err := s.count(fmt.Sprintf("SELECT count(seq) FROM bin, counter WHERE time >= '%s' GROUP BY device", ph.From.Format(time.RFC3339)), "device")
	if err != nil {
		return fmt.Errorf("per-device count: %w", err)
	}
	for _, d := range c.Devices() {
		ph.DevicesChecked++
		if by[d.ID] != truth[d.ID] || truth[d.ID] != int64(ph.PerDev) {
			ph.DevicesMismatch++
			if ph.FirstMismatch == "" {
				ph.FirstMismatch = fmt.Sprintf("%s: %d stored, %d acknowledged, %d asked", d.ID, by[d.ID], truth[d.ID], ph.PerDev)
			}
		}
	}
	if len(by) != len(c.Devices()) {
		ph.DevicesMismatch += abs(len(by) - len(c.Devices()))
	}
	if ph.Counters, err = s.collectorCounters(); err != nil {
		return err
	}
	dead, _, err := s.count("SELECT count(*) FROM deadletter", "")
	if err != nil {
		return err
	}
	ph.Counters["deadletter_points_in_influxdb"] = float64(dead)

	// Publish → visible.
	ph.Sampled = len(sampled)
	ph.WatchedSeen = w.seen(ph.From, ph.To)
	for _, id := range sampled {
		out := c.Outlet(id)
		ph.WatchedAcked += truth[out.Counter]
		for _, b := range out.BinIDs {
			ph.WatchedAcked += truth[b]
		}
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var u1, u2 int
	ph.OwnLat, u1 = latencies(targets, pl.own, false)
	if o.groupEvery > 0 {
		ph.GroupLat, u2 = latencies(targets, pl.group, true)
	}
	ph.Unseen = u1 + u2
	ph.OwnP, ph.GroupP = quantiles(ph.OwnLat), quantiles(ph.GroupLat)
	ph.PollErrors, ph.LastPollError = pl.errs, pl.lastErr
	ph.OwnSecs, ph.GrpSecs = slices.Sorted(slices.Values(pl.ownSecs)), slices.Sorted(slices.Values(pl.groupSecs))
	logf("   stored %d of %d; devices off: %d of %d; publish → visible: own rates %s (%d), group_by=outlet %s (%d); final totals right for %d of %d outlets",
		ph.Stored, ph.Acked, ph.DevicesMismatch, ph.DevicesChecked, ph.OwnP, len(ph.OwnLat), ph.GroupP, len(ph.GroupLat), ph.FinalMatches, len(sampled))
	return nil
}

func abs(n int) int { return max(n, -n) }

// ---- the report

func report(o options, devices int, phases []*phase, rollupReady time.Duration) {
	fmt.Printf("\n### Live path: %d outlets, %d devices (%d bins + 1 counter each), %d firmware-sim processes, %d broker(s) + collector(s)\n\n",
		o.outlets, devices, o.bins, o.procs, o.brokers)
	fmt.Printf("Fresh InfluxDB; registry imported, the city's figures answered %.0f s later (the roll-up's first build over an empty look-back).\n\n", rollupReady.Seconds())
	fmt.Println("| phase | msg/s asked | messages acknowledged | stored in InfluxDB | devices whose count is off | collector invalid / dead letters / rejected | publish (s) | last ack → all stored (s) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, p := range phases {
		c := p.Counters
		fmt.Printf("| %s | %.0f | %d | %d | %d of %d | %.0f / %.0f / %.0f |  %.1f | %.1f |\n", p.Name, p.Rate, p.Acked, p.Stored,
			p.DevicesMismatch, p.DevicesChecked, c["messages_invalid_total"], c["deadletter_points_in_influxdb"]+c["deadletters_not_written_total"],
			c["influx_rejected_points_total"], p.PublishSeconds, p.DrainSeconds)
	}
	fmt.Printf("\nPublish → visible (p50 / p95 / max over the messages of %d sampled outlets: a message's ts to the first answer that shows it — "+
		"the parcel total metrics-v1 gives once it is stored, or for a device's first message of the window bins_reporting / counters_reporting; "+
		"the city-wide list shows parcels only. Own rates asked every %v, group_by=outlet every %v; bin/api's figure cache at its default, 10 s):\n\n",
		o.sample, o.poll, o.groupEvery)
	fmt.Println("| phase | /v1/outlets/{id}/rates | messages timed | /v1/rates?group_by=outlet | messages timed | never seen | final totals = metrics-v1 | subscriber saw / acked | response time own p50/p95, group p50/p95 |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, p := range phases {
		fmt.Printf("| %s | %s | %d | %s | %d | %d | %d of %d | %d / %d | %s, %s |\n", p.Name, p.OwnP, len(p.OwnLat), p.GroupP, len(p.GroupLat),
			p.Unseen, p.FinalMatches, p.Sampled, p.WatchedSeen, p.WatchedAcked, pq(p.OwnSecs), pq(p.GrpSecs))
	}
	fmt.Println("\nCPU per message (µs, whole phase including the simulators' connect; messages = acknowledged; bench = this program's subscriber and poller) and the machine (2 cores, shared):")
	fmt.Println()
	names := []string{"mosquitto", "collector", "influxd", "api", "firmware-sim", "bench"}
	fmt.Printf("| phase | %s | all | idle share | load avg 1 min (end / max) |\n|---|%s---|---|---|\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for _, p := range phases {
		var cells []string
		var all float64
		for _, n := range names {
			cells = append(cells, fmt.Sprintf("%.1f", p.CPU[n]/float64(p.Acked)*1e6))
			all += p.CPU[n]
		}
		fmt.Printf("| %s | %s | %.1f | %.0f %% | %.1f / %.1f |\n", p.Name, strings.Join(cells, " | "), all/float64(p.Acked)*1e6, p.Idle*100, p.Load1, p.Load1Max)
	}
	for _, p := range phases {
		if p.PollErrors > 0 {
			fmt.Printf("\n%s: %d poll errors, last: %s\n", p.Name, p.PollErrors, p.LastPollError)
		}
	}
}

func pq(s []float64) string {
	if len(s) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f/%.0f ms", s[len(s)/2]*1000, s[min(len(s)-1, len(s)*95/100)]*1000)
}

// ---- CPU and the machine

func readCPU(procs map[string][]int) map[string]float64 {
	out := map[string]float64{}
	for name, pids := range procs {
		for _, pid := range pids {
			if st, err := testenv.ReadProcStats(pid); err == nil {
				out[name] += st.CPUSeconds
			}
		}
	}
	return out
}

func cpuSince(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		out[k] = v - a[k]
	}
	return out
}

type stat struct{ idle, total float64 }

// readStat reads the machine's CPU time (all cores) from /proc/stat.
func readStat() stat {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	var st stat
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal
			st.total += v
		}
		if i == 3 || i == 4 {
			st.idle += v
		}
	}
	return st
}

func (b stat) idleSince(a stat) float64 {
	if b.total <= a.total {
		return 0
	}
	return (b.idle - a.idle) / (b.total - a.total)
}

func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
