package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/settings"
)

// DeployEnv is the environment that one file under deploy/ gives one
// program. Each program's tests check every such environment with the
// program's own settings loader, so that no shipped file can set a name the
// program does not know or a value it refuses (the documented keys file once
// made bin/api exit 2 exactly so).
type DeployEnv struct {
	File    string            // relative to the repository root
	Program string            // "api", "collector" or "firmware-sim"
	Env     map[string]string // GP_ settings as the file gives them (specifiers filled in)
}

// Programs are the binaries a deploy file may start.
var Programs = []string{"api", "collector", "firmware-sim"}

// RepoRoot returns the repository's root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// DeploySettings reads every file under deploy/ that carries GP_ settings:
// systemd environment files and units, Kubernetes kustomizations (rendered
// by Kustomize; the manifests they list are read through them), the compose
// file and the Dockerfile's ENV lines. A file that sets GP_ names in a form
// no reader here knows fails the test, so a new kind of file is checked from
// its first day. Documentation (*.md), comment lines and GP_ names that are
// not given a value (prose in alert rules or dashboards) are not settings.
func DeploySettings(t testing.TB) []DeployEnv {
	t.Helper()
	root := RepoRoot(t)
	kustomized := map[string]bool{} // directories under a kustomization
	err := filepath.WalkDir(filepath.Join(root, "deploy"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			kustomized[filepath.Dir(path)] = true
		}
		return err
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	underKustomization := func(path string) bool {
		for dir := filepath.Dir(path); strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
			if kustomized[dir] || kustomized[filepath.Join(dir, "base")] {
				return true
			}
		}
		return false
	}
	var out []DeployEnv
	err = filepath.WalkDir(filepath.Join(root, "deploy"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".md") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var envs []DeployEnv
		switch {
		case d.Name() == "kustomization.yaml":
			var objs []map[string]any
			if objs, err = kustomize(filepath.Dir(path), true); err == nil {
				envs, err = readManifests(rel, objs)
			}
		case !carriesSettings(b) && !strings.HasSuffix(path, ".service"):
			return nil // a unit carries settings through its EnvironmentFile too
		case underKustomization(path):
			return nil // read through its kustomization
		case rel == filepath.Join("deploy", "local", "run.sh"):
			envs, err = readRunScript(t, root, rel)
		case strings.HasSuffix(path, ".env.example"):
			envs, err = readEnvExample(rel, b)
		case strings.HasSuffix(path, ".service"):
			envs, err = readUnit(root, rel, b)
		case d.Name() == "compose.yaml":
			envs, err = readCompose(rel, b)
		case d.Name() == "Dockerfile":
			envs, err = readDockerfile(rel, b)
		default:
			err = errors.New("sets GP_ names in a form testenv/deploy.go does not read: add a reader there")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for _, e := range envs {
			if !slices.Contains(Programs, e.Program) {
				return fmt.Errorf("%s: starts %q, which is none of %v", rel, e.Program, Programs)
			}
		}
		out = append(out, envs...)
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

// readRunScript runs deploy/local/run.sh's own functions: ensure_keys makes
// its keys in a temporary data directory, settings_for prints each program's
// settings.
func readRunScript(t testing.TB, root, rel string) ([]DeployEnv, error) {
	data := t.TempDir()
	var out []DeployEnv
	for _, prog := range Programs {
		cmd := exec.Command("bash", "-c", `source "$1" && data="$2" && ensure_keys && settings_for "$3"`, "bash", rel, data, prog)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("settings_for %s: %v: %s", prog, err, stderr.String())
		}
		env := map[string]string{}
		if err := readEnvLines(b, env); err != nil {
			return nil, fmt.Errorf("settings_for %s: %w", prog, err)
		}
		out = append(out, DeployEnv{File: rel + " (settings_for " + prog + ")", Program: prog, Env: env})
	}
	return out, nil
}

// gpSetting is a GP_ name given a value: NAME=, NAME: or {name: NAME, ...}.
var gpSetting = regexp.MustCompile(`\bGP_[A-Z0-9_]+["']?\s*[:=,]`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// carriesSettings reports whether a GP_ name is given a value outside
// comment lines.
func carriesSettings(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "#") && gpSetting.MatchString(line) {
			return true
		}
	}
	return false
}

// readEnvLines reads NAME=VALUE lines (systemd EnvironmentFile syntax without
// continuation lines; a value may be quoted).
func readEnvLines(b []byte, env map[string]string) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || !envName.MatchString(name) {
			return fmt.Errorf("line %d: not NAME=VALUE", n)
		}
		env[name] = unquote(value)
	}
	return sc.Err()
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// readEnvExample reads systemd/<program>.env.example.
func readEnvExample(rel string, b []byte) ([]DeployEnv, error) {
	env := map[string]string{}
	if err := readEnvLines(b, env); err != nil {
		return nil, err
	}
	return []DeployEnv{{File: rel, Program: strings.TrimSuffix(filepath.Base(rel), ".env.example"), Env: env}}, nil
}

