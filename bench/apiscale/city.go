package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// cityConfig says what city to fill: the simulator's city (internal/city)
// of this seed and size, its history written straight to InfluxDB by
// firmware-sim -mode history -influx, every point decoded by telemetry.Decode
// and stored by telemetry.AppendPoint as the collector would. The same
// config and End give the same points, so a filled data directory is reused
// when its config matches.
type cityConfig struct {
	Outlets int           `json:"outlets"`
	Bins    int           `json:"bins"`
	Days    int           `json:"days"`
	Step    time.Duration `json:"step"`
	Seed    int64         `json:"seed"`
	End     time.Time     `json:"end"` // data in [End - Days, End), set when filled
}

func (c cityConfig) dir(root string) string {
	return filepath.Join(root, fmt.Sprintf("city-o%d-b%d-d%d-s%s-seed%d", c.Outlets, c.Bins, c.Days, c.Step, c.Seed))
}

// filledConfig returns the config a data directory was filled with.
func filledConfig(dir string) (cityConfig, bool) {
	var c cityConfig
	b, err := os.ReadFile(filepath.Join(dir, "filled.json"))
	return c, err == nil && json.Unmarshal(b, &c) == nil
}

// fillCity runs the simulator's history into in and records the config
// (with its End) once it is done.
func fillCity(bin string, in *influxd, dir string, c cityConfig) (cityConfig, error) {
	c.End = time.Now().UTC().Truncate(c.Step)
	cmd := exec.Command(filepath.Join(bin, "firmware-sim"), "-mode", "history", "-influx",
		"-outlets", strconv.Itoa(c.Outlets), "-bins", strconv.Itoa(c.Bins), "-days", strconv.Itoa(c.Days),
		"-step", c.Step.String(), "-seed", strconv.FormatInt(c.Seed, 10), "-end", c.End.Format(time.RFC3339),
		"-registry", filepath.Join(dir, "registry.csv"))
	cmd.Env = []string{"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket, "GP_LOG_LEVEL=warn", "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	sim, err := testenv.StartChild(cmd, nil)
	if err != nil {
		return c, fmt.Errorf("firmware-sim (make build first, or pass -bin): %w", err)
	}
	if err := sim.Err(); err != nil {
		return c, fmt.Errorf("firmware-sim: %w", err)
	}
	b, _ := json.Marshal(c)
	return c, os.WriteFile(filepath.Join(dir, "filled.json"), b, 0o644)
}

// cityOutlets reads the outlets and their districts from the registry the
// simulator wrote.
func cityOutlets(dir string) (ids []string, district map[string]string, err error) {
	f, err := os.Open(filepath.Join(dir, "registry.csv"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 || recs[0][0] != "id" || recs[0][2] != "district" {
		return nil, nil, fmt.Errorf("registry.csv: %v", err)
	}
	district = map[string]string{}
	for _, r := range recs[1:] {
		ids = append(ids, r[0])
		district[r[0]] = r[2]
	}
	return ids, district, nil
}
