package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// influxd is a private InfluxDB 1.8.10 on a data directory that outlives the
// run, so that the 26 M points are written once and reused.
type influxd struct {
	URL, DB, Bucket string
	cmd             *exec.Cmd
	done            chan struct{}
}

func startInfluxd(dir string) (*influxd, error) {
	bin, err := testenv.InfluxdPath()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rpc, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The same settings as the test server (internal/testenv), with room
	// for the bulk load: a larger write cache and no query timeout.
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
  cache-max-memory-size = "2g"
[coordinator]
  query-timeout = "0s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  flux-enabled = true
  log-enabled = false
  auth-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
`, rpc, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), port)
	confPath := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "influxd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-config", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	in := &influxd{URL: "http://127.0.0.1:" + strconv.Itoa(port), DB: "gp", Bucket: "gp/autogen", cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(in.done) }()
	deadline := time.Now().Add(5 * time.Minute) // opening 26 M points' shards takes a while
	for {
		if err := in.ping(); err == nil {
			break
		}
		select {
		case <-in.done:
			return nil, fmt.Errorf("influxd exited; see %s", filepath.Join(dir, "influxd.log"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			in.stop()
			return nil, fmt.Errorf("influxd did not answer /ping in time")
		}
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.PostForm(in.URL+"/query", map[string][]string{"q": {"CREATE DATABASE gp"}})
	if err != nil {
		in.stop()
		return nil, err
	}
	resp.Body.Close()
	return in, nil
}

func (in *influxd) ping() error {
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

// rssMiB is influxd's resident memory now.
func (in *influxd) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is influxd's user+system CPU time so far.
func (in *influxd) cpuSeconds() float64 { return procCPU(in.cmd.Process.Pid) }

func (in *influxd) stop() {
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(60 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
	}
}

// procCPU reads utime+stime of a process from /proc (clock ticks of 1/100 s).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
