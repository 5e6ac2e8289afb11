package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/settings"
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

// mqttClient connects with paho: client id, username and password as given.
// more sets further options (TLS, a default handler).
func mqttClient(t *testing.T, url, clientID, user, pass string, clean bool, more ...func(*mqtt.ClientOptions)) (mqtt.Client, error) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetCleanSession(clean).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second)
	for _, f := range more {
		f(opts)
	}
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

// deviceClient connects as a device does: client id = username.
func deviceClient(t *testing.T, url, user, pass string) (mqtt.Client, error) {
	return mqttClient(t, url, user, user, pass, true)
}

// rawConnect sends an MQTT 3.1.1 CONNECT by hand (paho cannot drop a
// connection without DISCONNECT, which is what fires a Will) and returns the
// connection and the CONNACK return code.
func rawConnect(addr, clientID, user, pass, willTopic, willPayload string) (net.Conn, byte, error) {
	return rawConnectDial(func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) },
		clientID, user, pass, willTopic, willPayload)
}

func rawConnectDial(dial func() (net.Conn, error), clientID, user, pass, willTopic, willPayload string) (net.Conn, byte, error) {
	c, err := dial()
	if err != nil {
		return nil, 0, err
	}
	str := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...) }
	flags := byte(0x02 | 0x80 | 0x40)
	if willTopic != "" {
		flags |= 0x04 | 0x08 | 0x20 // will, QoS 1, retained
	}
	body := str(nil, "MQTT")
	body = append(body, 4, flags, 0, 60)
	body = str(body, clientID)
	if willTopic != "" {
		body = str(body, willTopic)
		body = str(body, willPayload)
	}
	body = str(body, user)
	body = str(body, pass)
	pkt := append([]byte{0x10}, varint(len(body))...)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(pkt, body...)); err != nil {
		c.Close()
		return nil, 0, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("connack: %w", err)
	}
	c.SetDeadline(time.Time{})
	return c, ack[3], nil
}

func varint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		if n /= 128; n > 0 {
			d |= 0x80
		}
		if b = append(b, d); n == 0 {
			return b
		}
	}
}

// waitClosed waits until the peer closes c (read returns EOF or a reset).
func waitClosed(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("still open after %v", within)
	}
	return nil
}

// ebUsers writes a users file: bins p-b1 and p-b2 and counter p-c1 of
// outlet p-o1, and the collector user ops. Each test has its own p: they
// share one InfluxDB.
func ebUsers(t *testing.T, p string) string {
	users := filepath.Join(t.TempDir(), "users")
	os.WriteFile(users, []byte(fmt.Sprintf(
		"# role user sha256(password) [outlet kind]\ndevice %[1]s-b1 %[2]s %[1]s-o1 bin\ndevice %[1]s-b2 %[3]s %[1]s-o1 bin\n"+
			"device %[1]s-c1 %[4]s %[1]s-o1 counter\ncollector ops %[5]s\n",
		p, hashHex("pw-b1"), hashHex("pw-b2"), hashHex("pw-c1"), hashHex("pw-ops"))), 0o600)
	return users
}

func binPayload(ts int64, seq int) string {
	return fmt.Sprintf(`{"ts":%d,"seq":%d,"boot":1,"fill_pct":10,"deposits":%d}`, ts, seq, seq)
}

