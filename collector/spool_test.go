package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/spool"
	"github.com/greenpost/greenpost/internal/testenv"
)

// ingestAll runs messages through the ingester into sp, as one group.
func ingestAll(t *testing.T, sp *spool.Spool, m *promMetrics, pending *atomic.Int64, msgs []testMsg) {
	t.Helper()
	q := make(chan message, len(msgs))
	for _, msg := range msgs {
		q <- message{topic: msg.topic, payload: []byte(msg.payload), recv: time.Now(), ack: func() {}}
	}
	g := &ingester{in: q, spool: sp, m: m, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		limiter: newTokenBucket(100), pending: pending, maxGroup: maxGroup}
	if err := g.handle(context.Background(), <-q); err != nil {
		t.Fatal(err)
	}
	if len(q) != 0 {
		t.Fatalf("%d messages left out of the group", len(q))
	}
}

// flipIn flips one byte inside the only occurrence of needle among the
// spool's segment files, and returns the file's name.
func flipIn(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	found := ""
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, needle)
		if i < 0 {
			continue
		}
		if found != "" || bytes.Index(b[i+1:], needle) >= 0 {
			t.Fatalf("%q is in the spool more than once", needle)
		}
		b[i+len(needle)/2] ^= 0x01
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		found = seg
	}
	if found == "" {
		t.Fatalf("%q is not in the spool %v", needle, segs)
	}
	return found
}

// pointTime is how the time of binMsgs' message seq appears in its point.
func pointTime(base time.Time, seq int) []byte {
	return fmt.Appendf(nil, " %d\n", base.Add(time.Duration(seq)*time.Millisecond).UnixMilli()*int64(time.Millisecond))
}

