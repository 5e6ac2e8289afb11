// Package keyfile reads the project's files of hashed secrets: one entry a
// line, `<role> <name> <sha256 hex of the secret> [more fields]`, blank
// lines and lines starting with # skipped. The API's keys file and the
// embedded broker's users file both have this shape; each program names
// the roles it accepts and reads the further fields it knows.
package keyfile

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Entry is one line of a key file.
type Entry struct {
	Line       int // 1-based, for messages
	Role, Name string
	Hash       [sha256.Size]byte
	More       []string // the fields after the hash
}

// Matches reports whether secret hashes to the entry's hash (in constant time).
func (e *Entry) Matches(secret []byte) bool {
	sum := sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(sum[:], e.Hash[:]) == 1
}

// Format is the line of an entry for secret, as the files hold it.
func Format(role, name string, secret []byte, more ...string) string {
	sum := sha256.Sum256(secret)
	return strings.Join(append([]string{role, name, hex.EncodeToString(sum[:])}, more...), " ")
}

// Parse reads entries whose role is one of roles. Every bad line is a
// problem ("line N: ..."); the good lines are returned beside them. A read
// error is a problem too. usage says what a line should look like, for a
// line with another role or fewer than three fields ("" says it from
// roles).
func Parse(r io.Reader, usage string, roles ...string) (entries []Entry, problems []string) {
	want := usage
	if want == "" {
		want = fmt.Sprintf("want `<%s> <name> <sha256 hex>`", strings.Join(roles, "|"))
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Fields(line)
		if len(p) < 3 || !slices.Contains(roles, p[0]) {
			problems = append(problems, fmt.Sprintf("line %d: %s", n, want))
			continue
		}
		h, err := hex.DecodeString(p[2])
		if err != nil || len(h) != sha256.Size {
			problems = append(problems, fmt.Sprintf("line %d: the hash is not 64 hex digits", n))
			continue
		}
		e := Entry{Line: n, Role: p[0], Name: p[1], More: p[3:]}
		copy(e.Hash[:], h)
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	return entries, problems
}

// Read is Parse of the file at path; a file that cannot be opened is the
// only problem.
func Read(path, usage string, roles ...string) ([]Entry, []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []string{err.Error()}
	}
	defer f.Close()
	return Parse(f, usage, roles...)
}
