package main

import (
	"io"
	"testing"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestDeployFilesSettingsAccepted: the image and compose's simulator
// profile give the simulator only names it knows and values its own
// loader accepts.
func TestDeployFilesSettingsAccepted(t *testing.T) {
	testenv.CheckDeploySettings(t, "firmware-sim", 2,
		func(t *testing.T, _ testenv.DeployEnv, getenv func(string) string) error {
			_, err := loadConfig([]string{"firmware-sim"}, getenv, io.Discard)
			return err
		})
}

// TestSettingsTable: README.md's configuration table lists exactly the
// settings the simulator's loader reads.
func TestSettingsTable(t *testing.T) {
	testenv.CheckSettingsTable(t, "firmware-sim", testenv.SettingsRead(func(getenv func(string) string) {
		loadConfig([]string{"firmware-sim"}, getenv, io.Discard)
	}))
}
