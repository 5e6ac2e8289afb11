package main

import (
	"os"
	"strconv"
	"strings"
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
