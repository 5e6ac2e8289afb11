package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestMakeRun runs deploy/local/run.sh (what make run runs) for real on
// free ports, with a small city and one day of history: it fills the
// history with progress lines before going live, the API answers the day
// from it with the viewer key it prints, every program runs in a process
// group of its own (so a terminal's Ctrl-C reaches the script alone), and
// Ctrl-C — SIGINT to the script's process group, as a terminal sends it —
// stops everything in order, the collector drained into a running InfluxDB,
// with exit code 0.
func TestMakeRun(t *testing.T) {
	t.Parallel() // its own ports and data; the programs built once
	bin := buildBinaries(t)
	data := t.TempDir()
	ports := map[string]int{}
	var env []string
	for _, name := range []string{"INFLUX", "INFLUX_RPC", "MQTT", "API", "COLLECTOR"} {
		ports[name] = testenv.FreePort(t)
		env = append(env, fmt.Sprintf("GREENPOST_%s_PORT=%d", name, ports[name]))
	}
	cmd := exec.Command("bash", "deploy/local/run.sh")
	cmd.Dir = ".."
	cmd.Env = append(env, "GREENPOST_BIN="+bin, "GREENPOST_DATA="+data, "GREENPOST_OUTLETS=4", "GREENPOST_HISTORY_DAYS=1",
		"PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, as a terminal's foreground job has.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, pid := range children(cmd.Process.Pid) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	testenv.Eventually(t, 3*time.Minute, func() string {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("run.sh exited (%v):\n%s", err, out)
		default:
		}
		if !strings.Contains(out.String(), "GreenPost is running") {
			return "no banner yet:\n" + out.String()
		}
		return ""
	})
	text := out.String()
	for _, want := range []string{"filling the last 1 days of history for 4 outlets", "history: done", "registry: 4 outlets imported", "viewer key: "} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`(?m)^  history: [0-9]+ %$`).MatchString(text) {
		t.Errorf("no history progress line:\n%s", text)
	}
	key, err := os.ReadFile(filepath.Join(data, "viewer-key"))
	if err != nil || !strings.Contains(text, "viewer key: "+strings.TrimSpace(string(key))) {
		t.Fatalf("viewer key %q (%v) not the one printed:\n%s", key, err, text)
	}

	// The outlets are judged from the history's start (active_since), not
	// from the live start.
	as, _ := os.ReadFile(filepath.Join(data, "active-since"))
	if since, err := time.Parse(time.RFC3339, strings.TrimSpace(string(as))); err != nil || time.Since(since) < 24*time.Hour || time.Since(since) > 25*time.Hour {
		t.Errorf("active-since %q (%v): want the history's start, a day ago", as, err)
	}

	// The last day's figures come from the filled history at once.
	api := fmt.Sprintf("http://127.0.0.1:%d", ports["API"])
	testenv.Eventually(t, 2*time.Minute, func() string {
		code, body := call(t, "GET", api+"/v1/rates?group_by=city", strings.TrimSpace(string(key)), "", nil)
		if code != 200 || !regexp.MustCompile(`"parcels":\{"total":[1-9]`).MatchString(body) {
			return fmt.Sprintf("city rates: %d %s", code, body)
		}
		return ""
	})

	// Each program in a process group of its own, not the script's.
	kids := children(cmd.Process.Pid)
	if len(kids) < 4 {
		t.Errorf("programs running under the script: %v, want influxd, collector, api and the simulator", kids)
	}
	for _, pid := range kids {
		if pgid, _ := syscall.Getpgid(pid); pgid == cmd.Process.Pid {
			t.Errorf("process %d shares the script's process group: a terminal's Ctrl-C reaches it", pid)
		}
	}

	// Ctrl-C.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run.sh after Ctrl-C: %v, want exit 0\n%s", err, out)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("run.sh still running 90 s after Ctrl-C:\n%s", out)
	}
	text = out.String()
	last := -1
	for _, name := range []string{"firmware-sim", "api", "collector", "influxd"} {
		i := strings.Index(text, "stopping "+name+"…")
		if i < last {
			t.Errorf("%s stopped out of order:\n%s", name, text)
		}
		last = i
	}
	collectorLog, _ := os.ReadFile(filepath.Join(data, "logs", "collector.log"))
	if !bytes.Contains(collectorLog, []byte(`"msg":"stopped","component":"collector","spool_points":0`)) {
		t.Errorf("the collector did not drain its spool before InfluxDB stopped:\n%s", collectorLog)
	}
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		n, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// TestRunScriptParts runs make run's functions on their own: the logs of
// the last five runs are kept (they were overwritten at each run), and the
// keys are made once, kept private and the same on the next run.
func TestRunScriptParts(t *testing.T) {
	data := t.TempDir()
	script := `source deploy/local/run.sh
data="$1"
for i in 1 2 3 4 5 6 7; do rotate_logs "$data/logs"; echo "$i" > "$data/logs/api.log"; done
ensure_keys; cp "$data/viewer-key" "$data/viewer-key.first"; ensure_keys`
	cmd := exec.Command("bash", "-c", script, "bash", data)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for dir, want := range map[string]string{"": "7", "run-1": "6", "run-2": "5", "run-5": "2"} {
		b, err := os.ReadFile(filepath.Join(data, "logs", dir, "api.log"))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("logs/%s/api.log: %q, %v; want run %s", dir, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "logs", "run-6")); err == nil {
		t.Error("logs of a sixth run before are kept")
	}
	first, _ := os.ReadFile(filepath.Join(data, "viewer-key.first"))
	again, _ := os.ReadFile(filepath.Join(data, "viewer-key"))
	if len(first) < 8 || !bytes.Equal(first, again) {
		t.Errorf("viewer key %q, then %q", first, again)
	}
	for _, f := range []string{"admin-key", "viewer-key", "api-keys"} {
		if fi, err := os.Stat(filepath.Join(data, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, fi.Mode(), err)
		}
	}
}
