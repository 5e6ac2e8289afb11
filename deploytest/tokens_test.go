package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInflux is a stand-in for InfluxDB 2.x's influx CLI (no InfluxDB 2.x
// runs on this machine): it answers the calls tokens.sh makes with the
// JSON shapes the CLI prints, from a state of existing buckets, and logs
// every call with the host and token it was given.
const fakeInflux = `#!/bin/bash
echo "INFLUX_HOST=$INFLUX_HOST INFLUX_TOKEN=$INFLUX_TOKEN $*" >> "$FAKE_LOG"
name="" desc=""
args=("$@")
for ((i=0; i<${#args[@]}; i++)); do
  case "${args[$i]}" in --name) name="${args[$((i+1))]}" ;; --description) desc="${args[$((i+1))]}" ;; esac
done
case "$1 $2" in
  "bucket list")
    id=$(sed -n "s/^$name=//p" "$FAKE_BUCKETS")
    [ -n "$id" ] || { echo "Error: bucket \"$name\" not found" >&2; exit 1; }
    printf '[\n\t{\n\t\t"id": "%s",\n\t\t"orgID": "0000000000000001",\n\t\t"name": "%s"\n\t}\n]\n' "$id" "$name" ;;
  "bucket create")
    id="$(echo "$name" | md5sum | cut -c1-16)"
    echo "$name=$id" >> "$FAKE_BUCKETS"
    printf '{\n\t"id": "%s",\n\t"orgID": "0000000000000001",\n\t"name": "%s"\n}\n' "$id" "$name" ;;
  "v1 dbrp")
    if [ "$3" = list ]; then echo "[]"; fi ;;
  "auth create")
    printf '{\n\t"id": "0a0a",\n\t"description": "%s",\n\t"token": "tok-%s==",\n\t"status": "active"\n}\n' "$desc" "$desc" ;;
  *) echo "fake influx: unexpected $*" >&2; exit 1 ;;
esac
`

// TestInfluxTokensScript runs the compose install's tokens.sh against a
// stand-in influx CLI: it makes the API's bucket without retention, DBRP
// mappings for both buckets, and one token per program with exactly the
// rights storage-v1 and the API need (collector: write gp; api: read gp,
// read and write gp_api; grafana: read both), using the operator token;
// it writes them for the programs to read; a second run changes nothing;
// without InfluxDB's own bucket it waits for it (InfluxDB's first-start
// setup may still be running), then stops with a clear message.
func TestInfluxTokensScript(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "influx"), []byte(fakeInflux), 0o755)
	log, buckets, tokens, admin := filepath.Join(dir, "log"), filepath.Join(dir, "buckets"), filepath.Join(dir, "tokens"), filepath.Join(dir, "admin-token")
	os.WriteFile(buckets, []byte("gp=00000000000000aa\n"), 0o644)
	os.WriteFile(admin, []byte("operator-token\n"), 0o600)
	script := deployPath(t, "compose", "influxdb", "tokens.sh")
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_LOG=" + log, "FAKE_BUCKETS=" + buckets,
		"INFLUX_HOST=http://influxdb:8086", "INFLUX_ORG=city", "INFLUX_ADMIN_TOKEN_FILE=" + admin, "TOKENS_DIR=" + tokens,
		"GREENPOST_BUCKET=gp", "GREENPOST_API_BUCKET=gp_api"}
	run := func() (string, error) {
		cmd := exec.Command("bash", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("tokens.sh: %v\n%s", err, out)
	}
	calls := mustRead(t, log)
	apiID := strings.TrimPrefix(strings.TrimSpace(strings.Split(mustRead(t, buckets), "\n")[1]), "gp_api=")
	for _, want := range []string{
		"bucket create --org city --name gp_api --retention 0 --json",
		"v1 dbrp create --org city --db gp --rp autogen --bucket-id 00000000000000aa --default",
		"v1 dbrp create --org city --db gp_api --rp autogen --bucket-id " + apiID + " --default",
		"auth create --org city --description greenpost-collector --write-bucket 00000000000000aa --json",
		"auth create --org city --description greenpost-api --read-bucket 00000000000000aa --read-bucket " + apiID + " --write-bucket " + apiID + " --json",
		"auth create --org city --description greenpost-grafana --read-bucket 00000000000000aa --read-bucket " + apiID + " --json",
	} {
		if !strings.Contains(calls, want+"\n") {
			t.Errorf("tokens.sh did not call influx %s\ncalls:\n%s", want, calls)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(calls), "\n") {
		if !strings.HasPrefix(line, "INFLUX_HOST=http://influxdb:8086 INFLUX_TOKEN=operator-token ") {
			t.Errorf("a call without the host and operator token: %s", line)
		}
		if strings.Contains(line, "auth create") && strings.Count(line, "-bucket") > 3 {
			t.Errorf("a token with more rights than planned: %s", line)
		}
	}
	for _, p := range []string{"collector", "api", "grafana"} {
		b, err := os.ReadFile(filepath.Join(tokens, p))
		if err != nil || string(b) != "tok-greenpost-"+p+"==\n" {
			t.Errorf("%s's token file: %q, %v", p, b, err)
		}
		if st, err := os.Stat(filepath.Join(tokens, p)); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s's token file mode: %v, %v (the programs run as other users)", p, st.Mode(), err)
		}
	}

	os.Remove(log)
	if out, err := run(); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	if _, err := os.Stat(log); err == nil {
		t.Errorf("the second run called influx:\n%s", mustRead(t, log))
	}

	// InfluxDB's own setup not done yet: it waits for the bucket, then
	// gives up with a clear message.
	os.RemoveAll(tokens)
	os.WriteFile(buckets, nil, 0o644)
	os.Remove(log)
	env = append(env, "WAIT_SECONDS=2")
	if out, err := run(); err == nil || !strings.Contains(out, "no bucket gp in org city") {
		t.Errorf("without InfluxDB's bucket: %v\n%s", err, out)
	}
	if n := strings.Count(mustRead(t, log), "bucket list --org city --name gp --json"); n != 2 {
		t.Errorf("asked for the bucket %d times while waiting 2 s, want 2 (now and after 2 s)", n)
	}
}
