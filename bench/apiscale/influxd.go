package main

import (
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// influxd is a private InfluxDB 1.8.10 on a data directory that outlives the
// run, so that the 26 M points are written once and reused.
type influxd struct{ *testenv.Influx }

func startInfluxd(dir string) (*influxd, error) {
	// Opening 26 M points' shards takes a while.
	in, err := testenv.NewInflux(dir, testenv.InfluxOptions{BulkLoad: true, StartTimeout: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	return &influxd{in}, nil
}

func (in *influxd) stop() { in.Stop() }

// rssMiB is influxd's resident memory now.
func (in *influxd) rssMiB() float64 {
	st, _ := testenv.ReadProcStats(in.PID())
	return float64(st.RSSKiB) / 1024
}

// cpuSeconds is influxd's user+system CPU time so far.
func (in *influxd) cpuSeconds() float64 {
	st, _ := testenv.ReadProcStats(in.PID())
	return st.CPUSeconds
}
