package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/greenpost/greenpost/internal/testenv"
)

// TestFullSinceFromHistory: a full bin is full since the first report at or
// above full_pct after its last report below it (it was its last report's
// time), across reboots, and within the lookback.
func TestFullSinceFromHistory(t *testing.T) {
	in := testenv.SharedInflux(t)
	bucket := freshBucket(t, in)
	st := openStore(t, in, bucket)
	now := time.Now().UTC().Truncate(time.Second)
	m := time.Minute
	var lines []byte
	seq := 0
	bin := func(device string, boot int, at time.Duration, fill float64) {
		seq++
		lines = appendTelemetry(t, lines, "gp/v1/o-f1/bin/"+device+"/telemetry", now.Add(at),
			fmt.Sprintf(`"seq":%d,"boot":%d,"fill_pct":%g,"deposits":%d`, seq, boot, fill, seq))
	}
	bin("b-f1", 1, -60*m, 50)
	bin("b-f1", 1, -50*m, 95)
	bin("b-f1", 1, -40*m, 60) // emptied
	bin("b-f1", 1, -30*m, 92) // full again: since here
	bin("b-f1", 1, -20*m, 96)
	bin("b-f1", 1, -10*m, 97)
	bin("b-f2", 1, -20*m, 99) // never below: since its first report
	bin("b-f2", 2, -5*m, 98)  // a reboot is the same bin
	bin("b-f3", 1, -3*time.Hour, 50)
	bin("b-f3", 1, -time.Hour, 95) // the report below is beyond the lookback
	bin("b-f4", 1, -10*m, 10)      // not asked for
	bin("b-f5", 1, -50*time.Hour, 40)
	bin("b-f5", 1, -47*time.Hour, 91) // full for two days: found by the second, wider look
	bin("b-f5", 1, -2*time.Hour, 99)
	if err := st.Write(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	got, err := storeFill{st}.FullSince(context.Background(), []string{"b-f1", "b-f2", "b-f3"}, 90, now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"b-f1": now.Add(-30 * m), "b-f2": now.Add(-20 * m), "b-f3": now.Add(-time.Hour)}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for d, w := range want {
		if !got[d].Equal(w) {
			t.Errorf("%s full since %v, want %v", d, got[d], w)
		}
	}
	// Over 3 days: the last day is asked first, the bins without a report
	// below in it (b-f2, b-f5) again over the whole lookback.
	got, err = storeFill{st}.FullSince(context.Background(), []string{"b-f1", "b-f2", "b-f3", "b-f5"}, 90, now, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]time.Time{"b-f1": now.Add(-30 * m), "b-f2": now.Add(-20 * m), "b-f3": now.Add(-time.Hour), "b-f5": now.Add(-47 * time.Hour)}
	if len(got) != len(want) {
		t.Errorf("3 days: got %v, want %v", got, want)
	}
	for d, w := range want {
		if !got[d].Equal(w) {
			t.Errorf("3 days: %s full since %v, want %v", d, got[d], w)
		}
	}
}
