package main

import (
	"testing"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestDeployFilesSettingsAccepted: every file under deploy/ that starts the
// collector (the systemd environment example and unit, the Kubernetes base
// and overlay as rendered, the image's ENV, compose's two collectors) gives
// it only names it knows and values its own loader accepts.
func TestDeployFilesSettingsAccepted(t *testing.T) {
	testenv.CheckDeploySettings(t, "collector", 7,
		func(t *testing.T, _ testenv.DeployEnv, getenv func(string) string) error {
			_, err := loadConfig(getenv)
			return err
		})
}

// TestSettingsTable: README.md's configuration table lists exactly the
// settings this program's loader reads.
func TestSettingsTable(t *testing.T) {
	testenv.CheckSettingsTable(t, "collector", testenv.SettingsRead(func(getenv func(string) string) { loadConfig(getenv) }))
}
