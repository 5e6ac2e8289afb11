package deploytest

import (
	"bytes"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/greenpost/greenpost/internal/testenv"
)

var (
	buildOnce sync.Once
	built     map[string]string // program → binary
	buildErr  string
)

var goBuildOut = regexp.MustCompile(`-o /out/(\S+) `)

// images builds every program exactly as the Dockerfile's build stage does
// (each `RUN ... go build ...` line run as written, only -o pointed into a
// temporary directory) and returns the binaries by program. Once per test
// binary: the metrics test runs the binaries this built.
func images(t *testing.T) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		root := testenv.RepoRoot(t)
		stages, err := testenv.ReadDockerfile(filepath.Join(root, "deploy", "compose", "Dockerfile"))
		if err != nil {
			buildErr = err.Error()
			return
		}
		dir, err := osMkdirTemp()
		if err != nil {
			buildErr = err.Error()
			return
		}
		built = map[string]string{}
		for _, st := range stages {
			for _, run := range st.Run {
				if !strings.Contains(run, "go build") {
					continue
				}
				m := goBuildOut.FindStringSubmatch(run)
				if m == nil {
					buildErr = "a go build line without -o /out/<name>: " + run
					return
				}
				line := strings.Replace(run, "-o /out/", "-o "+dir+"/", 1)
				cmd := exec.Command("bash", "-c", line)
				cmd.Dir = root
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					buildErr = run + ": " + err.Error() + "\n" + out.String()
					return
				}
				built[m[1]] = filepath.Join(dir, m[1])
			}
		}
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return built
}

// TestImagesBuild: each image's build command (CGO_ENABLED=0 go build with
// the Dockerfile's flags) builds its program, statically linked (the base
// image has no C library), and every image runs as a non-root user with a
// healthcheck where a program serves /healthz.
func TestImagesBuild(t *testing.T) {
	bins := images(t)
	for _, p := range []string{"collector", "api", "firmware-sim", "gpctl"} {
		path, ok := bins[p]
		if !ok {
			t.Errorf("the Dockerfile builds no %s", p)
			continue
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked: it would not start on a distroless static image", p)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs %v", p, libs)
		}
		f.Close()
	}
	stages, err := testenv.ReadDockerfile(filepath.Join(testenv.RepoRoot(t), "deploy", "compose", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]testenv.DockerStage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	user := func(s testenv.DockerStage) string {
		for ; ; s = byName[s.From] {
			if s.User != "" || byName[s.From].Name == "" {
				return s.User
			}
		}
	}
	for target, port := range map[string]string{"collector": "9100", "api": "8080", "firmware-sim": "", "gpctl": ""} {
		s, ok := byName[target]
		if !ok {
			t.Errorf("no target %s", target)
			continue
		}
		if u := user(s); u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
			t.Errorf("target %s runs as %q, want a non-root user", target, u)
		}
		if port != "" && !strings.Contains(s.Healthcheck, `"/usr/local/bin/gpctl", "probe", "http://127.0.0.1:`+port+`/healthz"`) {
			t.Errorf("target %s: healthcheck %q, want gpctl probe of /healthz on %s", target, s.Healthcheck, port)
		}
		if port != "" && s.Env[map[string]string{"collector": "GP_COLLECTOR_ADDR", "api": "GP_API_ADDR"}[target]] != "0.0.0.0:"+port {
			t.Errorf("target %s listens on %v, not where its healthcheck looks", target, s.Env)
		}
	}
}
