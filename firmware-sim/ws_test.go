package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

// TestWebSocketURLs: ws:// and wss:// are accepted; the path is the URL's,
// /mqtt only when it has none; wss takes TLS and GP_MQTT_CA_FILE.
func TestWebSocketURLs(t *testing.T) {
	ca := testenv.NewCerts(t, t.TempDir()).CAFile
	for _, tc := range []struct {
		url, ca  string
		addr, ws string
		tls      bool
	}{
		{"ws://127.0.0.1:9001", "", "127.0.0.1:9001", "ws://127.0.0.1:9001/mqtt", false},
		{"ws://broker.local/ws?x=1", "", "broker.local:80", "ws://broker.local/ws?x=1", false},
		{"ws://127.0.0.1:9001/", "", "127.0.0.1:9001", "ws://127.0.0.1:9001/", false},
		{"wss://broker.local:8443", ca, "broker.local:8443", "wss://broker.local:8443/mqtt", true},
		{"wss://broker.local", "", "broker.local:443", "wss://broker.local/mqtt", true},
		{"tcp://127.0.0.1", "", "127.0.0.1:1883", "", false},
		{"ssl://broker.local", "", "broker.local:8883", "", true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			env := map[string]string{"GP_MQTT_URL": tc.url, "GP_MQTT_CA_FILE": tc.ca}
			c, err := loadConfig([]string{"firmware-sim"}, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.dial.Addr != tc.addr || c.dial.WebSocket != tc.ws || (c.dial.TLS != nil) != tc.tls {
				t.Fatalf("addr %q, websocket %q, tls %v", c.dial.Addr, c.dial.WebSocket, c.dial.TLS != nil)
			}
			if tc.ca != "" && c.dial.TLS.RootCAs == nil {
				t.Fatal("GP_MQTT_CA_FILE not used")
			}
		})
	}
}

