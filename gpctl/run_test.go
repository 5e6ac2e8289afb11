package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenpost/greenpost/internal/provision"
	"github.com/greenpost/greenpost/internal/settings"
)

// TestRun: gpctl dispatches provision; no or an unknown command is a usage
// error (exit 2).
func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"gpctl"}, {"gpctl", "frobnicate"}, {"gpctl", "provision", "-nope"}} {
		if err := run(context.Background(), args, os.Getenv, &out, &errb); !settings.Usage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "creds")
	if err := run(context.Background(), []string{"gpctl", "provision", "-out", dir, "-sim-outlets", "2"}, os.Getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), ": 6 devices, 1 collector users") {
		t.Errorf("output: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, provision.MosquittoPasswd)); err != nil {
		t.Error(err)
	}
}

// TestProbe: gpctl probe passes on 2xx only (the containers' healthcheck),
// and a missing or malformed URL is a usage error.
func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"gpctl", "probe", srv.URL + "/healthz"}, os.Getenv, &out, &errb); err != nil {
		t.Errorf("probe of a healthy server: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := run(context.Background(), []string{"gpctl", "probe", srv.URL + "/healthz"}, os.Getenv, &out, &errb); err == nil || settings.Usage(err) {
		t.Errorf("probe of a 503: %v, want a failure", err)
	}
	srv.Close()
	if err := run(context.Background(), []string{"gpctl", "probe", srv.URL}, os.Getenv, &out, &errb); err == nil || settings.Usage(err) {
		t.Errorf("probe of a closed port: %v, want a failure", err)
	}
	for _, args := range [][]string{{"gpctl", "probe"}, {"gpctl", "probe", "tcp://x:1"}, {"gpctl", "probe", "a", "b"}} {
		if err := run(context.Background(), args, os.Getenv, &out, &errb); !settings.Usage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
