package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/testenv"
)

// These benchmarks are whole runs, not loops: run them with -benchtime 1x
// (make bench-sim). Each reports its figures with b.ReportMetric.

// pahoProbeEnv makes the re-executed test binary connect that many paho
// clients and report its memory, instead of running the simulator.
const pahoProbeEnv = "GREENPOST_SIM_PAHO_PROBE"

func benchBroker(b *testing.B) *testenv.Mosquitto {
	return testenv.StartMosquitto(b, testenv.MosquittoOptions{MaxQueued: 10000000, MaxInflight: 1000,
		Extra: []string{"max_connections -1"}})
}

// counter is a bare subscriber: it counts what it receives.
func counter(b *testing.B, url string) (*atomic.Int64, func()) {
	var n atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("bench-subscriber").SetCleanSession(true).
		SetAutoReconnect(false).SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { n.Add(1) })
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	if tok := c.Subscribe("gp/v1/+/+/+/telemetry", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	var once sync.Once
	stop := func() { once.Do(func() { c.Disconnect(100) }) }
	b.Cleanup(stop)
	return &n, stop
}

func waitCount(b *testing.B, n *atomic.Int64, want int64, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("subscriber got %d of %d", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Now()
}

// child re-executes the test binary (as the simulator, or as the paho
// probe) and returns its stdout; stderr goes to the benchmark's log.
func child(b *testing.B, env []string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%v %v: %v\n%s", env, args, err, stderr.String())
	}
	return string(out)
}

// simSummary runs the simulator as a child process and returns its summary.
func simSummary(b *testing.B, env []string, args ...string) map[string]any {
	out := child(b, append(env, testenv.AsMainEnv+"=1"), args...)
	for _, line := range strings.Split(out, "\n") {
		var s map[string]any
		if json.Unmarshal([]byte(line), &s) == nil && s["mode"] != nil {
			return s
		}
	}
	b.Fatalf("no summary in\n%s", out)
	return nil
}

// BenchmarkPublishRate: the simulator's load mode against a real Mosquitto
// with a bare subscriber, beside the broker's ceiling in the same run: the
// same connections and messages of the same size, but prebuilt packets
// written 32 at a time by a publisher that does nothing else. Last, the
// simulator again with no subscriber (the broker only acknowledges).
func BenchmarkPublishRate(b *testing.B) {
	const outlets, bins, messages = 100, 2, 300000
	devices := outlets * (bins + 1)
	m := benchBroker(b)
	sub, unsubscribe := counter(b, m.URL)

	// The ceiling, as a process of its own like the simulator.
	start := time.Now()
	ceil := child(b, []string{rawProbeEnv + "=" + strconv.Itoa(messages), "GP_MQTT_URL=" + m.URL,
		"OUTLETS=" + strconv.Itoa(outlets), "BINS=" + strconv.Itoa(bins)})
	var raw map[string]float64
	if err := json.Unmarshal([]byte(ceil), &raw); err != nil {
		b.Fatalf("raw probe output %q: %v", ceil, err)
	}
	end := waitCount(b, sub, int64(raw["sent"]), 5*time.Minute)
	ceiling := raw["sent"] / end.Sub(start).Seconds()

	// The simulator, as a process of its own, to the same broker and subscriber.
	sub.Store(0)
	args := []string{"-mode", "load", "-outlets", strconv.Itoa(outlets), "-bins", strconv.Itoa(bins), "-messages", strconv.Itoa(messages)}
	s := simSummary(b, []string{"GP_MQTT_URL=" + m.URL}, args...)
	first, _ := time.Parse(time.RFC3339Nano, s["first_publish"].(string))
	end = waitCount(b, sub, messages, 5*time.Minute)
	simRate := messages / end.Sub(first).Seconds()

	unsubscribe()
	alone := simSummary(b, []string{"GP_MQTT_URL=" + m.URL}, args...)

	b.ReportMetric(float64(devices), "devices")
	b.ReportMetric(ceiling, "ceiling_msg/s")
	b.ReportMetric(simRate, "sim_delivered_msg/s")
	b.ReportMetric(simRate/ceiling, "sim/ceiling")
	b.ReportMetric(raw["cpu_seconds"]/raw["sent"]*1e6, "ceiling_publisher_cpu_us/msg")
	b.ReportMetric(s["cpu_seconds"].(float64)/messages*1e6, "sim_cpu_us/msg")
	b.ReportMetric(alone["rate"].(float64), "sim_nosub_acked_msg/s")
	b.ReportMetric(alone["cpu_seconds"].(float64)/messages*1e6, "sim_nosub_cpu_us/msg")
}

