package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDebugAddrSetting: off by default, a loopback host:port when set, and
// refused when it is not one.
func TestDebugAddrSetting(t *testing.T) {
	for _, tc := range []struct {
		v, want string
		bad     bool
	}{
		{"", "", false},
		{"127.0.0.1:6060", "127.0.0.1:6060", false},
		{"localhost:6060", "localhost:6060", false},
		{"[::1]:6060", "[::1]:6060", false},
		{"localhost", "", true},
		{"127.0.0.1:99999", "", true},
		// No keys on the profiles: never on an address others reach.
		{":6060", "", true},
		{"0.0.0.0:6060", "", true},
		{"10.1.2.3:6060", "", true},
	} {
		c, err := loadConfig(func(k string) string {
			if k == "GP_API_DEBUG_ADDR" {
				return tc.v
			}
			return ""
		})
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v, want error %v", tc.v, err, tc.bad)
		}
		if !tc.bad && c.DebugAddr != tc.want {
			t.Errorf("%q: DebugAddr %q", tc.v, c.DebugAddr)
		}
	}
}

// TestServeDebug: the profiles' index answers on the debug listener, and
// the listener closes when its context ends.
func TestServeDebug(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { serveDebug(ctx, ln, slog.New(slog.DiscardHandler)); close(done) }()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("pprof index: %d %.200s", resp.StatusCode, body)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("debug listener still serving after its context ended")
	}
}
