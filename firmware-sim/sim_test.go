package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// received is one message as a plain subscriber saw it.
type received struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// listener subscribes to everything under gp/v1/ with paho, an MQTT client
// independent of the simulator's own.
type listener struct {
	mu   sync.Mutex
	msgs []received
}

func listen(t *testing.T, url string) *listener {
	t.Helper()
	l := &listener{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("sim-test-listener").SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			l.mu.Lock()
			l.msgs = append(l.msgs, received{m.Topic(), slices.Clone(m.Payload()), m.Retained(), time.Now()})
			l.mu.Unlock()
		})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("listener connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("gp/v1/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return l
}

func (l *listener) all() []received {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func broker(t *testing.T) *testenv.Mosquitto {
	// A private broker: retained statuses of one test never reach another,
	// and a deep queue so a slow listener loses nothing.
	return testenv.StartMosquitto(t, testenv.MosquittoOptions{MaxQueued: 1000000, MaxInflight: 1000})
}

// runSim runs the simulator in-process and returns its summary line.
func runSim(t *testing.T, env map[string]string, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"firmware-sim"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, stderr.String())
	}
	var summary map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &summary); err != nil {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	return summary
}

func readTruth(t *testing.T, path string) city.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r city.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

var allFaults = []string{"-faults", "reboot,offline,duplicate,skew,malformed",
	"-reboot-rate", "0.05", "-offline-rate", "0.04", "-offline-for", "300ms",
	"-duplicate-rate", "0.05", "-skew-share", "0.3", "-skew-max", "3m", "-malformed-rate", "0.05"}

