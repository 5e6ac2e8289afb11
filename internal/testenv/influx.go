package testenv

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InfluxVersion is the InfluxDB release the tests run against.
const InfluxVersion = "1.8.10"

// Influx is a running influxd 1.8 with Flux enabled and one database.
type Influx struct {
	URL    string // http://127.0.0.1:port
	DB     string // the database created for the tests
	Bucket string // DB/autogen, the bucket name of the v2 compatibility API
	Dir    string // data, meta and wal live here
	srv    *server
	start  time.Duration // how long boot waits for /ping
	// Admin and AdminPassword are the admin user of an influxd started
	// with InfluxOptions.Auth; InfluxQL and Exec use them.
	Admin, AdminPassword string
}

// InfluxdPath finds the influxd binary: $GREENPOST_INFLUXD, the cache that `make
// tools` fills, or PATH.
func InfluxdPath() (string, error) {
	p, err := findBinary("GREENPOST_INFLUXD", []string{filepath.Join(cacheDir(), "influxd-"+InfluxVersion, "influxd")}, "influxd")
	if err != nil {
		return "", fmt.Errorf("%w: run `make tools` (go install github.com/influxdata/influxdb/cmd/influxd@v%s)", err, InfluxVersion)
	}
	return p, nil
}

// StartInflux starts a private influxd for one test; it stops when the test ends.
func StartInflux(tb testing.TB) *Influx {
	tb.Helper()
	in, err := startInflux(tb.TempDir())
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(in.Stop)
	return in
}

// InfluxOptions shape an influxd for programs such as benchmarks.
type InfluxOptions struct {
	// BulkLoad sizes the server for tens of millions of points: a 2 GiB
	// write cache, no query timeout, no body size limit.
	BulkLoad bool
	// StartTimeout bounds the wait for /ping (default 60s; opening a large
	// data directory's shards takes minutes).
	StartTimeout time.Duration
	// Auth turns authentication on, with an admin user (Influx.Admin):
	// programs then need a token, "user:password" of a user with the
	// rights they need, as with InfluxDB 2.x tokens.
	Auth bool
}

// StartInfluxWith starts a private influxd shaped by opts for one test.
func StartInfluxWith(tb testing.TB, opts InfluxOptions) *Influx {
	tb.Helper()
	in, err := startInfluxWith(tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(in.Stop)
	return in
}

func startInflux(dir string) (*Influx, error) { return startInfluxWith(dir, InfluxOptions{}) }

func startInfluxWith(dir string, opts InfluxOptions) (*Influx, error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin, err := InfluxdPath()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	rpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cacheSize, queryTimeout, maxBody := "1g", "60s", 25000000 // influxd's defaults, but a query timeout
	if opts.BulkLoad {
		cacheSize, queryTimeout, maxBody = "2g", "0s", 0
	}
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
  cache-max-memory-size = %q
  trace-logging-enabled = false
[coordinator]
  query-timeout = "%s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = %q
  flux-enabled = true
  log-enabled = false
  auth-enabled = %t
  max-body-size = %d
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
`, hostPort(rpcPort), filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), cacheSize,
		queryTimeout, hostPort(httpPort), opts.Auth, maxBody)
	confPath := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	in := &Influx{
		URL:    "http://" + hostPort(httpPort),
		DB:     "gp",
		Bucket: "gp/autogen",
		Dir:    dir,
		srv:    &server{name: "influxd", args: []string{bin, "run", "-config", confPath}, log: filepath.Join(dir, "influxd.log")},
		start:  opts.StartTimeout,
	}
	if err := in.boot(); err != nil {
		in.Stop()
		return nil, err
	}
	if opts.Auth {
		// The first user of a server with no users may be made without
		// credentials, and must be an admin.
		if err := in.Exec("CREATE USER admin WITH PASSWORD 'admin-secret' WITH ALL PRIVILEGES"); err != nil {
			in.Stop()
			return nil, err
		}
		in.Admin, in.AdminPassword = "admin", "admin-secret"
	}
	if err := in.Exec("CREATE DATABASE " + in.DB); err != nil {
		err = fmt.Errorf("%w\n%s", err, in.srv.tail())
		in.Stop()
		return nil, err
	}
	return in, nil
}

func (in *Influx) boot() error { return in.srv.boot(in.start, in.Ping) }

// Ping reports whether influxd answers /ping.
func (in *Influx) Ping() error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(in.URL + "/ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return nil
}

// Exec runs an InfluxQL statement (CREATE DATABASE, DROP SERIES, ...).
func (in *Influx) Exec(q string) error {
	_, err := in.InfluxQL(q)
	return err
}

// InfluxQL runs an InfluxQL query against the test database and returns the
// JSON answer.
func (in *Influx) InfluxQL(q string) (string, error) {
	c := http.Client{Timeout: 30 * time.Second}
	req, err := http.NewRequest(http.MethodPost, in.URL+"/query", strings.NewReader(url.Values{"q": {q}, "db": {in.DB}}.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if in.Admin != "" {
		req.SetBasicAuth(in.Admin, in.AdminPassword)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
		return "", fmt.Errorf("influxql %q: %s: %s", q, resp.Status, body)
	}
	return string(body), nil
}

// Pause stops the process (SIGSTOP): connections hang, as on an overloaded
// server. It returns once the kernel reports the process stopped.
func (in *Influx) Pause() error {
	if err := in.srv.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return in.srv.waitState('T', 10*time.Second)
}

// Resume continues a paused process.
func (in *Influx) Resume() error { return in.srv.signal(syscall.SIGCONT) }

// Kill ends the process at once (SIGKILL), as in a crash.
func (in *Influx) Kill() { in.srv.stop(syscall.SIGKILL, 10*time.Second) }

// Restart starts influxd again after Kill, on the same port and data.
func (in *Influx) Restart() error {
	in.srv.stop(syscall.SIGKILL, 10*time.Second)
	return in.boot()
}

// Stop ends influxd cleanly.
func (in *Influx) Stop() { in.srv.stop(syscall.SIGTERM, 10*time.Second) }

// Log returns the end of influxd's log.
func (in *Influx) Log() string { return in.srv.tail() }
