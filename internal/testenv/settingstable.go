package testenv

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/greenpost/greenpost/internal/settings"
)

// SettingsTable reads README.md's configuration table (between the
// `<!-- settings -->` and `<!-- /settings -->` markers): each row's setting
// and the programs in its "used by" column.
func SettingsTable(t testing.TB) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "<!-- settings -->":
			in = true
		case line == "<!-- /settings -->":
			in = false
		case in && strings.HasPrefix(line, "| `GP_"):
			cells := strings.Split(line, "|")
			if len(cells) < 5 {
				t.Fatalf("README settings row %q: want | setting | used by | default | meaning |", line)
			}
			name := strings.Trim(strings.TrimSpace(cells[1]), "`")
			if _, dup := out[name]; dup {
				t.Errorf("README lists %s twice", name)
			}
			for _, p := range strings.Split(cells[2], ",") {
				out[name] = append(out[name], strings.TrimSpace(p))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("README.md has no settings table between <!-- settings --> and <!-- /settings -->")
	}
	return out
}

// SettingsRead returns every GP_ variable that load asks its getenv for
// (NAME_FILE forms of secrets left out): the settings a program reads.
func SettingsRead(load func(getenv func(string) string)) []string {
	var mu sync.Mutex
	var names []string
	load(func(k string) string {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(k, "GP_") && !slices.Contains(names, k) {
			names = append(names, k)
		}
		return ""
	})
	var out []string
	for _, n := range names {
		// A secret's file form (GP_INFLUX_TOKEN_FILE) is documented once
		// for all; a setting whose own name ends in _FILE
		// (GP_API_KEYS_FILE) is a row of its own.
		if _, ok := strings.CutSuffix(n, "_FILE"); ok && !slices.Contains(settings.Known, n) && !slices.Contains(settings.Extra, n) {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// CheckSettingsTable checks README.md's configuration table against what
// program's own loader reads (SettingsRead): every setting it reads is a
// row that names the program, and no row names the program for a setting
// it does not read. So the table cannot drift from the code.
func CheckSettingsTable(t *testing.T, program string, read []string) {
	t.Helper()
	if len(read) == 0 {
		t.Fatalf("%s reads no GP_ setting: the loader was not called", program)
	}
	table := SettingsTable(t)
	for _, n := range read {
		if !slices.Contains(table[n], program) {
			t.Errorf("%s reads %s, which README's settings table does not list for it", program, n)
		}
	}
	for n, programs := range table {
		if slices.Contains(programs, program) && !slices.Contains(read, n) {
			t.Errorf("README's settings table lists %s for %s, which does not read it", n, program)
		}
	}
}