// TestLiveAgainstBroker runs a small city with every fault against the real
// broker and checks, from what a plain subscriber received: every message
// passes telemetry.Decode except the malformed ones, which fail with the
// reason the truth says; the truth equals the sum of what was published,
// recomputed here by brute force; the faults really happened.
func TestLiveAgainstBroker(t *testing.T) {
	m := broker(t)
	l := listen(t, m.URL)
	dir := t.TempDir()
	truthFile := filepath.Join(dir, "truth.json")
	args := append([]string{"-outlets", "4", "-bins", "2", "-interval", "100ms", "-reports", "40", "-speed", "1200",
		"-seed", "11", "-truth", truthFile}, allFaults...)
	summary := runSim(t, map[string]string{"GP_MQTT_URL": m.URL}, args...)
	truth := readTruth(t, truthFile)
	if summary["self_check_failures"].(float64) != 0 {
		t.Fatalf("the simulator built invalid messages: %v", summary)
	}
	for _, k := range []string{"reboots", "offline_spells", "duplicates", "malformed"} {
		if summary[k].(float64) == 0 {
			t.Errorf("fault %s never happened: %v", k, summary)
		}
	}

	// Every report the truth counts, plus the malformed ones, must arrive.
	want := truth.Reports()
	for _, n := range truth.Malformed {
		want += n
	}
	type key struct {
		device   string
		boot, ts int64
	}
	var (
		distinct  map[key]bool
		malformed map[telemetry.Reason]int
		wills     int
		msgs      []telemetry.Message
	)
	collect := func() int {
		distinct, malformed, wills, msgs = map[key]bool{}, map[telemetry.Reason]int{}, 0, nil
		for _, r := range l.all() {
			msg, err := telemetry.Decode(r.topic, r.payload, r.at)
			if strings.HasSuffix(r.topic, "/status") {
				if err != nil {
					t.Fatalf("status %s %s: %v", r.topic, r.payload, err)
				}
				if string(r.payload) == city.WillPayload {
					wills++
				}
				continue
			}
			if err != nil {
				reason := telemetry.ReasonOf(err)
				if !slices.Contains(city.MalformedReasons, reason) {
					t.Fatalf("%s %s: %v is not a deliberate malformation", r.topic, r.payload, err)
				}
				malformed[reason]++
				continue
			}
			k := key{msg.Topic.Device, msg.Boot, msg.TS}
			if !distinct[k] {
				distinct[k] = true
				msgs = append(msgs, msg)
			}
		}
		n := len(distinct)
		for _, v := range malformed {
			n += v
		}
		return n
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("%d messages", want), func() bool { return collect() >= want })
	if got := collect(); got != want {
		t.Fatalf("received %d distinct messages, truth says %d", got, want)
	}
	if !mapsEqual(malformed, truth.Malformed) {
		t.Fatalf("malformed received %v, truth %v", malformed, truth.Malformed)
	}
	if wills == 0 {
		t.Fatal("no Last Will was delivered, though connections were cut")
	}

	// Recompute the truth from the received messages, the simplest way.
	lastByBoot := map[[2]string][]int64{} // (device, boot) -> [seq, classes...]
	binReports := map[string][]telemetry.Message{}
	for _, msg := range msgs {
		if msg.Topic.Kind == telemetry.KindBin {
			binReports[msg.Topic.Device] = append(binReports[msg.Topic.Device], msg)
			continue
		}
		k := [2]string{msg.Topic.Device, fmt.Sprint(msg.Boot)}
		if cur, ok := lastByBoot[k]; !ok || msg.Seq > cur[0] {
			lastByBoot[k] = append([]int64{msg.Seq}, msg.Counter.Parcels[:]...)
		}
	}
	from, to := truth.From.UnixMilli(), truth.To.UnixMilli()
	for _, o := range truth.Outlets {
		var sum [telemetry.NumClasses]int64
		for k, v := range lastByBoot {
			if k[0] == "c-"+strings.TrimPrefix(o.Outlet, "o-") {
				for c := range sum {
					sum[c] += v[1+c]
				}
			}
		}
		for c, name := range telemetry.ClassNames {
			if o.Parcels[name] != sum[c] {
				t.Errorf("%s %s: truth %d, published %d", o.Outlet, name, o.Parcels[name], sum[c])
			}
		}
		outletServing := 0
		for minute := from; minute < to; minute += 60000 {
			any := false
			for _, b := range o.Bins {
				if servingBruteForce(binReports[b.Device], minute) {
					any = true
				}
			}
			if any {
				outletServing++
			}
		}
		if outletServing != o.ServingMinutes {
			t.Errorf("%s: truth %d serving minutes, published reports give %d", o.Outlet, o.ServingMinutes, outletServing)
		}
		for _, b := range o.Bins {
			served := 0
			for minute := from; minute < to; minute += 60000 {
				if servingBruteForce(binReports[b.Device], minute) {
					served++
				}
			}
			if served != b.ServingMinutes || len(binReports[b.Device]) != b.Reports {
				t.Errorf("%s: truth %d reports %d serving, published %d reports %d serving",
					b.Device, b.Reports, b.ServingMinutes, len(binReports[b.Device]), served)
			}
		}
	}
	total := int64(0)
	for _, o := range truth.Outlets {
		total += o.Total
	}
	if total == 0 {
		t.Fatal("no parcels at all: the check above proved nothing")
	}
}

// servingBruteForce applies metrics-v1 to one minute by scanning every report.
func servingBruteForce(reports []telemetry.Message, minute int64) bool {
	var last *telemetry.Message
	for i := range reports {
		r := &reports[i]
		if r.TS <= minute && (last == nil || r.TS > last.TS) {
			last = r
		}
	}
	return last != nil && minute-last.TS <= 15*60000 && last.Bin.FillPct < 90
}

