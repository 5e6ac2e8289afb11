// Package settings reads the GreenPost binaries' settings from the
// environment (runtime-v1): defaults in code, every value checked at start,
// every problem reported with the setting's name, exit code 2 for bad
// settings. It also runs a binary's main: signals, logger and exit codes.
package settings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Known lists every variable of runtime-v1. An unknown GP_ variable is most
// likely a typo, and a typo silently falls back to a default.
var Known = []string{
	"GP_MQTT_URL", "GP_MQTT_USERNAME", "GP_MQTT_PASSWORD", "GP_MQTT_CA_FILE", "GP_MQTT_CLIENT_ID",
	"GP_MQTT_SHARE_GROUP", "GP_EMBEDDED_BROKER", "GP_INFLUX_URL", "GP_INFLUX_TOKEN", "GP_INFLUX_ORG",
	"GP_INFLUX_BUCKET", "GP_SPOOL_DIR", "GP_COLLECTOR_ADDR", "GP_API_ADDR", "GP_API_KEYS_FILE",
	"GP_API_KEYS", "GP_LOG_LEVEL",
}

// Extra lists variables beyond runtime-v1 that a binary also reads; they
// are documented with the binary. Binaries append to it in init.
var Extra []string

// Secrets may also be given as NAME_FILE. GP_API_KEYS has no such form:
// runtime-v1 gives GP_API_KEYS_FILE a meaning of its own (the file of hashed
// keys), and reading it as "GP_API_KEYS from a file" made the documented
// production setup exit 2. FileFormClashes keeps such a clash from coming
// back.
var secrets = []string{"GP_MQTT_PASSWORD", "GP_INFLUX_TOKEN"}

// FileFormClashes returns the secrets whose NAME_FILE form is also a setting
// of its own (in Known or Extra): one variable read as two things. A binary's
// tests call it after the binary has added its Extra settings.
func FileFormClashes() []string {
	var out []string
	for _, s := range secrets {
		if f := s + "_FILE"; slices.Contains(Known, f) || slices.Contains(Extra, f) {
			out = append(out, s)
		}
	}
	return out
}

// Error is a bad setting. Main exits with code 2 for it.
type Error struct{ Problems []string }

func (e *Error) Error() string { return "bad settings:\n  " + strings.Join(e.Problems, "\n  ") }

// Usage reports whether err is (or wraps) a settings error.
func Usage(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Reader collects values and problems; Err returns them all at once, so an
// operator fixes every bad setting in one go.
type Reader struct {
	getenv   func(string) string
	problems []string
}

// NewReader reads from getenv (os.Getenv, or a map in tests).
func NewReader(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// Problem records a problem with a setting.
func (r *Reader) Problem(name, format string, args ...any) {
	r.problems = append(r.problems, name+": "+fmt.Sprintf(format, args...))
}

// Err returns an *Error listing every problem, or nil.
func (r *Reader) Err() error {
	if len(r.problems) == 0 {
		return nil
	}
	return &Error{Problems: r.problems}
}

// String returns the variable, or def when unset. For secrets, NAME_FILE
// names a file to read the value from (trailing newline dropped).
func (r *Reader) String(name, def string) string {
	v := r.getenv(name)
	if slices.Contains(secrets, name) {
		if f := r.getenv(name + "_FILE"); f != "" {
			if v != "" {
				r.Problem(name, "set both %s and %s_FILE", name, name)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				r.Problem(name+"_FILE", "%v", err)
				return ""
			}
			return strings.TrimRight(string(b), "\r\n")
		}
	}
	if v == "" {
		return def
	}
	return v
}

// URL returns a URL whose scheme is one of schemes.
func (r *Reader) URL(name, def string, schemes ...string) string {
	v := r.String(name, def)
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme) {
		r.Problem(name, "%q is not a URL of the form %s://host:port", v, strings.Join(schemes, "|"))
	}
	return v
}

// Addr returns a host:port listen address.
func (r *Reader) Addr(name, def string) string {
	v := r.String(name, def)
	if _, port, err := net.SplitHostPort(v); err != nil {
		r.Problem(name, "%q is not host:port", v)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		r.Problem(name, "%q has a bad port", v)
	}
	return v
}

// File returns a path that must exist when set.
func (r *Reader) File(name string) string {
	v := r.String(name, "")
	if v != "" {
		if _, err := os.Stat(v); err != nil {
			r.Problem(name, "%v", err)
		}
	}
	return v
}

// Duration parses a Go duration within [min, max].
func (r *Reader) Duration(name string, def, min, max time.Duration) time.Duration {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min || d > max {
		r.Problem(name, "%q: want a duration from %v to %v", v, min, max)
		return def
	}
	return d
}

// Int parses an integer within [min, max].
func (r *Reader) Int(name string, def, min, max int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.Problem(name, "%q: want an integer from %d to %d", v, min, max)
		return def
	}
	return n
}

// LogLevel reads GP_LOG_LEVEL.
func (r *Reader) LogLevel() slog.Level {
	v := r.String("GP_LOG_LEVEL", "info")
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(v)) {
		r.Problem("GP_LOG_LEVEL", "%q: want debug, info, warn or error", v)
		return slog.LevelInfo
	}
	return l
}

// Unknown returns the GP_ variables in environ that no binary reads.
func Unknown(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "GP_") {
			continue
		}
		base := strings.TrimSuffix(name, "_FILE")
		if slices.Contains(Known, name) || slices.Contains(Extra, name) || (base != name && slices.Contains(secrets, base)) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// NewLogger returns the JSON logger every binary writes to stderr.
func NewLogger(w io.Writer, level slog.Level, component string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("component", component)
}

// RunFunc is a binary's whole program, testable with fake args and env.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs a binary: it refuses unknown GP_ variables, cancels ctx on
// SIGINT or SIGTERM, and exits 0 after a clean shutdown, 2 for bad settings,
// 1 for anything else.
func Main(run RunFunc) {
	if unknown := Unknown(os.Environ()); len(unknown) > 0 {
		fmt.Fprintf(os.Stderr, "bad settings: unknown variables %s (runtime-v1 lists the known ones)\n", strings.Join(unknown, ", "))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
		os.Exit(0)
	case Usage(err):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
