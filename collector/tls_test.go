package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestTLSAndPassword connects the collector to a Mosquitto that only speaks
// TLS and only accepts a known user.
func TestTLSAndPassword(t *testing.T) {
	in := testenv.SharedInflux(t)
	dir := t.TempDir()
	certs := testenv.NewCerts(t, dir)
	ca, cert, key := certs.CAFile, certs.CertFile, certs.KeyFile
	pw := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "gp-collector", "s3cret-pw").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	tlsPort := freeAddr(t)
	_, port, _ := net.SplitHostPort(tlsPort)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{Extra: []string{
		"listener " + port + " 127.0.0.1", "cafile " + ca, "certfile " + cert, "keyfile " + key,
		"password_file " + pw, "allow_anonymous false", "per_listener_settings false",
	}})
	_ = mq
	pwFile := filepath.Join(dir, "mqtt-password")
	os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600)
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL=ssl://localhost:"+port, "GP_MQTT_CA_FILE="+ca,
		"GP_MQTT_USERNAME=gp-collector", "GP_MQTT_PASSWORD_FILE="+pwFile, "GP_MQTT_CLIENT_ID=tls-c", "GP_SPOOL_DIR="+t.TempDir())...)
	testenv.Eventually(t, 30*time.Second, func() string {
		if c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
			return "collector not connected over TLS:\n" + c.Output()
		}
		return ""
	})
	opts := mqtt.NewClientOptions().AddBroker("ssl://localhost:" + port).SetClientID("tls-pub").
		SetUsername("gp-collector").SetPassword("s3cret-pw").SetTLSConfig(&tls.Config{RootCAs: certs.Roots, MinVersion: tls.VersionTLS12})
	pub := mqtt.NewClient(opts)
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	p := &publisher{c: pub}
	p.publish(t, binMsgs("tls-o1", 2, 100, time.Now().Add(-time.Hour)))
	waitCount(t, in, countBins("tls-o1"), 100, 30*time.Second)

	// A wrong password keeps the collector out (and not ready).
	os.WriteFile(pwFile, []byte("wrong\n"), 0o600)
	bad := startCollector(t, append(influxEnv(in), "GP_MQTT_URL=ssl://localhost:"+port, "GP_MQTT_CA_FILE="+ca,
		"GP_MQTT_USERNAME=gp-collector", "GP_MQTT_PASSWORD_FILE="+pwFile, "GP_MQTT_CLIENT_ID=tls-bad", "GP_SPOOL_DIR="+t.TempDir())...)
	testenv.Eventually(t, 20*time.Second, func() string {
		if !strings.Contains(strings.ToLower(bad.Output()), "not authorized") {
			return "no authentication error logged yet:\n" + bad.Output()
		}
		return ""
	})
	resp, err := http.Get("http://" + bad.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz of an unauthenticated collector: %d", resp.StatusCode)
	}
}

// TestDeadLetterRateLimit floods invalid messages: all are counted, only
// GP_DEADLETTER_RATE per second are written.
func TestDeadLetterRateLimit(t *testing.T) {
	in := testenv.SharedInflux(t)
	mq := testenv.SharedMosquitto(t)
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=dl-c",
		"GP_SPOOL_DIR="+t.TempDir(), "GP_DEADLETTER_RATE=20")...)
	testenv.Eventually(t, 20*time.Second, func() string {
		if c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
			return "not connected"
		}
		return ""
	})
	const n = 2000
	msgs := make([]testMsg, n)
	for i := range msgs {
		msgs[i] = testMsg{"gp/v1/dl-o1/bin/dl-b1/telemetry", fmt.Sprintf(`garbage %d`, i)}
	}
	start := time.Now()
	newPublisher(t, mq.URL, "dl-pub").publish(t, msgs)
	testenv.Eventually(t, 30*time.Second, func() string {
		if got := c.metric(t, `greenpost_collector_messages_invalid_total{reason="bad_json"}`); got != n {
			return fmt.Sprintf("counted %v invalid", got)
		}
		return ""
	})
	elapsed := time.Since(start).Seconds()
	skipped := int(c.metric(t, `greenpost_collector_deadletters_not_written_total{reason="bad_json"}`))
	written := n - skipped
	// The bucket starts full (20) and refills at 20/s.
	if max := 20 + int(20*elapsed) + 1; written > max || written < 20 {
		t.Errorf("%d dead letters written in %.1fs at 20/s (allowed %d)", written, elapsed, max)
	}
	waitCount(t, in, `SELECT count(payload) FROM deadletter WHERE topic = 'gp/v1/dl-o1/bin/dl-b1/telemetry'`, written, 30*time.Second)
}