// TestDamagedByteCostsOnePoint: a group of 301 messages goes into the spool
// as one fsync; one flipped byte in one point's record loses that point
// alone — counted and quarantined — and the writer delivers the other 300.
func TestDamagedByteCostsOnePoint(t *testing.T) {
	dir := t.TempDir()
	f := &fakeSink{lines: map[string]int{}}
	w, _ := newTestWriter(t, f, 5000)
	sp, err := spool.Open(dir, spool.Options{OnDamage: spoolDamage(w.m, w.log)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	w.spool = sp
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ingestAll(t, sp, w.m, w.pending, binMsgs("sd-o1", 1, 301, base))
	if w.pending.Load() != 301 {
		t.Fatalf("pending %d points", w.pending.Load())
	}
	flipIn(t, dir, pointTime(base, 100))

	if err := runUntilDrained(t, w, sp); err != nil {
		t.Fatal(err)
	}
	if len(f.lines) != 300 {
		t.Errorf("%d points written, want 300", len(f.lines))
	}
	if p := w.pending.Load(); p != 0 {
		t.Errorf("spool_points still %d: the lost point was not taken off", p)
	}
	for l := range f.lines {
		if strings.HasSuffix(l, strings.TrimSuffix(string(pointTime(base, 100)), "\n")) {
			t.Errorf("the damaged point was written: %s", l)
		}
	}
	if got := metricValue(w.m.spoolDamaged); got != 1 {
		t.Errorf("spool_corrupt_records_total = %v, want 1", got)
	}
	if got := metricValue(w.m.quarantinedBytes); got < 100 || got > 300 {
		t.Errorf("spool_quarantined_bytes_total = %v: not one point's record", got)
	}
	if q, _ := filepath.Glob(filepath.Join(dir, "quarantine-*.bin")); len(q) != 1 {
		t.Errorf("quarantine files: %v", q)
	}
}

// TestSpoolDamageEndToEnd is the scenario of the bug report, with the real
// servers: InfluxDB paused, 301 messages acknowledged into the spool, the
// collector killed (-9), one byte of one point's record flipped on disk,
// InfluxDB resumed, the collector restarted. Every point but the damaged
// one reaches InfluxDB, the counter moved, the damaged bytes are kept.
func TestSpoolDamageEndToEnd(t *testing.T) {
	in := testenv.StartInflux(t)
	mq := testenv.SharedMosquitto(t)
	spoolDir := t.TempDir()
	env := append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=damage-c", "GP_SPOOL_DIR="+spoolDir)
	if err := in.Pause(); err != nil {
		t.Fatal(err)
	}
	// One point per batch: the writer holds the first point (a paused
	// influxd still takes the request, and would store it on resume) and
	// never reads the damaged one before the kill.
	c := startCollector(t, append(env, "GP_BATCH_SIZE=1")...)
	testenv.Eventually(t, 20*time.Second, func() string {
		if c.metric(t, "greenpost_collector_mqtt_connected") != 1 {
			return "collector not connected"
		}
		return ""
	})
	const n = 301
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	newPublisher(t, mq.URL, "damage-pub").publish(t, binMsgs("dmg-o1", 1, n, base))
	testenv.Eventually(t, 30*time.Second, func() string {
		if a := c.metric(t, "greenpost_collector_messages_acked_total"); a != n {
			return fmt.Sprintf("acked %v of %d", a, n)
		}
		return ""
	})
	if err := c.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.Wait(10 * time.Second)
	seg := flipIn(t, spoolDir, pointTime(base, 100))
	if err := in.Resume(); err != nil {
		t.Fatal(err)
	}

	c2 := startCollector(t, env...)
	waitCount(t, in, countBins("dmg-o1"), n-1, 60*time.Second)
	if got := count(t, in, `SELECT count(seq) FROM bin WHERE outlet = 'dmg-o1' AND seq = 100`); got != 0 {
		t.Errorf("the damaged point reached InfluxDB (%d)", got)
	}
	if got := c2.metric(t, "greenpost_collector_spool_corrupt_records_total"); got != 1 {
		t.Errorf("spool_corrupt_records_total = %v, want 1", got)
	}
	if got := c2.metric(t, "greenpost_collector_spool_quarantined_bytes_total"); got == 0 {
		t.Error("spool_quarantined_bytes_total did not move")
	}
	q, _ := filepath.Glob(filepath.Join(spoolDir, "quarantine-*.bin"))
	if len(q) != 1 {
		t.Fatalf("quarantine files: %v", q)
	}
	kept, err := os.ReadFile(q[0])
	if err != nil || !bytes.Contains(kept, []byte("dmg-o1")) {
		t.Errorf("quarantine file %s holds %q (%v)", q[0], kept, err)
	}
	log := c2.Output()
	for _, want := range []string{`"msg":"spool damaged: records lost, their bytes kept in quarantine"`,
		`"segment":"` + filepath.Base(seg) + `"`, `"offset":`, `"msg":"spool holds points from an earlier run: replaying them","component":"collector","points":300`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
}

// TestPreviousReleaseSpoolIsReplayed starts the collector on a spool the
// previous release's collector left behind (testdata/spool-v1, written by
// its ingester: 200 bin points of outlet up-o1 in groups of 50 and one dead
// letter, the first group committed). The 150 pending points and the dead
// letter reach InfluxDB; the committed group is not sent again.
func TestPreviousReleaseSpoolIsReplayed(t *testing.T) {
	in := testenv.SharedInflux(t)
	mq := testenv.SharedMosquitto(t)
	spoolDir := t.TempDir()
	entries, err := os.ReadDir("testdata/spool-v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata/spool-v1", e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(spoolDir, e.Name()), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	c := startCollector(t, append(influxEnv(in), "GP_MQTT_URL="+mq.URL, "GP_MQTT_CLIENT_ID=upgrade-c", "GP_SPOOL_DIR="+spoolDir)...)
	waitCount(t, in, countBins("up-o1"), 150, 60*time.Second)
	waitCount(t, in, `SELECT count(payload) FROM deadletter WHERE topic =~ /up-o1/`, 1, 30*time.Second)
	testenv.Eventually(t, 30*time.Second, func() string {
		if v := c.metric(t, "greenpost_collector_spool_points"); v != 0 {
			return fmt.Sprintf("spool still holds %v points", v)
		}
		return ""
	})
	if got := count(t, in, `SELECT count(seq) FROM bin WHERE outlet = 'up-o1' AND seq < 25`); got != 0 {
		t.Errorf("%d points of the committed group were sent again", got)
	}
	if !strings.Contains(c.Output(), `"points":151`) || !strings.Contains(c.Output(), `"msg":"spool: reading segments written by the previous release","component":"collector","segments":1`) {
		t.Errorf("replay not logged:\n%s", c.Output())
	}
	// Once committed, the previous format's segment is removed like any other.
	testenv.Eventually(t, 10*time.Second, func() string {
		if old, _ := filepath.Glob(filepath.Join(spoolDir, "seg-????????????????????.log")); len(old) != 0 {
			return fmt.Sprintf("previous-format segments still there: %v", old)
		}
		return ""
	})
}
