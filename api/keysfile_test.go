package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// newKey makes a key with the project's own tool and returns the key and
// its line for the keys file.
func newKey(t *testing.T, role, name string, scope ...string) (key, line string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(t), "deploy", "tools", "new-api-key.sh"), append([]string{role, name}, scope...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("new-api-key.sh %s %s: %v", role, name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("new-api-key.sh printed %q, want the key and its line", out)
	}
	return lines[0], lines[1]
}

// TestStartsWithDocumentedKeysFile starts the program (this test binary
// re-executed runs main's body, settings.Main(run)) the way the systemd unit
// and the Kubernetes manifest do: GP_API_KEYS_FILE in the documented form,
// made with deploy/tools/new-api-key.sh, and the InfluxDB token from a file.
// It must start, and each key must work with its role and scope.
func TestStartsWithDocumentedKeysFile(t *testing.T) {
	in := testenv.SharedInflux(t)
	dir := t.TempDir()
	admin, adminLine := newKey(t, roleAdmin, "ops")
	viewer, viewerLine := newKey(t, roleViewer, "district-office")
	wuchang, wuchangLine := newKey(t, roleAdmin, "wuchang-office", "districts=wuchang", "operators=SF%20Express,sf")
	keys := filepath.Join(dir, "api-keys")
	os.WriteFile(keys, []byte("# the bureau's keys\n\n"+adminLine+"\n"+viewerLine+"\n"+wuchangLine+"\n"), 0o600)
	token := filepath.Join(dir, "influx-token")
	os.WriteFile(token, []byte("unused-by-an-open-1.8:x\n"), 0o600)

	p := testenv.StartMain(t, []string{"GP_API_ADDR=127.0.0.1:0", "GP_INFLUX_URL=" + in.URL,
		"GP_INFLUX_BUCKET=" + freshBucket(t, in), "GP_API_KEYS_FILE=" + keys, "GP_INFLUX_TOKEN_FILE=" + token})
	if err := p.WaitOutput(`"msg":"started"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m := startedAddr.FindStringSubmatch(p.Output())
	if m == nil || !strings.Contains(p.Output(), `"keys":3`) {
		t.Fatalf("no address or not 3 keys in the start line:\n%s", p.Output())
	}
	api := &apiProcess{base: "http://" + m[1]}
	waitUntil(t, 20*time.Second, "/readyz", func() bool { return api.do(t, "GET", "/readyz", "", "", "").Status == 200 })
	put := `{"name":"One","district":"jianghan","address":"","lat":30.5,"lon":114.2,"operator":"sf"}`
	for _, tc := range []struct {
		method, path, key, body string
		want                    int
	}{
		{"GET", "/v1/outlets", viewer, "", 200},
		{"PUT", "/v1/outlets/o-1", viewer, put, 403},
		{"PUT", "/v1/outlets/o-1", admin, put, 200},
		{"GET", "/v1/outlets/o-1", viewer, "", 200},
		{"GET", "/v1/outlets/o-1", wuchang, "", 404}, // jianghan is outside its scope
		{"PUT", "/v1/outlets/o-1", wuchang, put, 403},
		{"PUT", "/v1/outlets/o-2", wuchang, strings.Replace(put, "jianghan", "wuchang", 1), 200},
		{"GET", "/v1/outlets/o-2", wuchang, "", 200},
		{"PUT", "/v1/targets/t-1", wuchang, `{"name":"t","source":"s","valid_from":"2026-01-01","targets":{"green_rate":0.5}}`, 403},
		{"GET", "/v1/outlets", adminLine, "", 401}, // the hash line is not a key
		{"GET", "/v1/outlets", "", "", 401},
	} {
		ctype := ""
		if tc.body != "" {
			ctype = "application/json"
		}
		if a := api.do(t, tc.method, tc.path, tc.key, ctype, tc.body); a.Status != tc.want {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, a, tc.want)
		}
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Errorf("exit %d, %v after SIGTERM\n%s", code, err, p.Output())
	}
}
