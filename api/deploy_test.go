package main

import (
	"testing"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestDeployFilesSettingsAccepted: every file under deploy/ that starts the
// API (the systemd environment example and unit, the Kubernetes base and
// overlay as rendered, the image's ENV, compose's api) gives it only names
// it knows and values its own loader accepts; the keys file they name, in
// the documented form, yields keys.
func TestDeployFilesSettingsAccepted(t *testing.T) {
	testenv.CheckDeploySettings(t, "api", 6,
		func(t *testing.T, e testenv.DeployEnv, getenv func(string) string) error {
			cfg, err := loadConfig(getenv)
			if err == nil && e.Env["GP_API_KEYS_FILE"] != "" && len(cfg.Keys) < 2 {
				t.Errorf("%d keys read from GP_API_KEYS_FILE, want its 2", len(cfg.Keys))
			}
			return err
		})
}

// TestSettingsTable: README.md's configuration table lists exactly the
// settings this program's loader reads.
func TestSettingsTable(t *testing.T) {
	testenv.CheckSettingsTable(t, "api", testenv.SettingsRead(func(getenv func(string) string) { loadConfig(getenv) }))
}