// TestWebSocketStream checks the WebSocket adapter against a scripted
// broker (a fake at the transport seam): MQTT packets are a byte stream
// across binary messages, a text message ends the connection, a missing
// CONNACK times out, and cut() closes the TCP connection without a close
// frame.
func TestWebSocketStream(t *testing.T) {
	type session struct {
		path   string
		protos []string
		got    [][]byte // binary messages from the client, in order
		end    error    // how the client's side ended, from the broker's view
	}
	for _, tc := range []struct {
		name   string
		script [][]byte // messages the broker sends after CONNECT; nil entry: a text message
		// check runs with the connection up (dialErr nil) or the dial's error.
		check func(t *testing.T, c *mqttConn, dialErr error, acks chan uint16) bool // true: cut the connection
	}{
		{
			name: "packets across and within messages",
			// CONNACK in two messages, an empty message, then two PUBACKs and
			// a PINGRESP in one message, the last PUBACK split over two.
			script: [][]byte{{0x20}, {2, 0, 0}, {}, {0x40, 2, 0, 1, 0x40, 2, 0, 2, 0xD0, 0, 0x40}, {2, 1, 0}},
			check: func(t *testing.T, c *mqttConn, dialErr error, acks chan uint16) bool {
				if dialErr != nil {
					t.Fatal(dialErr)
				}
				if _, _, err := c.publish(nil, "gp/v1/o-1/bin/b-1/telemetry", []byte(`{}`), true, false, false); err != nil {
					t.Fatal(err)
				}
				var ids []uint16
				for len(ids) < 3 {
					select {
					case id := <-acks:
						ids = append(ids, id)
					case <-c.done:
						t.Fatalf("reader ended after acks %v: %v", ids, c.err)
					}
				}
				if !slices.Equal(ids, []uint16{1, 2, 256}) {
					t.Fatalf("acks %v", ids)
				}
				return true
			},
		},
		{
			name:   "a text message ends the connection",
			script: [][]byte{{0x20, 2, 0, 0}, nil},
			check: func(t *testing.T, c *mqttConn, dialErr error, _ chan uint16) bool {
				if dialErr != nil {
					t.Fatal(dialErr)
				}
				<-c.done
				if !errors.Is(c.err, errTextMessage) {
					t.Fatalf("reader ended with %v", c.err)
				}
				c.close()
				return false
			},
		},
		{
			name:   "no CONNACK",
			script: nil,
			check: func(t *testing.T, _ *mqttConn, dialErr error, _ chan uint16) bool {
				var ne net.Error
				if !errors.As(dialErr, &ne) || !ne.Timeout() {
					t.Fatalf("dial without CONNACK: %v, want a timeout", dialErr)
				}
				return false
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sessions := make(chan session, 1)
			up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session{path: r.URL.Path, protos: websocket.Subprotocols(r)}
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					s.end = err
					sessions <- s
					return
				}
				defer ws.Close()
				for {
					typ, b, err := ws.ReadMessage()
					if err != nil {
						s.end = err
						sessions <- s
						return
					}
					if typ == websocket.BinaryMessage {
						s.got = append(s.got, b)
					}
					if len(s.got) == 1 { // CONNECT: play the script
						for _, m := range tc.script {
							typ := websocket.BinaryMessage
							if m == nil {
								typ, m = websocket.TextMessage, []byte("hello")
							}
							ws.WriteMessage(typ, m)
						}
					}
				}
			}))
			defer srv.Close()
			cfg := dialConfig{Addr: srv.Listener.Addr().String(), WebSocket: "ws://" + srv.Listener.Addr().String() + "/mqtt",
				Timeout: 300 * time.Millisecond, KeepAlive: time.Minute}
			acks := make(chan uint16, 8)
			c, err := dialMQTT(context.Background(), cfg, "b-1", "b-1", &will{Topic: "t", Payload: "p"}, func(id uint16) { acks <- id })
			cut := tc.check(t, c, err, acks)
			if cut {
				c.cut()
			}
			var s session
			select {
			case s = <-sessions:
			case <-time.After(10 * time.Second):
				t.Fatal("the broker's side never ended")
			}
			if s.path != "/mqtt" || !slices.Equal(s.protos, []string{"mqtt"}) {
				t.Fatalf("path %q, subprotocols %q", s.path, s.protos)
			}
			if len(s.got) == 0 || s.got[0][0] != 0x10 {
				t.Fatalf("first message %x, want CONNECT", s.got)
			}
			if cut {
				if len(s.got) != 2 || s.got[1][0]&0xF0 != 0x30 {
					t.Fatalf("messages %x, want CONNECT and PUBLISH", s.got)
				}
				// gorilla reports a connection that ends without a close
				// frame as 1006 (abnormal closure).
				if !websocket.IsCloseError(s.end, websocket.CloseAbnormalClosure) {
					t.Fatalf("cut() ended the session with %v, want a dropped connection", s.end)
				}
			}
		})
	}
}

// TestWebSocketHandshakeRefused: a 4xx answer to the WebSocket handshake
// (wrong path, credentials) is final, like a refused CONNECT, so live mode
// does not retry it forever; a 5xx may pass and is retried.
func TestWebSocketHandshakeRefused(t *testing.T) {
	for _, tc := range []struct {
		status int
		final  bool
	}{{http.StatusNotFound, true}, {http.StatusUnauthorized, true}, {http.StatusServiceUnavailable, false}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
			defer srv.Close()
			addr := srv.Listener.Addr().String()
			_, err := dialMQTT(context.Background(), dialConfig{Addr: addr, WebSocket: "ws://" + addr + "/mqtt", Timeout: 5 * time.Second},
				"b-1", "b-1", nil, nil)
			if err == nil || errors.Is(err, errRefused) != tc.final {
				t.Fatalf("HTTP %d: %v; want final=%v", tc.status, err, tc.final)
			}
		})
	}
}

