package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/greenpost/greenpost/internal/testenv"
)

// collectorProc is a collector running as a child process (so a test can
// kill -9 it), with its ops address read from its "started" log line.
type collectorProc struct {
	*testenv.MainProcess
	addr string
}

func startCollector(t *testing.T, env ...string) *collectorProc {
	t.Helper()
	env = append([]string{"GP_COLLECTOR_ADDR=127.0.0.1:0", "GP_FLUSH_INTERVAL=50ms"}, env...)
	p := testenv.StartMain(t, env)
	if err := p.WaitOutput(`"msg":"started"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c := &collectorProc{MainProcess: p}
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "started" {
			c.addr = line.Addr
		}
	}
	if c.addr == "" {
		t.Fatalf("no ops address in:\n%s", p.Output())
	}
	return c
}

// waitSubscribed waits until the collector is connected and subscribed
// (mqtt_connected turns 1 after the SUBACK). On a first connection a
// message published before then reaches no session and is lost, so a test
// that counts what was stored waits for this before it publishes.
func (c *collectorProc) waitSubscribed(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() string {
		if c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
			return "collector not connected and subscribed:\n" + c.Output()
		}
		return ""
	})
}

// runSeq numbers names within one test binary (see unique).
var runSeq atomic.Int64

// unique returns name with a number of its own in this test binary. The
// shared InfluxDB and broker outlive a test, so a repeated run (-count=N)
// must not find the last run's points, dead letters or persistent session
// under the same outlet or client id.
func unique(name string) string { return fmt.Sprintf("%s-%d", name, runSeq.Add(1)) }

// metric returns the sum of the samples of a Prometheus metric whose line
// starts with name (labels included, e.g. `x_total{reason="bad_json"}`).
func (c *collectorProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + c.addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || (!strings.Contains(name, "{") && strings.HasPrefix(line, name+"{")) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// count runs an InfluxQL count and returns its value (0 without series).
func count(t *testing.T, in *testenv.Influx, q string) int {
	t.Helper()
	out, err := in.InfluxQL(q)
	if err != nil {
		t.Logf("count: %v", err)
		return -1
	}
	var res struct {
		Results []struct {
			Series []struct {
				Values [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("count: %v in %s", err, out)
	}
	total := 0
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, v := range s.Values {
				total += int(v[1].(float64))
			}
		}
	}
	return total
}

// waitCount waits until the InfluxQL count equals want.
func waitCount(t *testing.T, in *testenv.Influx, q string, want int, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() string {
		if got := count(t, in, q); got != want {
			return fmt.Sprintf("%s = %d, want %d", q, got, want)
		}
		return ""
	})
}

// publisher publishes QoS 1 messages, as devices do.
type publisher struct {
	c    mqtt.Client
	sent atomic.Int64
}

func newPublisher(t *testing.T, url, id string) *publisher {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	return &publisher{c: c}
}

// publish sends every message and waits until the broker acknowledged all.
func (p *publisher) publish(t *testing.T, msgs []testMsg) {
	t.Helper()
	toks := make([]mqtt.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = p.c.Publish(m.topic, 1, false, m.payload)
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
		p.sent.Add(1)
	}
}

type testMsg struct{ topic, payload string }

// binMsgs makes n valid bin messages spread over devices of one outlet, each
// with its own timestamp (so none overwrites another).
func binMsgs(outlet string, devices, n int, base time.Time) []testMsg {
	out := make([]testMsg, n)
	for i := range out {
		d := i % devices
		seq := i / devices
		out[i] = testMsg{
			topic: fmt.Sprintf("gp/v1/%s/bin/%s-b%d/telemetry", outlet, outlet, d),
			payload: fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":1,"fill_pct":%d.5,"deposits":%d,"battery_pct":80}`,
				base.Add(time.Duration(seq)*time.Millisecond).UnixMilli(), seq, seq%100, seq),
		}
	}
	return out
}

func countBins(outlet string) string {
	return fmt.Sprintf(`SELECT count(seq) FROM bin WHERE outlet = '%s'`, outlet)
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var out dto.Metric
	(<-ch).Write(&out)
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}
