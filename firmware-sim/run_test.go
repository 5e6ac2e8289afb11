package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/testenv"
)

func TestMain(m *testing.M) {
	if n, _ := strconv.Atoi(os.Getenv(pahoProbeEnv)); n > 0 {
		pahoProbe(n)
	}
	if n, _ := strconv.Atoi(os.Getenv(rawProbeEnv)); n > 0 {
		rawProbe(n)
	}
	if os.Getenv(testenv.AsMainEnv) == "1" {
		settings.Main(run)
	}
	testenv.Main(m)
}

func TestBadSettingsExit2(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		name string
	}{
		{[]string{"GP_MQTT_URL=mqtt://nowhere"}, nil, "GP_MQTT_URL"},
		{nil, []string{"-outlets", "0"}, "-outlets"},
		{nil, []string{"-faults", "reboot,meteor"}, "-faults"},
		{nil, []string{"-interval", "soon"}, "-interval"},
		{nil, []string{"extra"}, "unexpected arguments"},
		{nil, []string{"-mode", "replay"}, "-mode"},
		{nil, []string{"-mode", "history", "-days", "31"}, "-days"},
		{nil, []string{"-mode", "load", "-faults", "reboot"}, "-faults"},
		{nil, []string{"-malformed-rate", "2"}, "-malformed-rate"},
		{nil, []string{"-skew-max", "25h"}, "-skew-max"},
		{nil, []string{"-scenario", "/nonexistent/scenario.json"}, "-scenario"},
		{[]string{"GP_MQTT_URL=http://127.0.0.1:9001"}, nil, "GP_MQTT_URL"}, // ws:// and wss:// are taken (ws_test.go)
		{[]string{"GP_INFLUX_URL=influx"}, nil, "GP_INFLUX_URL"},
	} {
		p := testenv.StartMain(t, tc.env, tc.args...)
		code, err := p.Wait(30 * time.Second)
		if err != nil || code != 2 {
			t.Errorf("%v %v: exit %d, %v; want 2", tc.env, tc.args, code, err)
		}
		if !strings.Contains(p.Output(), tc.name) {
			t.Errorf("%v %v: message does not name %s:\n%s", tc.env, tc.args, tc.name, p.Output())
		}
	}
}

// TestSIGTERMDrains: SIGTERM ends a live run cleanly: exit 0, the summary
// line, and the truth file written.
func TestSIGTERMDrains(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	truth := filepath.Join(t.TempDir(), "truth.json")
	p := testenv.StartMain(t, []string{"GP_MQTT_URL=" + m.URL}, "-outlets", "2", "-interval", "50ms", "-truth", truth)
	if err := p.WaitOutput(`"msg":"started"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(30 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, p.Output())
	}
	if !strings.Contains(p.Output(), `"mode":"live"`) {
		t.Fatalf("no summary line:\n%s", p.Output())
	}
	if _, err := os.Stat(truth); err != nil {
		t.Fatalf("truth not written: %v", err)
	}
}
