package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Compose is the part of a compose file that deploy/compose uses. Reading
// it with unknown keys refused (top-level x- extensions aside) keeps the
// tests' picture of the file whole: a key added to the file is added here
// before it can go unchecked.
type Compose struct {
	Name     string                    `yaml:"name"`
	Services map[string]ComposeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes    map[string]any `yaml:"volumes"`
	Extensions map[string]any `yaml:",inline"`
}

// ComposeService is one service of a compose file.
type ComposeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Profiles        []string          `yaml:"profiles"`
	Restart         string            `yaml:"restart"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Command         []string          `yaml:"command"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Ports           []string          `yaml:"ports"`
	Environment     map[string]string `yaml:"environment"`
	Secrets         []ComposeSecret   `yaml:"secrets"`
	Volumes         []string          `yaml:"volumes"`
	DependsOn       map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
}

// ComposeSecret is a service's use of a secret: its name, and where it is
// mounted (/run/secrets/<name> unless a target says otherwise).
type ComposeSecret struct {
	Source, Target string
}

// UnmarshalYAML reads the short form (a name) and the long form.
func (s *ComposeSecret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Source = n.Value
	} else {
		var long struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		}
		if err := n.Decode(&long); err != nil {
			return err
		}
		s.Source, s.Target = long.Source, long.Target
	}
	if s.Target == "" {
		s.Target = "/run/secrets/" + s.Source
	} else if !strings.HasPrefix(s.Target, "/") {
		s.Target = "/run/secrets/" + s.Target
	}
	return nil
}

// ReadCompose reads a compose file. Variable interpolation (${...}) is
// refused: the file is meant to be read as it stands.
func ReadCompose(path string) (*Compose, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCompose(b)
}

func parseCompose(b []byte) (*Compose, error) {
	if bytes.Contains(b, []byte("${")) {
		return nil, fmt.Errorf("uses ${...} interpolation, which testenv/compose.go does not do")
	}
	var c Compose
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	for k := range c.Extensions {
		if !strings.HasPrefix(k, "x-") {
			return nil, fmt.Errorf("top-level key %q: not read by testenv/compose.go", k)
		}
	}
	return &c, nil
}

// readCompose gives the environment of every service that runs a GreenPost
// program: one built from a Dockerfile target named like the program.
func readCompose(rel string, b []byte) ([]DeployEnv, error) {
	c, err := parseCompose(b)
	if err != nil {
		return nil, err
	}
	var out []DeployEnv
	for name, s := range c.Services {
		if s.Build == nil {
			for k := range s.Environment {
				if strings.HasPrefix(k, "GP_") {
					return nil, fmt.Errorf("service %s sets %s but runs no GreenPost image", name, k)
				}
			}
			continue
		}
		e := DeployEnv{File: rel + " (service " + name + ")", Program: s.Build.Target, Env: map[string]string{}}
		for k, v := range s.Environment {
			e.Env[k] = v
		}
		out = append(out, e)
	}
	return out, nil
}

// DockerStage is one stage of a Dockerfile.
type DockerStage struct {
	Name, From  string
	Env         map[string]string
	Run         []string // RUN commands, continuation lines joined
	User        string
	Healthcheck string
	Entrypoint  string
	Copies      []string
}

// ReadDockerfile reads the stages of a Dockerfile (FROM, ENV, RUN, USER,
// HEALTHCHECK, ENTRYPOINT, COPY), in order.
func ReadDockerfile(path string) ([]DockerStage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDockerfile(b)
}

var fromLine = regexp.MustCompile(`^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$`)

func parseDockerfile(b []byte) ([]DockerStage, error) {
	var stages []DockerStage
	var logical []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	cur := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		logical = append(logical, cur+line)
		cur = ""
	}
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		if strings.ToUpper(instr) == "FROM" {
			m := fromLine.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("FROM line %q", l)
			}
			stages = append(stages, DockerStage{Name: m[2], From: m[1], Env: map[string]string{}})
			continue
		}
		if len(stages) == 0 {
			if strings.ToUpper(instr) == "ARG" {
				continue
			}
			return nil, fmt.Errorf("%q before FROM", l)
		}
		st := &stages[len(stages)-1]
		switch strings.ToUpper(instr) {
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("ENV %q: write NAME=VALUE", rest)
				}
				st.Env[k] = unquote(v)
			}
		case "RUN":
			st.Run = append(st.Run, rest)
		case "USER":
			st.User = rest
		case "HEALTHCHECK":
			st.Healthcheck = rest
		case "ENTRYPOINT":
			st.Entrypoint = rest
		case "COPY":
			st.Copies = append(st.Copies, rest)
		case "WORKDIR", "EXPOSE", "STOPSIGNAL", "ARG", "LABEL":
		default:
			return nil, fmt.Errorf("instruction %s: not read by testenv/compose.go", instr)
		}
	}
	return stages, nil
}

// readDockerfile gives the environment each program's image sets (ENV of
// the stage named like the program and of the stages it is built FROM).
func readDockerfile(rel string, b []byte) ([]DeployEnv, error) {
	stages, err := parseDockerfile(b)
	if err != nil {
		return nil, err
	}
	byName := map[string]DockerStage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	var out []DeployEnv
	for _, p := range Programs {
		st, ok := byName[p]
		if !ok {
			continue
		}
		e := DeployEnv{File: rel + " (target " + p + ")", Program: p, Env: map[string]string{}}
		for s, ok := st, true; ok; s, ok = byName[s.From] {
			for k, v := range s.Env {
				if _, set := e.Env[k]; !set {
					e.Env[k] = v
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// ComposeSetup runs deploy/compose/setup.sh as an operator would, with
// gpctl built from this tree and the secrets written to dir instead of
// deploy/compose/secrets; args are setup.sh's (-registry, -devices, ...).
func ComposeSetup(t testing.TB, dir string, args ...string) {
	t.Helper()
	root := RepoRoot(t)
	gpctl := filepath.Join(t.TempDir(), "gpctl")
	build := exec.Command("go", "build", "-o", gpctl, "./gpctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./gpctl: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(root, "deploy", "compose", "setup.sh"), args...)
	cmd.Env = append(os.Environ(), "GPCTL="+gpctl, "GREENPOST_SECRETS="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh %v: %v\n%s", args, err, out)
	}
}
