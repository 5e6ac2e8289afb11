package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestScenarioFile: a scenario enables the faults it names and sets their
// rates; a flag on the command line wins over the file; a fault that is not
// enabled never strikes.
func TestScenarioFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	err := os.WriteFile(path, []byte(`{"faults":["reboot","offline"],"reboot_rate":0.25,"offline_rate":0.5,"offline_for":"7m","malformed_rate":0.9}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		faults  []string
		reboot  float64
		offline float64
		mal     float64
		offFor  time.Duration
	}{
		{"file alone", []string{"-scenario", path}, []string{"reboot", "offline"}, 0.25, 0.5, 0, 7 * time.Minute},
		{"flag wins", []string{"-scenario", path, "-reboot-rate", "0.125"}, []string{"reboot", "offline"}, 0.125, 0.5, 0, 7 * time.Minute},
		{"flags add faults", []string{"-faults", "malformed", "-scenario", path}, []string{"malformed", "reboot", "offline"}, 0.25, 0.5, 0.9, 7 * time.Minute},
		{"no scenario", []string{"-faults", "offline", "-interval", "2s"}, []string{"offline"}, 0, 0.002, 0, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(append([]string{"firmware-sim"}, tc.args...), func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Faults, tc.faults) || c.Fault.RebootRate != tc.reboot || c.Fault.OfflineRate != tc.offline ||
				c.Fault.MalformedRate != tc.mal || c.Fault.OfflineFor != tc.offFor {
				t.Fatalf("faults %v, %+v", c.Faults, c.Fault)
			}
		})
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"faults":["meteor"],"rebot_rate":1}`), 0o644)
	if _, err := loadConfig([]string{"firmware-sim", "-scenario", bad}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("a scenario with an unknown key was accepted")
	}
}
