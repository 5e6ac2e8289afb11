package provision

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/city"
)

// run is `gpctl provision` with args; it fails the test on an error.
func run(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := Run(args, &out, &errb); err != nil {
		t.Fatalf("provision %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func credMap(t *testing.T, dir string) map[string]Credential {
	t.Helper()
	creds, err := ReadCredentials(filepath.Join(dir, CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Credential{}
	for _, c := range creds {
		m[c.Username] = c
	}
	return m
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const registry = "id,name,district,address,lat,lon,operator,active\no-1,A,jianghan,,30.6,114.3,SF Express,true\no-2,B,wuchang,,30.5,114.3,JD Logistics,false\n"

// TestRerun: a second run with a new row adds that device without changing
// any existing password (nor its hashes), a removed row revokes the device
// from every file, and the files holding secrets are 0600.
func TestRerun(t *testing.T) {
	dir := t.TempDir()
	reg := writeFile(t, dir, "registry.csv", registry)
	out := filepath.Join(dir, "out")
	run(t, "-out", out, "-registry", reg, "-devices", writeFile(t, dir, "d1.csv", "kind,device,outlet\nbin,b-1,o-1\nbin,b-2,o-1\ncounter,c-1,o-1\n"))
	first := credMap(t, out)
	if len(first) != 4 { // three devices and collector-1
		t.Fatalf("%d credentials, want 4", len(first))
	}
	passwd1 := read(t, out, MosquittoPasswd)

	stdout := run(t, "-out", out, "-registry", reg, "-devices", writeFile(t, dir, "d2.csv", "device,outlet,kind\nb-1,o-1,bin\nc-1,o-2,counter\nb-3,o-2,bin\n"))
	second := credMap(t, out)
	for _, id := range []string{"b-1", "c-1", "collector-1"} {
		if second[id].Password != first[id].Password {
			t.Errorf("%s: the password changed on a re-run", id)
		}
	}
	if second["c-1"].Outlet != "o-2" {
		t.Errorf("c-1 moved to o-2 but is bound to %s", second["c-1"].Outlet)
	}
	if _, ok := second["b-3"]; !ok || second["b-3"].Password == "" {
		t.Error("b-3 was not added")
	}
	for _, want := range []string{"1 added, 3 kept, 1 revoked", "revoked: b-2", "moved (password kept; new outlet or kind): c-1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// The revoked device is in no file; the kept ones' hash lines did not change.
	for _, name := range []string{CredentialsFile, EmbeddedUsers, MosquittoPasswd, MosquittoACL, EMQXUsers, EMQXACL} {
		if strings.Contains(read(t, out, name), "b-2") {
			t.Errorf("%s still lists the revoked b-2", name)
		}
	}
	passwd2 := read(t, out, MosquittoPasswd)
	for _, line := range strings.Split(passwd1, "\n") {
		if strings.HasPrefix(line, "b-1:") || strings.HasPrefix(line, "collector-1:") {
			if !strings.Contains(passwd2, line+"\n") {
				t.Errorf("a kept user's hash line changed: %s", line)
			}
		}
	}
	for name, want := range map[string]os.FileMode{CredentialsFile: 0o600, EmbeddedUsers: 0o600, MosquittoPasswd: 0o600,
		EMQXUsers: 0o600, MosquittoACL: 0o644, EMQXACL: 0o644, ".": 0o700} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	// Each device is bound to its own outlet, kind and id, in every broker's file.
	for name, want := range map[string][]string{
		EmbeddedUsers: {"device c-1 " + SHA256Hex(second["c-1"].Password) + " o-2 counter\n", "collector collector-1 " + SHA256Hex(second["collector-1"].Password) + "\n"},
		MosquittoACL: {"user c-1\ntopic write gp/v1/o-2/counter/c-1/telemetry\ntopic write gp/v1/o-2/counter/c-1/status\n",
			"user collector-1\ntopic read gp/v1/#\ntopic read $share/collector/gp/v1/#\n"},
		EMQXACL: {`{allow, {username, "c-1"}, publish, ["gp/v1/o-2/counter/c-1/telemetry", "gp/v1/o-2/counter/c-1/status"]}.`, "{deny, all}.\n"},
	} {
		text := read(t, out, name)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, text)
			}
		}
		if strings.Contains(text, "pattern") || strings.Contains(text, "+/") {
			t.Errorf("%s has a pattern or wildcard line:\n%s", name, text)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(read(t, out, EMQXUsers)), "\n")[1:] {
		f := strings.Split(line, ",")
		if len(f) != 4 || emqxHash(f[2], second[f[0]].Password) != f[1] {
			t.Errorf("EMQX user line %q does not hash its password", line)
		}
	}
}

// TestCollectorPasswordFiles: each collector user's password is in
// collectors/<user> (0600), for GP_MQTT_PASSWORD_FILE; a re-run keeps it,
// a dropped collector's file goes, and files that are no user's stay.
func TestCollectorPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	dev := writeFile(t, dir, "d.csv", "device,outlet,kind\nb-1,o-1,bin\n")
	out := filepath.Join(dir, "out")
	run(t, "-out", out, "-devices", dev, "-collectors", "collector-1,collector-2")
	first := credMap(t, out)
	for _, c := range []string{"collector-1", "collector-2"} {
		name := filepath.Join(CollectorsDir, c)
		if got := read(t, out, name); got != first[c].Password+"\n" {
			t.Errorf("%s holds %q, want the password of %s", name, got, c)
		}
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", name, st.Mode(), err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, CollectorsDir, "b-1")); err == nil {
		t.Error("a device got a collector password file")
	}
	writeFile(t, filepath.Join(out, CollectorsDir), "README.txt", "the operator's note")
	run(t, "-out", out, "-devices", dev, "-collectors", "collector-2")
	if got := read(t, out, filepath.Join(CollectorsDir, "collector-2")); got != first["collector-2"].Password+"\n" {
		t.Errorf("collector-2's file changed on a re-run: %q", got)
	}
	if _, err := os.Stat(filepath.Join(out, CollectorsDir, "collector-1")); !os.IsNotExist(err) {
		t.Errorf("the revoked collector-1's password file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, CollectorsDir, "README.txt")); err != nil {
		t.Errorf("a file that is no user's was removed: %v", err)
	}
}

// TestMosquittoHashInterop: a hash that Debian's mosquitto_passwd wrote is
// checked right, and ours has its shape. (That Debian's mosquitto accepts
// our password file is proven by logging in: collector's
// TestMosquittoShippedConfig.)
func TestMosquittoHashInterop(t *testing.T) {
	f := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", f, "dev", "s3cret-Pw").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd (Debian's mosquitto package, make tools): %v %s", err, out)
	}
	h := readColonFile(f)["dev"]
	if !MosquittoCheck(h, "s3cret-Pw") || MosquittoCheck(h, "s3cret-pw") {
		t.Errorf("mosquitto_passwd's hash %s not checked right", h)
	}
	ours, err := MosquittoHash("s3cret-Pw")
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.Split(ours, "$"); len(p) != 5 || p[1] != "7" || p[2] != "101" || len(p[3]) != 16 || len(p[4]) != 88 ||
		len(h) != len(ours) || !MosquittoCheck(ours, "s3cret-Pw") || MosquittoCheck(ours, "other") {
		t.Errorf("our hash %s does not have mosquitto_passwd's shape (%s)", ours, h)
	}
}

// TestRefusals: ids outside the charset (so + and #, CVE-2017-7650),
// duplicates, unknown outlets, a device named like a collector and bad kinds
// are refused, all listed at once, and nothing is written.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	reg := writeFile(t, dir, "registry.csv", registry)
	devices := "device,outlet,kind\n+,o-1,bin\n#,o-1,bin\nB-1,o-1,bin\nb/1,o-1,bin\n" + strings.Repeat("x", 65) + ",o-1,bin\n" +
		"b-1,o-1,bin\nb-1,o-1,bin\nb-2,o-9,bin\nb-3,+,bin\ncollector-1,o-1,bin\n"
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := Run([]string{"-out", out, "-registry", reg, "-devices", writeFile(t, dir, "d.csv", devices)}, &stdout, &stderr)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`device "+"`, `device "#"`, `device "B-1"`, `device "b/1"`, `device "xxxx`, "b-1 is listed twice",
		"outlet o-9 is not in the registry", `outlet "+"`, "collector-1 has the name of a collector"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("files were written despite the refusal")
	}
	for _, args := range [][]string{
		{"-out", out, "-devices", writeFile(t, dir, "k.csv", "device,outlet,kind\nb-1,o-1,lamp\n")},
		{"-out", out, "-devices", writeFile(t, dir, "h.csv", "id,outlet,kind\nb-1,o-1,bin\n")},
		{"-out", out, "-sim-outlets", "2", "-collectors", "+"},
		{"-devices", "x.csv"},
		{"-out", out},
	} {
		if err := Run(args, &stdout, &stderr); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	// A credentials file that was tampered with stops the run.
	os.MkdirAll(out, 0o700)
	writeFile(t, out, CredentialsFile, "role,username,client_id,password,outlet,kind\ndevice,b-1,b-2,pw,o-1,bin\n")
	if err := Run([]string{"-out", out, "-sim-outlets", "1"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a tampered credentials file: %v", err)
	}
}

// TestSimCity enrols exactly the simulator's devices, each on its outlet
// and kind.
func TestSimCity(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run(t, "-out", out, "-sim-outlets", "4", "-sim-bins", "3", "-sim-seed", "7", "-collectors", "c-a,c-b")
	creds := credMap(t, out)
	c, _ := city.New(city.Config{Seed: 7, Outlets: 4, Bins: 3})
	if len(creds) != len(c.Devices())+2 {
		t.Errorf("%d credentials for %d devices and 2 collectors", len(creds), len(c.Devices()))
	}
	for _, d := range c.Devices() {
		got := creds[d.ID]
		if got.Role != RoleDevice || got.Outlet != d.Outlet.ID || got.Kind != d.Kind {
			t.Errorf("%s: %+v, want device of %s (%s)", d.ID, got, d.Outlet.ID, d.Kind)
		}
	}
	for _, name := range []string{"c-a", "c-b"} {
		if creds[name].Role != RoleCollector {
			t.Errorf("%s: %+v", name, creds[name])
		}
	}
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLen || strings.Trim(p, passwordAlphabet) != "" || seen[p] {
			t.Fatalf("password %q: wrong length, alphabet, or repeated", p)
		}
		seen[p] = true
	}
}
