package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/greenpost/greenpost/internal/testenv"
)

// promtool returns Debian's promtool (make tools installs it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run `make tools` (deploy/tools/ensure-promtool.sh installs Debian's prometheus package)")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules: promtool accepts the alert rules and the compose
// install's Prometheus config (with the rules where compose mounts them),
// the rules' unit tests pass (each alert fires on what should fire it and
// not on its healthy neighbour), and every alert has a test.
func TestAlertRules(t *testing.T) {
	mon := deployPath(t, "monitoring")
	runPromtool(t, mon, "check", "rules", "alerts.yml")
	runPromtool(t, mon, "test", "rules", "alerts_test.yml")

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(mon, "alerts.yml"), &rules)
	tests := mustRead(t, filepath.Join(mon, "alerts_test.yml"))
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !strings.Contains(tests, "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no unit test in alerts_test.yml", r.Alert)
			}
		}
	}

	// The compose file mounts the rules at the path prometheus.yml names.
	dir := t.TempDir()
	conf := mustRead(t, deployPath(t, "compose", "prometheus", "prometheus.yml"))
	c, err := testenv.ReadCompose(deployPath(t, "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts(t, c, "prometheus") {
		if m.kind == "bind" && strings.HasSuffix(m.source, "alerts.yml") {
			local := filepath.Join(dir, filepath.Base(m.target))
			os.WriteFile(local, []byte(mustRead(t, filepath.Join(deployPath(t, "compose"), m.source))), 0o644)
			conf = strings.ReplaceAll(conf, m.target, local)
		}
	}
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644)
	runPromtool(t, dir, "check", "config", "prometheus.yml")
}

// TestDashboardPromQL: every Prometheus expression of the dashboard parses
// (promtool checks them as recording rules, with Grafana's interval
// variables filled in as Grafana does).
func TestDashboardPromQL(t *testing.T) {
	_, exprs := dashboardQueries(t)
	if len(exprs) == 0 {
		t.Fatal("the dashboard has no Prometheus panels")
	}
	var rules []map[string]string
	for i, e := range exprs {
		e = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "30s").Replace(e)
		if strings.Contains(e, "$") {
			t.Errorf("%q uses a variable the test does not fill", e)
		}
		rules = append(rules, map[string]string{"record": fmt.Sprintf("greenpost:dashboard_%d", i), "expr": e})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dashboard.yml"), b, 0o644)
	runPromtool(t, dir, "check", "rules", "dashboard.yml")
}

// metricName finds metric names in PromQL: GreenPost's own families and up.
var metricName = regexp.MustCompile(`\b(?:greenpost_|gp_api_)[a-z0-9_]+\b`)

// usedMetrics returns every GreenPost metric the alert rules and the
// dashboard name, histogram series mapped to their family.
func usedMetrics(t *testing.T) []string {
	_, exprs := dashboardQueries(t)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, deployPath(t, "monitoring", "alerts.yml"), &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	var out []string
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(m, "_seconds"+suffix) {
					m = strings.TrimSuffix(m, suffix)
				}
			}
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	return out
}
