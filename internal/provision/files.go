package provision

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/greenpost/greenpost/internal/keyfile"
	"github.com/greenpost/greenpost/internal/telemetry"
)

// Mosquitto's password format, as mosquitto_passwd (2.0) writes it:
// user:$7$<iterations>$<base64 salt>$<base64 hash>, where the hash is
// PBKDF2-HMAC-SHA512 of the password, 64 bytes, over a 12-byte salt.
const (
	mosquittoIterations = 101 // mosquitto_passwd's own count: the passwords are random, stretching adds nothing
	mosquittoSaltLen    = 12
	mosquittoHashLen    = 64
)

// MosquittoHash returns the password_file hash of password with a fresh salt.
func MosquittoHash(password string) (string, error) {
	salt := make([]byte, mosquittoSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("provision: random: %w", err)
	}
	return mosquittoHashWith(password, salt, mosquittoIterations)
}

func mosquittoHashWith(password string, salt []byte, iterations int) (string, error) {
	key, err := pbkdf2.Key(sha512.New, password, salt, iterations, mosquittoHashLen)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$7$%d$%s$%s", iterations, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key)), nil
}

// MosquittoCheck reports whether hash (a password_file hash in the $7$
// format) is the hash of password.
func MosquittoCheck(hash, password string) bool {
	p := strings.Split(hash, "$")
	if len(p) != 5 || p[0] != "" || p[1] != "7" {
		return false
	}
	it, err := strconv.Atoi(p[2])
	salt, err2 := base64.StdEncoding.DecodeString(p[3])
	if err != nil || err2 != nil || it < 1 || it > 1<<24 {
		return false
	}
	again, err := mosquittoHashWith(password, salt, it)
	return err == nil && subtle.ConstantTimeCompare([]byte(again), []byte(hash)) == 1
}

// emqxHash is EMQX's built-in database hash with algorithm sha256 and salt
// position prefix: lower-case hex of sha256(salt ‖ password).
func emqxHash(salt, password string) string {
	h := sha256.Sum256([]byte(salt + password))
	return hex.EncodeToString(h[:])
}

// WriteCredentials writes credentials.csv. Every cell is an id, a role, a
// kind or a password of passwordAlphabet: none can start a spreadsheet
// formula, so no cell needs guarding.
func WriteCredentials(w io.Writer, creds []Credential) error {
	cw := csv.NewWriter(w)
	cw.Write(strings.Split(credentialsHead, ","))
	for _, c := range creds {
		kind := ""
		if c.Role == RoleDevice {
			kind = c.Kind.String()
		}
		cw.Write([]string{c.Role, c.Username, c.Username, c.Password, c.Outlet, kind})
	}
	cw.Flush()
	return cw.Error()
}

// ReadCredentials reads a credentials.csv written by WriteCredentials. A
// missing file is no credentials (a first run).
func ReadCredentials(path string) ([]Credential, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = 6
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != credentialsHead {
		return nil, fmt.Errorf("%s: want the header %s", path, credentialsHead)
	}
	var out []Credential
	for i, r := range recs[1:] {
		c := Credential{Role: r[0], Username: r[1], Password: r[3], Outlet: r[4]}
		ok := telemetry.ValidID(c.Username) && r[2] == c.Username && c.Password != ""
		switch c.Role {
		case RoleDevice:
			c.Kind = telemetry.ParseKind(r[5])
			ok = ok && telemetry.ValidID(c.Outlet) && c.Kind != 0
		case RoleCollector:
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("%s: line %d is not a credential this program wrote", path, i+2)
		}
		out = append(out, c)
	}
	return out, nil
}

// Write writes every file into dir (made 0700): the credentials for the
// installer and each broker's users and ACL. A hash already in dir that
// matches its user's password is kept as it is, so a re-run changes only
// the lines of added, moved and revoked clients. Each file is replaced
// atomically.
func Write(dir string, creds []Credential) error {
	for _, d := range []string{dir, filepath.Join(dir, "mosquitto"), filepath.Join(dir, "emqx"), filepath.Join(dir, CollectorsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var cb bytes.Buffer
	if err := WriteCredentials(&cb, creds); err != nil {
		return err
	}
	passwd, err := mosquittoPasswd(creds, readColonFile(filepath.Join(dir, MosquittoPasswd)))
	if err != nil {
		return err
	}
	users, err := emqxUsers(creds, readEMQXUsers(filepath.Join(dir, EMQXUsers)))
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CredentialsFile, cb.Bytes(), 0o600},
		{EmbeddedUsers, embeddedUsers(creds), 0o600},
		{MosquittoPasswd, passwd, 0o600},
		{MosquittoACL, mosquittoACL(creds), 0o644},
		{EMQXUsers, users, 0o600},
		{EMQXACL, emqxACL(creds), 0o644},
	} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return writeCollectorPasswords(filepath.Join(dir, CollectorsDir), creds)
}