// BenchmarkMemoryPer10kDevices: resident memory of 10,002 connected
// devices in one process, the simulator's lean connections against one
// paho client per device; each in a fresh process.
func BenchmarkMemoryPer10kDevices(b *testing.B) {
	m := benchBroker(b)
	lean := simSummary(b, []string{"GP_MQTT_URL=" + m.URL}, "-mode", "load", "-outlets", "3334", "-bins", "2", "-messages", "10002")
	out := child(b, []string{pahoProbeEnv + "=10002", "GP_MQTT_URL=" + m.URL})
	var paho map[string]float64
	if err := json.Unmarshal([]byte(out), &paho); err != nil {
		b.Fatalf("paho probe output %q: %v", out, err)
	}
	b.ReportMetric(lean["rss_per_10k_devices_bytes"].(float64)/(1<<20), "lean_rss_MiB/10k")
	b.ReportMetric(lean["heap_stacks_per_10k_devices_bytes"].(float64)/(1<<20), "lean_heap+stacks_MiB/10k")
	b.ReportMetric(lean["connect_seconds"].(float64), "lean_connect_s")
	b.ReportMetric(paho["rss_per_10k"]/(1<<20), "paho_rss_MiB/10k")
	b.ReportMetric(paho["heap_stacks_per_10k"]/(1<<20), "paho_heap+stacks_MiB/10k")
	b.ReportMetric(paho["connect_seconds"], "paho_connect_s")
}

// pahoProbe connects n paho clients, one per device like the simulator's,
// with a Last Will each, and prints the memory they take.
func pahoProbe(n int) {
	url := os.Getenv("GP_MQTT_URL")
	rss0, heap0 := rss(), heapAndStacks()
	start := time.Now()
	var clients []mqtt.Client
	for i := range n {
		id := fmt.Sprintf("paho-probe-%d", i)
		opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(id).SetCleanSession(true).
			SetAutoReconnect(false).SetConnectTimeout(10*time.Second).SetKeepAlive(time.Minute).
			SetWill("gp/v1/probe/bin/"+id+"/status", city.WillPayload, 1, true)
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			fmt.Fprintln(os.Stderr, "paho probe:", tok.Error())
			os.Exit(1)
		}
		clients = append(clients, c)
	}
	secs := time.Since(start).Seconds()
	rss1, heap1 := rss(), heapAndStacks()
	for _, c := range clients {
		c.Disconnect(0)
	}
	out, _ := json.Marshal(map[string]float64{"devices": float64(n), "connect_seconds": secs,
		"rss_per_10k": float64(rss1-rss0) * 10000 / float64(n), "heap_stacks_per_10k": float64(heap1-heap0) * 10000 / float64(n)})
	fmt.Printf("%s\n", out)
	os.Exit(0)
}

// rawProbeEnv makes the re-executed test binary publish prebuilt packets,
// the broker's ceiling, instead of running the simulator.
const rawProbeEnv = "GREENPOST_SIM_RAW_PROBE"

// rawProbe publishes about n prebuilt QoS 1 packets over one connection per
// device of the city, 32 packets a write, and prints what it sent.
func rawProbe(n int) {
	const batch = 32
	outlets, _ := strconv.Atoi(os.Getenv("OUTLETS"))
	bins, _ := strconv.Atoi(os.Getenv("BINS"))
	fail := func(err error) { fmt.Fprintln(os.Stderr, "raw probe:", err); os.Exit(1) }
	c, err := city.New(city.Config{Seed: 1, Outlets: outlets, Bins: bins})
	if err != nil {
		fail(err)
	}
	addr := strings.TrimPrefix(os.Getenv("GP_MQTT_URL"), "tcp://")
	cfg := dialConfig{Addr: addr, KeepAlive: time.Minute, Timeout: 10 * time.Second}
	type raw struct {
		conn  *mqttConn
		pkts  []byte
		slots chan struct{}
	}
	var raws []*raw
	for _, ref := range c.Devices() {
		r := &raw{slots: make(chan struct{}, batch)}
		pkt := appendPublish(nil, ref.TelemetryTopic(), c.NewDevice(ref).AppendTelemetry(nil, time.Now().UnixMilli()), 1, true, false, false)
		for range batch {
			r.pkts = append(r.pkts, pkt...) // packet id 1 every time: the broker does not mind at QoS 1
		}
		r.conn, err = dialMQTT(context.Background(), cfg, ref.ID, ref.ID, nil, func(uint16) { <-r.slots })
		if err != nil {
			fail(err)
		}
		raws = append(raws, r)
	}
	rounds := n / batch / len(raws)
	cpu0 := cpuSeconds()
	done := make(chan error)
	const workers = 4
	for w := range workers {
		go func() {
			mine := raws[w*len(raws)/workers : (w+1)*len(raws)/workers]
			for range rounds {
				for _, r := range mine {
					for range batch {
						r.slots <- struct{}{}
					}
					r.conn.wmu.Lock()
					err := r.conn.writeLocked(r.pkts)
					r.conn.wmu.Unlock()
					if err != nil {
						done <- err
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			fail(err)
		}
	}
	for _, r := range raws {
		for range batch { // every slot back: every packet acknowledged
			r.slots <- struct{}{}
		}
		r.conn.disconnect()
	}
	out, _ := json.Marshal(map[string]float64{"sent": float64(rounds * batch * len(raws)), "cpu_seconds": cpuSeconds() - cpu0})
	fmt.Printf("%s\n", out)
	os.Exit(0)
}
