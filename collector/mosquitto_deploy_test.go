package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/testenv"
)

// shippedMosquitto is Debian's mosquitto running one of deploy/'s
// Mosquitto configs with the password file and ACL that `gpctl provision`
// wrote. Only the site's lines differ from the shipped file: the paths
// (into the provisioned directory and the certificates), the port, and the
// user (root, which can read the test's 0600 files). Every other line, the
// whole policy, is the shipped one.
type shippedMosquitto struct {
	*testenv.Mosquitto
	url   string // ssl://localhost:port
	certs testenv.Certs
	creds map[string]string // username → password, from credentials.csv
}

// shippedConfig is one Mosquitto config under deploy/: where it is, the
// paths it names as shipped, and how a test gets the files it needs.
type shippedConfig struct {
	file                                  string // relative to the repository
	passwd, acl, ca, cert, key, persisted string // as the shipped file names them
	// prepare makes the provisioned files (registry and devices given) and
	// the certificates, as an operator of this install would.
	prepare func(t *testing.T, registry, devices, collectors string) (provDir string, certs testenv.Certs)
}

var shippedConfigs = []shippedConfig{
	{
		file:   "deploy/cluster/mosquitto/mosquitto.conf",
		passwd: "/etc/mosquitto/passwd", acl: "/etc/mosquitto/acl", ca: "/etc/mosquitto/certs/ca.pem",
		cert: "/etc/mosquitto/certs/server.pem", key: "/etc/mosquitto/certs/server.key", persisted: "/var/lib/mosquitto/",
		prepare: func(t *testing.T, registry, devices, collectors string) (string, testenv.Certs) {
			return provisionFiles(t, registry, devices, collectors), testenv.NewCerts(t, t.TempDir())
		},
	},
	{
		// The compose install, with what its setup.sh makes: gpctl
		// provision's files and its own CA and server certificate.
		file:   "deploy/compose/mosquitto/mosquitto.conf",
		passwd: "/mosquitto/secrets/passwd", acl: "/mosquitto/secrets/acl", ca: "/mosquitto/secrets/ca.pem",
		cert: "/mosquitto/secrets/server.pem", key: "/mosquitto/secrets/server.key", persisted: "/mosquitto/data/",
		prepare: func(t *testing.T, registry, devices, collectors string) (string, testenv.Certs) {
			if collectors != "collector-1,collector-2" {
				t.Fatalf("compose's setup.sh provisions collector-1 and collector-2, not %s", collectors)
			}
			dir := t.TempDir()
			reg, dev := filepath.Join(dir, "registry.csv"), filepath.Join(dir, "devices.csv")
			os.WriteFile(reg, []byte(registry), 0o644)
			os.WriteFile(dev, []byte(devices), 0o644)
			secrets := filepath.Join(dir, "secrets")
			testenv.ComposeSetup(t, secrets, "-registry", reg, "-devices", dev)
			certs := testenv.Certs{CAFile: filepath.Join(secrets, "certs", "ca.pem"), CertFile: filepath.Join(secrets, "certs", "server.pem"),
				KeyFile: filepath.Join(secrets, "certs", "server.key"), Roots: x509.NewCertPool()}
			ca, err := os.ReadFile(certs.CAFile)
			if err != nil || !certs.Roots.AppendCertsFromPEM(ca) {
				t.Fatalf("setup.sh's CA: %v", err)
			}
			return filepath.Join(secrets, "provision"), certs
		},
	},
}

func startShippedMosquitto(t *testing.T, sc shippedConfig, devices, collectors string) *shippedMosquitto {
	t.Helper()
	shipped, err := os.ReadFile(filepath.Join("..", sc.file))
	if err != nil {
		t.Fatal(err)
	}
	provDir, certs := sc.prepare(t, msRegistry, devices, collectors)
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	user := "user mosquitto"
	if os.Geteuid() == 0 {
		user = "user root"
	}
	site := map[string]string{
		"listener 8883":                        "listener " + port + " 127.0.0.1",
		"password_file " + sc.passwd:           "password_file " + filepath.Join(provDir, provision.MosquittoPasswd),
		"acl_file " + sc.acl:                   "acl_file " + filepath.Join(provDir, provision.MosquittoACL),
		"cafile " + sc.ca:                      "cafile " + certs.CAFile,
		"certfile " + sc.cert:                  "certfile " + certs.CertFile,
		"keyfile " + sc.key:                    "keyfile " + certs.KeyFile,
		"persistence_location " + sc.persisted: "persistence_location " + dir + "/",
		"user mosquitto":                       user,
	}
	var conf bytes.Buffer
	for _, line := range strings.Split(string(shipped), "\n") {
		if v, ok := site[line]; ok {
			delete(site, line)
			line = v
		}
		conf.WriteString(line + "\n")
	}
	if len(site) > 0 {
		t.Fatalf("the shipped %s lacks the site lines %v: update this test with it", sc.file, site)
	}
	path := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(path, conf.Bytes(), 0o644)
	creds, err := provision.ReadCredentials(filepath.Join(provDir, provision.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	m := &shippedMosquitto{Mosquitto: testenv.StartMosquittoConfig(t, path, addr), url: "ssl://localhost:" + port, certs: certs,
		creds: map[string]string{}}
	for _, c := range creds {
		m.creds[c.Username] = c.Password
	}
	return m
}

// client connects over TLS as user with the given client id.
func (m *shippedMosquitto) client(t *testing.T, clientID, user, pass string, handler mqtt.MessageHandler) (mqtt.Client, error) {
	t.Helper()
	return mqttClient(t, m.url, clientID, user, pass, true, func(o *mqtt.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: m.certs.Roots, MinVersion: tls.VersionTLS12}).SetDefaultPublishHandler(handler)
	})
}

