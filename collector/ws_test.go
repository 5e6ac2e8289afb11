package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestWebSocketBroker runs the collector against a broker reached over
// ws:// (runtime-v1). Debian's Mosquitto here is built without WebSocket
// support, so the broker is mochi in-process with its WebSocket listener;
// devices publish over ws:// too. Every message is acknowledged and stored.
func TestWebSocketBroker(t *testing.T) {
	in := testenv.SharedInflux(t)
	url := "ws://" + startMochiWS(t) + "/mqtt"
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+url, "GP_MQTT_CLIENT_ID=ws-c", "GP_SPOOL_DIR="+t.TempDir())...)
	testenv.Eventually(t, 20*time.Second, func() string {
		if c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
			return "collector not connected over ws:\n" + c.Output()
		}
		return ""
	})
	const n = 500
	newPublisher(t, url, "ws-pub").publish(t, binMsgs("ws-o1", 3, n, time.Now().Add(-time.Hour)))
	waitCount(t, in, countBins("ws-o1"), n, 30*time.Second)
	testenv.Eventually(t, 10*time.Second, func() string {
		if got := c.metric(t, "greenpost_collector_messages_acked_total"); got != n {
			return fmt.Sprintf("acked %v, want %d", got, n)
		}
		return ""
	})
}

// startMochiWS runs a mochi broker with only a WebSocket listener on a free
// loopback port and returns its host:port. mochi binds the address itself,
// so the port is found first and the broker is waited for.
func startMochiWS(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	testenv.Eventually(t, 10*time.Second, func() string {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return "the broker's WebSocket listener is not up: " + err.Error()
		}
		c.Close()
		return ""
	})
	return addr
}

// allowAll lets every client connect, publish and subscribe: mochi refuses
// everyone without an auth hook, and the collector subscribes here with
// paho. mochi's auth.AllowHook does the same, but its package pulls a YAML
// library into go.sum for nothing.
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }
