package testenv

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// NewInflux starts an influxd in dir for a program (a benchmark); the caller
// stops it. A dir that holds data from an earlier run is reused as it is.
func NewInflux(dir string, opts InfluxOptions) (*Influx, error) { return startInfluxWith(dir, opts) }

// NewKeptInflux starts an influxd on a data directory that outlives the
// run, as the benchmarks keep their filled cities: bulk-load options, and
// time to open the shards of tens of millions of points.
func NewKeptInflux(dir string) (*Influx, error) {
	return NewInflux(dir, InfluxOptions{BulkLoad: true, StartTimeout: 5 * time.Minute})
}

// NewMosquitto starts a broker in dir for a program; the caller stops it.
func NewMosquitto(dir string, opts MosquittoOptions) (*Mosquitto, error) {
	return startMosquitto(dir, opts)
}

// PID returns the server's process id (0 when it is not running).
func (in *Influx) PID() int { return in.srv.pid() }

// PID returns the broker's process id (0 when it is not running).
func (m *Mosquitto) PID() int { return m.srv.pid() }

func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child == nil {
		return 0
	}
	return s.child.PID()
}

// ProcStats are a process's CPU time so far and its resident memory now and
// at its peak, read from /proc (Linux).
type ProcStats struct {
	CPUSeconds float64
	RSSKiB     int64
	PeakRSSKiB int64
}

// ReadProcStats reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProcStats(pid int) (ProcStats, error) {
	var st ProcStats
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) start after ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	st.CPUSeconds = (utime + stime) / 100 // USER_HZ is 100 on Linux
	b, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		kib := func(v string) int64 {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			st.PeakRSSKiB = kib(v)
		}
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			st.RSSKiB = kib(v)
		}
	}
	return st, nil
}

// LoopbackAddr returns a free 127.0.0.1:port for a server a program starts
// (a collector's /metrics, say).
func LoopbackAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return hostPort(port), nil
}

// WaitHTTP polls url until it answers 200 or the timeout passes, and
// returns the last error then.
func WaitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