// readUnit reads a systemd unit: its EnvironmentFile (which must ship as
// <name>.example beside the unit), its Environment= lines, and the program
// of ExecStart. Instance specifiers are filled with a sample instance.
func readUnit(root, rel string, b []byte) ([]DeployEnv, error) {
	e := DeployEnv{File: rel, Env: map[string]string{}}
	var envLines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch key {
		case "EnvironmentFile":
			example := filepath.Join(root, filepath.Dir(rel), filepath.Base(strings.TrimPrefix(value, "-"))+".example")
			fb, err := os.ReadFile(example)
			if err != nil {
				return nil, fmt.Errorf("EnvironmentFile=%s: no example of it beside the unit: %w", value, err)
			}
			if err := readEnvLines(fb, e.Env); err != nil {
				return nil, fmt.Errorf("%s: %w", example, err)
			}
		case "Environment":
			envLines = append(envLines, unquote(value))
		case "ExecStart":
			fields := strings.Fields(value)
			if len(fields) == 0 {
				return nil, errors.New("empty ExecStart")
			}
			e.Program = filepath.Base(strings.TrimLeft(fields[0], "-@:+!"))
		}
	}
	// Environment= lines override the file, as in systemd.
	if err := readEnvLines([]byte(strings.Join(envLines, "\n")), e.Env); err != nil {
		return nil, fmt.Errorf("Environment=: %w", err)
	}
	for k, v := range e.Env {
		s, err := systemdSpecifiers(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		e.Env[k] = s
	}
	return []DeployEnv{e}, nil
}

// systemdSpecifiers fills the unit specifiers a unit here may use, with the
// values of instance 1 on host "host-1".
func systemdSpecifiers(v string) (string, error) {
	var out strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			out.WriteByte(v[i])
			continue
		}
		if i+1 == len(v) {
			return "", errors.New("a lone % at the end")
		}
		i++
		switch v[i] {
		case 'i', 'I':
			out.WriteString("1")
		case 'H', 'l':
			out.WriteString("host-1")
		case '%':
			out.WriteByte('%')
		default:
			return "", fmt.Errorf("specifier %%%c: add it to testenv/deploy.go", v[i])
		}
	}
	return out.String(), nil
}

