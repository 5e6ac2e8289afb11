package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, url, id string, clean bool, onMsg mqtt.MessageHandler) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetDefaultPublishHandler(onMsg)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func wait(t *testing.T, tok mqtt.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// TestMosquittoQoS1 publishes QoS 1 messages through the real broker and
// receives every one, with manual acknowledgement.
func TestMosquittoQoS1(t *testing.T) {
	m := SharedMosquitto(t)
	const n = 200
	got := make(chan string, n)
	sub := connect(t, m.URL, "testenv-sub", true, func(_ mqtt.Client, msg mqtt.Message) {
		got <- string(msg.Payload())
		msg.Ack()
	})
	wait(t, sub.Subscribe("gp/v1/testenv/#", 1, nil), "subscribe")
	pub := connect(t, m.URL, "testenv-pub", true, nil)
	for i := range n {
		wait(t, pub.Publish("gp/v1/testenv/bin/b1/telemetry", 1, false, fmt.Sprint(i)), "publish")
	}
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < n {
		select {
		case p := <-got:
			seen[p] = true
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(seen), n)
		}
	}
}

// TestMosquittoPersistentSessionSurvivesRestart checks what the collector's
// zero-loss design relies on: QoS 1 messages queued for an offline
// persistent session are still delivered after the broker restarts.
func TestMosquittoPersistentSessionSurvivesRestart(t *testing.T) {
	m := StartMosquitto(t, MosquittoOptions{Persistence: true})
	got := make(chan string, 100)
	handler := func(_ mqtt.Client, msg mqtt.Message) { got <- string(msg.Payload()) }
	sub := connect(t, m.URL, "persist-sub", false, handler)
	wait(t, sub.Subscribe("q/#", 1, nil), "subscribe")
	sub.Disconnect(100)

	pub := connect(t, m.URL, "persist-pub", true, nil)
	for i := range 10 {
		wait(t, pub.Publish("q/x", 1, false, fmt.Sprint(i)), "publish")
	}
	pub.Disconnect(100)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	connect(t, m.URL, "persist-sub", false, handler)
	for i := range 10 {
		select {
		case p := <-got:
			if p != fmt.Sprint(i) {
				t.Fatalf("message %d = %q", i, p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of 10 queued messages after the restart", i)
		}
	}
}

// TestInfluxFaults checks the fault handles that the collector's tests use.
func TestInfluxFaults(t *testing.T) {
	in := StartInflux(t)
	if err := in.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := in.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := in.Ping(); err == nil {
		t.Fatal("a paused influxd answered ping")
	}
	if err := in.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(10*time.Second, in.Ping); err != nil {
		t.Fatalf("no ping after resume: %v", err)
	}
	if err := in.Exec(`CREATE DATABASE kept`); err != nil {
		t.Fatal(err)
	}
	in.Kill()
	if err := in.Ping(); err == nil {
		t.Fatal("a killed influxd answered ping")
	}
	if err := in.Restart(); err != nil {
		t.Fatal(err)
	}
	// The data dir survived the kill.
	out, err := in.InfluxQL(`SHOW DATABASES`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `["kept"]`) {
		t.Fatalf("database lost across a restart: %s", out)
	}
}

func TestReadProcStats(t *testing.T) {
	in := SharedInflux(t)
	st, err := ReadProcStats(in.PID())
	if err != nil {
		t.Fatal(err)
	}
	// Starting influxd costs CPU time: a reader that returned zeros fails.
	if st.PeakRSSKiB < 1024 || st.CPUSeconds <= 0 {
		t.Fatalf("influxd stats %+v", st)
	}
}
