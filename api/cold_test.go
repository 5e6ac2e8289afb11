package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestColdDirSetting: GP_API_COLD_DIR takes an existing directory or
// "memory"; unset, the temporary directory; a missing directory or a file
// is a start-up error that names the setting.
func TestColdDirSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v, want string
		def     bool
		bad     bool
	}{
		{"", os.TempDir(), true, false},
		{"memory", "", false, false},
		{dir, dir, false, false},
		{filepath.Join(dir, "missing"), "", false, true},
		{file, "", false, true},
	} {
		c, err := loadConfig(func(k string) string {
			if k == "GP_API_COLD_DIR" {
				return tc.v
			}
			return ""
		})
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v, want error %v", tc.v, err, tc.bad)
			continue
		}
		if tc.bad {
			if !strings.Contains(err.Error(), "GP_API_COLD_DIR") {
				t.Errorf("%q: error %v does not name the setting", tc.v, err)
			}
			continue
		}
		if c.ColdDir != tc.want || c.coldDirDefault != tc.def {
			t.Errorf("%q: ColdDir %q default %v, want %q %v", tc.v, c.ColdDir, c.coldDirDefault, tc.want, tc.def)
		}
	}
}
