package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

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
	for _, env := range [][]string{
		{"GP_API_KEYS=root:abcdefgh12"},
		{"GP_API_ADDR=nope"},
		{"GP_API_KEYS_FILE=/no/such/file"},
		{"GP_LOG_LEVEL=loud"},
		{"GP_INFLUX_ULR=http://typo:8086"},
	} {
		p := testenv.StartMain(t, env)
		code, err := p.Wait(30 * time.Second)
		if err != nil || code != 2 {
			t.Errorf("%v: exit %d, %v; want 2", env, code, err)
		}
		name, _, _ := strings.Cut(env[0], "=")
		if !strings.Contains(p.Output(), name) {
			t.Errorf("%v: message does not name the setting:\n%s", env, p.Output())
		}
	}
}

func TestSIGTERMExits0(t *testing.T) {
	p := testenv.StartMain(t, []string{"GP_API_ADDR=127.0.0.1:0", "GP_API_KEYS=viewer:abcdefgh12"})
	if err := p.WaitOutput(`"msg":"started"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v; want 0\n%s", code, err, p.Output())
	}
}
