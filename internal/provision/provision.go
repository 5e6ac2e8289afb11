// Package provision enrols devices and collectors with the brokers: it
// gives each a password and writes, from one list, every file a broker
// needs to let it in and to bind it to what it may do (`gpctl provision`).
//
// A device's username and client id are its device id, and it may publish
// (and set its Last Will) only on its own two topics,
// gp/v1/<its outlet>/<its kind>/<its id>/{telemetry,status}. A collector's
// username is its client id too, and it may only read under gp/v1/. Every
// broker GreenPost ships refuses a client id other than the username, so no
// client can take over another's session.
package provision

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/greenpost/greenpost/internal/telemetry"
)

// Roles of a credential.
const (
	RoleDevice    = "device"
	RoleCollector = "collector"
)

// Files written into the output directory. Those holding passwords or
// their hashes are written 0600.
const (
	CredentialsFile = "credentials.csv"  // for the installer: every password in clear (0600)
	EmbeddedUsers   = "embedded-users"   // GP_EMBEDDED_BROKER_USERS_FILE (0600)
	MosquittoPasswd = "mosquitto/passwd" // password_file, mosquitto_passwd's format (0600)
	MosquittoACL    = "mosquitto/acl"    // acl_file: one block per user (0644)
	EMQXUsers       = "emqx/users.csv"   // built-in database import (0600)
	EMQXACL         = "emqx/acl.conf"    // file authorization source (0644)
	CollectorsDir   = "collectors"       // one file per collector user holding its password (0600): GP_MQTT_PASSWORD_FILE
	ShareGroup      = "collector"        // the collectors' $share group (GP_MQTT_SHARE_GROUP)
	credentialsHead = "role,username,client_id,password,outlet,kind"
)

// Device is one device to enrol.
type Device struct {
	ID     string
	Outlet string
	Kind   telemetry.Kind
}

// Credential is one enrolled client: a line of credentials.csv.
type Credential struct {
	Role     string
	Username string // also the client id
	Password string
	Outlet   string         // devices only
	Kind     telemetry.Kind // devices only
}

// Topics returns what the client may publish (devices) or the filters it may
// subscribe to (collectors).
func (c Credential) Topics() []string {
	if c.Role == RoleDevice {
		return []string{telemetry.TelemetryTopic(c.Outlet, c.Kind, c.Username), telemetry.StatusTopic(c.Outlet, c.Kind, c.Username)}
	}
	return []string{"gp/v1/#", "$share/" + ShareGroup + "/gp/v1/#"}
}

// Change says what a run did compared with the credentials it found.
type Change struct {
	Added, Kept, Revoked []string // usernames
	Moved                []string // devices kept whose outlet or kind changed
}

// Plan builds the credentials for devices and collectors: an enrolled
// client found in old keeps its password, a new one gets a fresh random
// password, and one of old that is no longer listed is revoked (left out).
// Every id is checked: ids outside [a-z0-9][a-z0-9_-]{0,63} (so also + and
// #, CVE-2017-7650), duplicates, a device whose outlet is not in outlets
// (when outlets is not nil), and a collector named like a device are refused.
func Plan(devices []Device, collectors []string, outlets map[string]bool, old []Credential) ([]Credential, Change, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]string{}
	var want []Credential
	for _, name := range collectors {
		switch {
		case !telemetry.ValidID(name):
			bad("collector %q: want [a-z0-9][a-z0-9_-]{0,63}", name)
		case seen[name] != "":
			bad("collector %q is listed twice", name)
		default:
			seen[name] = RoleCollector
			want = append(want, Credential{Role: RoleCollector, Username: name})
		}
	}
	for _, d := range devices {
		switch {
		case !telemetry.ValidID(d.ID):
			bad("device %q: want [a-z0-9][a-z0-9_-]{0,63}", d.ID)
		case !telemetry.ValidID(d.Outlet):
			bad("device %s: outlet %q: want [a-z0-9][a-z0-9_-]{0,63}", d.ID, d.Outlet)
		case d.Kind != telemetry.KindBin && d.Kind != telemetry.KindCounter:
			bad("device %s: kind must be bin or counter", d.ID)
		case seen[d.ID] == RoleCollector:
			bad("device %s has the name of a collector", d.ID)
		case seen[d.ID] != "":
			bad("device %s is listed twice", d.ID)
		case outlets != nil && !outlets[d.Outlet]:
			bad("device %s: outlet %s is not in the registry", d.ID, d.Outlet)
		default:
			seen[d.ID] = RoleDevice
			want = append(want, Credential{Role: RoleDevice, Username: d.ID, Outlet: d.Outlet, Kind: d.Kind})
		}
	}
	if len(problems) > 0 {
		return nil, Change{}, &Error{Problems: problems}
	}
	prev := map[string]Credential{}
	for _, c := range old {
		prev[c.Username] = c
	}
	var ch Change
	for i := range want {
		c := &want[i]
		if o, ok := prev[c.Username]; ok && o.Role == c.Role && o.Password != "" {
			c.Password = o.Password
			ch.Kept = append(ch.Kept, c.Username)
			if o.Outlet != c.Outlet || o.Kind != c.Kind {
				ch.Moved = append(ch.Moved, c.Username)
			}
			delete(prev, c.Username)
			continue
		}
		p, err := NewPassword()
		if err != nil {
			return nil, Change{}, err
		}
		c.Password = p
		ch.Added = append(ch.Added, c.Username)
	}
	for name := range prev {
		ch.Revoked = append(ch.Revoked, name)
	}
	sort.Strings(ch.Revoked)
	sort.Slice(want, func(i, j int) bool {
		if want[i].Role != want[j].Role {
			return want[i].Role == RoleCollector // collectors first
		}
		return want[i].Username < want[j].Username
	})
	return want, ch, nil
}

// Error lists every problem of the input at once.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	const max = 20
	s := "provision: "
	for i, p := range e.Problems {
		if i == max {
			return s + fmt.Sprintf("\n  … and %d more", len(e.Problems)-max)
		}
		s += "\n  " + p
	}
	return s
}

// passwordAlphabet has no character that a spreadsheet reads as the start of
// a formula (= + - @), nor one that needs quoting in a shell, an env file or
// a config: the credentials file opens safely as it is.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// PasswordLen characters of 62 give 130 bits: no rainbow table or guessing
// reaches that, which is also why the brokers' hashes need no stretching.
const PasswordLen = 22

// NewPassword returns a random password from crypto/rand.
func NewPassword() (string, error) {
	out := make([]byte, 0, PasswordLen)
	buf := make([]byte, 64)
	for len(out) < PasswordLen {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("provision: random: %w", err)
		}
		for _, b := range buf {
			// 248 = 4 × 62: rejecting the rest keeps every character equally likely.
			if b < 248 && len(out) < PasswordLen {
				out = append(out, passwordAlphabet[b%62])
			}
		}
	}
	return string(out), nil
}

// SHA256Hex is the password hash of the embedded broker's users file.
func SHA256Hex(password string) string {
	h := sha256.Sum256([]byte(password))
	return hex.EncodeToString(h[:])
}
