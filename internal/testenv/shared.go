package testenv

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

var shared struct {
	mu        sync.Mutex
	influx    *Influx
	mosquitto *Mosquitto
	dirs      []string
}

// Main runs the package's tests and then stops the shared servers. Call it
// from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.influx != nil {
		shared.influx.Stop()
		fmt.Fprintf(os.Stderr, "testenv: used InfluxDB %s (%s) at %s\n", influxdVersion(), shared.influx.srv.args[0], shared.influx.URL)
	}
	if shared.mosquitto != nil {
		shared.mosquitto.Stop()
		fmt.Fprintf(os.Stderr, "testenv: used %s (%s) at %s\n", mosquittoVersion(), shared.mosquitto.srv.args[0], shared.mosquitto.URL)
	}
	for _, d := range shared.dirs {
		os.RemoveAll(d)
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// SharedInflux returns the test binary's influxd, starting it on first use.
// Tests that share it keep to their own measurements or time ranges.
func SharedInflux(tb testing.TB) *Influx {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.influx == nil {
		dir := tempDir(nil, "gp-influx-")
		shared.dirs = append(shared.dirs, dir)
		in, err := startInflux(dir)
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		shared.influx = in
	}
	return shared.influx
}

// SharedMosquitto returns the test binary's broker (deep queues),
// starting it on first use. Tests that share it use their own topics.
func SharedMosquitto(tb testing.TB) *Mosquitto {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.mosquitto == nil {
		dir := tempDir(nil, "gp-mosquitto-")
		shared.dirs = append(shared.dirs, dir)
		m, err := startMosquitto(dir, MosquittoOptions{})
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		shared.mosquitto = m
	}
	return shared.mosquitto
}

// SharedDir returns a new directory that lasts until the package's tests
// end (Main removes it), for what several tests use, such as programs
// built once.
func SharedDir(tb testing.TB, pattern string) string {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	dir := tempDir(nil, pattern)
	shared.dirs = append(shared.dirs, dir)
	return dir
}

// influxdVersion reads the module version the influxd binary was built from
// (go install leaves the binary's own version string empty).
func influxdVersion() string {
	p, err := InfluxdPath()
	if err != nil {
		return "unknown"
	}
	info, err := buildinfo.ReadFile(p)
	if err != nil {
		return "unknown"
	}
	return info.Main.Path + "@" + info.Main.Version
}

// mosquittoVersion asks the broker binary for its version line.
func mosquittoVersion() string {
	p, err := MosquittoPath()
	if err != nil {
		return "mosquitto"
	}
	out, _ := exec.Command(p, "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
