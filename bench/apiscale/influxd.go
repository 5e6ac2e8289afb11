package main

import (
	"github.com/greenpost/greenpost/internal/testenv"
)

// influxd is a private InfluxDB 1.8.10 on a data directory that outlives the
// run (testenv.NewKeptInflux), so that the 26 M points are written once.
type influxd struct{ *testenv.Influx }

func startInfluxd(dir string) (*influxd, error) {
	in, err := testenv.NewKeptInflux(dir)
	if err != nil {
		return nil, err
	}
	return &influxd{in}, nil
}

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
