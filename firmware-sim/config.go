package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Faults the simulator can inject (runtime-v1).
var knownFaults = []string{"reboot", "offline", "duplicate", "skew", "malformed"}

// Modes of the simulator.
const (
	modeLive    = "live"    // the believable city in real time (default)
	modeLoad    = "load"    // a fixed number of messages as fast as asked, for load tests
	modeHistory = "history" // days of past data, fast, over MQTT or straight to InfluxDB
)

// faultConfig holds how often each fault strikes; a fault that is not
// enabled has rate 0. Rates are per report of a device.
type faultConfig struct {
	RebootRate    float64       `json:"reboot_rate"`
	OfflineRate   float64       `json:"offline_rate"`
	OfflineFor    time.Duration `json:"-"`
	DuplicateRate float64       `json:"duplicate_rate"`
	SkewShare     float64       `json:"skew_share"` // share of devices with a skewed clock
	SkewMax       time.Duration `json:"-"`
	MalformedRate float64       `json:"malformed_rate"`
}

// config is everything the simulator reads at start: runtime-v1's flags,
// the MQTT settings it shares with the collector, and InfluxDB's for
// history written straight to the database.
type config struct {
	MQTTURL, MQTTUser, MQTTPassword, MQTTCAFile     string
	InfluxURL, InfluxToken, InfluxOrg, InfluxBucket string

	Mode          string
	Outlets, Bins int
	// Slice K of Slices: this process simulates the K-th of Slices equal
	// runs of the city's outlets (1 of 1: all of them), so that several
	// processes together run each device of one city once.
	Slice, Slices      int
	Interval, Duration time.Duration
	Jitter             float64
	Speed              float64
	Reports            int
	Seed               int64
	TruthFile          string
	CredentialsFile    string
	RegistryFile       string
	ActiveSince        time.Time // the registry's active_since; zero: the start of this run's data
	DistrictsFile      string
	Districts          []city.District
	Faults             []string
	Fault              faultConfig
	ScenarioFile       string

	Messages    int
	Rate        float64
	Workers     int
	MaxInflight int
	Status      bool

	Days   int
	Step   time.Duration
	End    time.Time
	Influx bool

	KeepAlive  time.Duration
	Timeout    time.Duration
	AckTimeout time.Duration
	LogLevel   slog.Level

	dial dialConfig
	// Set by run: the whole city's devices, and the index in it of this
	// slice's first device (spreads connections over loopback addresses
	// the same way whichever process runs a device).
	cityDevices, firstDevice int
}

