package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// The slow tests here run in parallel (t.Parallel) with a broker of their
// own: every collector subscribes to all of gp/v1, so on the shared broker
// one test's collector would take another's messages. They share the
// InfluxDB and keep to outlets named by unique.

func influxEnv(in *testenv.Influx) []string {
	return []string{"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket}
}

// TestExactness publishes a known mix of valid, duplicated and invalid
// messages and checks that exactly the expected points and dead letters
// are stored, with the right values, and that SIGTERM drains and exits 0.
func TestExactness(t *testing.T) {
	in := testenv.SharedInflux(t)
	mq := testenv.SharedMosquitto(t)
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID="+unique("exact-c"), "GP_SPOOL_DIR="+t.TempDir())...)
	c.waitSubscribed(t)

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ts := base.UnixMilli()
	o := unique("ex-o1")
	ctr := o + "-c1"
	valid := binMsgs(o, 3, 300, base)
	counter := testMsg{"gp/v1/" + o + "/counter/" + ctr + "/telemetry", fmt.Sprintf(`{"ts":%d,"seq":5,"boot":2,"parcels":{"reusable":7,"plastic":3},"boxes_recovered":1}`, ts)}
	status := testMsg{"gp/v1/" + o + "/counter/" + ctr + "/status", `{"state":"online","fw":"2.0.1"}`}
	invalid := []struct {
		msg    testMsg
		reason string
	}{
		{testMsg{"gp/v1/" + o + "/bin/" + o + "-b0/telemetry", `{"ts":` + fmt.Sprint(ts) + `,"seq":1`}, "bad_json"},
		{testMsg{"gp/v1/" + o + "/bin/" + o + "-b0/telemetry", `{"ts":` + fmt.Sprint(ts) + `,"seq":1,"boot":1,"fill_pct":150,"deposits":1}`}, "out_of_range"},
		{testMsg{"gp/v1/" + o + "/counter/" + ctr + "/telemetry", `{"ts":` + fmt.Sprint(ts) + `,"seq":1,"boot":1,"parcels":{"paper":1}}`}, "unknown_class"},
		{testMsg{"gp/v1/" + o + "/BIN/x/telemetry", `{}`}, "bad_topic"},
		{testMsg{"gp/v1/" + o + "/bin/" + o + "-b0/telemetry", `{"ts":1,"seq":1,"boot":1,"fill_pct":1,"deposits":1}`}, "ts_past"},
	}
	// The outlet's dead letters, whatever their topic's shape.
	deadletters := `SELECT count(payload) FROM deadletter WHERE topic =~ /^gp\/v1\/` + o + `\//`
	p := newPublisher(t, mq.URL, unique("exact-pub"))
	all := append([]testMsg{}, valid...)
	all = append(all, valid[:50]...) // QoS 1 style duplicates: must not add points
	all = append(all, counter, counter, status)
	for _, iv := range invalid {
		all = append(all, iv.msg)
	}
	p.publish(t, all)

	waitCount(t, in, countBins(o), 300, 60*time.Second)
	waitCount(t, in, `SELECT count(seq) FROM counter WHERE outlet = '`+o+`'`, 1, 30*time.Second)
	waitCount(t, in, `SELECT count(state) FROM device_status WHERE outlet = '`+o+`'`, 1, 30*time.Second)
	waitCount(t, in, deadletters, len(invalid), 30*time.Second)
	for _, iv := range invalid {
		q := fmt.Sprintf(`%s AND reason = '%s'`, deadletters, iv.reason)
		if got := count(t, in, q); got != 1 {
			t.Errorf("dead letters with reason %s: %d, want 1", iv.reason, got)
		}
		if got := c.metric(t, `greenpost_collector_messages_invalid_total{reason="`+iv.reason+`"}`); got != 1 {
			t.Errorf("invalid{reason=%s} = %v, want 1", iv.reason, got)
		}
	}
	out, err := in.InfluxQL(`SELECT reusable, recyclable, plastic, boxes_recovered, seq FROM counter WHERE outlet = '` + o + `' AND boot = '2'`)
	if err != nil || !strings.Contains(out, `,7,0,3,1,5]`) {
		t.Errorf("counter point: %v %s", err, out)
	}
	out, err = in.InfluxQL(`SELECT state, fw FROM device_status WHERE device = '` + ctr + `'`)
	if err != nil || !strings.Contains(out, `"online","2.0.1"`) {
		t.Errorf("status point: %v %s", err, out)
	}
	// The last group's acks may follow its points into InfluxDB.
	testenv.Eventually(t, 30*time.Second, func() string {
		if got, want := c.metric(t, "greenpost_collector_messages_acked_total"), float64(len(all)); got != want {
			return fmt.Sprintf("acked %v, want %v", got, want)
		}
		return ""
	})

	c.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := c.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, c.Output())
	}
	for _, want := range []string{`"msg":"shutting down"`, `"msg":"stopped","component":"collector","spool_points":0`} {
		if !strings.Contains(c.Output(), want) {
			t.Errorf("log lacks %s:\n%s", want, c.Output())
		}
	}
}

