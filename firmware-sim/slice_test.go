package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/city"
)

// TestSlicesRunEachDeviceOnce: three load processes with -slice 1/3, 2/3
// and 3/3 of one city together run each of its devices exactly once, each
// with its quota of messages (what a subscriber sees and what each
// process's -truth counts); every registry they write lists the whole city.
func TestSlicesRunEachDeviceOnce(t *testing.T) {
	const outlets, bins, perDevice = 7, 2, 2
	m := broker(t)
	l := listen(t, m.URL)
	dir := t.TempDir()
	whole, err := city.New(city.Config{Seed: 1, Outlets: outlets, Bins: bins})
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	for k := 1; k <= 3; k++ {
		truth, reg := filepath.Join(dir, fmt.Sprintf("t%d.json", k)), filepath.Join(dir, fmt.Sprintf("r%d.csv", k))
		var cfg config
		cfg.Slice, cfg.Slices = k, 3
		lo, hi := cfg.sliceBounds(outlets)
		devices := (hi - lo) * (bins + 1)
		runSim(t, map[string]string{"GP_MQTT_URL": m.URL}, "-mode", "load", "-outlets", fmt.Sprint(outlets), "-bins", fmt.Sprint(bins),
			"-slice", fmt.Sprintf("%d/3", k), "-messages", fmt.Sprint(devices*perDevice), "-truth", truth, "-registry", reg)
		var lt loadTruth
		b, err := os.ReadFile(truth)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &lt); err != nil {
			t.Fatal(err)
		}
		if len(lt.Acked) != devices {
			t.Fatalf("slice %d/3: truth of %d devices, want %d", k, len(lt.Acked), devices)
		}
		for id, n := range lt.Acked {
			if _, twice := acked[id]; twice {
				t.Fatalf("device %s run by two slices", id)
			}
			acked[id] = n
		}
		rows, err := csv.NewReader(bytes.NewReader(mustRead(t, reg))).ReadAll()
		if err != nil || len(rows) != outlets+1 {
			t.Fatalf("slice %d/3: registry of %d rows (%v), want the whole city's %d outlets", k, len(rows)-1, err, outlets)
		}
	}
	var want []string
	for _, d := range whole.Devices() {
		want = append(want, d.ID)
		if acked[d.ID] != perDevice {
			t.Errorf("device %s: %d acknowledged, want %d", d.ID, acked[d.ID], perDevice)
		}
	}
	if len(acked) != len(want) {
		t.Fatalf("%d devices run, the city has %d", len(acked), len(want))
	}
	perTopic := func() map[string]int {
		n := map[string]int{}
		for _, r := range l.all() {
			if strings.HasSuffix(r.topic, "/telemetry") {
				n[r.topic]++
			}
		}
		return n
	}
	waitFor(t, 20*time.Second, "every message at the subscriber", func() bool {
		total := 0
		for _, c := range perTopic() {
			total += c
		}
		return total >= len(want)*perDevice
	})
	got := perTopic()
	var topics []string
	for _, d := range whole.Devices() {
		topics = append(topics, d.TelemetryTopic())
		if got[d.TelemetryTopic()] != perDevice {
			t.Errorf("%s: %d messages, want %d", d.TelemetryTopic(), got[d.TelemetryTopic()], perDevice)
		}
	}
	if len(got) != len(topics) {
		t.Errorf("messages on %d telemetry topics, the city has %d devices", len(got), len(topics))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
