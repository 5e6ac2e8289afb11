package main

import (
	"os"
	"path/filepath"
	"reflect"
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
		keyfile.Format(roleViewer, "jianghan-office", []byte("viewer-secret-2"), "districts=jianghan,wuchang,jianghan"),
		"admin short abc",
		keyfile.Format(roleAdmin, "sf-ops", []byte("admin-secret-2"), "operators=SF%20Express,ems", "districts=hongshan"),
		keyfile.Format(roleViewer, "empty", []byte("s"), "districts="),
		keyfile.Format(roleViewer, "colour", []byte("s"), "colour=red"),
		keyfile.Format(roleViewer, "twice", []byte("s"), "districts=a", "districts=b"),
		keyfile.Format(roleViewer, "encoding", []byte("s"), "operators=SF%zz"),
		keyfile.Format(roleViewer, "charset", []byte("s"), "districts=Jiang%20Han"),
		keyfile.Format(roleViewer, "bare", []byte("s"), "districts"),
	}
	os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	r := settings.NewReader(func(string) string { return "" })
	keys := readKeysFile(r, f)
	if len(keys) != 4 {
		t.Fatalf("keys %+v", keys)
	}
	want := []struct {
		role, name string
		scope      scope
	}{
		{roleAdmin, "ops", cityWide},
		{roleViewer, "bureau", cityWide},
		{roleViewer, "jianghan-office", scope{districts: []string{"jianghan", "wuchang"}}},
		{roleAdmin, "sf-ops", scope{districts: []string{"hongshan"}, operators: []string{"SF Express", "ems"}}},
	}
	for i, w := range want {
		k := keys[i]
		if k.Role != w.role || k.Name != w.name || !reflect.DeepEqual(k.Scope, w.scope) {
			t.Errorf("key %d: %s %s %+v, want %s %s %+v", i, k.Role, k.Name, k.Scope, w.role, w.name, w.scope)
		}
	}
	ring := keyring{keys: keys}
	if ring.lookup("admin-secret-1") != 0 || ring.lookup("viewer-secret-1") != 1 || ring.lookup("admin-secret-2") != 3 || ring.lookup("admin-secret-3") != -1 {
		t.Error("the keys do not match their secrets")
	}
	err := r.Err()
	for _, want := range []string{
		"GP_API_KEYS_FILE: line 4: want `<viewer|admin>",
		"GP_API_KEYS_FILE: line 6: the hash is not 64 hex digits",
		"GP_API_KEYS_FILE: line 8: districts: \"\": want [a-z0-9]",
		"GP_API_KEYS_FILE: line 9: \"colour=red\": want districts=<id>,... or operators=<name>,...",
		"GP_API_KEYS_FILE: line 10: districts given twice",
		"GP_API_KEYS_FILE: line 11: operators: \"SF%zz\" is not percent-encoded correctly",
		"GP_API_KEYS_FILE: line 12: districts: \"Jiang Han\": want [a-z0-9]",
		"GP_API_KEYS_FILE: line 13: \"districts\": want districts=",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
