package deploytest

import (
	"os"
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
