package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/settings"
)

// Settings the collector reads beyond runtime-v1 (documented in docs/collector.md).
var collectorExtra = []string{
	"GP_BATCH_SIZE", "GP_FLUSH_INTERVAL", "GP_SPOOL_MAX_BYTES", "GP_DEADLETTER_RATE",
	"GP_SHUTDOWN_TIMEOUT", "GP_EMBEDDED_BROKER_USERS_FILE", "GP_EMBEDDED_BROKER_MAX_CONNS_PER_ADDR",
}

func init() { settings.Extra = append(settings.Extra, collectorExtra...) }

// config is everything the collector reads at start.
type config struct {
	MQTTURL, MQTTUser, MQTTPassword, MQTTCAFile string
	ClientID, ShareGroup                        string
	EmbeddedBroker, BrokerUsersFile             string
	BrokerConnsPerAddr                          int // embedded broker: open connections per remote address

	InfluxURL, InfluxToken, InfluxOrg, Bucket string

	SpoolDir      string
	SpoolMaxBytes int64
	BatchSize     int           // points per InfluxDB write
	FlushInterval time.Duration // longest a point waits for a batch to fill
	DeadLetterPS  int           // dead letters written per second at most (the rest are only counted)
	ShutdownWait  time.Duration // how long SIGTERM may spend draining the spool to InfluxDB

	Addr     string
	LogLevel slog.Level
}

func loadConfig(getenv func(string) string) (config, error) {
	r := settings.NewReader(getenv)
	host, _ := os.Hostname()
	c := config{
		MQTTUser:        r.String("GP_MQTT_USERNAME", ""),
		MQTTPassword:    r.String("GP_MQTT_PASSWORD", ""),
		MQTTCAFile:      r.File("GP_MQTT_CA_FILE"),
		ClientID:        r.String("GP_MQTT_CLIENT_ID", "collector-"+strings.ToLower(host)),
		ShareGroup:      r.String("GP_MQTT_SHARE_GROUP", ""),
		EmbeddedBroker:  r.String("GP_EMBEDDED_BROKER", ""),
		BrokerUsersFile: r.File("GP_EMBEDDED_BROKER_USERS_FILE"),
		// A site behind one NAT address shows up as one address; 1024
		// connections that have not finished CONNECT hold at most 64 MiB.
		BrokerConnsPerAddr: r.Int("GP_EMBEDDED_BROKER_MAX_CONNS_PER_ADDR", 1024, 1, 1<<20),
		InfluxURL:          r.URL("GP_INFLUX_URL", "http://127.0.0.1:8086", "http", "https"),
		InfluxToken:        r.String("GP_INFLUX_TOKEN", ""),
		InfluxOrg:          r.String("GP_INFLUX_ORG", ""),
		Bucket:             r.String("GP_INFLUX_BUCKET", "gp"),
		SpoolDir:           r.String("GP_SPOOL_DIR", "./data/spool"),
		SpoolMaxBytes:      int64(r.Int("GP_SPOOL_MAX_BYTES", 1<<30, 1<<16, 1<<50)),
		BatchSize:          r.Int("GP_BATCH_SIZE", 5000, 1, 100000),
		FlushInterval:      r.Duration("GP_FLUSH_INTERVAL", 200*time.Millisecond, time.Millisecond, time.Minute),
		DeadLetterPS:       r.Int("GP_DEADLETTER_RATE", 100, 0, 1000000),
		ShutdownWait:       r.Duration("GP_SHUTDOWN_TIMEOUT", 10*time.Second, 0, 10*time.Minute),
		Addr:               r.Addr("GP_COLLECTOR_ADDR", "127.0.0.1:9100"),
		LogLevel:           r.LogLevel(),
	}
	defMQTT := "tcp://127.0.0.1:1883"
	if c.EmbeddedBroker != "" {
		r.Addr("GP_EMBEDDED_BROKER", "")
		defMQTT = "tcp://" + c.EmbeddedBroker // the collector subscribes to its own broker
	}
	c.MQTTURL = r.URL("GP_MQTT_URL", defMQTT, "tcp", "ssl", "ws", "wss")
	if c.BrokerUsersFile != "" && c.EmbeddedBroker == "" {
		r.Problem("GP_EMBEDDED_BROKER_USERS_FILE", "set without GP_EMBEDDED_BROKER")
	}
	if strings.ContainsAny(c.ShareGroup, "/+#") {
		r.Problem("GP_MQTT_SHARE_GROUP", "%q must not contain / + or #", c.ShareGroup)
	}
	if c.ClientID == "" || strings.ContainsAny(c.ClientID, "+#/") {
		r.Problem("GP_MQTT_CLIENT_ID", "%q: want a stable id without + # or /", c.ClientID)
	}
	if c.SpoolDir == "" {
		r.Problem("GP_SPOOL_DIR", "must not be empty")
	}
	return c, r.Err()
}