// TestEmbeddedBroker checks authentication and that a device publishes
// only under its own outlet, kind and id, with each refusal counted by
// reason; what a device publishes is stored and counted as received.
func TestEmbeddedBroker(t *testing.T) {
	in := testenv.SharedInflux(t)
	addr := freeAddr(t)
	c := startCollector(t, append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_EMBEDDED_BROKER_USERS_FILE="+ebUsers(t, "eb"),
		"GP_SPOOL_DIR="+t.TempDir())...)
	url := "tcp://" + addr

	for _, tc := range []struct{ user, pass string }{{"eb-b1", "wrong"}, {"nobody", "pw-b1"}, {"+", "pw-b1"}, {"", ""}} {
		if _, err := deviceClient(t, url, tc.user, tc.pass); err == nil {
			t.Errorf("connect as %q with password %q was accepted", tc.user, tc.pass)
		}
	}
	if got := c.metric(t, `greenpost_collector_broker_refused_total{action="connect",reason="bad_credentials"}`); got != 4 {
		t.Errorf("refused{bad_credentials} = %v, want 4", got)
	}

	b1, err := deviceClient(t, url, "eb-b1", "pw-b1")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute).UnixMilli()
	for i := range 10 {
		tok := b1.Publish("gp/v1/eb-o1/bin/eb-b1/telemetry", 1, false, binPayload(ts+int64(i), i))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// The PUBACK came after the point was durable in the spool; it reaches InfluxDB soon.
	waitCount(t, in, countBins("eb-o1"), 10, 30*time.Second)
	if got := c.metric(t, "greenpost_collector_messages_received_total"); got != 10 {
		t.Errorf("messages_received_total = %v, want 10", got)
	}

	// A device may not subscribe.
	sub := b1.Subscribe("gp/v1/#", 1, nil)
	sub.WaitTimeout(10 * time.Second)
	if q := sub.(*mqtt.SubscribeToken).Result()["gp/v1/#"]; q != 0x80 {
		t.Errorf("device subscription granted with code %#x", q)
	}

	// Publishing anywhere but under its own outlet, kind and id gets the
	// device disconnected (MQTT 3.1.1 has no negative PUBACK), stores
	// nothing and is counted by reason.
	forged := []struct{ topic, reason, payload string }{
		{"gp/v1/eb-o1/bin/eb-b2/telemetry", "other_device", binPayload(ts, 1)},
		{"gp/v1/eb-o2/bin/eb-b1/telemetry", "other_outlet", binPayload(ts, 1)},
		{"gp/v1/eb-o1/counter/eb-b1/telemetry", "other_kind", fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"parcels":{"reusable":1000}}`, ts)},
		{"gp/v1/eb-o1/bin/eb-b1/telemetry/x", "bad_topic", binPayload(ts, 1)},
	}
	for _, f := range forged {
		d, err := deviceClient(t, url, "eb-b1", "pw-b1")
		if err != nil {
			t.Fatal(err)
		}
		d.Publish(f.topic, 1, false, f.payload).WaitTimeout(3 * time.Second)
		testenv.Eventually(t, 10*time.Second, func() string {
			if d.IsConnectionOpen() {
				return "device still connected after publishing on " + f.topic
			}
			return ""
		})
		if got := c.metric(t, `greenpost_collector_broker_refused_total{action="publish",reason="`+f.reason+`"}`); got != 1 {
			t.Errorf("%s: refused{%s} = %v, want 1", f.topic, f.reason, got)
		}
	}
	for _, q := range []string{`SELECT count(seq) FROM bin WHERE device = 'eb-b2'`, countBins("eb-o2"),
		`SELECT count(seq) FROM counter WHERE device = 'eb-b1'`} {
		if got := count(t, in, q); got != 0 {
			t.Errorf("%s = %d: a forged publish was stored", q, got)
		}
	}
	if got := c.metric(t, `greenpost_collector_broker_refused_total{action="subscribe",reason="device"}`); got != 1 {
		t.Errorf("refused{subscribe,device} = %v, want 1", got)
	}

	// The collector role may subscribe under gp/v1/ (not elsewhere) and
	// sees device traffic, but may not publish.
	ops, err := mqttClient(t, url, "ops", "ops", "pw-ops", true)
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
	other := ops.Subscribe("#", 1, nil)
	other.WaitTimeout(10 * time.Second)
	if q := other.(*mqtt.SubscribeToken).Result()["#"]; q != 0x80 {
		t.Errorf("collector subscription to # granted with code %#x", q)
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
	ops.Publish("gp/v1/eb-o1/bin/eb-b2/telemetry", 1, false, binPayload(ts, 99)).WaitTimeout(3 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() string {
		if c.metric(t, `greenpost_collector_broker_refused_total{action="publish",reason="read_only"}`) != 1 {
			return "a collector user's publish was not refused as read_only"
		}
		return ""
	})
}

// TestEmbeddedBrokerWill: a Will outside the device's own topics refuses
// the connection (CONNACK 5, not authorised), so a device cannot leave a
// forged counter point or a false offline status behind; its own Will is
// stored when its connection drops.
func TestEmbeddedBrokerWill(t *testing.T) {
	in := testenv.SharedInflux(t)
	addr := freeAddr(t)
	c := startCollector(t, append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_EMBEDDED_BROKER_USERS_FILE="+ebUsers(t, "wl"),
		"GP_SPOOL_DIR="+t.TempDir())...)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	forged := fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"parcels":{"plastic":4242}}`, ts)
	for _, w := range []struct{ topic, payload string }{
		{"gp/v1/wl-o1/counter/wl-c1/telemetry", forged},         // another device's counter
		{"gp/v1/wl-o1/bin/wl-b2/status", `{"state":"offline"}`}, // another device's status
		{"gp/v1/wl-o9/bin/wl-b1/status", `{"state":"offline"}`}, // its own id under another outlet
		{"gp/v1/wl-o1/counter/wl-b1/telemetry", forged},         // its own id as the other kind
	} {
		conn, code, err := rawConnect(addr, "wl-b1", "wl-b1", "pw-b1", w.topic, w.payload)
		if err == nil {
			conn.Close()
		}
		if err != nil || code != 5 {
			t.Errorf("Will on %s: CONNACK %d, %v; want refused with 5 (not authorised)", w.topic, code, err)
		}
	}
	if got := c.metric(t, `greenpost_collector_broker_refused_total{action="connect",reason="will_topic"}`); got != 4 {
		t.Errorf("refused{will_topic} = %v, want 4", got)
	}

	// Its own Will is accepted and, when the connection drops, stored.
	conn, code, err := rawConnect(addr, "wl-b1", "wl-b1", "pw-b1", "gp/v1/wl-o1/bin/wl-b1/status", `{"state":"offline"}`)
	if err != nil || code != 0 {
		t.Fatalf("own Will: CONNACK %d, %v", code, err)
	}
	conn.Close()
	waitCount(t, in, `SELECT count(state) FROM device_status WHERE device = 'wl-b1' AND state = 'offline'`, 1, 30*time.Second)
	for _, q := range []string{`SELECT count(seq) FROM counter WHERE outlet = 'wl-o1'`, `SELECT count(state) FROM device_status WHERE device = 'wl-b2'`,
		`SELECT count(state) FROM device_status WHERE outlet = 'wl-o9'`} {
		if got := count(t, in, q); got != 0 {
			t.Errorf("%s = %d: a forged Will was stored", q, got)
		}
	}
}

