package deploytest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenpost/greenpost/internal/testenv"
)

// startBinary runs one of the binaries the images build, with env only.
func startBinary(t *testing.T, bin string, env ...string) *testenv.SyncBuffer {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	c, err := testenv.StartChild(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(syscall.SIGTERM, 30*time.Second) })
	return out
}

// families returns the metric families a /metrics page declares.
func families(t *testing.T, url, key string) ([]string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	return out, sc.Err()
}

// TestMetricNamesExist runs the collector and the API as the images build
// them, makes every labelled metric appear (a valid and an invalid message
// through the collector's embedded broker, with the dead-letter rate at 0;
// a request to the API), scrapes both /metrics and checks that every
// metric the alert rules and the dashboard name is one of theirs: a
// renamed metric fails here, not silently in a city's Prometheus.
func TestMetricNamesExist(t *testing.T) {
	bins := images(t)
	in := testenv.StartInflux(t)
	influx := []string{"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket}
	broker, ops, apiAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	col := startBinary(t, bins["collector"], append(influx, "GP_EMBEDDED_BROKER="+broker, "GP_COLLECTOR_ADDR="+ops,
		"GP_SPOOL_DIR="+t.TempDir(), "GP_DEADLETTER_RATE=0")...)
	const viewer = "viewer-key-for-metrics"
	api := startBinary(t, bins["api"], append(influx, "GP_API_ADDR="+apiAddr, "GP_API_KEYS=viewer:"+viewer)...)

	var dev mqtt.Client
	testenv.Eventually(t, 30*time.Second, func() string {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID("b-1").SetUsername("b-1").
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second)
		dev = mqtt.NewClient(opts)
		if tok := dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return fmt.Sprintf("the embedded broker takes no device: %v\n%s", tok.Error(), col.String())
		}
		return ""
	})
	defer dev.Disconnect(100)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	for _, payload := range []string{fmt.Sprintf(`{"ts":%d,"seq":1,"boot":1,"fill_pct":40,"deposits":1}`, ts), `{not json`} {
		if tok := dev.Publish("gp/v1/o-1/bin/b-1/telemetry", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v\n%s", tok.Error(), col.String())
		}
	}

	used := usedMetrics(t)
	if len(used) < 10 {
		t.Fatalf("found only %v in the rules and the dashboard", used)
	}
	testenv.Eventually(t, 60*time.Second, func() string {
		var have []string
		for _, page := range []struct{ url, key string }{{"http://" + ops + "/metrics", ""}, {"http://" + apiAddr + "/metrics", ""}} {
			f, err := families(t, page.url, page.key)
			if err != nil {
				return err.Error() + "\n" + col.String() + "\n" + api.String()
			}
			have = append(have, f...)
		}
		// A request, so that the API's request counters have a series.
		if _, err := families(t, "http://"+apiAddr+"/v1/outlets", viewer); err != nil {
			return err.Error()
		}
		var missing []string
		for _, m := range used {
			if !slices.Contains(have, m) {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("the rules or the dashboard name metrics the binaries do not export: %v", missing)
		}
		return ""
	})
}