// msRegistry is a registry of two outlets.
const msRegistry = "id,name,district,address,lat,lon,operator,active\n" +
	"ms-o1,One,jianghan,,30.6,114.3,SF Express,true\nms-o2,Two,wuchang,,30.5,114.3,JD Logistics,true\n"

// provisionFiles runs `gpctl provision` on a registry and a device list,
// as an operator would.
func provisionFiles(t *testing.T, registry, devices string, collectors string) string {
	t.Helper()
	dir := t.TempDir()
	reg, dev := filepath.Join(dir, "registry.csv"), filepath.Join(dir, "devices.csv")
	os.WriteFile(reg, []byte(registry), 0o644)
	os.WriteFile(dev, []byte(devices), 0o644)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if err := provision.Run([]string{"-out", out, "-registry", reg, "-devices", dev, "-collectors", collectors}, &stdout, &stderr); err != nil {
		t.Fatalf("provision: %v\n%s", err, stderr.String())
	}
	return out
}

const msDevices = "device,outlet,kind\nms-b1,ms-o1,bin\nms-b2,ms-o1,bin\nms-c1,ms-o1,counter\nms-b3,ms-o2,bin\n"

// TestMosquittoShippedConfig runs the collector against Debian's Mosquitto
// with exactly each shipped config (the cluster's, and compose's with the
// files its setup.sh makes) and the provisioned users: wrong credentials
// are refused, the collector user reads through $share, a device publishes
// (and leaves a Will) only under its own outlet, kind and id, and a device
// connecting with the collector's client id takes nothing over: the
// collector keeps its session and no device message is lost.
func TestMosquittoShippedConfig(t *testing.T) {
	for _, sc := range shippedConfigs {
		t.Run(sc.file, func(t *testing.T) {
			testShippedMosquitto(t, startShippedMosquitto(t, sc, msDevices, "collector-1,collector-2"))
		})
	}
}

