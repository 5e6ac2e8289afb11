package deploytest

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/testenv"
)

// mount is one filesystem a service sees: a named volume, a bind mount of
// a file or directory of the repository, or a secret.
type mount struct {
	source, target string
	readOnly       bool
	kind           string // volume, bind, secret
}

func mounts(t *testing.T, c *testenv.Compose, name string) []mount {
	t.Helper()
	s := c.Services[name]
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "ro") {
			t.Errorf("service %s: volume %q: want source:target[:ro]", name, v)
			continue
		}
		m := mount{source: parts[0], target: parts[1], readOnly: len(parts) == 3, kind: "volume"}
		if strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") {
			m.kind = "bind"
		}
		out = append(out, m)
	}
	for _, sec := range s.Secrets {
		out = append(out, mount{source: sec.Source, target: sec.Target, readOnly: true, kind: "secret"})
	}
	return out
}

// covering returns the mount that holds path inside the service.
func covering(ms []mount, path string) (mount, bool) {
	for _, m := range ms {
		if path == m.target || strings.HasPrefix(path, strings.TrimSuffix(m.target, "/")+"/") {
			return m, true
		}
	}
	return mount{}, false
}

// TestComposeWiring reads compose.yaml as docker compose would and checks
// that it is a whole, working install once setup.sh has run: every service
// and what it depends on exist; every file, secret and volume it names
// exists or is declared; every GP_ file setting points into a mount of its
// service; the collectors are two, in one share group, each with its own
// user, password file and spool volume, and time to drain; ports,
// listen addresses and healthchecks agree; InfluxDB's org, buckets and
// tokens are the same names everywhere; Mosquitto's config finds its
// files where the secrets are mounted; Prometheus scrapes every program
// and loads the alert rules; Grafana finds its data sources, token and
// dashboard.
func TestComposeWiring(t *testing.T) {
	dir := deployPath(t, "compose")
	c, err := testenv.ReadCompose(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	reg, dev := cityFiles(t)
	testenv.ComposeSetup(t, secrets, "-registry", reg, "-devices", dev, "-broker-host", "mqtt.city.example")
	// compose.yaml names ./secrets/...; setup.sh wrote them to secrets.
	local := func(src string) string {
		if rest, ok := strings.CutPrefix(src, "./secrets/"); ok {
			return filepath.Join(secrets, rest)
		}
		return filepath.Join(dir, src)
	}

	want := []string{"mosquitto", "influxdb", "influxdb-tokens", "collector-1", "collector-2", "api", "prometheus", "grafana", "simulator"}
	var got []string
	for name := range c.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	stages, err := testenv.ReadDockerfile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}

	for name, s := range c.Services {
		ms := mounts(t, c, name)
		for _, m := range ms {
			switch m.kind {
			case "volume":
				if _, ok := c.Volumes[m.source]; !ok {
					t.Errorf("service %s mounts volume %s, which is not declared", name, m.source)
				}
			case "bind":
				if _, err := os.Stat(local(m.source)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, m.source, err)
				}
				if !m.readOnly {
					t.Errorf("service %s mounts %s writable: the repository's files are configuration", name, m.source)
				}
			case "secret":
				def, ok := c.Secrets[m.source]
				if !ok {
					t.Errorf("service %s uses secret %s, which is not declared", name, m.source)
				} else if _, err := os.Stat(local(def.File)); err != nil {
					t.Errorf("secret %s: setup.sh did not make %s: %v", m.source, def.File, err)
				}
			}
		}
		for dep, d := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
			if !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition) {
				t.Errorf("service %s: depends_on %s condition %q", name, dep, d.Condition)
			}
			if d.Condition == "service_healthy" && c.Services[dep].Healthcheck == nil {
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		// The simulator serves nothing a healthcheck could ask.
		if s.Restart != "no" && s.Healthcheck == nil && name != "simulator" {
			t.Errorf("service %s runs for good but has no healthcheck", name)
		}
		if s.Build != nil {
			if filepath.Clean(filepath.Join(dir, s.Build.Context)) != testenv.RepoRoot(t) {
				t.Errorf("service %s builds from %s, not the repository root", name, s.Build.Context)
			}
			if !slices.ContainsFunc(stages, func(st testenv.DockerStage) bool { return st.Name == s.Build.Target }) {
				t.Errorf("service %s builds target %s, which the Dockerfile lacks", name, s.Build.Target)
			}
		}
		// Every file a GreenPost program is told to read is mounted.
		for k, v := range s.Environment {
			if !strings.HasPrefix(k, "GP_") || !strings.HasSuffix(k, "_FILE") && k != "GP_SPOOL_DIR" {
				continue
			}
			m, ok := covering(ms, v)
			if !ok {
				t.Errorf("service %s: %s=%s is in no mount of the service", name, k, v)
				continue
			}
			if k == "GP_SPOOL_DIR" && (m.kind != "volume" || m.readOnly) {
				t.Errorf("service %s: the spool %s is on %+v, want a writable named volume", name, v, m)
			}
		}
		// The ports published are the ones the programs listen on.
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			inner := parts[len(parts)-1]
			if addr := s.Environment["GP_API_ADDR"]; addr != "" && !strings.HasSuffix(addr, ":"+inner) {
				t.Errorf("service %s publishes %s but listens on %s", name, p, addr)
			}
		}
		if s.Healthcheck != nil {
			test := strings.Join(s.Healthcheck.Test, " ")
			for _, addr := range []string{s.Environment["GP_API_ADDR"], s.Environment["GP_COLLECTOR_ADDR"]} {
				if addr == "" {
					continue
				}
				_, port, _ := net.SplitHostPort(addr)
				if !strings.Contains(test, "gpctl probe http://127.0.0.1:"+port+"/healthz") {
					t.Errorf("service %s: healthcheck %q does not probe /healthz on %s", name, test, addr)
				}
			}
		}
	}

	// The collectors: one share group, each its own user and spool.
	users, spools := map[string]bool{}, map[string]bool{}
	var collectors []string
	for name, s := range c.Services {
		if s.Build == nil || s.Build.Target != "collector" {
			continue
		}
		collectors = append(collectors, name)
		env := s.Environment
		if env["GP_MQTT_SHARE_GROUP"] != provision.ShareGroup {
			t.Errorf("%s: GP_MQTT_SHARE_GROUP %q, want the provisioned %q", name, env["GP_MQTT_SHARE_GROUP"], provision.ShareGroup)
		}
		user := env["GP_MQTT_USERNAME"]
		if user == "" || users[user] {
			t.Errorf("%s: MQTT user %q empty or shared", name, user)
		}
		users[user] = true
		if env["GP_MQTT_CLIENT_ID"] != user {
			t.Errorf("%s: client id %q: want its username %q (a container's host name changes when it is re-created, and with it the session)", name, env["GP_MQTT_CLIENT_ID"], user)
		}
		if m, ok := covering(mounts(t, c, name), env["GP_MQTT_PASSWORD_FILE"]); !ok || c.Secrets[m.source].File != "./secrets/"+provision.CollectorsDir+"/"+user && c.Secrets[m.source].File != "./secrets/provision/"+provision.CollectorsDir+"/"+user {
			t.Errorf("%s: its password file is not gpctl provision's file of %s", name, user)
		}
		m, _ := covering(mounts(t, c, name), env["GP_SPOOL_DIR"])
		if spools[m.source] {
			t.Errorf("%s: spool volume %s shared with another collector", name, m.source)
		}
		spools[m.source] = true
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d < 20*time.Second {
			t.Errorf("%s: stop_grace_period %q: want longer than the drain (GP_SHUTDOWN_TIMEOUT 10 s) and the ack of what is in flight", name, s.StopGracePeriod)
		}
		for _, host := range []string{env["GP_MQTT_URL"], env["GP_INFLUX_URL"]} {
			u, err := url.Parse(host)
			if err != nil || c.Services[u.Hostname()].Image == "" {
				t.Errorf("%s: %s names no service of the file", name, host)
			}
		}
		if u, _ := url.Parse(env["GP_MQTT_URL"]); u.Scheme != "ssl" {
			t.Errorf("%s: %s: the broker is reached over TLS", name, env["GP_MQTT_URL"])
		}
	}
	if len(collectors) < 2 {
		t.Errorf("collectors %v: want two in the share group", collectors)
	}
	// Every collector user was provisioned (setup.sh's -collectors).
	creds, err := provision.ReadCredentials(filepath.Join(secrets, "provision", provision.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	for u := range users {
		if !slices.ContainsFunc(creds, func(c provision.Credential) bool { return c.Username == u && c.Role == provision.RoleCollector }) {
			t.Errorf("collector user %s is not provisioned by setup.sh", u)
		}
	}

	// InfluxDB: one org, the same buckets, the tokens the script makes.
	influx, tokens, api := c.Services["influxdb"].Environment, c.Services["influxdb-tokens"].Environment, c.Services["api"].Environment
	for name, s := range c.Services {
		if org, ok := s.Environment["GP_INFLUX_ORG"]; ok && org != influx["DOCKER_INFLUXDB_INIT_ORG"] {
			t.Errorf("%s: org %s, InfluxDB's is %s", name, org, influx["DOCKER_INFLUXDB_INIT_ORG"])
		}
		if b, ok := s.Environment["GP_INFLUX_BUCKET"]; ok && (b != influx["DOCKER_INFLUXDB_INIT_BUCKET"] || b != tokens["GREENPOST_BUCKET"]) {
			t.Errorf("%s: bucket %s, InfluxDB makes %s and tokens.sh grants %s", name, b, influx["DOCKER_INFLUXDB_INIT_BUCKET"], tokens["GREENPOST_BUCKET"])
		}
		if tf := s.Environment["GP_INFLUX_TOKEN_FILE"]; tf != "" {
			m, _ := covering(mounts(t, c, name), tf)
			if m.source != "influx-tokens" || !m.readOnly || !slices.Contains([]string{"collector", "api"}, filepath.Base(tf)) {
				t.Errorf("%s: GP_INFLUX_TOKEN_FILE %s is not a token tokens.sh writes into influx-tokens (mounted read-only)", name, tf)
			}
			if want := map[string]string{"collector": "collector", "api": "api"}[s.Build.Target]; filepath.Base(tf) != want {
				t.Errorf("%s uses the %s token", name, filepath.Base(tf))
			}
		}
	}
	if tokens["INFLUX_ORG"] != influx["DOCKER_INFLUXDB_INIT_ORG"] || api["GP_API_BUCKET"] != tokens["GREENPOST_API_BUCKET"] {
		t.Errorf("tokens.sh makes org %s bucket %s; InfluxDB's org is %s and the API's bucket %s", tokens["INFLUX_ORG"],
			tokens["GREENPOST_API_BUCKET"], influx["DOCKER_INFLUXDB_INIT_ORG"], api["GP_API_BUCKET"])
	}
	if m, ok := covering(mounts(t, c, "influxdb-tokens"), tokens["TOKENS_DIR"]+"/x"); !ok || m.source != "influx-tokens" || m.readOnly {
		t.Errorf("tokens.sh writes %s, which is not the influx-tokens volume", tokens["TOKENS_DIR"])
	}
	for _, k := range []string{"DOCKER_INFLUXDB_INIT_PASSWORD_FILE", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE"} {
		if _, ok := covering(mounts(t, c, "influxdb"), influx[k]); !ok {
			t.Errorf("influxdb: %s=%s is not mounted", k, influx[k])
		}
	}
	if _, ok := covering(mounts(t, c, "influxdb-tokens"), tokens["INFLUX_ADMIN_TOKEN_FILE"]); !ok {
		t.Errorf("influxdb-tokens: the operator token %s is not mounted", tokens["INFLUX_ADMIN_TOKEN_FILE"])
	}

	// Mosquitto: the config's files are where the secrets are mounted, its
	// listener is the published port.
	mq := c.Services["mosquitto"]
	conf := confLines(t, filepath.Join(dir, "mosquitto", "mosquitto.conf"))
	for _, key := range []string{"password_file", "acl_file", "cafile", "certfile", "keyfile"} {
		m, ok := covering(mounts(t, c, "mosquitto"), conf[key])
		if !ok || m.kind != "secret" {
			t.Errorf("mosquitto.conf %s %s: not a mounted secret", key, conf[key])
		}
	}
	if m, ok := covering(mounts(t, c, "mosquitto"), conf["persistence_location"]); !ok || m.kind != "volume" {
		t.Errorf("mosquitto.conf persistence_location %s is not on a volume", conf["persistence_location"])
	}
	if !slices.Contains(mq.Ports, conf["listener"]+":"+conf["listener"]) {
		t.Errorf("mosquitto publishes %v, its listener is %s", mq.Ports, conf["listener"])
	}
	// Its healthcheck looks for that port listening in /proc/net/tcp (hex).
	port, _ := strconv.Atoi(conf["listener"])
	if hc := strings.Join(mq.Healthcheck.Test, " "); !strings.Contains(hc, fmt.Sprintf(":%X ", port)) || !strings.Contains(hc, " 0A'") {
		t.Errorf("mosquitto's healthcheck %q does not look for port %d listening", hc, port)
	}

	// The simulator enrols like the devices: its city is what setup.sh
	// -sim-outlets provisions, with its credentials.
	sim := c.Services["simulator"]
	if !slices.Contains(sim.Profiles, "sim") || !slices.Contains(sim.Command, "-credentials") {
		t.Errorf("simulator: profiles %v, command %v", sim.Profiles, sim.Command)
	}

	checkPrometheus(t, c, dir)
	checkGrafana(t, c, dir)
}

// confLines reads a Mosquitto config's first value of each key.
func confLines(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		if _, ok := out[k]; !ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// checkPrometheus: Prometheus scrapes each collector and the API where
// they listen, under the job names the alert rules use, and loads the
// rules from where compose mounts them.
func checkPrometheus(t *testing.T, c *testenv.Compose, dir string) {
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(dir, "prometheus", "prometheus.yml"), &cfg)
	targets := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets[sc.JobName] = append(targets[sc.JobName], s.Targets...)
		}
	}
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		job, addr := map[string][2]string{"collector": {"greenpost-collector", "GP_COLLECTOR_ADDR"}, "api": {"greenpost-api", "GP_API_ADDR"}}[s.Build.Target][0],
			map[string][2]string{"collector": {"greenpost-collector", "GP_COLLECTOR_ADDR"}, "api": {"greenpost-api", "GP_API_ADDR"}}[s.Build.Target][1]
		if job == "" {
			continue
		}
		_, port, _ := net.SplitHostPort(s.Environment[addr])
		if !slices.Contains(targets[job], name+":"+port) {
			t.Errorf("prometheus job %s does not scrape %s:%s (targets %v)", job, name, port, targets[job])
		}
		if !strings.Contains(mustRead(t, deployPath(t, "monitoring", "alerts.yml")), `job="`+job+`"`) {
			t.Errorf("the alert rules do not name job %s", job)
		}
	}
	for _, rf := range cfg.RuleFiles {
		m, ok := covering(mounts(t, c, "prometheus"), rf)
		if !ok || filepath.Base(m.source) != "alerts.yml" {
			t.Errorf("prometheus loads %s, which is not the mounted alerts.yml", rf)
		}
	}
}

