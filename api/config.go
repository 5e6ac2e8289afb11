package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"

	"github.com/greenpost/greenpost/internal/settings"
)

// Roles of API keys.
const (
	roleViewer = "viewer"
	roleAdmin  = "admin"
)

// apiKey is a configured key: only its SHA-256 is kept.
type apiKey struct {
	Role, Name string
	Hash       [sha256.Size]byte
}

// config is everything the API reads at start (runtime-v1).
type config struct {
	Addr                                      string
	InfluxURL, InfluxToken, InfluxOrg, Bucket string
	Keys                                      []apiKey
	LogLevel                                  slog.Level
}

func loadConfig(getenv func(string) string) (config, error) {
	r := settings.NewReader(getenv)
	c := config{
		Addr:        r.Addr("GP_API_ADDR", "127.0.0.1:8080"),
		InfluxURL:   r.URL("GP_INFLUX_URL", "http://127.0.0.1:8086", "http", "https"),
		InfluxToken: r.String("GP_INFLUX_TOKEN", ""),
		InfluxOrg:   r.String("GP_INFLUX_ORG", ""),
		Bucket:      r.String("GP_INFLUX_BUCKET", "gp"),
		LogLevel:    r.LogLevel(),
	}
	if f := r.File("GP_API_KEYS_FILE"); f != "" {
		c.Keys = append(c.Keys, readKeysFile(r, f)...)
	}
	if v := r.String("GP_API_KEYS", ""); v != "" {
		c.Keys = append(c.Keys, parseDevKeys(r, v)...)
	}
	return c, r.Err()
}

// readKeysFile reads `<role> <name> <sha256 hex of key>` lines; blank lines
// and lines starting with # are skipped.
func readKeysFile(r *settings.Reader, path string) []apiKey {
	f, err := os.Open(path)
	if err != nil {
		r.Problem("GP_API_KEYS_FILE", "%v", err)
		return nil
	}
	defer f.Close()
	var keys []apiKey
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 3 || !validRole(parts[0]) {
			r.Problem("GP_API_KEYS_FILE", "line %d: want `<viewer|admin> <name> <sha256 hex>`", n)
			continue
		}
		h, err := hex.DecodeString(parts[2])
		if err != nil || len(h) != sha256.Size {
			r.Problem("GP_API_KEYS_FILE", "line %d: the hash is not 64 hex digits", n)
			continue
		}
		k := apiKey{Role: parts[0], Name: parts[1]}
		copy(k.Hash[:], h)
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		r.Problem("GP_API_KEYS_FILE", "%v", err)
	}
	return keys
}

// parseDevKeys reads the development form `role:key,role:key`.
func parseDevKeys(r *settings.Reader, v string) []apiKey {
	var keys []apiKey
	for i, item := range strings.Split(v, ",") {
		role, key, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || !validRole(role) || len(key) < 8 {
			r.Problem("GP_API_KEYS", "item %d: want role:key with role viewer or admin and a key of 8 or more characters", i+1)
			continue
		}
		keys = append(keys, apiKey{Role: role, Name: "dev-" + role, Hash: sha256.Sum256([]byte(key))})
	}
	return keys
}

func validRole(s string) bool { return s == roleViewer || s == roleAdmin }