func testShippedMosquitto(t *testing.T, mq *shippedMosquitto) {
	// Its own InfluxDB: every config runs the same devices and counts.
	in := testenv.StartInflux(t)
	pwFile := filepath.Join(t.TempDir(), "mqtt-password")
	os.WriteFile(pwFile, []byte(mq.creds["collector-1"]+"\n"), 0o600)
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.url, "GP_MQTT_CA_FILE="+mq.certs.CAFile,
		"GP_MQTT_USERNAME=collector-1", "GP_MQTT_PASSWORD_FILE="+pwFile, "GP_MQTT_SHARE_GROUP=collector",
		"GP_MQTT_CLIENT_ID=collector-host-1", "GP_SPOOL_DIR="+t.TempDir())...)
	testenv.Eventually(t, 30*time.Second, func() string {
		if c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
			return "collector not connected and subscribed through $share:\n" + c.Output() + "\n" + mq.Log()
		}
		return ""
	})

	t.Run("credentials", func(t *testing.T) {
		for _, tc := range []struct{ user, pass string }{
			{"ms-b1", "wrong"}, {"ms-b1", mq.creds["ms-b2"]}, {"nobody", mq.creds["ms-b1"]}, {"", ""}, {"collector-1", mq.creds["collector-2"]},
		} {
			if _, err := mq.client(t, "x-"+tc.user, tc.user, tc.pass, nil); err == nil {
				t.Errorf("connected as %q with a wrong password", tc.user)
			}
		}
		for _, user := range []string{"ms-b1", "collector-2"} {
			if _, err := mq.client(t, user, user, mq.creds[user], nil); err != nil {
				t.Errorf("%s with its provisioned password: %v", user, err)
			}
		}
	})

	ts := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	dev, err := mq.client(t, "ms-b1", "ms-b1", mq.creds["ms-b1"], nil)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(cl mqtt.Client, topic, payload string) {
		t.Helper()
		if tok := cl.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}

	t.Run("session takeover", func(t *testing.T) {
		// A device with valid credentials connects with the collector's
		// client ids (the configured one and its username), and stays,
		// while its neighbour publishes.
		var attackers []mqtt.Client
		for _, a := range []struct{ id, user string }{{"collector-host-1", "ms-b2"}, {"collector-1", "ms-b3"}} {
			a, err := mq.client(t, a.id, a.user, mq.creds[a.user], func(mqtt.Client, mqtt.Message) {
				t.Error("the attacker received a message")
			})
			if err != nil {
				t.Fatalf("the device could not connect at all: %v", err)
			}
			attackers = append(attackers, a)
		}
		const n = 200
		for i := range n {
			publish(dev, "gp/v1/ms-o1/bin/ms-b1/telemetry", binPayload(ts+int64(i), i))
		}
		waitCount(t, in, `SELECT count(seq) FROM bin WHERE device = 'ms-b1'`, n, 30*time.Second)
		for _, a := range attackers {
			if !a.IsConnectionOpen() {
				t.Error("an attacker was disconnected: it shared a client id after all")
			}
		}
		if got := c.metric(t, "greenpost_collector_mqtt_connects_total"); got != 1 {
			t.Errorf("the collector connected %v times: it was kicked\n%s\n%s", got, mq.Log(), c.Output())
		}
	})

	t.Run("device binding", func(t *testing.T) {
		forged := []struct{ topic, payload string }{
			{"gp/v1/ms-o2/bin/ms-b1/telemetry", binPayload(ts, 1)},                                                             // another outlet
			{"gp/v1/ms-o1/counter/ms-b1/telemetry", fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"parcels":{"reusable":1000}}`, ts)}, // another kind
			{"gp/v1/ms-o1/bin/ms-b2/telemetry", binPayload(ts+5000, 1)},                                                        // another device
			{"gp/v1/ms-o2/bin/ms-b3/status", `{"state":"offline"}`},                                                            // another device's status
		}
		for _, f := range forged {
			publish(dev, f.topic, f.payload) // Mosquitto acknowledges and drops it (MQTT 3.1.1)
		}
		// A Will on another device's counter: accepted at CONNECT, never sent.
		will, code, err := rawConnectTLS(mq, "ms-b2", mq.creds["ms-b2"], "gp/v1/ms-o1/counter/ms-c1/telemetry",
			fmt.Sprintf(`{"ts":%d,"seq":9,"boot":1,"parcels":{"plastic":4242}}`, ts))
		if err != nil || code != 0 {
			t.Fatalf("CONNACK %d, %v", code, err)
		}
		will.Close()
		// Its own topic afterwards: once this is stored, anything forged
		// before it would have been too (one connection, one collector).
		publish(dev, "gp/v1/ms-o1/bin/ms-b1/status", `{"state":"online","fw":"1.0.0"}`)
		waitCount(t, in, `SELECT count(state) FROM device_status WHERE device = 'ms-b1'`, 1, 30*time.Second)
		c1, err := mq.client(t, "ms-c1", "ms-c1", mq.creds["ms-c1"], nil)
		if err != nil {
			t.Fatal(err)
		}
		publish(c1, "gp/v1/ms-o1/counter/ms-c1/status", `{"state":"online","fw":"1.0.0"}`)
		waitCount(t, in, `SELECT count(state) FROM device_status WHERE device = 'ms-c1'`, 1, 30*time.Second)
		for _, q := range []string{countBins("ms-o2"), `SELECT count(seq) FROM counter WHERE outlet = 'ms-o1'`,
			`SELECT count(seq) FROM bin WHERE device = 'ms-b2'`, `SELECT count(state) FROM device_status WHERE device = 'ms-b3'`} {
			if got := count(t, in, q); got != 0 {
				t.Errorf("%s = %d: a forged publish or Will was stored", q, got)
			}
		}
	})

	t.Run("devices cannot read", func(t *testing.T) {
		got := make(chan string, 10)
		spy, err := mq.client(t, "ms-b3", "ms-b3", mq.creds["ms-b3"], func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() })
		if err != nil {
			t.Fatal(err)
		}
		spy.Subscribe("gp/v1/#", 1, nil).WaitTimeout(10 * time.Second)
		spy.Subscribe("$share/collector/gp/v1/#", 1, nil).WaitTimeout(10 * time.Second)
		publish(dev, "gp/v1/ms-o1/bin/ms-b1/telemetry", binPayload(ts+9000, 9000))
		waitCount(t, in, `SELECT count(seq) FROM bin WHERE device = 'ms-b1'`, 201, 30*time.Second)
		select {
		case topic := <-got:
			t.Errorf("a device read %s", topic)
		default:
		}
	})
}

// rawConnectTLS is rawConnect over the shipped broker's TLS listener.
func rawConnectTLS(mq *shippedMosquitto, user, pass, willTopic, willPayload string) (net.Conn, byte, error) {
	return rawConnectDial(func() (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", mq.Addr,
			&tls.Config{RootCAs: mq.certs.Roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	}, user, user, pass, willTopic, willPayload)
}
