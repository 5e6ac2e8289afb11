package metrics

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// coldDays counts the blocks of snap whose hours are in a cold file.
func coldDays(snap *snapshot) int {
	n := 0
	for _, h := range snap.outlets {
		for _, b := range h.days {
			if b != nil && b.cold != nil {
				n++
			}
		}
	}
	return n
}

// coldCity rolls 4 outlets' 5 days up with every complete day compact.
func coldCity(t *testing.T, coldDir string) (*index, rawSet, Options, int64) {
	t.Helper()
	start := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	end := start + 5*dayNS
	rng := rand.New(rand.NewPCG(11, 7))
	rs := rawSet{}
	for _, o := range []string{"a", "b", "c", "d"} {
		rs[o] = randomOutlet(rng, start, end)
	}
	rs.normalize()
	opts := Options{Staleness: 20 * time.Minute, FullPct: 90}
	ix := testIndex(t, -1, coldDir)
	var ups []hourUpdate
	for o, raw := range rs {
		for h := start; h < end; h += hourNS {
			if s := summarizeRaw(raw, h, h+hourNS, opts, nil); !s.empty() {
				ups = append(ups, hourUpdate{outlet: o, hour: h, data: appendSummary(nil, &s, h)})
			}
		}
	}
	if err := ix.apply(update{hours: ups, r0: start, r1: end, p: end, ready: true}); err != nil {
		t.Fatal(err)
	}
	return ix, rs, opts, start
}

// TestColdDaysHoldTheSameHours: a compact day in a cold file opens to the
// very hours the in-memory compact day holds, its file is gone from the
// directory as soon as it is made, and the store counts what it wrote.
func TestColdDaysHoldTheSameHours(t *testing.T) {
	dir := t.TempDir()
	warm, _, _, start := coldCity(t, "")
	cold, _, _, _ := coldCity(t, dir)
	ws, cs := warm.load(), cold.load()
	if n := coldDays(cs); n != 4*5 {
		t.Fatalf("%d days in cold files, want 20 (4 outlets × 5 complete days)", n)
	}
	if coldDays(ws) != 0 {
		t.Fatal("days in cold files without a cold store")
	}
	for o := range ws.outlets {
		for day := start; day < start+5*dayNS; day += dayNS {
			wb, cb := ws.block(o, day), cs.block(o, day)
			if wb.z == nil || cb.z != nil || cb.cold == nil {
				t.Fatalf("%s %d: warm z %v, cold z %v cold %v", o, day, wb.z != nil, cb.z != nil, cb.cold != nil)
			}
			if !bytes.Equal(wb.sum, cb.sum) {
				t.Fatalf("%s %d: day summaries differ", o, day)
			}
			wu, err := wb.unpack()
			if err != nil {
				t.Fatal(err)
			}
			cu, err := cb.unpack()
			if err != nil {
				t.Fatal(err)
			}
			for i := range 24 {
				if !bytes.Equal(wu.hour(i), cu.hour(i)) {
					t.Fatalf("%s %d hour %d differs", o, day, i)
				}
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("cold files left in the directory: %v", ents)
	}
	var z int64
	for _, h := range ws.outlets {
		for _, b := range h.days {
			z += int64(len(b.z))
		}
	}
	if c := cold.coldStats(); c.written != z || c.failed != 0 {
		t.Fatalf("cold store wrote %d bytes (%d failed), the compact days are %d", c.written, c.failed, z)
	}
	if cs.memoryBytes() >= ws.memoryBytes() {
		t.Fatalf("index estimate %d with cold files, %d without", cs.memoryBytes(), ws.memoryBytes())
	}
}

// TestColdDaysLateData: an hour re-rolled in a cold day (late data)
// replaces the day's block with one made from the cold hours and the new
// hour, in the file again; a day that leaves the horizon leaves the
// store's table.
func TestColdDaysLateData(t *testing.T) {
	ix, _, opts, start := coldCity(t, t.TempDir())
	before := ix.load()
	day := start + 2*dayNS
	h := day + 5*hourNS
	raw := &outletRaw{}
	raw.bin("late-bin").reps = []binReport{{t: h + 3*minuteNS, fill: 40, hasFill: true}}
	s := summarizeRaw(raw, h, h+hourNS, opts, nil)
	late := appendSummary(nil, &s, h)
	if err := ix.apply(update{hours: []hourUpdate{{outlet: "a", hour: h, data: late}}, r0: before.r0, r1: before.r1, p: before.p}); err != nil {
		t.Fatal(err)
	}
	after := ix.load()
	nb, ob := after.block("a", day), before.block("a", day)
	if nb == ob || nb.cold == nil {
		t.Fatalf("re-rolled day: new block %v, in a cold file %v", nb != ob, nb.cold != nil)
	}
	nu, err := nb.unpack()
	if err != nil {
		t.Fatal(err)
	}
	ou, err := ob.unpack()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 24 {
		want := ou.hour(i)
		if i == 5 {
			want = late
		}
		if !bytes.Equal(nu.hour(i), want) {
			t.Fatalf("hour %d of the re-rolled day: not what was written", i)
		}
	}
	if bytes.Equal(nb.sum, ob.sum) {
		t.Fatal("the re-rolled day kept its old summary")
	}
	// The day before is the same block, read from the same file as before.
	if after.block("a", day-dayNS) != before.block("a", day-dayNS) {
		t.Fatal("an unchanged cold day was replaced")
	}
	if err := ix.apply(update{r0: start + 2*dayNS, r1: before.r1, p: before.p}); err != nil {
		t.Fatal(err)
	}
	ix.cold.mu.Lock()
	defer ix.cold.mu.Unlock()
	for d := range ix.cold.files {
		if d < start+2*dayNS {
			t.Fatalf("the file of day %d is still in the table after the day left the horizon", d)
		}
	}
	if len(ix.cold.files) != 3 {
		t.Fatalf("%d day files in the table, want 3", len(ix.cold.files))
	}
}

// TestColdWriteFails: a block the cold store cannot write stays in memory
// and is counted; the roll-up goes on.
func TestColdWriteFails(t *testing.T) {
	dir := t.TempDir()
	c, err := newColdStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	warm, _, _, start := coldCity(t, "")
	b := warm.load().block("a", start)
	p := b
	c.spillAll([]blockAt{{&p, 0}})
	if p != b || p.z == nil {
		t.Fatal("a block that could not be written left memory")
	}
	if c.failed.Load() != 1 || c.written.Load() != 0 {
		t.Fatalf("failed %d written %d, want 1 and 0", c.failed.Load(), c.written.Load())
	}
	if _, err := newColdStore(dir); err == nil {
		t.Fatal("a cold store in a missing directory")
	}
}