// readManifests reads the containers of every workload (Deployment,
// StatefulSet, DaemonSet, Job) among rendered Kubernetes objects. The
// program is the image's name (<registry>/greenpost/<program>:tag); $(VAR)
// references to other variables of the container are filled with a sample
// value.
func readManifests(rel string, objs []map[string]any) ([]DeployEnv, error) {
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var out []DeployEnv
	for _, o := range objs {
		for _, c := range PodContainers(o) {
			image, _ := c["image"].(string)
			if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
				image = image[:i]
			}
			name, _ := c["name"].(string)
			e := DeployEnv{File: fmt.Sprintf("%s (%s %s, container %s)", rel, o["kind"], ObjectName(o), name), Program: filepath.Base(image), Env: map[string]string{}}
			vars, _ := c["env"].([]any)
			samples, values := map[string]string{}, map[string]string{}
			for _, v := range vars {
				m, _ := v.(map[string]any)
				n, _ := m["name"].(string)
				switch val, ok := m["value"]; {
				case ok:
					values[n] = fmt.Sprint(val)
					samples[n] = values[n]
				case strings.HasPrefix(n, "GP_"):
					return nil, fmt.Errorf("%s: valueFrom for a GP_ setting: give the value, or a _FILE form mounted from the secret", n)
				default:
					samples[n] = "sample-" + strings.ToLower(n)
				}
			}
			for n, v := range values {
				if strings.HasPrefix(n, "GP_") {
					e.Env[n] = ref.ReplaceAllStringFunc(v, func(m string) string {
						if s, ok := samples[m[2:len(m)-1]]; ok {
							return s
						}
						return m // Kubernetes leaves an unknown reference as it is
					})
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Getenv returns the environment as the program would see it on a machine
// prepared the way the file expects: a value naming a path under /etc, /var
// or /run becomes a file (or, for GP_SPOOL_DIR, a directory) in a temporary
// directory, with content of the kind the setting names — a CA bundle, a
// keys file in the documented form, a secret.
func (e DeployEnv) Getenv(t testing.TB) func(string) string {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{}
	for k, v := range e.Env {
		local := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(v, "/")))
		switch _, err := os.Stat(v); {
		case strings.HasPrefix(v, "/etc/") || strings.HasPrefix(v, "/var/") || strings.HasPrefix(v, "/run/"):
		case strings.HasSuffix(k, "_FILE") && strings.HasPrefix(v, os.TempDir()) && errors.Is(err, fs.ErrNotExist):
			// A file that make run's script makes while it runs (gpctl
			// provision): the sample stands in for it where it would be.
			local = v
		default:
			env[k] = v
			continue
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		env[k] = local
		var content []byte
		switch {
		case k == "GP_SPOOL_DIR":
			continue // the collector makes it
		case k == "GP_API_COLD_DIR":
			// A directory the deployment gives the API (a volume, systemd's
			// CacheDirectory): it exists when the API starts.
			if err := os.MkdirAll(local, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		case strings.HasSuffix(k, "_CA_FILE"):
			ca, err := os.ReadFile(NewCerts(t, t.TempDir()).CAFile)
			if err != nil {
				t.Fatal(err)
			}
			content = ca
		case k == "GP_API_KEYS_FILE":
			// The documented form: <role> <name> <sha256 hex of the key>.
			content = []byte("# keys of the bureau\nadmin ops 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n" +
				"viewer district-office 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\n")
		case k == "GP_EMBEDDED_BROKER_USERS_FILE":
			// runtime-v1's form: collector <username> <sha256 hex>, and
			// device <id> <sha256 hex> <outlet> <bin|counter>.
			content = []byte("collector gp-collector 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n" +
				"device b-0001-1 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752 o-0001 bin\n")
		case strings.HasSuffix(k, "_TOKEN_FILE"), strings.HasSuffix(k, "_PASSWORD_FILE"):
			content = []byte("user:s3cret\n")
		default:
			t.Fatalf("%s: %s=%s names a file that testenv/deploy.go has no sample of: add one", e.File, k, v)
		}
		if err := os.WriteFile(local, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(k string) string { return env[k] }
}

// Environ returns e's settings as NAME=VALUE entries, sorted.
func (e DeployEnv) Environ() []string {
	var out []string
	for k, v := range e.Env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// CheckDeploySettings runs, for every deploy/ file that starts program, the
// program's own settings loader (load) on the environment the file gives it,
// and checks that it names no setting the program does not know and that no
// secret's NAME_FILE is a setting of its own (settings.Known and Extra are
// the test binary's, so the program's). At least want files must start the
// program, so a reader that silently stops seeing one fails.
func CheckDeploySettings(t *testing.T, program string, want int, load func(t *testing.T, e DeployEnv, getenv func(string) string) error) {
	t.Helper()
	if c := settings.FileFormClashes(); len(c) > 0 {
		t.Errorf("secrets whose NAME_FILE is one of %s's settings: %v", program, c)
	}
	var files []string
	for _, e := range DeploySettings(t) {
		if e.Program != program {
			continue
		}
		files = append(files, e.File)
		t.Run(e.File, func(t *testing.T) {
			if u := settings.Unknown(e.Environ()); len(u) > 0 {
				t.Errorf("names %s does not know: %v", program, u)
			}
			if err := load(t, e, e.Getenv(t)); err != nil {
				t.Fatalf("%v\nsettings: %v", err, e.Environ())
			}
		})
	}
	if len(files) < want {
		t.Errorf("deploy files that start %s: %v; want at least %d", program, files, want)
	}
}
