package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/testenv"
)

// copyTree copies the Kubernetes files into dir, so that the test fills
// the overlay's secrets/ without touching the repository.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-r", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

func get(o any, path ...string) any {
	for _, p := range path {
		m, ok := o.(map[string]any)
		if !ok {
			return nil
		}
		o = m[p]
	}
	return o
}

func list(o any, path ...string) []map[string]any {
	l, _ := get(o, path...).([]any)
	var out []map[string]any
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func find(objs []map[string]any, kind, name string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind && testenv.ObjectName(o) == name {
			return o
		}
	}
	return nil
}

func envOf(c map[string]any) map[string]string {
	out := map[string]string{}
	for _, e := range list(c, "env") {
		if v, ok := e["value"]; ok {
			out[e["name"].(string)] = fmt.Sprint(v)
		}
	}
	return out
}

// TestKubernetesWiring renders the base and the city overlay (after the
// overlay's secrets/ is filled the way its README says: gpctl provision for
// the collector pods, the InfluxDB tokens, the API's keys, the broker's CA)
// and checks what `kubectl apply -k` would create: the collectors a
// StatefulSet whose every pod is a provisioned MQTT user with its password
// under its own name in the secret, one share group, a spool volume each, a
// PodDisruptionBudget and a grace period longer than the drain; the API a
// Deployment with an HPA and a PDB; probes on the ports the programs listen
// on; scrape annotations; every secret, config map and key a pod mounts
// exists; images carry the overlay's tags; everything in the namespace.
func TestKubernetesWiring(t *testing.T) {
	tree := t.TempDir()
	copyTree(t, deployPath(t, "cluster", "kubernetes"), tree)
	overlay := filepath.Join(tree, "overlays", "city")

	base, err := testenv.Kustomize(filepath.Join(tree, "base"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Kustomize(overlay); err == nil {
		t.Error("the overlay renders without its secrets: the generators read nothing")
	}
	// Fill secrets/ as the README says.
	sec := filepath.Join(overlay, "secrets")
	reg, dev := cityFiles(t)
	sts := find(base, "StatefulSet", "greenpost-collector")
	var stdout, stderr strings.Builder
	pods := []string{"greenpost-collector-0", "greenpost-collector-1", "greenpost-collector-2"}
	if err := provision.Run([]string{"-out", filepath.Join(sec, "provision"), "-registry", reg, "-devices", dev, "-collectors", strings.Join(pods, ",")},
		&stdout, &stderr); err != nil {
		t.Fatalf("provision: %v %s", err, stderr.String())
	}
	for f, content := range map[string]string{"influx-write-token": "write-token\n", "influx-api-token": "api-token\n",
		"api-keys": "admin city-admin 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
		"ca.pem":   mustRead(t, testenv.NewCerts(t, t.TempDir()).CAFile)} {
		os.WriteFile(filepath.Join(sec, f), []byte(content), 0o600)
	}
	objs, err := testenv.Kustomize(overlay)
	if err != nil {
		t.Fatal(err)
	}

	for _, o := range objs {
		if o["kind"] != "Namespace" && get(o, "metadata", "namespace") != "greenpost" {
			t.Errorf("%s %s is outside the namespace", o["kind"], testenv.ObjectName(o))
		}
		if get(o, "metadata", "labels", "app.kubernetes.io/part-of") != "greenpost" && o["kind"] != "Namespace" && o["kind"] != "Secret" && o["kind"] != "ConfigMap" {
			t.Errorf("%s %s lacks the part-of label", o["kind"], testenv.ObjectName(o))
		}
	}

	sts = find(objs, "StatefulSet", "greenpost-collector")
	dep := find(objs, "Deployment", "greenpost-api")
	if sts == nil || dep == nil {
		t.Fatalf("no collector StatefulSet or API Deployment among %d objects", len(objs))
	}
	replicas, _ := get(sts, "spec", "replicas").(int)
	if replicas != len(pods) {
		t.Errorf("%d collector replicas, the overlay's secret has passwords for %v", replicas, pods)
	}
	col := testenv.PodContainers(sts)[0]
	env := envOf(col)
	if env["GP_MQTT_SHARE_GROUP"] != provision.ShareGroup || env["GP_MQTT_USERNAME"] != "$(POD_NAME)" ||
		env["GP_MQTT_PASSWORD_FILE"] != "/etc/greenpost/secrets/$(POD_NAME)" {
		t.Errorf("collector env %v: want the share group and each pod its own user and password file", env)
	}
	if !strings.HasPrefix(col["image"].(string), "registry.city.example/greenpost/collector:1.0.0") {
		t.Errorf("collector image %v", col["image"])
	}
	if env["GP_MQTT_URL"] != "ssl://emqx.greenpost.svc:8883" {
		t.Errorf("the overlay's broker patch did not apply: %s", env["GP_MQTT_URL"])
	}
	if len(envOf(col)) < 10 {
		t.Errorf("the patch replaced the env list instead of merging it: %v", env)
	}
	grace, _ := get(sts, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	drain, _ := time.ParseDuration(env["GP_SHUTDOWN_TIMEOUT"])
	if drain == 0 {
		drain = 10 * time.Second
	}
	if time.Duration(grace)*time.Second < drain+10*time.Second {
		t.Errorf("grace period %ds does not leave the drain (%v) and the acks time", grace, drain)
	}
	claims := list(sts, "spec", "volumeClaimTemplates")
	if len(claims) != 1 || !slices.ContainsFunc(list(col, "volumeMounts"), func(m map[string]any) bool {
		return get(claims[0], "metadata", "name") == m["name"] && strings.HasPrefix(env["GP_SPOOL_DIR"], m["mountPath"].(string))
	}) {
		t.Errorf("the spool %s is not on the per-pod volume claim", env["GP_SPOOL_DIR"])
	}
	for kind, name := range map[string]string{"PodDisruptionBudget": "greenpost-collector", "Service": "greenpost-collector"} {
		if find(objs, kind, name) == nil {
			t.Errorf("no %s %s", kind, name)
		}
	}
	if get(find(objs, "Service", "greenpost-collector"), "spec", "clusterIP") != "None" || get(sts, "spec", "serviceName") != "greenpost-collector" {
		t.Error("the collectors' governing service is not headless")
	}

	hpa := find(objs, "HorizontalPodAutoscaler", "greenpost-api")
	if hpa == nil || get(hpa, "spec", "scaleTargetRef", "name") != "greenpost-api" || get(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" {
		t.Errorf("no HPA on the API Deployment: %v", hpa)
	}
	if minR, _ := get(hpa, "spec", "minReplicas").(int); minR < 2 {
		t.Errorf("HPA min replicas %d: one replica is no availability", minR)
	}
	if find(objs, "PodDisruptionBudget", "greenpost-api") == nil {
		t.Error("no PDB for the API")
	}
	if get(testenv.PodContainers(dep)[0], "resources", "requests", "cpu") == nil {
		t.Error("the API requests no CPU: the HPA cannot compute utilisation")
	}

	for _, w := range []map[string]any{sts, dep} {
		ps := testenv.PodSpec(w)
		c := testenv.PodContainers(w)[0]
		env := envOf(c)
		addr := env["GP_COLLECTOR_ADDR"] + env["GP_API_ADDR"]
		ports := list(c, "ports")
		if len(ports) != 1 || !strings.HasSuffix(addr, fmt.Sprintf(":%v", ports[0]["containerPort"])) {
			t.Errorf("%s: ports %v, listens on %s", testenv.ObjectName(w), ports, addr)
			continue
		}
		for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
			if get(c, probe, "httpGet", "path") != path || get(c, probe, "httpGet", "port") != ports[0]["name"] {
				t.Errorf("%s: %s %v, want %s on port %v", testenv.ObjectName(w), probe, get(c, probe), path, ports[0]["name"])
			}
		}
		if fmt.Sprint(get(w, "spec", "template", "metadata", "annotations", "prometheus.io/port")) != fmt.Sprint(ports[0]["containerPort"]) ||
			get(w, "spec", "template", "metadata", "annotations", "prometheus.io/scrape") != "true" {
			t.Errorf("%s: no scrape annotations for port %v", testenv.ObjectName(w), ports[0]["containerPort"])
		}
		if get(ps, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s may run as root", testenv.ObjectName(w))
		}
		// Every volume's secret or config map exists; every file a
		// setting names is a key of a mounted one.
		volumes := map[string]map[string]any{}
		for _, v := range list(ps, "volumes") {
			var src map[string]any
			switch {
			case get(v, "secret") != nil:
				src = find(objs, "Secret", get(v, "secret", "secretName").(string))
			case get(v, "configMap") != nil:
				src = find(objs, "ConfigMap", get(v, "configMap", "name").(string))
			case get(v, "emptyDir") != nil:
				// Scratch space on the node's disk: in memory it would
				// count against the container's limit.
				if get(v, "emptyDir", "medium") != nil {
					t.Errorf("%s: volume %v: an emptyDir in memory", testenv.ObjectName(w), v["name"])
				}
				volumes[v["name"].(string)] = nil
				continue
			default:
				t.Errorf("%s: volume %v of an unchecked kind", testenv.ObjectName(w), v["name"])
			}
			if src == nil {
				t.Errorf("%s: volume %v: its secret or config map does not exist", testenv.ObjectName(w), v["name"])
			}
			volumes[v["name"].(string)] = src
		}
		// A directory a setting names is in a writable volume (the root
		// file system is read-only).
		for k, v := range env {
			if !strings.HasSuffix(k, "_DIR") {
				continue
			}
			mounted := false
			for _, m := range list(c, "volumeMounts") {
				mp, _ := m["mountPath"].(string)
				mounted = mounted || (strings.HasPrefix(v+"/", mp+"/") && get(m, "readOnly") != true)
			}
			if !mounted && !strings.Contains(v, "$(") {
				t.Errorf("%s: %s=%s is no writable volume's mount", testenv.ObjectName(w), k, v)
			}
		}
		for k, v := range env {
			if !strings.HasSuffix(k, "_FILE") {
				continue
			}
			keys := []string{strings.TrimPrefix(filepath.Base(v), "")}
			if strings.Contains(v, "$(POD_NAME)") {
				keys = pods
			}
			found := false
			for _, m := range list(c, "volumeMounts") {
				if filepath.Dir(v) != m["mountPath"] {
					continue
				}
				data, _ := get(volumes[m["name"].(string)], "data").(map[string]any)
				found = true
				for _, key := range keys {
					key = strings.ReplaceAll(key, "$(POD_NAME)", key)
					if _, ok := data[key]; !ok {
						t.Errorf("%s: %s=%s: key %s is not in the mounted %s", testenv.ObjectName(w), k, v, key, m["name"])
					}
				}
			}
			if !found {
				t.Errorf("%s: %s=%s is in no mounted volume", testenv.ObjectName(w), k, v)
			}
		}
	}
}
