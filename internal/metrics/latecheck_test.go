package metrics

import (
	"testing"
	"time"
)

// TestCheckRangesRotate: every cycle checks the last Recheck; every
// CheckEvery-th cycle also one older day, and a rotation of those days
// covers every hour back to CheckHorizon, while the clock moves on.
func TestCheckRangesRotate(t *testing.T) {
	for _, every := range []int{1, 4} {
		cfg := RollupConfig{CheckEvery: every}
		cfg.ensureDefaults()
		r := &Rollup{cfg: cfg}
		now := time.Date(2026, 12, 7, 10, 20, 0, 0, time.UTC)
		snap := &snapshot{r0: now.Add(-35 * 24 * time.Hour).Truncate(time.Hour).UnixNano(), r1: now.Truncate(time.Hour).UnixNano()}
		start := now
		checked := map[int64]bool{} // older hours checked, by hour
		days := 0
		cycles := 31 * every
		for c := range cycles {
			rs := r.checkRanges(snap, now, false)
			recent := now.Add(-cfg.Recheck).Truncate(time.Hour).UnixNano()
			if len(rs) == 0 || rs[0] != [2]int64{recent, snap.r1} {
				t.Fatalf("every=%d cycle %d: %v, first should be the last Recheck [%d, %d)", every, c, rs, recent, snap.r1)
			}
			older := len(rs) == 2
			if want := c%every == 0; older != want {
				t.Fatalf("every=%d cycle %d: older day checked %v, want %v", every, c, older, want)
			}
			if older {
				days++
				if rs[1][1]-rs[1][0] > dayNS || rs[1][1] > recent {
					t.Fatalf("every=%d cycle %d: older range %v", every, c, rs[1])
				}
				for h := rs[1][0]; h < rs[1][1]; h += hourNS {
					checked[h] = true
				}
			}
			now = now.Add(30 * time.Second)
			snap.r1 = now.Truncate(time.Hour).UnixNano()
		}
		if days != 31 {
			t.Fatalf("every=%d: %d older days in %d cycles, want 31", every, days, cycles)
		}
		// Every hour between the horizon and Recheck at the start is checked
		// within the rotation.
		for h := start.Add(-cfg.CheckHorizon).Truncate(time.Hour).Add(time.Hour).UnixNano(); h < start.Add(-cfg.Recheck).Truncate(time.Hour).UnixNano(); h += hourNS {
			if !checked[h] {
				t.Fatalf("every=%d: hour %s never checked in one rotation", every, time.Unix(0, h).UTC())
			}
		}
		if rs := r.checkRanges(snap, now, true); len(rs) != 1 || rs[0] != [2]int64{snap.r0, snap.r1} {
			t.Fatalf("full: %v", rs)
		}
	}
}
