package deploytest

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/testenv"
)

// TestComposeSetupScript: setup.sh makes every secret once and keeps it on
// a re-run that adds a device (passwords, API keys, CA, InfluxDB and
// Grafana secrets); the API's keys file holds the SHA-256 of the keys it
// hands out; the broker's certificate is signed by the CA for the service
// name and the given host; what containers read is readable inside a 0700
// directory, and what no container reads stays 0600.
func TestComposeSetupScript(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	reg, dev := cityFiles(t)
	testenv.ComposeSetup(t, secrets, "-registry", reg, "-devices", dev, "-broker-host", "mqtt.city.example")
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, f := range []string{"api-keys", "api-keys.txt", "certs/ca.pem", "certs/server.pem", "influx-admin-token", "influx-admin-password",
			"grafana-admin-password", "provision/collectors/collector-1", "provision/collectors/collector-2"} {
			out[f] = mustRead(t, filepath.Join(secrets, f))
		}
		return out
	}
	first := snapshot()
	creds1, _ := provision.ReadCredentials(filepath.Join(secrets, "provision", provision.CredentialsFile))

	os.WriteFile(dev, []byte(devicesCSV+"b-3,o-2,bin\n"), 0o644)
	testenv.ComposeSetup(t, secrets, "-registry", reg, "-devices", dev)
	second := snapshot()
	for f, v := range first {
		if second[f] != v {
			t.Errorf("%s changed on a re-run", f)
		}
	}
	creds2, _ := provision.ReadCredentials(filepath.Join(secrets, "provision", provision.CredentialsFile))
	if len(creds2) != len(creds1)+1 {
		t.Errorf("%d credentials after adding a device, want %d", len(creds2), len(creds1)+1)
	}

	// The keys file, read by the API's own reader, holds the hashes of the
	// keys in api-keys.txt, each with its role.
	entries, problems := keyfile.Read(filepath.Join(secrets, "api-keys"), "", "viewer", "admin")
	if len(problems) > 0 || len(entries) != 2 {
		t.Errorf("api-keys: %d entries, problems %v", len(entries), problems)
	}
	for _, line := range strings.Split(strings.TrimSpace(first["api-keys.txt"]), "\n") {
		role, key, _ := strings.Cut(line, " ")
		if !slices.ContainsFunc(entries, func(e keyfile.Entry) bool { return e.Role == role && e.Matches([]byte(key)) }) || len(key) < 32 {
			t.Errorf("api-keys has no %s entry for the %s key of api-keys.txt (or the key is short)", role, role)
		}
	}

	// The server certificate: signed by the CA, for the names it is reached by.
	block, _ := pem.Decode([]byte(first["certs/server.pem"]))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(first["certs/ca.pem"]))
	for _, name := range []string{"mosquitto", "localhost", "mqtt.city.example"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the broker's certificate for %s: %v", name, err)
		}
	}

	for f, want := range map[string]os.FileMode{".": 0o700, "api-keys": 0o644, "api-keys.txt": 0o600, "certs/ca.key": 0o600,
		"certs/server.key": 0o644, "provision/credentials.csv": 0o600, "provision/mosquitto/passwd": 0o644,
		"provision/collectors/collector-1": 0o644, "influx-admin-token": 0o644} {
		st, err := os.Stat(filepath.Join(secrets, f))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", f, st.Mode().Perm(), err, want)
		}
	}
}