// TestEmbeddedBrokerClientID: the client id is the username. A device
// cannot take over another device's session (kicking it and firing its
// Will) nor a collector user's (and with it its in-flight messages).
func TestEmbeddedBrokerClientID(t *testing.T) {
	in := testenv.SharedInflux(t)
	addr := freeAddr(t)
	c := startCollector(t, append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_EMBEDDED_BROKER_USERS_FILE="+ebUsers(t, "ci"),
		"GP_SPOOL_DIR="+t.TempDir())...)
	url := "tcp://" + addr

	victim, code, err := rawConnect(addr, "ci-b1", "ci-b1", "pw-b1", "gp/v1/ci-o1/bin/ci-b1/status", `{"state":"offline"}`)
	if err != nil || code != 0 {
		t.Fatalf("victim: CONNACK %d, %v", code, err)
	}
	defer victim.Close()
	ops, err := mqttClient(t, url, "ops", "ops", "pw-ops", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ci-b1", "ops", "cid-anything"} {
		if _, err := mqttClient(t, url, id, "ci-b2", "pw-b2", true); err == nil {
			t.Errorf("ci-b2 connected with client id %q", id)
		}
	}
	if _, err := mqttClient(t, url, "ops-2", "ops", "pw-ops", false); err == nil {
		t.Error("the collector user connected with another client id")
	}
	if got := c.metric(t, `greenpost_collector_broker_refused_total{action="connect",reason="client_id"}`); got != 4 {
		t.Errorf("refused{client_id} = %v, want 4", got)
	}
	if !ops.IsConnectionOpen() {
		t.Error("the collector user was kicked")
	}
	if err := waitClosed(victim, 500*time.Millisecond); err == nil {
		t.Error("the victim device was kicked")
	}
	if got := count(t, in, `SELECT count(state) FROM device_status WHERE device = 'ci-b1'`); got != 0 {
		t.Errorf("the victim's Will fired (%d offline statuses)", got)
	}
}