func mapsEqual(a, b map[telemetry.Reason]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

var tsField = regexp.MustCompile(`"ts":\d+`)

// TestSameSeedSameData runs the same city twice: the same registry, the
// same messages apart from ts, the same parcels and reports in the truth;
// another seed gives another city.
func TestSameSeedSameData(t *testing.T) {
	type result struct {
		registry []byte
		payloads map[string][]string
		truth    city.Report
	}
	once := func(seed string) result {
		m := broker(t)
		l := listen(t, m.URL)
		dir := t.TempDir()
		args := append([]string{"-outlets", "3", "-bins", "2", "-interval", "50ms", "-reports", "30", "-speed", "3000",
			"-seed", seed, "-truth", filepath.Join(dir, "t.json"), "-registry", filepath.Join(dir, "r.csv")}, allFaults...)
		summary := runSim(t, map[string]string{"GP_MQTT_URL": m.URL}, args...)
		acked := int(summary["acked"].(float64))
		// Every acknowledged publish reaches the listener (status included).
		waitFor(t, 20*time.Second, "all messages", func() bool { return len(l.all()) >= acked })
		// Last Wills are messages the simulator never published, so the
		// count can pass acked before the last statuses arrive: also wait
		// until the stream has been quiet for a second.
		last, since := -1, time.Now()
		waitFor(t, 20*time.Second, "a quiet second", func() bool {
			if n := len(l.all()); n != last {
				last, since = n, time.Now()
				return false
			}
			return time.Since(since) >= time.Second
		})
		res := result{payloads: map[string][]string{}, truth: readTruth(t, filepath.Join(dir, "t.json"))}
		var err error
		if res.registry, err = os.ReadFile(filepath.Join(dir, "r.csv")); err != nil {
			t.Fatal(err)
		}
		// Every outlet is active since the data's start rounded down to the
		// minute: the truth's from, or before it by up to -skew-max (the
		// skew fault is on: a skewed clock may stamp reports that early).
		// That column depends on the clock, the rest on the seed alone.
		recs, err := csv.NewReader(bytes.NewReader(res.registry)).ReadAll()
		if err != nil || len(recs) != 4 || recs[0][8] != "active_since" {
			t.Fatalf("registry %v: %s", err, res.registry)
		}
		var rest bytes.Buffer
		for _, rec := range recs[1:] {
			since, err := time.Parse(time.RFC3339, rec[8])
			if err != nil || since.After(res.truth.From) || since.Before(res.truth.From.Add(-11*time.Minute)) || since.Second() != 0 {
				t.Fatalf("%s active_since %q: want a whole minute at most -skew-max (10m) before the truth's from %v", rec[0], rec[8], res.truth.From)
			}
			rest.WriteString(strings.Join(rec[:8], ",") + "\n")
		}
		res.registry = rest.Bytes()
		for _, r := range l.all() {
			if r.retained { // a retained copy sent on subscribe, not a new message
				continue
			}
			p := tsField.ReplaceAllString(string(r.payload), `"ts":0`)
			if s := res.payloads[r.topic]; len(s) > 0 && s[len(s)-1] == p {
				continue // a QoS 1 redelivery to the listener, or the duplicate fault
			}
			res.payloads[r.topic] = append(res.payloads[r.topic], p)
		}
		return res
	}
	a, b, other := once("5"), once("5"), once("6")
	if !bytes.Equal(a.registry, b.registry) {
		t.Fatal("same seed, different registry")
	}
	if bytes.Equal(a.registry, other.registry) {
		t.Fatal("seeds 5 and 6 give the same registry")
	}
	if len(a.payloads) != 3*3*2 { // 9 devices, telemetry and status topics
		t.Fatalf("messages on %d topics", len(a.payloads))
	}
	for topic, pa := range a.payloads {
		if !slices.Equal(pa, b.payloads[topic]) {
			t.Fatalf("%s: same seed, different data:\n%v\n%v", topic, pa, b.payloads[topic])
		}
	}
	for i, oa := range a.truth.Outlets {
		ob := b.truth.Outlets[i]
		if !equalJSON(t, oa.Parcels, ob.Parcels) || !equalJSON(t, oa.Counters, ob.Counters) || oa.Bins[0].Reports != ob.Bins[0].Reports {
			ja, _ := json.Marshal(oa)
			jb, _ := json.Marshal(ob)
			t.Fatalf("%s: same seed, different truth:\n%s\n%s", oa.Outlet, ja, jb)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestCutConnectionFiresLastWill: an offline spell drops the connection
// without DISCONNECT, and the broker delivers the device's Last Will.
func TestCutConnectionFiresLastWill(t *testing.T) {
	m := broker(t)
	l := listen(t, m.URL)
	runSim(t, map[string]string{"GP_MQTT_URL": m.URL}, "-outlets", "1", "-bins", "0", "-interval", "100ms",
		"-reports", "2", "-faults", "offline", "-offline-rate", "1", "-offline-for", "50ms")
	status := telemetry.StatusTopic("o-0001", telemetry.KindCounter, "c-0001")
	var seq []string
	waitFor(t, 10*time.Second, "the Last Will", func() bool {
		seq = nil
		for _, r := range l.all() {
			if r.topic == status {
				msg, err := telemetry.Decode(r.topic, r.payload, r.at)
				if err != nil {
					t.Fatalf("%s: %v", r.payload, err)
				}
				seq = append(seq, msg.Status.State+map[bool]string{true: "(will)", false: ""}[string(r.payload) == city.WillPayload])
			}
		}
		return slices.Contains(seq, "offline(will)")
	})
	if seq[0] != "online" {
		t.Fatalf("status sequence %v: want online first", seq)
	}
}

// TestLoadMode publishes an exact number of messages over many devices and
// reports the counts; a plain subscriber gets every one, all valid.
func TestLoadMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"as fast as possible", []string{"-outlets", "200", "-bins", "2", "-messages", "5000", "-rate", "0"}, 5000},
		{"paced", []string{"-outlets", "10", "-bins", "1", "-messages", "600", "-rate", "3000"}, 600},
		{"fewer messages than devices", []string{"-outlets", "30", "-bins", "2", "-messages", "7"}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := broker(t)
			l := listen(t, m.URL)
			s := runSim(t, map[string]string{"GP_MQTT_URL": m.URL}, append([]string{"-mode", "load"}, tc.args...)...)
			if int(s["sent"].(float64)) != tc.want || int(s["acked"].(float64)) != tc.want || s["rate"].(float64) <= 0 {
				t.Fatalf("summary %v", s)
			}
			first, err1 := time.Parse(time.RFC3339Nano, s["first_publish"].(string))
			last, err2 := time.Parse(time.RFC3339Nano, s["last_ack"].(string))
			if err1 != nil || err2 != nil || !last.After(first) {
				t.Fatalf("times %v %v: %v %v", s["first_publish"], s["last_ack"], err1, err2)
			}
			waitFor(t, 20*time.Second, "every message", func() bool { return len(l.all()) >= tc.want })
			devices := map[string]bool{}
			for _, r := range l.all() {
				msg, err := telemetry.Decode(r.topic, r.payload, r.at)
				if err != nil {
					t.Fatalf("%s %s: %v", r.topic, r.payload, err)
				}
				if d := r.at.Sub(msg.Time()); d > time.Minute || d < -time.Minute {
					t.Fatalf("ts %v is not now (%v)", msg.Time(), r.at)
				}
				devices[msg.Topic.Device] = true
			}
			if want := min(tc.want, int(s["devices"].(float64))); len(devices) != want {
				t.Fatalf("messages from %d devices, want %d", len(devices), want)
			}
		})
	}
}