func (c *config) faultOn(name string) bool { return slices.Contains(c.Faults, name) }

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	r := settings.NewReader(getenv)
	c := config{
		MQTTURL:      r.URL("GP_MQTT_URL", "tcp://127.0.0.1:1883", "tcp", "ssl", "ws", "wss"),
		MQTTUser:     r.String("GP_MQTT_USERNAME", ""),
		MQTTPassword: r.String("GP_MQTT_PASSWORD", ""),
		MQTTCAFile:   r.File("GP_MQTT_CA_FILE"),
		InfluxURL:    r.URL("GP_INFLUX_URL", "http://127.0.0.1:8086", "http", "https"),
		InfluxToken:  r.String("GP_INFLUX_TOKEN", ""),
		InfluxOrg:    r.String("GP_INFLUX_ORG", ""),
		InfluxBucket: r.String("GP_INFLUX_BUCKET", "gp"),
		LogLevel:     r.LogLevel(),
	}
	fs := flag.NewFlagSet("firmware-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Mode, "mode", modeLive, "live (the city in real time), load (publish -messages as fast as -rate allows) or history (-days of past data)")
	fs.IntVar(&c.Outlets, "outlets", 50, "outlets to simulate (each with its bins and one parcel counter)")
	fs.IntVar(&c.Bins, "bins", 2, "recycling bins per outlet")
	slice := fs.String("slice", "1/1", "K/N: simulate only the K-th of N equal runs of the city's outlets (the registry still lists the whole city); N processes with 1/N … N/N run each device once")
	fs.DurationVar(&c.Interval, "interval", 60*time.Second, "report interval of each device")
	fs.Float64Var(&c.Jitter, "jitter", 0.1, "live: each report comes up to this share of the interval early or late")
	fs.Float64Var(&c.Speed, "speed", 1, "live: the city's clock runs this many times faster than the wall clock (600: a day in 2.4 minutes)")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to run (wall time); 0 runs until stopped")
	fs.IntVar(&c.Reports, "reports", 0, "live: each device stops after this many report slots (0: no limit)")
	fs.Int64Var(&c.Seed, "seed", 1, "the same seed gives the same devices and the same data")
	fs.StringVar(&c.TruthFile, "truth", "", "write the ground truth as JSON at the end")
	fs.StringVar(&c.RegistryFile, "registry", "", "write the simulated outlets as registry CSV at the start")
	fs.StringVar(&c.CredentialsFile, "credentials", "", "credentials.csv of gpctl provision: each device logs in with its own password")
	activeSince := fs.String("active-since", "", "the registry's active_since, RFC 3339 (default: the start of this run's data, rounded down to the minute)")
	fs.StringVar(&c.DistrictsFile, "districts", "", "CSV of districts (id,name,lat,lon,spread,weight); default Wuhan's 13")
	faults := fs.String("faults", "", "comma-separated faults: "+strings.Join(knownFaults, ", "))
	fs.StringVar(&c.ScenarioFile, "scenario", "", "JSON file of fault rates (see docs/firmware-sim.md); enables the faults it names")
	fs.Float64Var(&c.Fault.RebootRate, "reboot-rate", 0.002, "reboot: chance per report that the device restarts")
	fs.Float64Var(&c.Fault.OfflineRate, "offline-rate", 0.002, "offline: chance per report that the connection drops")
	fs.DurationVar(&c.Fault.OfflineFor, "offline-for", 0, "offline: mean length of a spell (default 5 intervals)")
	fs.Float64Var(&c.Fault.DuplicateRate, "duplicate-rate", 0.01, "duplicate: chance per report that it is published twice")
	fs.Float64Var(&c.Fault.SkewShare, "skew-share", 0.2, "skew: share of devices whose clock is off")
	fs.DurationVar(&c.Fault.SkewMax, "skew-max", 10*time.Minute, "skew: largest clock error, either way")
	fs.Float64Var(&c.Fault.MalformedRate, "malformed-rate", 0.01, "malformed: chance per report that a malformed message goes instead")
	fs.IntVar(&c.Messages, "messages", 10000, "load: telemetry messages to publish in total")
	fs.Float64Var(&c.Rate, "rate", 0, "load, history over MQTT: messages per second in total (0: as fast as possible)")
	fs.IntVar(&c.Workers, "workers", 0, "load, history: publishing goroutines (default 4 per CPU)")
	fs.IntVar(&c.MaxInflight, "max-inflight", 32, "load, history: unacknowledged QoS 1 messages per device")
	fs.BoolVar(&c.Status, "status", false, "load: publish the retained online status of every device after connecting")
	fs.IntVar(&c.Days, "days", 1, "history: days of data before -end")
	fs.DurationVar(&c.Step, "step", 5*time.Minute, "history: report interval")
	end := fs.String("end", "", "history: end of the data, RFC 3339 (default now, rounded down to the step)")
	fs.BoolVar(&c.Influx, "influx", false, "history: write straight to InfluxDB (GP_INFLUX_*) instead of over MQTT")
	fs.DurationVar(&c.KeepAlive, "keepalive", 60*time.Second, "MQTT keepalive of each device")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "bound on each network step (dial, CONNACK, write, PUBACK)")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", 60*time.Second, "load, history: how long to wait for the last acknowledgements")
	if err := fs.Parse(args[1:]); err != nil {
		r.Problem("flags", "%v", err)
		return c, r.Err()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		r.Problem("flags", "unexpected arguments %q", fs.Args())
	}
	if !slices.Contains([]string{modeLive, modeLoad, modeHistory}, c.Mode) {
		r.Problem("-mode", "%q: want live, load or history", c.Mode)
	}
	if c.Outlets < 1 || c.Outlets > 100000 {
		r.Problem("-outlets", "%d: want 1 to 100000", c.Outlets)
	}
	if c.Bins < 0 || c.Bins > 16 {
		r.Problem("-bins", "%d: want 0 to 16", c.Bins)
	}
	if _, err := fmt.Sscanf(*slice, "%d/%d", &c.Slice, &c.Slices); err != nil || fmt.Sprintf("%d/%d", c.Slice, c.Slices) != *slice ||
		c.Slices < 1 || c.Slice < 1 || c.Slice > c.Slices || c.Slices > c.Outlets {
		r.Problem("-slice", "%q: want K/N with 1 ≤ K ≤ N ≤ -outlets", *slice)
	}
	if c.Interval < 10*time.Millisecond {
		r.Problem("-interval", "%v: want at least 10ms", c.Interval)
	}
	if c.Jitter < 0 || c.Jitter > 0.5 {
		r.Problem("-jitter", "%v: want 0 to 0.5", c.Jitter)
	}
	if c.Speed < 1 || c.Speed > 100000 {
		r.Problem("-speed", "%v: want 1 to 100000", c.Speed)
	}
	if c.Duration < 0 {
		r.Problem("-duration", "%v: want 0 or more", c.Duration)
	}
	if c.Reports < 0 {
		r.Problem("-reports", "%d: want 0 or more", c.Reports)
	}
	if *faults != "" {
		for _, f := range strings.Split(*faults, ",") {
			if !slices.Contains(knownFaults, f) {
				r.Problem("-faults", "unknown fault %q (known: %s)", f, strings.Join(knownFaults, ", "))
			}
			if !slices.Contains(c.Faults, f) {
				c.Faults = append(c.Faults, f)
			}
		}
	}
	if c.ScenarioFile != "" {
		c.readScenario(r, set)
	}
	if c.Fault.OfflineFor == 0 {
		c.Fault.OfflineFor = 5 * c.Interval
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"reboot-rate", c.Fault.RebootRate}, {"offline-rate", c.Fault.OfflineRate}, {"duplicate-rate", c.Fault.DuplicateRate},
		{"skew-share", c.Fault.SkewShare}, {"malformed-rate", c.Fault.MalformedRate}} {
		if p.v < 0 || p.v > 1 {
			r.Problem("-"+p.name, "%v: want 0 to 1", p.v)
		}
	}
	if c.Fault.OfflineFor < 0 {
		r.Problem("-offline-for", "%v: want more than 0", c.Fault.OfflineFor)
	}
	// ts may be at most 24 h ahead (telemetry-v1); a skewed device must
	// still send valid messages.
	if c.Fault.SkewMax < 0 || c.Fault.SkewMax > 12*time.Hour {
		r.Problem("-skew-max", "%v: want 0 to 12h", c.Fault.SkewMax)
	}
	// A fault that is not enabled does not strike, whatever its rate says.
	for name, rate := range map[string]*float64{"reboot": &c.Fault.RebootRate, "offline": &c.Fault.OfflineRate,
		"duplicate": &c.Fault.DuplicateRate, "skew": &c.Fault.SkewShare, "malformed": &c.Fault.MalformedRate} {
		if !c.faultOn(name) {
			*rate = 0
		}
	}
	if c.Messages < 1 {
		r.Problem("-messages", "%d: want at least 1", c.Messages)
	}
	if c.Rate < 0 {
		r.Problem("-rate", "%v: want 0 (as fast as possible) or more", c.Rate)
	}
	if c.Workers < 0 || c.Workers > 1024 {
		r.Problem("-workers", "%d: want 0 (default) to 1024", c.Workers)
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65000 {
		r.Problem("-max-inflight", "%d: want 1 to 65000", c.MaxInflight)
	}
	if c.Days < 1 || c.Days > 30 {
		r.Problem("-days", "%d: want 1 to 30 (telemetry-v1 rejects ts older than 30 days)", c.Days)
	}
	if c.Step < time.Second {
		r.Problem("-step", "%v: want at least 1s", c.Step)
	}
	if *activeSince != "" {
		t, err := time.Parse(time.RFC3339, *activeSince)
		if err != nil {
			r.Problem("-active-since", "%q: want an RFC 3339 time", *activeSince)
		}
		c.ActiveSince = t
	}
	now := time.Now()
	c.End = now.Truncate(c.Step)
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			r.Problem("-end", "%q: want an RFC 3339 time", *end)
		}
		c.End = t
	}
	if c.Mode == modeHistory {
		// Every point must pass the collector's check when it is written:
		// no more than 30 days old and not ahead (runHistory clips the start).
		if c.End.Before(now.Add(-telemetry.MaxPast + time.Hour)) {
			r.Problem("-end", "%s leaves no history within telemetry-v1's 30 days", c.End.Format(time.RFC3339))
		}
		if c.End.After(now) {
			r.Problem("-end", "%s is in the future", c.End.Format(time.RFC3339))
		}
		if c.faultOn("offline") || c.faultOn("skew") || c.faultOn("duplicate") {
			r.Problem("-faults", "history supports reboot and malformed only")
		}
		if c.Influx && c.faultOn("malformed") {
			r.Problem("-faults", "malformed messages go over MQTT only, not straight to InfluxDB")
		}
	}
	if c.Mode == modeLoad && len(c.Faults) > 0 {
		r.Problem("-faults", "load mode sends valid messages only")
	}
	if c.KeepAlive < 0 || c.KeepAlive > 18*time.Hour {
		r.Problem("-keepalive", "%v: want 0 to 18h", c.KeepAlive)
	}
	if c.Timeout <= 0 {
		r.Problem("-timeout", "%v: want more than 0", c.Timeout)
	}
	if c.AckTimeout <= 0 {
		r.Problem("-ack-timeout", "%v: want more than 0", c.AckTimeout)
	}
	if c.DistrictsFile != "" {
		f, err := os.Open(c.DistrictsFile)
		if err == nil {
			c.Districts, err = city.ParseDistricts(f)
			f.Close()
		}
		if err != nil {
			r.Problem("-districts", "%s: %v", c.DistrictsFile, err)
		}
	}
	c.dial = dialConfig{Username: c.MQTTUser, Password: c.MQTTPassword, KeepAlive: c.KeepAlive, Timeout: c.Timeout}
	if c.CredentialsFile != "" {
		creds, err := provision.ReadCredentials(c.CredentialsFile)
		if err == nil && creds == nil {
			err = os.ErrNotExist
		}
		if err != nil {
			r.Problem("-credentials", "%v", err)
		}
		c.dial.Passwords = map[string]string{}
		for _, cr := range creds {
			if cr.Role == provision.RoleDevice {
				c.dial.Passwords[cr.Username] = cr.Password
			}
		}
	}
	if u, err := url.Parse(c.MQTTURL); err == nil {
		c.dial.Addr = u.Host
		if u.Port() == "" {
			// The usual ports: MQTT's for tcp and ssl, HTTP's for ws and wss
			// (what the collector's paho and gorilla/websocket assume too).
			c.dial.Addr = net.JoinHostPort(u.Hostname(), map[string]string{"tcp": "1883", "ssl": "8883", "ws": "80", "wss": "443"}[u.Scheme])
		}
		if u.Scheme == "ws" || u.Scheme == "wss" {
			ws := *u
			if ws.Path == "" {
				ws.Path = "/mqtt" // what most brokers serve MQTT under (EMQX, HiveMQ); Mosquitto takes any path
			}
			c.dial.WebSocket = ws.String()
		}
		if u.Scheme == "ssl" || u.Scheme == "wss" {
			tc, err := settings.ClientTLS(c.MQTTCAFile, u.Hostname())
			if err != nil {
				r.Problem("GP_MQTT_CA_FILE", "%v", err)
			}
			c.dial.TLS = tc
		}
	}
	return c, r.Err()
}

