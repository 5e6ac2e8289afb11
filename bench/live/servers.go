package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// stack is the live path's servers: InfluxDB, one or more brokers, one
// collector per broker (each its own client id and spool), and bin/api.
type stack struct {
	dir        string
	influx     *testenv.Influx
	brokers    []*testenv.Mosquitto
	collectors []*testenv.Child
	metricsURL []string // each collector's /metrics
	api        *testenv.Child
	apiBase    string
	apiLog     *testenv.SyncBuffer
	key        string
	http       *http.Client
}

// procs names every server process for CPU accounting (several brokers or
// collectors add up under one name).
func (s *stack) procs() map[string][]int {
	p := map[string][]int{"influxd": {s.influx.PID()}, "api": {s.api.PID()}, "bench": {os.Getpid()}}
	for _, b := range s.brokers {
		p["mosquitto"] = append(p["mosquitto"], b.PID())
	}
	for _, c := range s.collectors {
		p["collector"] = append(p["collector"], c.PID())
	}
	return p
}

func startStack(o options, nBrokers int) (*stack, error) {
	s := &stack{dir: o.dir, key: "bench-live-admin-key", http: &http.Client{Timeout: 60 * time.Second}}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	var err error
	if s.influx, err = testenv.NewInflux(mkdir(s.dir, "influx"), testenv.InfluxOptions{}); err != nil {
		return nil, err
	}
	for i := range nBrokers {
		// As in bench/collector: a wide in-flight window and deep queues;
		// no connection cap. Each connection is one file descriptor of the
		// broker's, which inherits this process's limit.
		b, err := testenv.NewMosquitto(mkdir(s.dir, fmt.Sprintf("mosquitto-%d", i+1)), testenv.MosquittoOptions{
			MaxInflight: 1000, Extra: []string{"max_connections -1", "set_tcp_nodelay true"}})
		if err != nil {
			return nil, err
		}
		s.brokers = append(s.brokers, b)
	}
	for i, b := range s.brokers {
		addr, err := testenv.LoopbackAddr()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("collector-%d", i+1)
		cmd := exec.Command(filepath.Join(o.bin, "collector"))
		cmd.Env = append(os.Environ(), "GP_MQTT_URL="+b.URL, "GP_MQTT_CLIENT_ID=bench-live-"+name,
			"GP_INFLUX_URL="+s.influx.URL, "GP_INFLUX_BUCKET="+s.influx.Bucket, "GP_SPOOL_DIR="+filepath.Join(s.dir, name+"-spool"),
			"GP_COLLECTOR_ADDR="+addr, "GP_LOG_LEVEL=info")
		c, err := startLogged(cmd, filepath.Join(s.dir, name+".log"))
		if err != nil {
			return nil, err
		}
		s.collectors = append(s.collectors, c)
		s.metricsURL = append(s.metricsURL, "http://"+addr+"/metrics")
		if err := testenv.WaitHTTP("http://"+addr+"/readyz", 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s not ready: %w\n%s", name, err, tail(filepath.Join(s.dir, name+".log")))
		}
	}
	// bin/api as shipped (figure cache, staleness: the defaults), apart from
	// a rate limit the poller cannot reach.
	cmd := exec.Command(filepath.Join(o.bin, "api"))
	cmd.Env = []string{"GP_API_ADDR=127.0.0.1:0", "GP_INFLUX_URL=" + s.influx.URL, "GP_INFLUX_BUCKET=" + s.influx.Bucket,
		"GP_API_KEYS=admin:" + s.key, "GP_API_RATE_LIMIT=100000", "GP_API_RATE_BURST=100000", "GP_API_REQUEST_TIMEOUT=60s",
		"GP_API_BODY_LIMIT=67108864", "PATH=" + os.Getenv("PATH")}
	s.apiLog = &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = s.apiLog, s.apiLog
	if s.api, err = testenv.StartChild(cmd, nil); err != nil {
		return nil, err
	}
	if s.apiBase, err = waitStarted(s.api, s.apiLog); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *stack) stop() {
	if s.api != nil {
		s.api.Stop(syscall.SIGTERM, 30*time.Second)
	}
	for _, c := range s.collectors {
		c.Stop(syscall.SIGTERM, 30*time.Second)
	}
	for _, b := range s.brokers {
		b.Stop()
	}
	if s.influx != nil {
		s.influx.Stop()
	}
}

var startedAddr = regexp.MustCompile(`"msg":"started"[^}]*"addr":"([^"]+)"`)

// waitStarted reads the API's listen address from its "started" log line.
func waitStarted(c *testenv.Child, log *testenv.SyncBuffer) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := startedAddr.FindStringSubmatch(log.String()); m != nil {
			return "http://" + m[1], nil
		}
		select {
		case <-c.Done():
			return "", errors.New("bin/api exited:\n" + log.String())
		default:
		}
		if time.Now().After(deadline) {
			return "", errors.New("bin/api did not start:\n" + log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get asks the API and decodes a 200 answer into v.
func (s *stack) get(path string, v any) error {
	req, err := http.NewRequest("GET", s.apiBase+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s %.300s", path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// importRegistry posts the registry CSV (the whole city's outlets).
func (s *stack) importRegistry(csv []byte) error {
	req, err := http.NewRequest("POST", s.apiBase+"/v1/outlets/import", bytes.NewReader(csv))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("import: %s %.300s", resp.Status, b)
	}
	return nil
}

// collectorCounters sums the collectors' counters whose names start with
// one of the prefixes (labels summed too), from their /metrics.
func (s *stack) collectorCounters() (map[string]float64, error) {
	out := map[string]float64{}
	for _, u := range s.metricsURL {
		resp, err := s.http.Get(u)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, rest, ok := strings.Cut(line, " ")
			if !ok || strings.HasPrefix(line, "#") || !strings.HasPrefix(name, "greenpost_collector_") {
				continue
			}
			name, _, _ = strings.Cut(name, "{")
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil && strings.HasSuffix(name, "_total") {
				out[strings.TrimPrefix(name, "greenpost_collector_")] += v
			}
		}
	}
	return out, nil
}

// count runs an InfluxQL count and returns the sum of its series' values,
// per value of the group-by tag when there is one.
func (s *stack) count(q string, tag string) (int64, map[string]int64, error) {
	out, err := s.influx.InfluxQL(q)
	if err != nil {
		return 0, nil, err
	}
	var res struct {
		Results []struct {
			Error  string
			Series []struct {
				Tags   map[string]string
				Values [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, nil, err
	}
	var total int64
	by := map[string]int64{}
	for _, r := range res.Results {
		if r.Error != "" {
			return 0, nil, errors.New(r.Error)
		}
		for _, se := range r.Series {
			for _, v := range se.Values {
				n, _ := v[1].(float64) // [time, count]
				total += int64(n)
				if tag != "" {
					by[se.Tags[tag]] += int64(n)
				}
			}
		}
	}
	return total, by, nil
}

func mkdir(dir, name string) string {
	p := filepath.Join(dir, name)
	os.MkdirAll(p, 0o755)
	return p
}

// startLogged starts a child with its output in a log file.
func startLogged(cmd *exec.Cmd, log string) (*testenv.Child, error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	c, err := testenv.StartChild(cmd, func() { f.Close() })
	if err != nil {
		f.Close()
	}
	return c, err
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