// TestWebSocketBroker runs a small live city over ws:// and wss:// against
// an in-process mochi broker (Debian's Mosquitto here has no WebSocket
// support), with connections cut by the offline and reboot faults. A paho
// subscriber over the same transport gets every report the truth counts,
// every message passes telemetry.Decode, and the cuts fire Last Wills.
func TestWebSocketBroker(t *testing.T) {
	dir := t.TempDir()
	certs := testenv.NewCerts(t, dir)
	ca, roots, cert := certs.CAFile, certs.Roots, certs.Server
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"ws", false}, {"wss", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var srvTLS, cliTLS *tls.Config
			if tc.tls {
				srvTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
				cliTLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			}
			addr := startMochiWS(t, srvTLS)
			url := tc.name + "://" + addr + "/mqtt"
			l := listenWS(t, url, cliTLS)
			truthFile := filepath.Join(dir, tc.name+"-truth.json")
			s := runSim(t, map[string]string{"GP_MQTT_URL": url, "GP_MQTT_CA_FILE": ca},
				"-outlets", "2", "-bins", "2", "-interval", "50ms", "-reports", "20", "-speed", "1200", "-seed", "7",
				"-truth", truthFile, "-faults", "offline,reboot", "-offline-rate", "0.1", "-offline-for", "100ms", "-reboot-rate", "0.05")
			if s["self_check_failures"].(float64) != 0 || s["offline_spells"].(float64) == 0 || s["reboots"].(float64) == 0 {
				t.Fatalf("summary %v: want no self-check failures, offline spells and reboots", s)
			}
			truth := readTruth(t, truthFile)
			want := truth.Reports()
			if want == 0 {
				t.Fatal("the truth counts no reports")
			}
			type key struct {
				device    string
				boot, seq int64
			}
			reports := map[key]bool{}
			wills := 0
			// Wills arrive unacknowledged and a report may arrive twice (QoS
			// 1), so wait for the distinct reports, not a message count.
			waitFor(t, 20*time.Second, fmt.Sprintf("%d reports and a Last Will", want), func() bool {
				clear(reports)
				wills = 0
				for _, r := range l.all() {
					msg, err := telemetry.Decode(r.topic, r.payload, r.at)
					if err != nil {
						t.Fatalf("%s %s: %v", r.topic, r.payload, err)
					}
					if msg.Topic.Channel == telemetry.ChannelStatus {
						if string(r.payload) == city.WillPayload {
							wills++
						}
						continue
					}
					reports[key{msg.Topic.Device, msg.Boot, msg.Seq}] = true
				}
				return len(reports) >= want && wills > 0
			})
			if len(reports) != want {
				t.Fatalf("received %d distinct reports, the truth counts %d", len(reports), want)
			}
		})
	}
}

// startMochiWS runs a mochi broker with only a WebSocket listener (TLS when
// given) on a free loopback port and returns its host:port. mochi binds the
// address itself, so the port is found first and the broker is waited for.
func startMochiWS(t *testing.T, tlsCfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// Warnings left out: mochi warns about every connection cut on purpose.
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr, TLSConfig: tlsCfg})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	waitFor(t, 10*time.Second, "the broker's WebSocket listener", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// allowAll lets every client connect, publish and subscribe (mochi refuses
// everyone without an auth hook). mochi's own auth.AllowHook would do the
// same, but its package pulls a YAML library into go.sum for nothing.
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// listenWS is listen over a WebSocket (wss with tlsCfg).
func listenWS(t *testing.T, url string, tlsCfg *tls.Config) *listener {
	t.Helper()
	l := &listener{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("sim-ws-listener").SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetTLSConfig(tlsCfg).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			l.mu.Lock()
			l.msgs = append(l.msgs, received{m.Topic(), slices.Clone(m.Payload()), m.Retained(), time.Now()})
			l.mu.Unlock()
		})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("listener connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("gp/v1/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return l
}