// TestEmbeddedBrokerOpenMode: without a users file (development only) any
// device id may connect, with its id as client id, and publish under its
// own id only; nobody subscribes; Wills are checked the same way; the
// limits hold. What open mode cannot know is a device's outlet and kind.
func TestEmbeddedBrokerOpenMode(t *testing.T) {
	in := testenv.SharedInflux(t)
	addr := freeAddr(t)
	c := startCollector(t, append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_SPOOL_DIR="+t.TempDir())...)
	url := "tcp://" + addr
	if !strings.Contains(c.Output(), "development only") {
		t.Errorf("no warning about open mode:\n%s", c.Output())
	}
	for _, tc := range []struct{ id, user string }{{"om-b1", "+"}, {"#", "#"}, {"om-b1", ""}, {"other", "om-b1"}} {
		if _, err := mqttClient(t, url, tc.id, tc.user, "", true); err == nil {
			t.Errorf("open mode accepted client id %q with username %q", tc.id, tc.user)
		}
	}
	d, err := deviceClient(t, url, "om-b1", "")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute).UnixMilli()
	// Any outlet and kind: not known without the users file.
	for i, topic := range []string{"gp/v1/om-o1/bin/om-b1/telemetry", "gp/v1/om-o2/bin/om-b1/telemetry"} {
		if tok := d.Publish(topic, 1, false, binPayload(ts+int64(i), i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	waitCount(t, in, `SELECT count(seq) FROM bin WHERE device = 'om-b1'`, 2, 30*time.Second)
	sub := d.Subscribe("gp/v1/#", 1, nil)
	sub.WaitTimeout(10 * time.Second)
	if q := sub.(*mqtt.SubscribeToken).Result()["gp/v1/#"]; q != 0x80 {
		t.Errorf("subscription granted in open mode with code %#x", q)
	}
	d.Publish("gp/v1/om-o1/bin/om-b2/telemetry", 1, false, binPayload(ts, 5)).WaitTimeout(3 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() string {
		if d.IsConnectionOpen() {
			return "device still connected after publishing under another id"
		}
		return ""
	})
	if conn, code, err := rawConnect(addr, "om-b1", "om-b1", "x", "gp/v1/om-o1/bin/om-b2/status", `{"state":"offline"}`); err != nil || code != 5 {
		t.Errorf("open mode: Will on another device's topic: CONNACK %d, %v; want 5", code, err)
	} else {
		conn.Close()
	}
	if got := count(t, in, `SELECT count(seq) FROM bin WHERE device = 'om-b2'`); got != 0 {
		t.Errorf("stored %d points under another device's id", got)
	}
	big, _, err := rawConnectLarge(addr, maxRemaining)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if err := waitClosed(big, 10*time.Second); err != nil {
		t.Errorf("open mode: a CONNECT declaring 256 MB: %v", err)
	}
}

// maxRemaining is the largest packet MQTT can declare (256 MB).
const maxRemaining = 268435455

// rawConnectLarge opens a connection and sends only the fixed header of a
// CONNECT that declares size bytes.
func rawConnectLarge(addr string, size int) (net.Conn, int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	_, err = c.Write(append([]byte{0x10}, varint(size)...))
	return c, size, err
}

// TestEmbeddedBrokerPacketLimits: a CONNECT that declares 256 MB is cut at
// once instead of being buffered, a refused publish is logged without its
// payload, and no log line carries a whole packet.
func TestEmbeddedBrokerPacketLimits(t *testing.T) {
	in := testenv.SharedInflux(t)
	addr := freeAddr(t)
	c := startCollector(t, append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_EMBEDDED_BROKER_USERS_FILE="+ebUsers(t, "pl"),
		"GP_SPOOL_DIR="+t.TempDir())...)
	var conns []net.Conn
	for range 2 {
		conn, _, err := rawConnectLarge(addr, maxRemaining)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	for i, conn := range conns {
		if err := waitClosed(conn, 10*time.Second); err != nil {
			t.Errorf("connection %d declaring a 256 MB CONNECT: %v", i, err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		if got := c.metric(t, `greenpost_collector_broker_refused_total{action="packet",reason="too_large"}`); got != 2 {
			return fmt.Sprintf("refused{packet,too_large} = %v, want 2", got)
		}
		return ""
	})

	// A 60 KiB publish (under the limit) on another device's topic: refused,
	// and mochi's log of the refusal shows the packet's size, not its bytes.
	d, err := deviceClient(t, "tcp://"+addr, "pl-b1", "pw-b1")
	if err != nil {
		t.Fatal(err)
	}
	marker := strings.Repeat("PAYLOAD-MARKER-", 4000)
	d.Publish("gp/v1/pl-o1/bin/pl-b2/telemetry", 1, false, marker).WaitTimeout(3 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() string {
		if d.IsConnectionOpen() {
			return "device still connected"
		}
		if !strings.Contains(c.Output(), "error processing packet") {
			return "mochi has not logged the refused publish yet"
		}
		return ""
	})
	// A too-large publish on an authenticated connection is cut too.
	d2, err := deviceClient(t, "tcp://"+addr, "pl-b1", "pw-b1")
	if err != nil {
		t.Fatal(err)
	}
	d2.Publish("gp/v1/pl-o1/bin/pl-b1/telemetry", 1, false, strings.Repeat("x", 100<<10)).WaitTimeout(3 * time.Second)
	testenv.Eventually(t, 10*time.Second, func() string {
		if d2.IsConnectionOpen() {
			return "device still connected after a 100 KiB publish"
		}
		return ""
	})
	sc := bufio.NewScanner(strings.NewReader(c.Output()))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(sc.Text()) > 2048 {
			t.Errorf("a log line of %d bytes: %.300s…", len(sc.Text()), sc.Text())
		}
		if strings.Contains(sc.Text(), "PAYLOAD-MARKER-PAYLOAD-MARKER") {
			t.Errorf("a payload reached the log: %.300s…", sc.Text())
		}
	}
}

// inProcessBroker starts the embedded broker inside the test over real TCP,
// with limits a test can wait for, and a consumer that acknowledges every
// message at once.
func inProcessBroker(t *testing.T, lim brokerLimits, users string) (*embeddedBroker, *promMetrics, *testenv.SyncBuffer) {
	t.Helper()
	var logs testenv.SyncBuffer
	m := newPromMetrics(func() (float64, float64) { return 0, 0 })
	out := make(chan message, 16)
	stopped := make(chan struct{})
	cfg := config{EmbeddedBroker: "127.0.0.1:0", BrokerUsersFile: users, SpoolDir: t.TempDir()}
	b, err := startEmbeddedBroker(cfg, lim, out, stopped, settings.NewLogger(&logs, slog.LevelDebug, "collector"), m)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for msg := range out {
			msg.ack()
		}
	}()
	t.Cleanup(func() { close(stopped); b.Close(); close(out) })
	return b, m, &logs
}

// TestEmbeddedBrokerConnectLimits: a connection that does not complete
// CONNECT within the deadline is closed, and one address holds at most
// the configured number of connections (its slot comes back when one
// closes). Limits are shortened here; the collector uses 30 s (runtime-v1).
func TestEmbeddedBrokerConnectLimits(t *testing.T) {
	b, m, _ := inProcessBroker(t, brokerLimits{maxPacket: brokerMaxPacket, connectTimeout: 2 * time.Second, connsPerAddr: 3}, ebUsers(t, "cl"))
	idle, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte{0x10}) // half a fixed header, then nothing
	if err := waitClosed(idle, 20*time.Second); err != nil {
		t.Errorf("a connection without CONNECT: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		if got := metricValue(m.brokerRefused.WithLabelValues("connect", "connect_timeout")); got != 1 {
			return fmt.Sprintf("refused{connect_timeout} = %v, want 1", got)
		}
		return ""
	})

	// Three devices connected from 127.0.0.1 (and so past the deadline),
	// then a fourth connection from the same address is closed at once.
	var held []net.Conn
	for _, d := range []struct{ id, pw string }{{"cl-b1", "pw-b1"}, {"cl-b2", "pw-b2"}, {"cl-c1", "pw-c1"}} {
		conn, code, err := rawConnect(b.Addr(), d.id, d.id, d.pw, "", "")
		if err != nil || code != 0 {
			t.Fatalf("%s: CONNACK %d, %v", d.id, code, err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	extra, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := waitClosed(extra, 10*time.Second); err != nil {
		t.Errorf("a fourth connection from one address: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		if got := metricValue(m.brokerRefused.WithLabelValues("connect", "too_many_connections")); got != 1 {
			return fmt.Sprintf("refused{too_many_connections} = %v, want 1", got)
		}
		return ""
	})
	held[0].Close()
	testenv.Eventually(t, 10*time.Second, func() string {
		conn, code, err := rawConnect(b.Addr(), "cl-b1", "cl-b1", "pw-b1", "", "")
		if err != nil || code != 0 {
			return fmt.Sprintf("after one of three closed, a new connection: CONNACK %d, %v", code, err)
		}
		conn.Close()
		return ""
	})
}

// TestReadBrokerUsers: the users file of runtime-v1; anything else stops the
// collector at start with the line that is wrong.
func TestReadBrokerUsers(t *testing.T) {
	h := hashHex("x")
	for _, tc := range []struct {
		line, problem string
	}{
		{"device b-1 " + h + " o-1 bin", ""},
		{"device b-1 " + h + " o-1 counter", ""},
		{"collector ops " + h, ""},
		{"device b-1 " + h, "want `device"},               // the outlet and kind are required
		{"device b-1 " + h + " o-1 lamp", "kind"},         // not a kind
		{"device b-1 " + h + " O/1 bin", "outlet"},        // outlet outside the id charset
		{"device + " + h + " o-1 bin", "username"},        // CVE-2017-7650
		{"collector # " + h, "username"},                  // CVE-2017-7650
		{"device b-1 abc o-1 bin", "hash"},                // not a sha256
		{"admin ops " + h, "want `device"},                // no such role
		{"collector ops " + h + " extra", "want `device"}, // stray field
	} {
		f := filepath.Join(t.TempDir(), "users")
		os.WriteFile(f, []byte(tc.line+"\n"), 0o600)
		users, err := readBrokerUsers(f)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%q: %v", tc.line, err)
		case tc.problem == "" && len(users) != 1:
			t.Errorf("%q: %d users", tc.line, len(users))
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem) || !strings.Contains(err.Error(), "line 1")):
			t.Errorf("%q: error %v, want one about %s on line 1", tc.line, err, tc.problem)
		}
	}
	f := filepath.Join(t.TempDir(), "users")
	os.WriteFile(f, []byte("device b-1 "+h+" o-1 bin\ndevice b-1 "+h+" o-2 bin\n"), 0o600)
	if _, err := readBrokerUsers(f); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a user listed twice: %v", err)
	}
}

