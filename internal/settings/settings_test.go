package settings

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReaderDefaultsAndValues(t *testing.T) {
	r := NewReader(env(map[string]string{
		"GP_MQTT_URL": "ssl://broker:8883", "GP_API_ADDR": ":0", "GP_X_DUR": "5s", "GP_X_INT": "7", "GP_LOG_LEVEL": "debug",
	}))
	if v := r.URL("GP_MQTT_URL", "tcp://127.0.0.1:1883", "tcp", "ssl", "ws"); v != "ssl://broker:8883" {
		t.Errorf("URL = %q", v)
	}
	if v := r.URL("GP_INFLUX_URL", "http://127.0.0.1:8086", "http", "https"); v != "http://127.0.0.1:8086" {
		t.Errorf("default URL = %q", v)
	}
	if v := r.Addr("GP_API_ADDR", "127.0.0.1:8080"); v != ":0" {
		t.Errorf("Addr = %q", v)
	}
	if v := r.Duration("GP_X_DUR", time.Second, time.Millisecond, time.Minute); v != 5*time.Second {
		t.Errorf("Duration = %v", v)
	}
	if v := r.Int("GP_X_INT", 1, 1, 10); v != 7 {
		t.Errorf("Int = %v", v)
	}
	if l := r.LogLevel(); l != slog.LevelDebug {
		t.Errorf("LogLevel = %v", l)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderNamesEveryBadSetting(t *testing.T) {
	r := NewReader(env(map[string]string{
		"GP_MQTT_URL": "mqtt://x", "GP_API_ADDR": "nope", "GP_X_DUR": "5", "GP_X_INT": "70", "GP_LOG_LEVEL": "loud",
		"GP_COLLECTOR_ADDR": "127.0.0.1:99999",
	}))
	r.URL("GP_MQTT_URL", "", "tcp", "ssl", "ws")
	r.Addr("GP_API_ADDR", "")
	r.Addr("GP_COLLECTOR_ADDR", "")
	r.Duration("GP_X_DUR", time.Second, time.Millisecond, time.Minute)
	r.Int("GP_X_INT", 1, 1, 10)
	r.LogLevel()
	r.File("GP_NOPE")
	err := r.Err()
	var se *Error
	if !errors.As(err, &se) || !Usage(err) {
		t.Fatalf("Err = %v", err)
	}
	for _, name := range []string{"GP_MQTT_URL", "GP_API_ADDR", "GP_COLLECTOR_ADDR", "GP_X_DUR", "GP_X_INT", "GP_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestSecretFromFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	r := NewReader(env(map[string]string{"GP_INFLUX_TOKEN_FILE": f}))
	if v := r.String("GP_INFLUX_TOKEN", ""); v != "s3cret" {
		t.Errorf("token = %q", v)
	}
	r = NewReader(env(map[string]string{"GP_INFLUX_TOKEN_FILE": f, "GP_INFLUX_TOKEN": "x"}))
	r.String("GP_INFLUX_TOKEN", "")
	if r.Err() == nil {
		t.Error("both the value and the file were accepted")
	}
	r = NewReader(env(map[string]string{"GP_INFLUX_TOKEN_FILE": "/no/such/file"}))
	r.String("GP_INFLUX_TOKEN", "")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "GP_INFLUX_TOKEN_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

func TestUnknown(t *testing.T) {
	got := Unknown([]string{"PATH=/bin", "GP_MQTT_URL=x", "GP_INFLUX_ULR=typo", "GP_INFLUX_TOKEN_FILE=/t", "GP_SPOOL_DIR_FILE=/x"})
	if strings.Join(got, ",") != "GP_INFLUX_ULR,GP_SPOOL_DIR_FILE" {
		t.Errorf("Unknown = %v", got)
	}
}

// TestKeysFileIsNotASecretFile: GP_API_KEYS_FILE is runtime-v1's keys file,
// never "GP_API_KEYS read from a file" (that reading made the documented
// production setup exit 2), and no secret's NAME_FILE names another setting.
func TestKeysFileIsNotASecretFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "api-keys")
	os.WriteFile(f, []byte("admin ops 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"), 0o600)
	r := NewReader(env(map[string]string{"GP_API_KEYS_FILE": f}))
	if v := r.String("GP_API_KEYS", ""); v != "" {
		t.Errorf("GP_API_KEYS read from GP_API_KEYS_FILE: %q", v)
	}
	if err := r.Err(); err != nil {
		t.Errorf("GP_API_KEYS_FILE alone: %v", err)
	}
	if c := FileFormClashes(); len(c) > 0 {
		t.Errorf("secrets whose NAME_FILE is a setting of its own: %v", c)
	}
}