// TestKill9MidStream kills the collector with SIGKILL while messages flow,
// restarts it on the same spool and client id, and checks that every
// message published is stored: nothing acknowledged was lost.
func TestKill9MidStream(t *testing.T) {
	t.Parallel()
	in := testenv.SharedInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{Persistence: true, MaxQueued: 100000})
	spoolDir := t.TempDir()
	env := append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=kill-c", "GP_SPOOL_DIR="+spoolDir)
	c := startCollector(t, env...)
	c.waitSubscribed(t)
	const n = 20000
	o := unique("k9-o1")
	msgs := binMsgs(o, 50, n, time.Now().Add(-time.Hour))
	p := newPublisher(t, mq.URL, "kill-pub")
	done := make(chan struct{})
	go func() { defer close(done); p.publish(t, msgs) }()

	testenv.Eventually(t, 2*time.Minute, func() string {
		if a := c.metric(t, "greenpost_collector_messages_acked_total"); a < 3000 {
			return fmt.Sprintf("acked %v of 3000 before the kill", a)
		}
		return ""
	})
	acked := c.metric(t, "greenpost_collector_messages_acked_total")
	c.Cmd.Process.Signal(syscall.SIGKILL)
	if _, err := c.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %v acks", acked)
	if acked >= n {
		t.Fatalf("killed after all %d messages were acknowledged: not mid-stream", n)
	}

	c2 := startCollector(t, env...)
	<-done
	waitCount(t, in, countBins(o), n, 3*time.Minute)
	if p.sent.Load() != n {
		t.Fatalf("published %d of %d", p.sent.Load(), n)
	}
	testenv.Eventually(t, 30*time.Second, func() string {
		if v := c2.metric(t, "greenpost_collector_spool_points"); v != 0 {
			return fmt.Sprintf("spool still holds %v points", v)
		}
		return ""
	})
}

// TestInfluxOutage pauses InfluxDB (SIGSTOP), then kills it, each for a
// stretch of traffic: the collector keeps acknowledging into the spool,
// and once InfluxDB is back the spool drains and every point is stored.
func TestInfluxOutage(t *testing.T) {
	t.Parallel()
	in := testenv.StartInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=outage-c", "GP_SPOOL_DIR="+t.TempDir())...)
	c.waitSubscribed(t)
	p := newPublisher(t, mq.URL, "outage-pub")
	o := unique("out-o1")
	base := time.Now().Add(-time.Hour)
	total := 0
	// traffic publishes a stretch of messages for d, spread over the stretch.
	traffic := func(d time.Duration) {
		const per = 200
		for end := time.Now().Add(d); time.Now().Before(end); {
			// Each stretch starts where the last ended: no timestamp repeats.
			p.publish(t, binMsgs(o, 5, per, base.Add(time.Duration(total)*time.Millisecond)))
			total += per
			time.Sleep(200 * time.Millisecond)
		}
	}
	// allAcked waits until every message published so far is acknowledged:
	// while InfluxDB is out that means the spool took the traffic.
	allAcked := func(while string) {
		t.Helper()
		testenv.Eventually(t, 2*time.Minute, func() string {
			if got := c.metric(t, "greenpost_collector_messages_acked_total"); got < float64(total) {
				return fmt.Sprintf("%s: %v of %d messages acknowledged: the spool did not take the traffic", while, got, total)
			}
			return ""
		})
	}
	traffic(2 * time.Second)
	waitCount(t, in, countBins(o), total, time.Minute)

	if err := in.Pause(); err != nil {
		t.Fatal(err)
	}
	traffic(20 * time.Second) // "tens of seconds" of outage under traffic
	allAcked("InfluxDB paused")
	if err := in.Resume(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, in, countBins(o), total, 2*time.Minute)

	in.Kill()
	traffic(20 * time.Second) // "tens of seconds" of outage under traffic
	allAcked("InfluxDB killed")
	if c.metric(t, "greenpost_collector_spool_points") == 0 {
		t.Error("nothing waits in the spool while InfluxDB is down")
	}
	if err := in.Restart(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, in, countBins(o), total, 2*time.Minute)
	if c.metric(t, "greenpost_collector_influx_retries_total") == 0 {
		t.Error("no retries counted during the outage")
	}
	// "influxdb up" is logged once the write that stored the points has
	// returned, which can be just after the points can be read.
	testenv.Eventually(t, 30*time.Second, func() string {
		if !strings.Contains(c.Output(), "influxdb down") || !strings.Contains(c.Output(), "influxdb up") {
			return "state changes not logged:\n" + c.Output()
		}
		return ""
	})
}

