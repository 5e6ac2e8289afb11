package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func hashHex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func deviceClient(t *testing.T, url, user, pass string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("cid-" + user).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// TestEmbeddedBroker checks device authentication and the rule that a
// device publishes only under its own topics, and that what a device
// publishes through the embedded broker is stored.
func TestEmbeddedBroker(t *testing.T) {
	in := testenv.SharedInflux(t)
	users := filepath.Join(t.TempDir(), "users")
	os.WriteFile(users, []byte(fmt.Sprintf("# role user sha256(password)\ndevice eb-b1 %s\ndevice eb-b2 %s\ncollector ops %s\n",
		hashHex("pw-b1"), hashHex("pw-b2"), hashHex("pw-ops"))), 0o600)
	addr := freeAddr(t)
	startCollector(t, append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_EMBEDDED_BROKER_USERS_FILE="+users,
		"GP_SPOOL_DIR="+t.TempDir())...)
	url := "tcp://" + addr

	for _, tc := range []struct{ user, pass string }{{"eb-b1", "wrong"}, {"nobody", "pw-b1"}, {"+", "pw-b1"}, {"", ""}} {
		if _, err := deviceClient(t, url, tc.user, tc.pass); err == nil {
			t.Errorf("connect as %q with password %q was accepted", tc.user, tc.pass)
		}
	}

	b1, err := deviceClient(t, url, "eb-b1", "pw-b1")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute).UnixMilli()
	for i := range 10 {
		tok := b1.Publish("gp/v1/eb-o1/bin/eb-b1/telemetry", 1, false,
			fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":1,"fill_pct":10,"deposits":%d}`, ts+int64(i), i, i))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// The PUBACK came after the point was durable in the spool; it reaches InfluxDB soon.
	waitCount(t, in, countBins("eb-o1"), 10, 30*time.Second)

	// A device may not subscribe.
	sub := b1.Subscribe("gp/v1/#", 1, nil)
	sub.WaitTimeout(10 * time.Second)
	if q := sub.(*mqtt.SubscribeToken).Result()["gp/v1/#"]; q != 0x80 {
		t.Errorf("device subscription granted with code %#x", q)
	}

	// Publishing under another device's topic gets the device disconnected and stores nothing.
	tok := b1.Publish("gp/v1/eb-o1/bin/eb-b2/telemetry", 1, false, fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"fill_pct":10,"deposits":1}`, ts))
	tok.WaitTimeout(3 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() string {
		if b1.IsConnectionOpen() {
			return "device still connected after publishing under another device's topic"
		}
		return ""
	})
	if got := count(t, in, `SELECT count(seq) FROM bin WHERE device = 'eb-b2'`); got != 0 {
		t.Errorf("stored %d points under eb-b2's topic", got)
	}

	// The collector role may subscribe and sees device traffic.
	ops, err := deviceClient(t, url, "ops", "pw-ops")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	if tok := ops.Subscribe("gp/v1/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case seen <- m.Topic():
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	b2, err := deviceClient(t, url, "eb-b2", "pw-b2")
	if err != nil {
		t.Fatal(err)
	}
	b2.Publish("gp/v1/eb-o1/bin/eb-b2/status", 1, true, `{"state":"online","fw":"1.0"}`).WaitTimeout(10 * time.Second)
	select {
	case topic := <-seen:
		if topic != "gp/v1/eb-o1/bin/eb-b2/status" {
			t.Errorf("ops saw %s", topic)
		}
	case <-time.After(10 * time.Second):
		t.Error("a collector-role subscriber saw no device traffic")
	}
	waitCount(t, in, `SELECT count(state) FROM device_status WHERE device = 'eb-b2'`, 1, 30*time.Second)
}
