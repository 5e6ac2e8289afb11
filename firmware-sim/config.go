package main

import (
	"flag"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/settings"
)

// Faults the simulator can inject (runtime-v1).
var knownFaults = []string{"reboot", "offline", "duplicate", "skew", "malformed"}

// config is everything the simulator reads at start: runtime-v1's flags
// and the MQTT settings it shares with the collector.
type config struct {
	MQTTURL, MQTTUser, MQTTPassword, MQTTCAFile string

	Outlets, Bins      int
	Interval, Duration time.Duration
	Seed               int64
	TruthFile          string
	RegistryFile       string
	Faults             []string
	LogLevel           slog.Level
}

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	r := settings.NewReader(getenv)
	c := config{
		MQTTURL:      r.URL("GP_MQTT_URL", "tcp://127.0.0.1:1883", "tcp", "ssl", "ws", "wss"),
		MQTTUser:     r.String("GP_MQTT_USERNAME", ""),
		MQTTPassword: r.String("GP_MQTT_PASSWORD", ""),
		MQTTCAFile:   r.File("GP_MQTT_CA_FILE"),
		LogLevel:     r.LogLevel(),
	}
	fs := flag.NewFlagSet("firmware-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Outlets, "outlets", 50, "outlets to simulate (each with its bins and one parcel counter)")
	fs.IntVar(&c.Bins, "bins", 2, "recycling bins per outlet")
	fs.DurationVar(&c.Interval, "interval", 60*time.Second, "report interval of each device")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to run (wall time); 0 runs until stopped")
	fs.Int64Var(&c.Seed, "seed", 1, "the same seed gives the same devices and the same data")
	fs.StringVar(&c.TruthFile, "truth", "", "write the ground truth as JSON at the end")
	fs.StringVar(&c.RegistryFile, "registry", "", "write the simulated outlets as registry CSV at the start")
	faults := fs.String("faults", "", "comma-separated faults: "+strings.Join(knownFaults, ", "))
	if err := fs.Parse(args[1:]); err != nil {
		r.Problem("flags", "%v", err)
		return c, r.Err()
	}
	if fs.NArg() > 0 {
		r.Problem("flags", "unexpected arguments %q", fs.Args())
	}
	if c.Outlets < 1 || c.Outlets > 100000 {
		r.Problem("-outlets", "%d: want 1 to 100000", c.Outlets)
	}
	if c.Bins < 0 || c.Bins > 16 {
		r.Problem("-bins", "%d: want 0 to 16", c.Bins)
	}
	if c.Interval < 10*time.Millisecond {
		r.Problem("-interval", "%v: want at least 10ms", c.Interval)
	}
	if c.Duration < 0 {
		r.Problem("-duration", "%v: want 0 or more", c.Duration)
	}
	if *faults != "" {
		for _, f := range strings.Split(*faults, ",") {
			if !slices.Contains(knownFaults, f) {
				r.Problem("-faults", "unknown fault %q (known: %s)", f, strings.Join(knownFaults, ", "))
			}
			c.Faults = append(c.Faults, f)
		}
	}
	return c, r.Err()
}
