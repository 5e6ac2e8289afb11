package keyfile

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := strings.Join([]string{
		"# comment",
		"",
		Format("admin", "ops", []byte("s3cret-admin")),
		"  " + Format("device", "c-0001", []byte("pw"), "o-0001", "counter") + "  ",
		"viewer only-two",
		"root x " + strings.Repeat("0", 64),
		"admin bad-hash abc",
		"admin short " + strings.Repeat("a", 62),
	}, "\n")
	got, problems := Parse(strings.NewReader(in), "", "admin", "viewer", "device")
	if len(got) != 2 {
		t.Fatalf("entries %+v", got)
	}
	if got[0].Role != "admin" || got[0].Name != "ops" || got[0].Line != 3 || len(got[0].More) != 0 || !got[0].Matches([]byte("s3cret-admin")) || got[0].Matches([]byte("s3cret-admiN")) {
		t.Errorf("first entry %+v", got[0])
	}
	if e := got[1]; e.Role != "device" || e.Name != "c-0001" || strings.Join(e.More, ",") != "o-0001,counter" || !e.Matches([]byte("pw")) {
		t.Errorf("second entry %+v", e)
	}
	want := []string{
		"line 5: want `<admin|viewer|device> <name> <sha256 hex>`",
		"line 6: want `<admin|viewer|device> <name> <sha256 hex>`",
		"line 7: the hash is not 64 hex digits",
		"line 8: the hash is not 64 hex digits",
	}
	if strings.Join(problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
	if _, p := Read(filepath.Join(t.TempDir(), "missing"), "", "admin"); len(p) != 1 || !strings.Contains(p[0], "no such file") {
		t.Errorf("missing file: %v", p)
	}
	if _, p := Parse(strings.NewReader("root x y"), "want `admin <name> <hash>`", "admin"); len(p) != 1 || p[0] != "line 1: want `admin <name> <hash>`" {
		t.Errorf("usage: %v", p)
	}
}
