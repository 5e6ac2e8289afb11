package deploytest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/greenpost/greenpost/internal/testenv"
)

var tempRoot string

func TestMain(m *testing.M) {
	var err error
	if tempRoot, err = os.MkdirTemp("", "greenpost-deploytest-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tempRoot)
	os.Exit(code)
}

func osMkdirTemp() (string, error) { return os.MkdirTemp(tempRoot, "images-") }

// deployPath is a path under deploy/.
func deployPath(t *testing.T, parts ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot(t), "deploy"}, parts...)...)
}

// runScript runs a script of deploy/ with env added and returns its output;
// a failure fails the test.
func runScript(t *testing.T, env []string, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out.String())
	}
	return out.String()
}

// registryCSV and devicesCSV are a small city in the operator's formats.
const (
	registryCSV = "id,name,district,address,lat,lon,operator,active\n" +
		"o-1,One,jianghan,,30.6,114.3,SF Express,true\no-2,Two,wuchang,,30.5,114.3,JD Logistics,true\n"
	devicesCSV = "device,outlet,kind\nb-1,o-1,bin\nc-1,o-1,counter\nb-2,o-2,bin\n"
)

// cityFiles writes the registry and device list into a new directory.
func cityFiles(t *testing.T) (registry, devices string) {
	t.Helper()
	dir := t.TempDir()
	registry, devices = filepath.Join(dir, "registry.csv"), filepath.Join(dir, "devices.csv")
	os.WriteFile(registry, []byte(registryCSV), 0o644)
	os.WriteFile(devices, []byte(devicesCSV), 0o644)
	return registry, devices
}
