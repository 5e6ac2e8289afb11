package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/greenpost/greenpost/internal/settings"
)

// config is everything the collector reads at start (runtime-v1).
type config struct {
	MQTTURL, MQTTUser, MQTTPassword, MQTTCAFile string
	ClientID, ShareGroup, EmbeddedBroker        string
	InfluxURL, InfluxToken, InfluxOrg, Bucket   string
	SpoolDir, Addr                              string
	LogLevel                                    slog.Level
}

func loadConfig(getenv func(string) string) (config, error) {
	r := settings.NewReader(getenv)
	host, _ := os.Hostname()
	c := config{
		MQTTURL:        r.URL("GP_MQTT_URL", "tcp://127.0.0.1:1883", "tcp", "ssl", "ws", "wss"),
		MQTTUser:       r.String("GP_MQTT_USERNAME", ""),
		MQTTPassword:   r.String("GP_MQTT_PASSWORD", ""),
		MQTTCAFile:     r.File("GP_MQTT_CA_FILE"),
		ClientID:       r.String("GP_MQTT_CLIENT_ID", "collector-"+strings.ToLower(host)),
		ShareGroup:     r.String("GP_MQTT_SHARE_GROUP", ""),
		EmbeddedBroker: r.String("GP_EMBEDDED_BROKER", ""),
		InfluxURL:      r.URL("GP_INFLUX_URL", "http://127.0.0.1:8086", "http", "https"),
		InfluxToken:    r.String("GP_INFLUX_TOKEN", ""),
		InfluxOrg:      r.String("GP_INFLUX_ORG", ""),
		Bucket:         r.String("GP_INFLUX_BUCKET", "gp"),
		SpoolDir:       r.String("GP_SPOOL_DIR", "./data/spool"),
		Addr:           r.Addr("GP_COLLECTOR_ADDR", "127.0.0.1:9100"),
		LogLevel:       r.LogLevel(),
	}
	if c.EmbeddedBroker != "" {
		r.Addr("GP_EMBEDDED_BROKER", "")
	}
	if strings.ContainsAny(c.ShareGroup, "/+#") {
		r.Problem("GP_MQTT_SHARE_GROUP", "%q must not contain / + or #", c.ShareGroup)
	}
	if c.ClientID == "" || strings.ContainsAny(c.ClientID, "+#/") {
		r.Problem("GP_MQTT_CLIENT_ID", "%q: want a stable id without + # or /", c.ClientID)
	}
	return c, r.Err()
}
