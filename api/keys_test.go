package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/settings"
)

// TestReadKeysFile: the API's keys file (internal/keyfile's shape, the
// viewer and admin roles, nothing after the hash yet); every bad line is
// named, good lines become keys that match their secret.
func TestReadKeysFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "keys")
	lines := []string{
		"# keys",
		keyfile.Format(roleAdmin, "ops", []byte("admin-secret-1")),
		keyfile.Format(roleViewer, "bureau", []byte("viewer-secret-1")),
		keyfile.Format("root", "x", []byte("s")),
		keyfile.Format(roleViewer, "extra", []byte("s"), "districts=jianghan"),
		"admin short abc",
	}
	os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	r := settings.NewReader(func(string) string { return "" })
	keys := readKeysFile(r, f)
	if len(keys) != 2 || keys[0].Role != roleAdmin || keys[0].Name != "ops" || keys[1].Role != roleViewer {
		t.Fatalf("keys %+v", keys)
	}
	ring := keyring{keys: keys}
	if ring.lookup("admin-secret-1") != 0 || ring.lookup("viewer-secret-1") != 1 || ring.lookup("admin-secret-2") != -1 {
		t.Error("the keys do not match their secrets")
	}
	err := r.Err()
	for _, want := range []string{"GP_API_KEYS_FILE: line 4: want `<viewer|admin>", "GP_API_KEYS_FILE: line 5: want", "GP_API_KEYS_FILE: line 6: the hash is not 64 hex digits"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
