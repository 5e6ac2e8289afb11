package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/greenpost/greenpost/internal/fill"
	"github.com/greenpost/greenpost/internal/store"
	"github.com/greenpost/greenpost/internal/testenv"
)

// fromInflux has firmware-sim write its history into a private InfluxDB
// 1.8.10 (once: the data directory is kept for later runs), then reads the
// bins' reports back with store.BinReports, the read the API's tracker
// makes, and the emptied flags for the truth.
func fromInflux(p params, dir string) ([]*bin, error) {
	cache, _ := os.UserCacheDir()
	data := filepath.Join(cache, "greenpost", "bench-ops", fmt.Sprintf("o%d-d%d-s%s-seed%d", p.Outlets, p.Days, p.Step, p.Seed))
	in, err := testenv.NewInflux(data, testenv.InfluxOptions{BulkLoad: true, StartTimeout: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer in.Stop()
	if _, err := os.Stat(filepath.Join(data, "filled")); err != nil {
		fmt.Printf("filling %d outlets × %d days with the simulator (once; kept in %s)\n", p.Outlets, p.Days, data)
		sim := exec.Command(filepath.Join(dir, "firmware-sim"), "-mode", "history", "-influx", "-outlets", strconv.Itoa(p.Outlets),
			"-days", strconv.Itoa(p.Days), "-step", p.Step.String(), "-seed", strconv.FormatInt(p.Seed, 10))
		sim.Env = []string{"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket, "GP_LOG_LEVEL=warn", "PATH=" + os.Getenv("PATH")}
		sim.Stdout, sim.Stderr = os.Stdout, os.Stderr
		if err := sim.Run(); err != nil {
			return nil, fmt.Errorf("firmware-sim: %w", err)
		}
		if err := os.WriteFile(filepath.Join(data, "filled"), []byte(time.Now().UTC().Format(time.RFC3339)), 0o644); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(store.Config{URL: in.URL, Bucket: in.Bucket, Timeout: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ctx := context.Background()
	from, to := time.Now().Add(-time.Duration(p.Days+2)*24*time.Hour), time.Now()
	byKey := map[[2]string]*bin{}
	var bins []*bin
	type rep struct {
		r    fill.Report
		boot int64
	}
	raw := map[*bin][]rep{}
	err = st.BinReports(ctx, from, to, nil, func(outlet, device string, boot, t int64, pct float64) error {
		k := [2]string{outlet, device}
		b := byKey[k]
		if b == nil {
			b = &bin{outlet: string([]byte(outlet)), device: string([]byte(device))}
			byKey[[2]string{b.outlet, b.device}] = b
			bins = append(bins, b)
		}
		// Through float32, as the tracker keeps readings.
		raw[b] = append(raw[b], rep{fill.Report{T: t, Pct: float64(float32(pct))}, boot})
		return nil
	})
	if err != nil {
		return nil, err
	}
	emptied := map[[2]string]map[int64]bool{}
	q := `from(bucket: ` + store.FluxString(in.Bucket) + `)
  |> range(start: ` + from.UTC().Format(time.RFC3339) + `, stop: ` + to.UTC().Format(time.RFC3339) + `)
  |> filter(fn: (r) => r._measurement == "bin" and r._field == "emptied" and r._value == true)
  |> keep(columns: ["_time", "outlet", "device"])`
	err = st.FluxScan(ctx, q, []string{"_time", "outlet", "device"}, func(v []string) error {
		t, err := time.Parse(time.RFC3339Nano, v[0])
		if err != nil {
			return err
		}
		k := [2]string{v[1], v[2]}
		if emptied[k] == nil {
			emptied[[2]string{string([]byte(v[1])), string([]byte(v[2]))}] = map[int64]bool{}
		}
		emptied[k][t.UnixMilli()] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range bins {
		rs := raw[b]
		slices.SortStableFunc(rs, func(x, y rep) int {
			if x.r.T != y.r.T {
				return cmp.Compare(x.r.T, y.r.T)
			}
			return cmp.Compare(x.boot, y.boot)
		})
		for i, r := range rs {
			if i+1 < len(rs) && rs[i+1].r.T == r.r.T {
				continue // the later boot's report at the same time wins
			}
			b.rs = append(b.rs, r.r)
			b.emptied = append(b.emptied, emptied[[2]string{b.outlet, b.device}][r.r.T])
		}
	}
	slices.SortFunc(bins, func(x, y *bin) int {
		if x.outlet != y.outlet {
			return cmp.Compare(x.outlet, y.outlet)
		}
		return cmp.Compare(x.device, y.device)
	})
	return bins, nil
}
