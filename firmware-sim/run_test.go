package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/provision"
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
		{nil, []string{"-slice", "3/2"}, "-slice"},
		{nil, []string{"-slice", "1/0"}, "-slice"},
		{nil, []string{"-outlets", "2", "-slice", "1/3"}, "-slice"},
		{nil, []string{"-mode", "history", "-days", "31"}, "-days"},
		{nil, []string{"-mode", "load", "-faults", "reboot"}, "-faults"},
		{nil, []string{"-malformed-rate", "2"}, "-malformed-rate"},
		{nil, []string{"-skew-max", "25h"}, "-skew-max"},
		{nil, []string{"-active-since", "yesterday"}, "-active-since"},
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
	reg := filepath.Join(t.TempDir(), "registry.csv")
	p := testenv.StartMain(t, []string{"GP_MQTT_URL=" + m.URL}, "-outlets", "2", "-interval", "50ms", "-truth", truth,
		"-registry", reg, "-active-since", "2026-11-20T08:00:00+08:00")
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
	// -active-since (make run's first start, kept with its data) wins over
	// this run's start.
	if b, err := os.ReadFile(reg); err != nil || strings.Count(string(b), ",2026-11-20T00:00:00Z\n") != 2 {
		t.Fatalf("registry %v:\n%s", err, b)
	}
}

// TestCredentials: with -credentials (gpctl provision's file) each device
// logs in with its own password and publishes, here through Mosquitto with
// the provisioned password file and ACL; a city the file does not cover is
// refused at start.
func TestCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	var out, errb strings.Builder
	if err := provision.Run([]string{"-out", dir, "-sim-outlets", "2", "-sim-bins", "1"}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{Extra: []string{
		"per_listener_settings false", "allow_anonymous false", "use_username_as_clientid true",
		"password_file " + filepath.Join(dir, provision.MosquittoPasswd), "acl_file " + filepath.Join(dir, provision.MosquittoACL)}})
	creds := filepath.Join(dir, provision.CredentialsFile)
	all, err := provision.ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID("collector-1").SetUsername("collector-1").
		SetPassword(all[0].Password).SetConnectTimeout(5 * time.Second))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("collector-1: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("$share/collector/gp/v1/+/+/+/telemetry", 1, func(mqtt.Client, mqtt.Message) { got.Add(1) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	p := testenv.StartMain(t, []string{"GP_MQTT_URL=" + m.URL}, "-outlets", "2", "-bins", "1", "-interval", "50ms", "-reports", "3", "-credentials", creds)
	if code, err := p.Wait(60 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, p.Output())
	}
	// 2 outlets × (1 bin + 1 counter) × 3 reports, every one accepted by the ACL.
	testenv.Eventually(t, 10*time.Second, func() string {
		if n := got.Load(); n != 12 {
			return fmt.Sprintf("the collector user received %d telemetry messages, want 12:\n%s", n, p.Output())
		}
		return ""
	})
	// Without its password a device is refused.
	p = testenv.StartMain(t, []string{"GP_MQTT_URL=" + m.URL}, "-outlets", "2", "-bins", "1", "-interval", "50ms", "-reports", "1")
	if code, _ := p.Wait(60 * time.Second); code == 0 {
		t.Errorf("devices without their passwords ran:\n%s", p.Output())
	}
	// A bigger city than the file covers stops at start.
	p = testenv.StartMain(t, []string{"GP_MQTT_URL=" + m.URL}, "-outlets", "3", "-bins", "1", "-credentials", creds)
	if code, _ := p.Wait(30 * time.Second); code != 2 || !strings.Contains(p.Output(), "-credentials") {
		t.Errorf("exit %d, want 2 naming -credentials:\n%s", code, p.Output())
	}
}
