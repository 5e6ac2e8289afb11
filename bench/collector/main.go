// Command collector-bench measures the collector end to end on this machine,
// side by side with a tuned Telegraf and with the broker's own ceiling, in
// one run: `make bench-collector` (docs/benchmarks.md has the figures).
//
// Each scenario gets a fresh Mosquitto and (where it stores data) a fresh
// InfluxDB 1.8.10. The load comes from bin/firmware-sim in load mode (QoS 1,
// many devices, each its own connection). A scenario ends when every
// message is queryable in InfluxDB (or, for the ceiling, received by a bare
// subscriber). Each process's CPU seconds are read from /proc, so the
// figure that scales — CPU per message — is reported next to the rate.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "collector-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, telegraf     string
	messages, outlets int
	latencyRate       int
	latencySeconds    int
	only              string
	out               string
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder with collector and firmware-sim")
	flag.StringVar(&o.telegraf, "telegraf", "", "telegraf binary (default: the cache that deploy/tools/ensure-telegraf.sh fills)")
	flag.IntVar(&o.messages, "messages", 200000, "messages per throughput scenario")
	flag.IntVar(&o.outlets, "outlets", 1000, "outlets of the load (one bin each: one device per outlet)")
	flag.IntVar(&o.latencyRate, "latency-rate", 5000, "msg/s of the latency scenario")
	flag.IntVar(&o.latencySeconds, "latency-seconds", 30, "length of the latency scenario")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios to run (ceiling,greenpost,telegraf,latency)")
	flag.StringVar(&o.out, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	if o.telegraf == "" {
		home, _ := os.UserCacheDir()
		o.telegraf = filepath.Join(home, "greenpost", "telegraf-1.37.2", "telegraf")
	}
	want := func(s string) bool { return o.only == "" || strings.Contains(","+o.only+",", ","+s+",") }

	var results []result
	for _, sc := range []struct {
		name string
		fn   func(options) (result, error)
	}{
		{"ceiling", ceiling},
		{"greenpost", func(o options) (result, error) { return endToEnd(o, "greenpost") }},
		{"telegraf", func(o options) (result, error) { return endToEnd(o, "telegraf") }},
		{"latency", latency},
	} {
		if !want(sc.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", sc.name)
		r, err := sc.fn(o)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		r.Scenario = sc.name
		results = append(results, r)
		fmt.Fprintln(os.Stderr, r.line())
	}
	report(os.Stdout, results)
	if o.out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(o.out, b, 0o644)
	}
	return nil
}

// result is one scenario's figures.
type result struct {
	Scenario   string             `json:"scenario"`
	Messages   int                `json:"messages"`
	Seconds    float64            `json:"seconds"`
	Rate       float64            `json:"rate"`
	CPUSeconds map[string]float64 `json:"cpu_seconds"`
	PeakRSSMiB map[string]float64 `json:"peak_rss_mib"`
	P50        float64            `json:"p50_ms,omitempty"`
	P99        float64            `json:"p99_ms,omitempty"`
	Extra      string             `json:"extra,omitempty"`
}

func (r result) line() string {
	var parts []string
	keys := make([]string, 0, len(r.CPUSeconds))
	for k := range r.CPUSeconds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f µs/msg", k, r.CPUSeconds[k]/float64(r.Messages)*1e6))
	}
	s := fmt.Sprintf("%-10s %8d msgs in %6.2fs = %7.0f msg/s; CPU: %s", r.Scenario, r.Messages, r.Seconds, r.Rate, strings.Join(parts, ", "))
	if r.P50 > 0 {
		s += fmt.Sprintf("; latency p50 %.0f ms, p99 %.0f ms", r.P50, r.P99)
	}
	return s
}

func report(w io.Writer, rs []result) {
	fmt.Fprintln(w, "\n| scenario | messages | seconds | msg/s | CPU µs/msg by process | peak RSS MiB | latency p50 / p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rs {
		var cpu, rss []string
		keys := make([]string, 0, len(r.CPUSeconds))
		for k := range r.CPUSeconds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cpu = append(cpu, fmt.Sprintf("%s %.1f", k, r.CPUSeconds[k]/float64(r.Messages)*1e6))
			if v, ok := r.PeakRSSMiB[k]; ok {
				rss = append(rss, fmt.Sprintf("%s %.0f", k, v))
			}
		}
		lat := ""
		if r.P50 > 0 {
			lat = fmt.Sprintf("%.0f / %.0f ms", r.P50, r.P99)
		}
		fmt.Fprintf(w, "| %s | %d | %.2f | %.0f | %s | %s | %s |\n", r.Scenario, r.Messages, r.Seconds, r.Rate, strings.Join(cpu, ", "), strings.Join(rss, ", "), lat)
	}
	var gp, tg *result
	for i := range rs {
		switch rs[i].Scenario {
		case "greenpost":
			gp = &rs[i]
		case "telegraf":
			tg = &rs[i]
		}
	}
	if gp != nil && tg != nil {
		fmt.Fprintf(w, "\nGreenPost / Telegraf: %.2f× the end-to-end rate, %.2f× less CPU per message in the consumer (%.1f vs %.1f µs/msg)\n",
			gp.Rate/tg.Rate, tg.CPUSeconds["telegraf"]/gp.CPUSeconds["collector"],
			gp.CPUSeconds["collector"]/float64(gp.Messages)*1e6, tg.CPUSeconds["telegraf"]/float64(tg.Messages)*1e6)
	}
}

