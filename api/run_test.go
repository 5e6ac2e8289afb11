package main

import (
	"os"
	"testing"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(testenv.AsMainEnv) == "1" {
		settings.Main(run)
	}
	testenv.Main(m)
}

func TestBadSettingsExit2(t *testing.T) {
	testenv.ExpectRefused(t, [][]string{
		{"GP_API_KEYS=root:abcdefgh12"},
		{"GP_API_ADDR=nope"},
		{"GP_API_KEYS_FILE=/no/such/file"},
		{"GP_LOG_LEVEL=loud"},
		{"GP_API_TIME_ZONE=Mars/Olympus"},
		{"GP_INFLUX_ULR=http://typo:8086"},
	})
}

func TestSIGTERMExits0(t *testing.T) {
	testenv.ExpectCleanStop(t, []string{"GP_API_ADDR=127.0.0.1:0", "GP_API_KEYS=viewer:abcdefgh12"})
}