// writeCollectorPasswords keeps one file per collector user in dir, named
// like the user and holding its password: what a container platform mounts
// as GP_MQTT_PASSWORD_FILE (a Kubernetes secret made from the directory
// has one key per pod name). A revoked collector's file is removed.
func writeCollectorPasswords(dir string, creds []Credential) error {
	keep := map[string]bool{}
	for _, c := range creds {
		if c.Role != RoleCollector {
			continue
		}
		keep[c.Username] = true
		if err := writeAtomic(filepath.Join(dir, c.Username), []byte(c.Password+"\n"), 0o600); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		// Only names a collector could have: nothing else an operator put
		// there is touched (temporary files start with a dot).
		if !e.IsDir() && !keep[e.Name()] && telemetry.ValidID(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func embeddedUsers(creds []Credential) []byte {
	var b bytes.Buffer
	b.WriteString("# GP_EMBEDDED_BROKER_USERS_FILE, written by gpctl provision: re-run it rather than edit.\n")
	b.WriteString("# device <device id> <sha256 hex> <outlet id> <bin|counter>  |  collector <username> <sha256 hex>\n")
	for _, c := range creds {
		var more []string
		if c.Role == RoleDevice {
			more = []string{c.Outlet, c.Kind.String()}
		}
		b.WriteString(keyfile.Format(c.Role, c.Username, []byte(c.Password), more...) + "\n")
	}
	return b.Bytes()
}

func mosquittoPasswd(creds []Credential, old map[string]string) ([]byte, error) {
	var b bytes.Buffer
	for _, c := range creds {
		h := old[c.Username]
		if !MosquittoCheck(h, c.Password) {
			var err error
			if h, err = MosquittoHash(c.Password); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(&b, "%s:%s\n", c.Username, h)
	}
	return b.Bytes(), nil
}

// mosquittoACL writes one block per user and no pattern line: a pattern
// applies to every user, collectors included, and with explicit lines a
// device's outlet and kind are part of what it may write.
func mosquittoACL(creds []Credential) []byte {
	var b bytes.Buffer
	b.WriteString(`# Mosquitto acl_file, written by gpctl provision: re-run it rather than edit.
# Deny by default: a client may do only what its block allows. (An empty ACL
# file once meant allow-all, CVE-2018-12550: this one always lists users.)
# Usernames match [a-z0-9][a-z0-9_-]{0,63}: never + or # (CVE-2017-7650).
# With use_username_as_clientid the client id is the username as well.
`)
	for _, c := range creds {
		fmt.Fprintf(&b, "\nuser %s\n", c.Username)
		access := "write"
		if c.Role == RoleCollector {
			access = "read"
		}
		for _, t := range c.Topics() {
			fmt.Fprintf(&b, "topic %s %s\n", access, t)
		}
	}
	return b.Bytes()
}

func emqxUsers(creds []Credential, old map[string][2]string) ([]byte, error) {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write([]string{"user_id", "password_hash", "salt", "is_superuser"})
	for _, c := range creds {
		sh, ok := old[c.Username]
		if !ok || subtle.ConstantTimeCompare([]byte(emqxHash(sh[0], c.Password)), []byte(sh[1])) != 1 {
			salt := make([]byte, 16)
			if _, err := rand.Read(salt); err != nil {
				return nil, fmt.Errorf("provision: random: %w", err)
			}
			sh[0] = hex.EncodeToString(salt)
			sh[1] = emqxHash(sh[0], c.Password)
		}
		cw.Write([]string{c.Username, sh[1], sh[0], "false"})
	}
	cw.Flush()
	return b.Bytes(), cw.Error()
}

func emqxACL(creds []Credential) []byte {
	var b bytes.Buffer
	b.WriteString(`%% EMQX authorization file source, written by gpctl provision: re-run it
%% rather than edit. The file EMQX ships ends with {allow, all}: this one
%% ends with {deny, all}, and each client may do only what its line allows.
`)
	for _, c := range creds {
		action := "publish"
		if c.Role == RoleCollector {
			action = "subscribe"
		}
		q := make([]string, 0, 2)
		for _, t := range c.Topics() {
			q = append(q, strconv.Quote(t))
		}
		fmt.Fprintf(&b, "{allow, {username, %q}, %s, [%s]}.\n", c.Username, action, strings.Join(q, ", "))
	}
	b.WriteString("{deny, all}.\n")
	return b.Bytes()
}

// readColonFile reads user:hash lines (a missing or unreadable file is empty:
// every hash is then made anew).
func readColonFile(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if u, h, ok := strings.Cut(sc.Text(), ":"); ok {
			out[u] = h
		}
	}
	return out
}

// readEMQXUsers reads user → (salt, hash) from an earlier users.csv.
func readEMQXUsers(path string) map[string][2]string {
	out := map[string][2]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return out
	}
	for _, r := range recs {
		if len(r) == 4 {
			out[r[0]] = [2]string{r[2], r[1]}
		}
	}
	return out
}

// writeAtomic writes data to a temporary file beside path with mode, syncs
// it and renames it over path: a crash leaves the old file or the new one.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