// ---- the parts of a scenario

// env holds the servers of one scenario.
type env struct {
	dir    string
	broker *testenv.Mosquitto
	influx *testenv.Influx
	procs  map[string]int // name → pid, for CPU accounting
	base   map[string]testenv.ProcStats
}

func newEnv(withInflux bool) (*env, error) {
	dir, err := os.MkdirTemp("", "gp-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, procs: map[string]int{}, base: map[string]testenv.ProcStats{}}
	// The broker is tuned not to be the limit: a wide in-flight window and
	// deep queues, the same for every scenario.
	os.MkdirAll(filepath.Join(dir, "mosquitto"), 0o755)
	e.broker, err = testenv.NewMosquitto(filepath.Join(dir, "mosquitto"), testenv.MosquittoOptions{
		MaxInflight: 1000, MaxQueued: 1000000, Extra: []string{"max_queued_bytes 0", "max_connections -1", "set_tcp_nodelay true"}})
	if err != nil {
		e.close()
		return nil, err
	}
	e.procs["mosquitto"] = e.broker.PID()
	if withInflux {
		os.MkdirAll(filepath.Join(dir, "influx"), 0o755)
		if e.influx, err = testenv.NewInflux(filepath.Join(dir, "influx"), testenv.InfluxOptions{}); err != nil {
			e.close()
			return nil, err
		}
		e.procs["influxd"] = e.influx.PID()
	}
	return e, nil
}

func (e *env) close() {
	if e.influx != nil {
		e.influx.Stop()
	}
	if e.broker != nil {
		e.broker.Stop()
	}
	os.RemoveAll(e.dir)
}

// mark records every process's CPU so far.
func (e *env) mark() {
	for name, pid := range e.procs {
		if st, err := testenv.ReadProcStats(pid); err == nil {
			e.base[name] = st
		}
	}
}

// usage returns CPU seconds since mark and peak RSS per process.
func (e *env) usage(r *result) {
	r.CPUSeconds, r.PeakRSSMiB = map[string]float64{}, map[string]float64{}
	for name, pid := range e.procs {
		st, err := testenv.ReadProcStats(pid)
		if err != nil {
			continue
		}
		r.CPUSeconds[name] = st.CPUSeconds - e.base[name].CPUSeconds
		r.PeakRSSMiB[name] = float64(st.PeakRSSKiB) / 1024
	}
}

// start runs a child process with its output in the env dir.
func (e *env) start(name string, cmd *exec.Cmd) (*testenv.Child, error) {
	logf, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := testenv.StartChild(cmd, func() { logf.Close() })
	if err != nil {
		logf.Close()
		return nil, err
	}
	e.procs[name] = c.PID()
	return c, nil
}

func (e *env) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// load runs firmware-sim in load mode and returns its summary; the sim's
// CPU is read just before it exits.
type loadSummary struct {
	Sent, Acked  int
	Seconds      float64
	FirstPublish time.Time `json:"first_publish"`
	LastAck      time.Time `json:"last_ack"`
}

func (e *env) load(o options, messages int, rate float64) (loadSummary, float64, error) {
	var s loadSummary
	cmd := exec.Command(filepath.Join(o.bin, "firmware-sim"), "-mode", "load", "-outlets", fmt.Sprint(o.outlets), "-bins", "1",
		"-messages", fmt.Sprint(messages), "-rate", fmt.Sprint(rate))
	cmd.Env = append(os.Environ(), "GP_MQTT_URL="+e.broker.URL, "GP_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		return s, 0, fmt.Errorf("firmware-sim: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		return s, 0, fmt.Errorf("firmware-sim summary %q: %w", lines[len(lines)-1], err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return s, cpu.Seconds(), nil
}

// waitStored polls InfluxDB until it holds n telemetry points (bin and
// counter) and returns the time it first saw them all.
func (e *env) waitStored(n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	last := -1
	for {
		got, err := countPoints(e.influx)
		if err == nil && got >= n {
			return time.Now(), nil
		}
		if err == nil {
			last = got
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("stored %d of %d points after %v (last error: %v)", last, n, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func countPoints(in *testenv.Influx) (int, error) {
	out, err := in.InfluxQL(`SELECT count(seq) FROM bin, counter`)
	if err != nil {
		return 0, err
	}
	var res struct {
		Results []struct{ Series []struct{ Values [][]any } }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res.Results {
		for _, s := range r.Series {
			v, _ := s.Values[0][1].(float64) // [time, count]
			n += int(v)
		}
	}
	return n, nil
}

// ---- scenarios

// ceiling: the broker alone with a bare subscriber that acknowledges at once.
func ceiling(o options) (result, error) {
	e, err := newEnv(false)
	if err != nil {
		return result{}, err
	}
	defer e.close()
	var got atomic.Int64
	var lastRecv atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(e.broker.URL).SetClientID("bare-sub").SetCleanSession(false).
		SetOrderMatters(false).SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		got.Add(1)
		lastRecv.Store(time.Now().UnixNano())
	})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return result{}, fmt.Errorf("subscriber: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("gp/v1/+/+/+/telemetry", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return result{}, fmt.Errorf("subscribe: %v", tok.Error())
	}
	self := os.Getpid()
	e.procs["subscriber"] = self
	e.mark()
	sum, simCPU, err := e.load(o, o.messages, 0)
	if err != nil {
		return result{}, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for got.Load() < int64(o.messages) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	r := result{Messages: o.messages}
	e.usage(&r)
	r.CPUSeconds["firmware-sim"] = simCPU
	if got.Load() < int64(o.messages) {
		return r, fmt.Errorf("subscriber got %d of %d", got.Load(), o.messages)
	}
	r.Seconds = time.Unix(0, lastRecv.Load()).Sub(sum.FirstPublish).Seconds()
	r.Rate = float64(o.messages) / r.Seconds
	r.Extra = fmt.Sprintf("publisher alone: %.0f msg/s", float64(sum.Acked)/sum.Seconds)
	return r, nil
}

// endToEnd: devices → broker → consumer → InfluxDB, until all is queryable.
func endToEnd(o options, consumer string) (result, error) {
	e, err := newEnv(true)
	if err != nil {
		return result{}, err
	}
	defer e.close()
	stop, err := startConsumer(e, o, consumer)
	if err != nil {
		return result{}, err
	}
	defer stop()
	e.mark()
	sum, simCPU, err := e.load(o, o.messages, 0)
	if err != nil {
		return result{}, err
	}
	done, err := e.waitStored(o.messages, 5*time.Minute)
	r := result{Messages: o.messages}
	e.usage(&r)
	r.CPUSeconds["firmware-sim"] = simCPU
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, e.tail(consumerName(consumer)))
	}
	r.Seconds = done.Sub(sum.FirstPublish).Seconds()
	r.Rate = float64(o.messages) / r.Seconds
	return r, nil
}

func consumerName(c string) string {
	if c == "greenpost" {
		return "collector"
	}
	return c
}

// startConsumer starts the collector or Telegraf and waits until it is subscribed.
func startConsumer(e *env, o options, consumer string) (func(), error) {
	var cmd *exec.Cmd
	var child *testenv.Child
	var err error
	name := consumerName(consumer)
	switch consumer {
	case "greenpost":
		cmd = exec.Command(filepath.Join(o.bin, "collector"))
		addr, err := testenv.LoopbackAddr()
		if err != nil {
			return nil, err
		}
		cmd.Env = append(os.Environ(), "GP_MQTT_URL="+e.broker.URL, "GP_MQTT_CLIENT_ID=bench-collector",
			"GP_INFLUX_URL="+e.influx.URL, "GP_INFLUX_BUCKET="+e.influx.Bucket, "GP_SPOOL_DIR="+filepath.Join(e.dir, "spool"),
			"GP_COLLECTOR_ADDR="+addr, "GP_LOG_LEVEL=info")
		if child, err = e.start(name, cmd); err != nil {
			return nil, err
		}
		if err := testenv.WaitHTTP("http://"+addr+"/readyz", 30*time.Second); err != nil {
			return nil, fmt.Errorf("collector not ready: %w\n%s", err, e.tail(name))
		}
	case "telegraf":
		conf := filepath.Join(e.dir, "telegraf.conf")
		if err := os.WriteFile(conf, []byte(telegrafConf(e)), 0o644); err != nil {
			return nil, err
		}
		cmd = exec.Command(o.telegraf, "--config", conf)
		if child, err = e.start(name, cmd); err != nil {
			return nil, fmt.Errorf("telegraf (build it with deploy/tools/ensure-telegraf.sh): %w", err)
		}
		if err := waitLog(filepath.Join(e.dir, name+".log"), "Connected [tcp://", 30*time.Second); err != nil {
			return nil, fmt.Errorf("telegraf not connected: %w\n%s", err, e.tail(name))
		}
	}
	return func() { child.Stop(syscall.SIGTERM, 20*time.Second) }, nil
}

// telegrafConf is Telegraf tuned as a fair peer: QoS 1 on a persistent
// session, a deep undelivered window, topic parts as tags (the kind as the
// measurement), json_v2 with the device time as the timestamp and the same
// fields as storage-v1 (one point per message, bins and counters alike),
// 5000-point batches flushed every second.
func telegrafConf(e *env) string {
	return fmt.Sprintf(`[agent]
  interval = "10s"
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 5000
  metric_buffer_limit = 1000000
  omit_hostname = true

[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = ["gp/v1/+/+/+/telemetry"]
  qos = 1
  persistent_session = true
  client_id = "bench-telegraf"
  max_undelivered_messages = 10000
  data_format = "json_v2"
  [[inputs.mqtt_consumer.topic_parsing]]
    topic = "gp/v1/+/+/+/+"
    measurement = "_/_/_/measurement/_/_"
    tags = "_/_/outlet/kind/device/_"
  [[inputs.mqtt_consumer.json_v2]]
    timestamp_path = "ts"
    timestamp_format = "unix_ms"
    [[inputs.mqtt_consumer.json_v2.tag]]
      path = "boot"
%s
[[outputs.influxdb_v2]]
  urls = [%q]
  token = ""
  organization = ""
  bucket = %q
`, e.broker.URL, telegrafFields(), e.influx.URL, e.influx.Bucket)
}

// telegrafFields lists json_v2 fields for storage-v1's bin and counter
// fields: seq always, the rest when present (a message is either kind).
func telegrafFields() string {
	type field struct{ path, rename, typ string }
	fields := []field{{"fill_pct", "", "float"}, {"deposits", "", "int"}, {"weight_kg", "", "float"},
		{"battery_pct", "", "float"}, {"rssi_dbm", "", "float"}, {"boxes_recovered", "", "int"}}
	for _, c := range telemetry.ClassNames {
		fields = append(fields, field{"parcels." + c, c, "int"})
	}
	var b strings.Builder
	b.WriteString("    [[inputs.mqtt_consumer.json_v2.field]]\n      path = \"seq\"\n      type = \"int\"\n")
	for _, f := range fields {
		fmt.Fprintf(&b, "    [[inputs.mqtt_consumer.json_v2.field]]\n      path = %q\n", f.path)
		if f.rename != "" {
			fmt.Fprintf(&b, "      rename = %q\n", f.rename)
		}
		fmt.Fprintf(&b, "      type = %q\n      optional = true\n", f.typ)
	}
	return b.String()
}

// latency publishes at a steady rate and measures, per message, the time
// from its publish to when InfluxDB first counts it. Messages are stored in
// order, so the k-th message is queryable once the count reaches k; the
// poller's period (50 ms) bounds the resolution.
func latency(o options) (result, error) {
	e, err := newEnv(true)
	if err != nil {
		return result{}, err
	}
	defer e.close()
	stop, err := startConsumer(e, o, "greenpost")
	if err != nil {
		return result{}, err
	}
	defer stop()
	n := o.latencyRate * o.latencySeconds
	type obs struct {
		at    time.Time
		count int
	}
	var (
		mu   sync.Mutex
		seen []obs
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if c, err := countPoints(e.influx); err == nil {
				mu.Lock()
				seen = append(seen, obs{time.Now(), c})
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	e.mark()
	sum, simCPU, err := e.load(o, n, float64(o.latencyRate))
	if err != nil {
		return result{}, err
	}
	if _, err := e.waitStored(n, 2*time.Minute); err != nil {
		return result{}, err
	}
	cancel()
	r := result{Messages: n}
	e.usage(&r)
	r.CPUSeconds["firmware-sim"] = simCPU
	// The generator paces evenly: message k is published at first + k/rate.
	mu.Lock()
	defer mu.Unlock()
	var lats []float64
	j := 0
	for k := 1; k <= n; k += max(1, n/2000) {
		pub := sum.FirstPublish.Add(time.Duration(float64(k-1) / float64(o.latencyRate) * float64(time.Second)))
		for j < len(seen) && seen[j].count < k {
			j++
		}
		if j == len(seen) {
			break
		}
		lats = append(lats, float64(seen[j].at.Sub(pub).Milliseconds()))
	}
	sort.Float64s(lats)
	if len(lats) == 0 {
		return r, errors.New("no latency samples")
	}
	r.P50, r.P99 = lats[len(lats)/2], lats[len(lats)*99/100]
	r.Seconds = sum.Seconds
	r.Rate = float64(n) / sum.Seconds
	r.Extra = fmt.Sprintf("%d samples, poll period 50 ms", len(lats))
	return r, nil
}

func waitLog(path, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.Open(path)
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.Contains(sc.Text(), s) {
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q in %s", s, path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
