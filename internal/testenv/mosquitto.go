package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MosquittoOptions shape the generated config.
type MosquittoOptions struct {
	// Persistence keeps sessions and queued messages in a database that
	// survives a restart, saved as the shipped configs save it: every 10 s
	// and on a clean stop (Restart). Saving on every change instead rewrites
	// the whole database per message: with thousands queued that is
	// quadratic, and a test of 20,000 messages spent most of a minute there.
	Persistence bool
	// MaxInflight sets max_inflight_messages; 0 keeps Mosquitto's default (20).
	MaxInflight int
	// MaxQueued sets max_queued_messages. 0 means 1,000,000 (and no byte
	// limit): Mosquitto's default of 1000 drops messages silently when a
	// burst outruns a busy subscriber, and no test wants the broker to lose
	// what it is checking for.
	MaxQueued int
	// Extra lines appended to the config.
	Extra []string
}

// Mosquitto is a running broker on a loopback port.
type Mosquitto struct {
	URL  string // tcp://127.0.0.1:port
	Addr string // 127.0.0.1:port
	Dir  string
	srv  *server
}

// MosquittoPath finds the broker: $GREENPOST_MOSQUITTO, Debian's /usr/sbin/mosquitto, or PATH.
func MosquittoPath() (string, error) {
	p, err := findBinary("GREENPOST_MOSQUITTO", []string{"/usr/sbin/mosquitto"}, "mosquitto")
	if err != nil {
		return "", fmt.Errorf("%w: run `make tools` (installs Debian's mosquitto package; as non-root: sudo apt-get install mosquitto)", err)
	}
	return p, nil
}

// StartMosquitto starts a private broker for one test; it stops when the test ends.
func StartMosquitto(tb testing.TB, opts MosquittoOptions) *Mosquitto {
	tb.Helper()
	m, err := startMosquitto(tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(m.Stop)
	return m
}

func startMosquitto(dir string, opts MosquittoOptions) (*Mosquitto, error) {
	bin, err := MosquittoPath()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	lines := []string{
		"listener " + fmt.Sprint(port) + " 127.0.0.1",
		"allow_anonymous true",
		// As root, mosquitto would switch to the mosquitto user and could not
		// write its database in our temp dir.
		"user root",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}
	if opts.Persistence {
		lines = append(lines, "persistence true", "persistence_location "+dir+"/", "autosave_interval 10", "autosave_on_changes false")
	} else {
		lines = append(lines, "persistence false")
	}
	if opts.MaxInflight > 0 {
		lines = append(lines, fmt.Sprintf("max_inflight_messages %d", opts.MaxInflight))
	}
	if opts.MaxQueued == 0 {
		opts.MaxQueued = 1000000
		lines = append(lines, "max_queued_bytes 0")
	}
	lines = append(lines, fmt.Sprintf("max_queued_messages %d", opts.MaxQueued))
	lines = append(lines, opts.Extra...)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	addr := hostPort(port)
	m := &Mosquitto{
		URL: "tcp://" + addr, Addr: addr, Dir: dir,
		srv: &server{name: "mosquitto", args: []string{bin, "-c", conf}, log: filepath.Join(dir, "mosquitto.log")},
	}
	if err := m.boot(); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// StartMosquittoConfig starts Debian's mosquitto with a config file the test
// wrote (a shipped config adapted to the test's paths and port), listening
// on addr; it stops when the test ends. URL is left empty: the config says
// whether the listener speaks TLS.
func StartMosquittoConfig(tb testing.TB, conf, addr string) *Mosquitto {
	tb.Helper()
	bin, err := MosquittoPath()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	dir := filepath.Dir(conf)
	m := &Mosquitto{Addr: addr, Dir: dir,
		srv: &server{name: "mosquitto", args: []string{bin, "-c", conf}, log: filepath.Join(dir, "mosquitto.log")}}
	tb.Cleanup(m.Stop)
	if err := m.boot(); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return m
}

// FreeAddr returns a free loopback host:port, reserved against the other
// test binaries' servers (see freePort).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return hostPort(port)
}

func (m *Mosquitto) boot() error {
	return m.srv.boot(20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// Restart stops the broker cleanly (it saves its database) and starts it again on the same port.
func (m *Mosquitto) Restart() error {
	m.srv.stop(syscall.SIGTERM, 10*time.Second)
	return m.boot()
}

// Kill ends the broker at once (SIGKILL).
func (m *Mosquitto) Kill() { m.srv.stop(syscall.SIGKILL, 10*time.Second) }

// Start starts the broker again after Kill or Stop.
func (m *Mosquitto) Start() error { return m.boot() }

// Stop ends the broker cleanly.
func (m *Mosquitto) Stop() { m.srv.stop(syscall.SIGTERM, 10*time.Second) }

// Log returns the end of the broker's log.
func (m *Mosquitto) Log() string { return m.srv.tail() }