// sliceBounds are the outlets [lo, hi) of this process's slice of n.
func (c *config) sliceBounds(n int) (lo, hi int) {
	if c.Slices <= 1 {
		return 0, n
	}
	return (c.Slice - 1) * n / c.Slices, c.Slice * n / c.Slices
}

// scenario is the -scenario file: the faults to enable and their settings.
// Flags given on the command line win over the file.
type scenario struct {
	Faults        []string `json:"faults"`
	RebootRate    *float64 `json:"reboot_rate"`
	OfflineRate   *float64 `json:"offline_rate"`
	OfflineFor    string   `json:"offline_for"`
	DuplicateRate *float64 `json:"duplicate_rate"`
	SkewShare     *float64 `json:"skew_share"`
	SkewMax       string   `json:"skew_max"`
	MalformedRate *float64 `json:"malformed_rate"`
}

func (c *config) readScenario(r *settings.Reader, set map[string]bool) {
	b, err := os.ReadFile(c.ScenarioFile)
	if err != nil {
		r.Problem("-scenario", "%v", err)
		return
	}
	var s scenario
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		r.Problem("-scenario", "%s: %v", c.ScenarioFile, err)
		return
	}
	for _, f := range s.Faults {
		if !slices.Contains(knownFaults, f) {
			r.Problem("-scenario", "unknown fault %q (known: %s)", f, strings.Join(knownFaults, ", "))
		}
		if !slices.Contains(c.Faults, f) {
			c.Faults = append(c.Faults, f)
		}
	}
	num := func(flagName string, v *float64, dst *float64) {
		if v != nil && !set[flagName] {
			*dst = *v
		}
	}
	num("reboot-rate", s.RebootRate, &c.Fault.RebootRate)
	num("offline-rate", s.OfflineRate, &c.Fault.OfflineRate)
	num("duplicate-rate", s.DuplicateRate, &c.Fault.DuplicateRate)
	num("skew-share", s.SkewShare, &c.Fault.SkewShare)
	num("malformed-rate", s.MalformedRate, &c.Fault.MalformedRate)
	dur := func(flagName, v string, dst *time.Duration) {
		if v == "" || set[flagName] {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			r.Problem("-scenario", "%s: %q is not a duration", flagName, v)
			return
		}
		*dst = d
	}
	dur("offline-for", s.OfflineFor, &c.Fault.OfflineFor)
	dur("skew-max", s.SkewMax, &c.Fault.SkewMax)
}

// String describes the faults for the start-up log.
func (f faultConfig) String() string {
	return fmt.Sprintf("reboot=%g offline=%g/%v duplicate=%g skew=%g/%v malformed=%g",
		f.RebootRate, f.OfflineRate, f.OfflineFor, f.DuplicateRate, f.SkewShare, f.SkewMax, f.MalformedRate)
}
