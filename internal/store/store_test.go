package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/telemetry"
	"github.com/greenpost/greenpost/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openStore(t *testing.T, in *testenv.Influx) *Store {
	t.Helper()
	s, err := Open(Config{URL: in.URL, Bucket: in.Bucket, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestWriteAndReadBack writes every kind of storage-v1 point made by the
// telemetry package to a real InfluxDB 1.8 and reads each field back with Flux.
func TestWriteAndReadBack(t *testing.T) {
	in := testenv.SharedInflux(t)
	s := openStore(t, in)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	ts := fmt.Sprint(now.Add(-time.Minute).UnixMilli())
	msgs := []struct{ topic, payload string }{
		{"gp/v1/rb-o1/bin/rb-b1/telemetry", `{"ts":` + ts + `,"seq":7,"boot":3,"fill_pct":63.5,"deposits":10234,"weight_kg":12.4,"battery_pct":88,"rssi_dbm":-71,"emptied":true}`},
		{"gp/v1/rb-o1/counter/rb-c1/telemetry", `{"ts":` + ts + `,"seq":77,"boot":2,"parcels":{"recyclable":3400,"foam":12},"boxes_recovered":65}`},
		{"gp/v1/rb-o1/counter/rb-c1/status", `{"state":"online","ts":` + ts + `,"fw":"1.4.2"}`},
	}
	var lines []byte
	for _, m := range msgs {
		msg, err := telemetry.Decode(m.topic, []byte(m.payload), now)
		if err != nil {
			t.Fatal(err)
		}
		lines = telemetry.AppendPoint(lines, &msg)
	}
	nasty := "line1\nline2 \"quoted\" back\\slash, comma=équipe \xff"
	lines = telemetry.AppendDeadLetter(lines, telemetry.ReasonBadJSON, "gp/v1/rb-o1/bin/x y/telemetry", []byte(nasty), now)
	if err := s.Write(ctx, lines); err != nil {
		t.Fatalf("write: %v", err)
	}
	// Twice: a replayed point overwrites itself.
	if err := s.Write(ctx, lines); err != nil {
		t.Fatalf("second write: %v", err)
	}

	got := map[string]string{}
	rows, err := s.Query(ctx, `from(bucket: "`+in.Bucket+`")
  |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "deadletter" or r.outlet == "rb-o1")`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		key := fmt.Sprintf("%s.%s", r["_measurement"], r["_field"])
		if _, dup := got[key]; dup {
			t.Errorf("%s stored twice", key)
		}
		got[key] = fmt.Sprintf("%v", r["_value"])
		if r["_measurement"] != "deadletter" && !r["_time"].(time.Time).Equal(now.Add(-time.Minute)) {
			t.Errorf("%s at %v, want %v", key, r["_time"], now.Add(-time.Minute))
		}
	}
	want := map[string]string{
		"bin.fill_pct": "63.5", "bin.deposits": "10234", "bin.seq": "7", "bin.weight_kg": "12.4",
		"bin.battery_pct": "88", "bin.rssi_dbm": "-71", "bin.emptied": "true",
		"counter.reusable": "0", "counter.recyclable": "3400", "counter.biodegradable": "0", "counter.original": "0",
		"counter.plastic": "0", "counter.foam": "12", "counter.other": "0", "counter.seq": "77", "counter.boxes_recovered": "65",
		"device_status.state": "online", "device_status.fw": "1.4.2",
		"deadletter.topic":   "gp/v1/rb-o1/bin/x y/telemetry",
		"deadletter.payload": strings.ToValidUTF8(nasty, "\uFFFD"),
	}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s = %q, want %q", k, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("read %d fields, want %d: %v", len(got), len(want), got)
	}
}

func TestWriteErrorsAreClassified(t *testing.T) {
	in := testenv.SharedInflux(t)
	ctx := context.Background()
	s := openStore(t, in)

	err := s.Write(ctx, []byte("bad line protocol here\n"))
	if c := ClassOf(err); err == nil || c != Permanent {
		t.Errorf("malformed line: err %v, class %v; want permanent", err, c)
	}

	ts := time.Now().UnixNano()
	if err := s.Write(ctx, []byte(fmt.Sprintf("conflict v=1i %d\n", ts))); err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, []byte(fmt.Sprintf("conflict v=\"text\" %d\nconflict w=2i %d\n", ts+1, ts+2)))
	if c := ClassOf(err); err == nil || c != Permanent {
		t.Errorf("field type conflict: err %v, class %v; want permanent", err, c)
	}

	nb, err := Open(Config{URL: in.URL, Bucket: "no_such_db/autogen"})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	err = nb.Write(ctx, []byte(fmt.Sprintf("m v=1 %d\n", ts)))
	if c := ClassOf(err); err == nil || c != Fatal {
		t.Errorf("missing database: err %v, class %v; want fatal", err, c)
	}

	down, err := Open(Config{URL: "http://127.0.0.1:1", Bucket: in.Bucket, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	err = down.Write(ctx, []byte(fmt.Sprintf("m v=1 %d\n", ts)))
	var we *WriteError
	if !errors.As(err, &we) || we.Class != Retryable || we.Status != 0 {
		t.Errorf("server down: err %v; want retryable without status", err)
	}
	if err := down.Ping(ctx); ClassOf(err) != Retryable {
		t.Errorf("ping of a server that is down: %v; want retryable", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Write(cctx, []byte(fmt.Sprintf("m v=1 %d\n", ts))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v; want context.Canceled", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, c := range []Config{{URL: "127.0.0.1:8086", Bucket: "gp"}, {URL: "ftp://x", Bucket: "gp"}, {URL: "http://x:8086"}} {
		if _, err := Open(c); err == nil {
			t.Errorf("Open(%+v) accepted", c)
		}
	}
}

func TestFluxString(t *testing.T) {
	if got := FluxString(`a"b\c${x}`); got != `"a\"b\\c\${x}"` {
		t.Errorf("FluxString = %s", got)
	}
}
