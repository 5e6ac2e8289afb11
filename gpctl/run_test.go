package main

import (
	"bytes"
	"context"
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