// TestBrokerRestart restarts the broker twice: once under a running
// collector (it reconnects and resubscribes), once while the collector is
// stopped with messages queued for its persistent session.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	in := testenv.SharedInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{Persistence: true, MaxQueued: 100000})
	spoolDir := t.TempDir()
	env := append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=restart-c", "GP_SPOOL_DIR="+spoolDir)
	c := startCollector(t, env...)
	connects := func(c *collectorProc, n float64) func() string {
		return func() string {
			if got := c.metric(t, "greenpost_collector_mqtt_connects_total"); got < n || c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
				return fmt.Sprintf("connects %v, want %v and connected", got, n)
			}
			return ""
		}
	}
	testenv.Eventually(t, time.Minute, connects(c, 1))
	o := unique("br-o1")
	base := time.Now().Add(-time.Hour)
	p := newPublisher(t, mq.URL, "restart-pub")
	p.publish(t, binMsgs(o, 4, 1000, base))
	if err := mq.Restart(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, connects(c, 2))
	p.publish(t, binMsgs(o, 4, 1000, base.Add(time.Minute)))
	waitCount(t, in, countBins(o), 2000, 2*time.Minute)

	// Stop the collector, queue messages for it, restart the broker, start the collector.
	c.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := c.Wait(30 * time.Second); code != 0 || err != nil {
		t.Fatalf("exit %d %v", code, err)
	}
	p.publish(t, binMsgs(o, 4, 1000, base.Add(2*time.Minute)))
	if err := mq.Restart(); err != nil {
		t.Fatal(err)
	}
	startCollector(t, env...)
	waitCount(t, in, countBins(o), 3000, 2*time.Minute)
}

// TestSpoolCapBackPressure fills a tiny spool while InfluxDB is down: the
// collector stops acknowledging (the broker keeps the messages) instead of
// dropping anything, and everything is stored once InfluxDB is back.
func TestSpoolCapBackPressure(t *testing.T) {
	t.Parallel()
	in := testenv.StartInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{MaxQueued: 100000})
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=cap-c",
		"GP_SPOOL_DIR="+t.TempDir(), "GP_SPOOL_MAX_BYTES=65536")...)
	c.waitSubscribed(t)
	in.Kill()
	const n = 5000 // about 600 KiB of points: ten times the cap
	p := newPublisher(t, mq.URL, "cap-pub")
	p.publish(t, binMsgs("cap-o1", 10, n, time.Now().Add(-time.Hour)))
	testenv.Eventually(t, time.Minute, func() string {
		if c.metric(t, "greenpost_collector_spool_full_total") == 0 {
			return "spool never full"
		}
		return ""
	})
	if acked := c.metric(t, "greenpost_collector_messages_acked_total"); acked >= n {
		t.Fatalf("acked %v of %d with a full spool", acked, n)
	}
	if b := c.metric(t, "greenpost_collector_spool_bytes"); b > 65536+64*1024 {
		t.Errorf("spool holds %v bytes, cap 65536", b)
	}
	if err := in.Restart(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, in, countBins("cap-o1"), n, 3*time.Minute)
	// A group's acks follow its spool append, which the writer may already
	// have drained to InfluxDB: wait for them rather than read them at once.
	testenv.Eventually(t, time.Minute, func() string {
		if acked := c.metric(t, "greenpost_collector_messages_acked_total"); acked != n {
			return fmt.Sprintf("acked %v, want %d", acked, n)
		}
		return ""
	})
}

