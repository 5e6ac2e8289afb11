package deploytest

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/provision"
)

// TestEMQXConfMatchesProvisioning: no EMQX runs on this machine, so what
// can be checked is that emqx.conf and the files gpctl provision writes
// for EMQX agree: the hash EMQX is told to use (SHA-256 of salt+password)
// is the one in users.csv, in the import's columns; the ACL file it loads
// is the provisioned one (ending deny-all) and nothing falls back to
// allow; client ids are usernames; packets are bounded as on Mosquitto.
func TestEMQXConfMatchesProvisioning(t *testing.T) {
	conf := mustRead(t, deployPath(t, "cluster", "emqx", "emqx.conf"))
	var live []string // the file without comments
	for _, l := range strings.Split(conf, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "##") && !strings.HasPrefix(l, "#") {
			live = append(live, l)
		}
	}
	text := strings.Join(live, "\n")
	for _, want := range []string{
		`use_username_as_clientid\s*=\s*true`,
		`max_packet_size\s*=\s*64KB`,
		`password_hash_algorithm\s*\{\s*name\s*=\s*sha256,\s*salt_position\s*=\s*prefix\s*\}`,
		`no_match\s*=\s*deny`,
		`\{\s*type\s*=\s*file,\s*enable\s*=\s*true,\s*path\s*=\s*"etc/greenpost-acl.conf"\s*\}`,
		`session_expiry_interval\s*=\s*\d+d`,
		`mqueue_store_qos0\s*=\s*false`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("emqx.conf lacks %s", want)
		}
	}
	if strings.Contains(text, "allow, all") {
		t.Error("emqx.conf allows all somewhere")
	}

	reg, dev := cityFiles(t)
	out := filepath.Join(t.TempDir(), "prov")
	var stdout, stderr strings.Builder
	if err := provision.Run([]string{"-out", out, "-registry", reg, "-devices", dev}, &stdout, &stderr); err != nil {
		t.Fatal(err, stderr.String())
	}
	creds, err := provision.ReadCredentials(filepath.Join(out, provision.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, provision.EMQXUsers))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "user_id,password_hash,salt,is_superuser" {
		t.Errorf("users.csv header %v: not EMQX's import columns", rows[0])
	}
	for _, c := range creds {
		found := false
		for _, r := range rows[1:] {
			if r[0] == c.Username {
				sum := sha256.Sum256([]byte(r[2] + c.Password)) // salt_position = prefix
				found = hex.EncodeToString(sum[:]) == r[1] && r[3] == "false"
			}
		}
		if !found {
			t.Errorf("users.csv has no line for %s that EMQX's sha256/prefix check would accept", c.Username)
		}
	}
	acl := mustRead(t, filepath.Join(out, provision.EMQXACL))
	if !strings.HasSuffix(strings.TrimSpace(acl), "{deny, all}.") {
		t.Error("the provisioned acl.conf does not end with deny-all")
	}
}