var fileRef = regexp.MustCompile(`\$__file\{([^}]+)\}`)

// checkGrafana: Grafana's data sources are the ones the dashboard names,
// its InfluxDB token is the grafana token tokens.sh writes, and the
// dashboard provider reads where compose mounts the dashboard.
func checkGrafana(t *testing.T, c *testenv.Compose, dir string) {
	var ds struct {
		Datasources []struct {
			UID, Type, URL string
			JSONData       map[string]any    `yaml:"jsonData"`
			Secure         map[string]string `yaml:"secureJsonData"`
		}
	}
	readYAML(t, filepath.Join(dir, "grafana", "provisioning", "datasources", "greenpost.yaml"), &ds)
	uids := map[string]string{}
	influx := c.Services["influxdb"].Environment
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
		u, err := url.Parse(d.URL)
		if err != nil || c.Services[u.Hostname()].Image == "" {
			t.Errorf("data source %s: %s names no service", d.UID, d.URL)
		}
		if d.Type == "influxdb" {
			if d.JSONData["organization"] != influx["DOCKER_INFLUXDB_INIT_ORG"] || d.JSONData["defaultBucket"] != influx["DOCKER_INFLUXDB_INIT_BUCKET"] || d.JSONData["version"] != "Flux" {
				t.Errorf("data source %s: %v, want Flux on org %s bucket %s", d.UID, d.JSONData, influx["DOCKER_INFLUXDB_INIT_ORG"], influx["DOCKER_INFLUXDB_INIT_BUCKET"])
			}
			m := fileRef.FindStringSubmatch(d.Secure["token"])
			if m == nil {
				t.Errorf("data source %s: the token is not read from a file", d.UID)
			} else if mt, ok := covering(mounts(t, c, "grafana"), m[1]); !ok || mt.source != "influx-tokens" || filepath.Base(m[1]) != "grafana" {
				t.Errorf("data source %s: token %s is not tokens.sh's grafana token", d.UID, m[1])
			}
		}
	}
	dash := readDashboard(t)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if uids[tg.Datasource.UID] != tg.Datasource.Type {
				t.Errorf("panel %q uses data source %v, which provisioning does not make", p.Title, tg.Datasource)
			}
		}
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(dir, "grafana", "provisioning", "dashboards", "greenpost.yaml"), &prov)
	if len(prov.Providers) != 1 {
		t.Fatalf("dashboard providers: %+v", prov)
	}
	m, ok := covering(mounts(t, c, "grafana"), prov.Providers[0].Options.Path+"/greenpost.json")
	if !ok || !strings.HasSuffix(m.source, "monitoring/grafana/greenpost.json") {
		t.Errorf("Grafana reads dashboards from %s, where the dashboard is not mounted", prov.Providers[0].Options.Path)
	}
	if m, ok := covering(mounts(t, c, "grafana"), "/etc/grafana/provisioning/datasources"); !ok || m.kind != "bind" {
		t.Errorf("grafana's provisioning is not mounted")
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