// TestSharedSubscription runs three collectors in one share group: every
// message is stored once and each collector takes part of the load.
func TestSharedSubscription(t *testing.T) {
	t.Parallel()
	in := testenv.SharedInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	var cs []*collectorProc
	for i := range 3 {
		cs = append(cs, startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_SHARE_GROUP=gp",
			fmt.Sprintf("GP_MQTT_CLIENT_ID=share-%d", i), "GP_SPOOL_DIR="+filepath.Join(t.TempDir(), fmt.Sprint(i)))...))
	}
	for _, c := range cs {
		c.waitSubscribed(t)
	}
	const n = 6000
	o := unique("sh-o1")
	p := newPublisher(t, mq.URL, "share-pub")
	p.publish(t, binMsgs(o, 30, n, time.Now().Add(-time.Hour)))
	waitCount(t, in, countBins(o), n, 2*time.Minute)
	// A group's points can reach InfluxDB before its acknowledgements are
	// counted: wait for the count to settle (as the spool-cap test does).
	testenv.Eventually(t, time.Minute, func() string {
		var sum float64
		for _, c := range cs {
			sum += c.metric(t, "greenpost_collector_messages_acked_total")
		}
		if sum != n {
			return fmt.Sprintf("collectors acknowledged %v messages in all, want %d (each exactly once)", sum, n)
		}
		return ""
	})
	for i, c := range cs {
		a := c.metric(t, "greenpost_collector_messages_acked_total")
		if a == 0 {
			t.Errorf("collector %d took no messages", i)
		}
		t.Logf("collector %d: %v messages", i, a)
	}
}

func TestMainRefusesUsersFileWithoutBroker(t *testing.T) {
	f := filepath.Join(t.TempDir(), "users")
	os.WriteFile(f, []byte(""), 0o600)
	p := testenv.StartMain(t, []string{"GP_EMBEDDED_BROKER_USERS_FILE=" + f})
	if code, _ := p.Wait(20 * time.Second); code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, p.Output())
	}
}

// TestRetainedInvalidOnce: garbage published retained on a telemetry topic
// is dead-lettered once, when it is published, and not again when the
// broker re-sends its retained store after the collector reconnects; the
// re-sends are counted in retained_invalid_total.
func TestRetainedInvalidOnce(t *testing.T) {
	t.Parallel()
	in := testenv.SharedInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	env := append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=retained-c", "GP_SPOOL_DIR="+t.TempDir())
	c := startCollector(t, env...)
	c.waitSubscribed(t)
	p := newPublisher(t, mq.URL, "retained-pub")
	topic := "gp/v1/" + unique("ri-o1") + "/bin/ri-b1/telemetry"
	if tok := p.c.Publish(topic, 1, true, `{"ts":`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dl := `SELECT count(payload) FROM deadletter WHERE topic = '` + topic + `'`
	waitCount(t, in, dl, 1, time.Minute)

	for restart := 1; restart <= 2; restart++ {
		c.Cmd.Process.Signal(syscall.SIGTERM)
		if code, err := c.Wait(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("exit %d, %v\n%s", code, err, c.Output())
		}
		c = startCollector(t, env...)
		c.waitSubscribed(t)
		testenv.Eventually(t, time.Minute, func() string {
			if got := c.metric(t, `greenpost_collector_retained_invalid_total{reason="bad_json"}`); got != 1 {
				return fmt.Sprintf("restart %d: retained_invalid_total{bad_json} = %v, want 1", restart, got)
			}
			return ""
		})
		if got := c.metric(t, `greenpost_collector_messages_invalid_total{reason="bad_json"}`); got != 0 {
			t.Errorf("restart %d: the retained message was counted invalid again (%v)", restart, got)
		}
		testenv.Eventually(t, 10*time.Second, func() string {
			if c.metric(t, "greenpost_collector_spool_points") != 0 {
				return "spool not drained"
			}
			return ""
		})
		if got := count(t, in, dl); got != 1 {
			t.Errorf("restart %d: %d dead letters for one retained message, want 1", restart, got)
		}
	}
}
