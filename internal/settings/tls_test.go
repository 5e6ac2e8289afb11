package settings_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/greenpost/greenpost/internal/settings"
	"github.com/greenpost/greenpost/internal/testenv"
)

// TestClientTLS: a CA file's certificates verify the server; a missing or
// empty file is an error, never a silent fall back to the system roots.
func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	certs := testenv.NewCerts(t, dir)
	tc, err := settings.ClientTLS(certs.CAFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 || tc.ServerName != "localhost" || tc.RootCAs == nil || !tc.RootCAs.Equal(certs.Roots) {
		t.Errorf("config %+v: want TLS 1.2+, the server name and the CA file's roots", tc)
	}
	if tc, err := settings.ClientTLS("", ""); err != nil || tc.RootCAs != nil {
		t.Errorf("no CA file: %+v, %v; want the system roots", tc, err)
	}
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate"), 0o600)
	for _, f := range []string{empty, filepath.Join(dir, "missing.pem")} {
		if _, err := settings.ClientTLS(f, ""); err == nil {
			t.Errorf("%s: no error", f)
		}
	}
}
