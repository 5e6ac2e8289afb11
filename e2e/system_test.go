package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/city"
	"github.com/greenpost/greenpost/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// built holds the programs, built once for all the tests here.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// buildBinaries builds the programs, gpctl included (make run provisions
// with it), not under -race: they are the system under test, run as an
// operator runs them. The first test to ask builds them; the others (they
// run in parallel) wait for it and run the same binaries.
func buildBinaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir = testenv.SharedDir(t, "gp-e2e-bin-")
		cmd := exec.Command("go", "build", "-o", built.dir+"/", "./collector", "./api", "./firmware-sim", "./gpctl")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// proc is a program of the system, its output kept for failures.
type proc struct {
	*testenv.Child
	out *testenv.SyncBuffer
}

func start(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &proc{out: &testenv.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	c, err := testenv.StartChild(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Child = c
	t.Cleanup(func() { c.Stop(syscall.SIGTERM, 20*time.Second) })
	return p
}

// addr waits for the "started" log line and returns its addr.
func (p *proc) addr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "started" && l.Addr != "" {
				return l.Addr
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no started line:\n%s", p.out.String())
	return ""
}

// TestSimulatorCollectorAPIAgreeWithTruth runs the whole system: a city of
// outlets with reboots, offline spells, duplicates and malformed messages
// over MQTT; the collector stores it; the API's per-outlet figures over the
// truth's window must equal the simulator's ground truth to the parcel and
// to the minute, and the malformed messages must be dead letters.
func TestSimulatorCollectorAPIAgreeWithTruth(t *testing.T) {
	t.Parallel() // with TestMakeRun: both mostly wait for simulated time
	bin := buildBinaries(t)
	in := testenv.SharedInflux(t)
	mq := testenv.SharedMosquitto(t)
	dir := t.TempDir()
	const key = "e2e-admin-key-123"

	collector := start(t, filepath.Join(bin, "collector"), []string{"GP_MQTT_URL=" + mq.URL, "GP_MQTT_CLIENT_ID=e2e-collector",
		"GP_INFLUX_URL=" + in.URL, "GP_INFLUX_BUCKET=" + in.Bucket, "GP_SPOOL_DIR=" + filepath.Join(dir, "spool"),
		"GP_COLLECTOR_ADDR=127.0.0.1:0", "GP_FLUSH_INTERVAL=50ms"})
	collectorAddr := collector.addr(t)
	api := start(t, filepath.Join(bin, "api"), []string{"GP_API_ADDR=127.0.0.1:0", "GP_INFLUX_URL=" + in.URL,
		"GP_INFLUX_BUCKET=" + in.Bucket, "GP_API_KEYS=admin:" + key, "GP_API_CACHE_TTL=0s"})
	apiURL := "http://" + api.addr(t)
	testenv.Eventually(t, 30*time.Second, func() string {
		if !strings.Contains(collector.out.String(), "mqtt connected and subscribed") {
			return "collector not subscribed:\n" + collector.out.String()
		}
		return ""
	})

	truthFile, registry := filepath.Join(dir, "truth.json"), filepath.Join(dir, "registry.csv")
	sim := exec.Command(filepath.Join(bin, "firmware-sim"), "-outlets", "6", "-bins", "2", "-interval", "1s",
		"-reports", "45", "-speed", "600", "-seed", "42", "-truth", truthFile, "-registry", registry,
		"-faults", "reboot,offline,duplicate,malformed", "-reboot-rate", "0.02", "-offline-rate", "0.01",
		"-offline-for", "3s", "-duplicate-rate", "0.05", "-malformed-rate", "0.03")
	sim.Env = []string{"GP_MQTT_URL=" + mq.URL, "GP_LOG_LEVEL=warn", "PATH=" + os.Getenv("PATH")}
	if out, err := sim.CombinedOutput(); err != nil {
		t.Fatalf("firmware-sim: %v\n%s", err, out)
	}
	var truth city.Report
	b, err := os.ReadFile(truthFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	csv, _ := os.ReadFile(registry)
	if code, body := call(t, "POST", apiURL+"/v1/outlets/import", key, "text/csv", csv); code != 200 || !strings.Contains(body, `"imported":6`) {
		t.Fatalf("import: %d %s", code, body)
	}

	var sumParcels int64
	for _, o := range truth.Outlets {
		sumParcels += o.Total
	}
	var malformed int
	for _, n := range truth.Malformed {
		malformed += n
	}
	if sumParcels == 0 || malformed == 0 {
		t.Fatalf("the run made %d parcels and %d malformed messages: too little to test", sumParcels, malformed)
	}
	// The window's last minutes may still lie ahead: wait for them to pass.
	if d := time.Until(truth.To); d > 0 {
		time.Sleep(d)
	}

	q := fmt.Sprintf("?from=%s&to=%s", truth.From.Format(time.RFC3339), truth.To.Format(time.RFC3339))
	var diffs []string
	testenv.Eventually(t, 60*time.Second, func() string {
		diffs = diffs[:0]
		for _, o := range truth.Outlets {
			code, body := call(t, "GET", apiURL+"/v1/outlets/"+o.Outlet+"/rates"+q, key, "", nil)
			if code != 200 {
				return fmt.Sprintf("rates of %s: %d %s", o.Outlet, code, body)
			}
			var got struct {
				Parcels struct {
					Total   int64            `json:"total"`
					Green   int64            `json:"green"`
					ByClass map[string]int64 `json:"by_class"`
				} `json:"parcels"`
				GreenRate      *float64 `json:"green_rate"`
				BoxesRecovered int64    `json:"boxes_recovered"`
				BinsReporting  int      `json:"bins_reporting"`
				BinCoverage    float64  `json:"bin_coverage"`
			}
			json.Unmarshal([]byte(body), &got)
			check := func(what string, g, w any) {
				if fmt.Sprint(g) != fmt.Sprint(w) {
					diffs = append(diffs, fmt.Sprintf("%s %s: api %v, truth %v", o.Outlet, what, g, w))
				}
			}
			check("total", got.Parcels.Total, o.Total)
			check("green", got.Parcels.Green, o.Green)
			for class, n := range o.Parcels {
				check(class, got.Parcels.ByClass[class], n)
			}
			check("boxes_recovered", got.BoxesRecovered, o.BoxesRecovered)
			check("bins_reporting", got.BinsReporting, o.BinsReporting)
			if math.Abs(got.BinCoverage-o.BinCoverage) > 1e-9 {
				diffs = append(diffs, fmt.Sprintf("%s bin_coverage: api %v, truth %v", o.Outlet, got.BinCoverage, o.BinCoverage))
			}
			if (got.GreenRate == nil) != (o.GreenRate == nil) || got.GreenRate != nil && math.Abs(*got.GreenRate-*o.GreenRate) > 1e-9 {
				diffs = append(diffs, fmt.Sprintf("%s green_rate: api %v, truth %v", o.Outlet, got.GreenRate, o.GreenRate))
			}
		}
		if len(diffs) > 0 {
			return strings.Join(diffs, "\n")
		}
		return ""
	})
	// Every malformed message is a dead letter with the reason the simulator meant.
	for reason, n := range truth.Malformed {
		testenv.Eventually(t, 30*time.Second, func() string {
			got := metric(t, collectorAddr, `greenpost_collector_messages_invalid_total{reason="`+string(reason)+`"}`)
			if int(got) != n {
				return fmt.Sprintf("invalid{%s} = %v, truth %d", reason, got, n)
			}
			return ""
		})
	}
	t.Logf("%d outlets, %d parcels, %d malformed messages: the API equals the truth", len(truth.Outlets), sumParcels, malformed)
}

func call(t *testing.T, method, url, key, ctype string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	_, body := call(t, "GET", "http://"+addr+"/metrics", "", "", nil)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, name+" "), &v)
			return v
		}
	}
	return -1
}