// TestHistoryToInflux writes a day of history straight to a real InfluxDB
// and checks it by InfluxQL: every point arrived, the counter series hold
// what the truth says, and writing again with the same seed and end
// overwrites the same points (the data is the same).
func TestHistoryToInflux(t *testing.T) {
	in := testenv.SharedInflux(t)
	dir := t.TempDir()
	end := time.Now().Truncate(time.Hour).UTC().Format(time.RFC3339)
	env := map[string]string{"GP_INFLUX_URL": in.URL, "GP_INFLUX_BUCKET": in.Bucket}
	args := []string{"-mode", "history", "-influx", "-days", "1", "-step", "10m", "-outlets", "5", "-bins", "2",
		"-seed", "3", "-end", end, "-faults", "reboot", "-reboot-rate", "0.01", "-truth", filepath.Join(dir, "t.json"),
		"-registry", filepath.Join(dir, "r.csv")}
	s := runSim(t, env, args...)
	truth := readTruth(t, filepath.Join(dir, "t.json"))
	// The registry's outlets are active since the history's start (a day
	// before -end, a whole hour): the truth's from.
	reg, err := os.ReadFile(filepath.Join(dir, "r.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := truth.From.Format(time.RFC3339); strings.Count(string(reg), ","+want+"\n") != 5 || !truth.From.Equal(truth.To.Add(-24*time.Hour)) {
		t.Fatalf("registry's active_since: want %s for each of 5 outlets (truth %v..%v):\n%s", want, truth.From, truth.To, reg)
	}
	points := int(s["points"].(float64))
	// 15 devices, 144 reports each, plus one status each.
	if points != 15*144+15 {
		t.Fatalf("wrote %d points: %v", points, s)
	}
	count := func() int {
		n := 0
		for _, q := range []string{`SELECT count(fill_pct) FROM bin`, `SELECT count(seq) FROM counter`, `SELECT count(state) FROM device_status`} {
			out, err := in.InfluxQL(q)
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if i := strings.LastIndex(out, `,`); i > 0 {
				fmt.Sscanf(out[i+1:], "%d", &v)
			}
			n += v
		}
		return n
	}
	if got := count(); got != points {
		t.Fatalf("InfluxDB holds %d points, the simulator wrote %d", got, points)
	}
	// The truth's parcels are the last value of every (device, boot) series.
	out, err := in.InfluxQL(`SELECT last(reusable), last(recyclable), last(biodegradable), last(original), last(plastic), last(foam), last(other) FROM counter GROUP BY device, boot`)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []struct {
			Series []struct {
				Tags   map[string]string `json:"tags"`
				Values [][]any           `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	stored := map[string]int64{}
	boots := 0
	for _, s := range res.Results[0].Series {
		boots++
		for _, v := range s.Values[0][1:] {
			stored[s.Tags["device"]] += int64(v.(float64))
		}
	}
	if boots <= 5 {
		t.Errorf("%d counter series for 5 counters: the reboot fault did not show", boots)
	}
	for _, o := range truth.Outlets {
		if dev := "c-" + strings.TrimPrefix(o.Outlet, "o-"); stored[dev] != o.Total || o.Total == 0 {
			t.Errorf("%s: InfluxDB %d parcels, truth %d", dev, stored[dev], o.Total)
		}
	}
	runSim(t, env, args...)
	if got := count(); got != points {
		t.Fatalf("after a second run with the same seed InfluxDB holds %d points, want %d", got, points)
	}
}

// TestHistoryOverMQTT publishes a day of history over MQTT: every message
// arrives, passes telemetry.Decode at arrival, and lies in the past.
func TestHistoryOverMQTT(t *testing.T) {
	m := broker(t)
	l := listen(t, m.URL)
	s := runSim(t, map[string]string{"GP_MQTT_URL": m.URL}, "-mode", "history", "-days", "2", "-step", "1h",
		"-outlets", "3", "-bins", "1", "-faults", "malformed", "-malformed-rate", "0.05")
	want := int(s["sent"].(float64))
	if want != 3*2*48 || int(s["acked"].(float64)) != want {
		t.Fatalf("summary %v", s)
	}
	waitFor(t, 20*time.Second, "every message", func() bool { return len(l.all()) >= want })
	bad := 0
	for _, r := range l.all() {
		msg, err := telemetry.Decode(r.topic, r.payload, r.at)
		if err != nil {
			if !slices.Contains(city.MalformedReasons, telemetry.ReasonOf(err)) {
				t.Fatalf("%s: %v", r.payload, err)
			}
			bad++
			continue
		}
		if age := r.at.Sub(msg.Time()); age < 0 || age > 49*time.Hour {
			t.Fatalf("ts %v is not within the last two days", msg.Time())
		}
	}
	if bad != int(s["malformed"].(float64)) || bad == 0 {
		t.Fatalf("%d malformed received, %v sent", bad, s["malformed"])
	}
}