// TestEmbeddedBrokerDurable restarts the collector with the embedded
// broker: retained statuses and a persistent subscriber's session, with the
// messages queued for it while it was away, are still there (they live in
// GP_SPOOL_DIR/embedded-broker.db).
func TestEmbeddedBrokerDurable(t *testing.T) {
	in := testenv.SharedInflux(t)
	addr := freeAddr(t)
	url := "tcp://" + addr
	env := append(influxEnv(in), "GP_EMBEDDED_BROKER="+addr, "GP_EMBEDDED_BROKER_USERS_FILE="+ebUsers(t, "du"), "GP_SPOOL_DIR="+t.TempDir())
	c := startCollector(t, env...)

	// A persistent subscriber (clean session off) subscribes, then goes away.
	sub := func(handler mqtt.MessageHandler) mqtt.Client {
		opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("ops").SetUsername("ops").SetPassword("pw-ops").
			SetCleanSession(false).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
			SetDefaultPublishHandler(handler)
		cl := mqtt.NewClient(opts)
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscriber: %v", tok.Error())
		}
		return cl
	}
	ops := sub(func(mqtt.Client, mqtt.Message) {})
	if tok := ops.Subscribe("gp/v1/+/+/+/telemetry", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	ops.Disconnect(250)

	d, err := deviceClient(t, url, "du-b1", "pw-b1")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute).UnixMilli()
	d.Publish("gp/v1/du-o1/bin/du-b1/status", 1, true, `{"state":"online","fw":"3.1.4"}`).WaitTimeout(10 * time.Second)
	const n = 5
	for i := range n {
		if tok := d.Publish("gp/v1/du-o1/bin/du-b1/telemetry", 1, false, binPayload(ts+int64(i), i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	d.Disconnect(250)
	waitCount(t, in, countBins("du-o1"), n, 30*time.Second)

	c.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := c.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, c.Output())
	}
	startCollector(t, env...)

	// The subscriber comes back to the messages queued for it.
	got := make(chan string, 2*n)
	ops = sub(func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	defer ops.Disconnect(100)
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("after the restart the persistent subscriber got %d of the %d messages queued for it", len(seen), n)
		}
	}
	// A new subscriber gets the device's retained status.
	status := make(chan string, 1)
	if tok := ops.Subscribe("gp/v1/du-o1/+/+/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case status <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case p := <-status:
		if !strings.Contains(p, "3.1.4") {
			t.Errorf("retained status after the restart: %s", p)
		}
	case <-time.After(20 * time.Second):
		t.Error("the retained status did not survive the restart")
	}
}
