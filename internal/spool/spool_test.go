package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("record %06d", i)) }

func mustOpen(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAppend(t testing.TB, s *Spool, recs ...[]byte) {
	t.Helper()
	if err := s.Append(recs); err != nil {
		t.Fatal(err)
	}
}

func mustClose(t testing.TB, s *Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// read drains every available record, stepping over damage; it returns
// the records and the CorruptErrors met, and fails on any other error.
func read(t *testing.T, r *Reader) (recs []string, corrupt []*CorruptError) {
	t.Helper()
	for {
		data, ok, err := r.Next()
		var ce *CorruptError
		switch {
		case errors.As(err, &ce):
			corrupt = append(corrupt, ce)
		case err != nil:
			t.Fatal(err)
		case !ok:
			return recs, corrupt
		default:
			recs = append(recs, string(data))
		}
	}
}

// drain reads every available record and fails on damage.
func drain(t *testing.T, r *Reader) []string {
	t.Helper()
	recs, corrupt := read(t, r)
	if len(corrupt) > 0 {
		t.Fatalf("unexpected damage: %v", corrupt[0])
	}
	return recs
}

func recs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(rec(i)))
	}
	return out
}

// damages collects what OnDamage reports.
type damages struct {
	mu   sync.Mutex
	list []Damage
}

func (d *damages) add(x Damage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = append(d.list, x)
}

func (d *damages) get() []Damage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.list)
}

func TestAppendReadCommitReopen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{SegmentBytes: 100}) // tiny segments: many rotations
	for i := 0; i < 30; i += 3 {
		mustAppend(t, s, rec(i), rec(i+1), rec(i+2))
	}
	if st := s.Stats(); st.Records != 30 || st.Segments < 5 {
		t.Fatalf("stats %+v", st)
	}
	r := s.NewReader()
	if got := drain(t, r); !slices.Equal(got, recs(0, 30)) {
		t.Fatalf("read %v", got)
	}
	// Commit the first 12 (a position the reader reached).
	r2 := s.NewReader()
	for range 12 {
		if _, ok, err := r2.Next(); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if err := s.Commit(r2.Pos(), 12); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 18 {
		t.Fatalf("after commit: %+v", st)
	}
	r.Close()
	r2.Close()
	mustClose(t, s)

	s = mustOpen(t, dir, Options{SegmentBytes: 100})
	defer s.Close()
	if got := drain(t, s.NewReader()); !slices.Equal(got, recs(12, 30)) {
		t.Fatalf("after reopen read %v", got)
	}
	if st := s.Stats(); st.Records != 18 {
		t.Fatalf("after reopen: %+v", st)
	}
	if rc := s.Recovery(); rc != (Recovery{}) {
		t.Fatalf("a clean spool reported %+v", rc)
	}
}

// loc is where a record lies on disk.
type loc struct {
	file     string // segment file path
	off, len int64  // offset in the file, length with its header
}

// layout maps every record from the committed position on to its place
// on disk, using only the reader's positions and the segment file names.
func layout(t *testing.T, s *Spool) []loc {
	t.Helper()
	var out []loc
	r := s.NewReader()
	defer r.Close()
	for {
		pos := r.Pos()
		_, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		s.mu.Lock()
		var g segment
		for _, x := range s.segs {
			if x.base <= pos {
				g = x
			}
		}
		s.mu.Unlock()
		out = append(out, loc{file: s.segPath(g), off: pos - g.base, len: r.Pos() - pos})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flip inverts the bits of one byte of a file.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b := readFile(t, path)
	b[off] ^= 0xff
	writeFile(t, path, b)
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		writeFile(t, filepath.Join(to, e.Name()), readFile(t, filepath.Join(from, e.Name())))
	}
	return to
}

// quarantined lists the quarantine files of a spool directory.
func quarantined(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "quarantine-*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// segBytes makes segments of six test records (29 bytes each, appended three at a time).
const segBytes = 150

// pristine is a spool of 33 records in segments of six (the last holds
// 30–32), records 0–8 committed: 6–8 are committed but still on disk.
func pristine(t *testing.T) (dir string, where map[int]loc) {
	t.Helper()
	dir = t.TempDir()
	s := mustOpen(t, dir, Options{SegmentBytes: segBytes})
	defer mustClose(t, s)
	for i := 0; i < 33; i += 3 {
		mustAppend(t, s, rec(i), rec(i+1), rec(i+2))
	}
	all := layout(t, s)
	if len(all) != 33 {
		t.Fatalf("layout of %d records", len(all))
	}
	where = map[int]loc{}
	for i, l := range all {
		where[i] = l
	}
	for i := 0; i < 33; i++ {
		if first := i%6 == 0; (all[i].off == 0) != first || (i > 0 && (all[i].file != all[i-1].file) != first) {
			t.Fatalf("segments are not of six records: %+v", all)
		}
	}
	r := s.NewReader()
	defer r.Close()
	for range 9 {
		if _, ok, err := r.Next(); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if err := s.Commit(r.Pos(), 9); err != nil {
		t.Fatal(err)
	}
	return dir, where
}

// TestDamageCostsThatRecordAlone flips one byte of one record — in each
// field of its header and in its data; the first, a middle and the last
// record of segments that are not the last and of the last one; committed
// and pending — and checks that exactly that record is missing, counted
// and quarantined, and nothing else.
func TestDamageCostsThatRecordAlone(t *testing.T) {
	base, where := pristine(t)
	fields := []struct {
		name string
		at   func(n int64) int64 // byte offset in a record of n bytes
	}{
		{"magic0", func(int64) int64 { return 0 }}, {"magic1", func(int64) int64 { return 1 }},
		{"magic2", func(int64) int64 { return 2 }}, {"magic3", func(int64) int64 { return 3 }},
		{"length0", func(int64) int64 { return 4 }}, {"length1", func(int64) int64 { return 5 }},
		{"length3", func(int64) int64 { return 7 }},
		{"datacrc0", func(int64) int64 { return 8 }}, {"datacrc3", func(int64) int64 { return 11 }},
		{"hdrcrc0", func(int64) int64 { return 12 }}, {"hdrcrc3", func(int64) int64 { return 15 }},
		{"data-first", func(int64) int64 { return headerLen }},
		{"data-middle", func(n int64) int64 { return (headerLen + n) / 2 }},
		{"data-last", func(n int64) int64 { return n - 1 }},
	}
	targets := []struct {
		name      string
		i         int
		committed bool
	}{
		{"committed-first-of-segment", 6, true},
		{"committed-last", 8, true},
		{"first-pending", 9, false},
		{"last-of-a-middle-segment", 11, false},
		{"middle-of-a-segment", 14, false},
		{"first-of-a-segment", 18, false},
		{"last-before-the-last-segment", 29, false},
		{"first-of-the-last-segment", 30, false},
		{"middle-of-the-last-segment", 31, false},
		{"last-record-of-all", 32, false},
	}
	for _, tg := range targets {
		for _, fl := range fields {
			t.Run(tg.name+"/"+fl.name, func(t *testing.T) {
				dir := copyDir(t, base)
				l := where[tg.i]
				file := filepath.Join(dir, filepath.Base(l.file))
				flip(t, file, l.off+fl.at(l.len))
				damaged := readFile(t, file)[l.off : l.off+l.len]

				var dm damages
				s := mustOpen(t, dir, Options{SegmentBytes: segBytes, OnDamage: dm.add})
				want := recs(9, 33)
				if !tg.committed {
					want = slices.DeleteFunc(want, func(r string) bool { return r == string(rec(tg.i)) })
				}
				if st := s.Stats(); st.Records != int64(len(want)) {
					t.Errorf("stats count %d intact records, want %d", st.Records, len(want))
				}
				if rc := s.Recovery(); rc.TornBytes != 0 || rc.CommittedUnreadable {
					t.Errorf("recovery %+v: damage taken for a torn tail or a bad commit", rc)
				}
				r := s.NewReader()
				got, corrupt := read(t, r)
				if !slices.Equal(got, want) {
					t.Fatalf("read %v\nwant %v", got, want)
				}
				ds := dm.get()
				if tg.committed {
					if len(ds) != 0 || len(corrupt) != 0 || len(quarantined(t, dir)) != 0 {
						t.Fatalf("damage in a committed record was reported: %+v %v", ds, corrupt)
					}
				} else {
					if len(ds) != 1 || len(corrupt) != 1 {
						t.Fatalf("reports %+v, errors %v; want one", ds, corrupt)
					}
					d := ds[0]
					if d.Segment != filepath.Base(l.file) || d.Offset != l.off || d.Bytes != l.len || d.Records != 1 || d.Err != nil {
						t.Errorf("reported %+v, want %s at %d, %d bytes, 1 record", d, filepath.Base(l.file), l.off, l.len)
					}
					if q := quarantined(t, dir); len(q) != 1 || q[0] != d.Quarantine || !bytes.Equal(readFile(t, q[0]), damaged) {
						t.Errorf("quarantine %v (reported %q) does not hold the damaged record", q, d.Quarantine)
					}
					if corrupt[0].Records != 1 || corrupt[0].To-corrupt[0].From != l.len || corrupt[0].Appended {
						t.Errorf("corrupt error %+v", corrupt[0])
					}
				}
				// Commit everything: the damage is gone for good, appending goes on.
				if err := s.Commit(r.Pos(), int64(len(got))); err != nil {
					t.Fatal(err)
				}
				if st := s.Stats(); st.Records != 0 || st.Bytes != 0 {
					t.Errorf("after committing all: %+v", st)
				}
				r.Close()
				mustClose(t, s)
				s = mustOpen(t, dir, Options{SegmentBytes: segBytes, OnDamage: dm.add})
				defer s.Close()
				mustAppend(t, s, rec(33))
				if got := drain(t, s.NewReader()); !slices.Equal(got, recs(33, 34)) {
					t.Fatalf("after committing: %v", got)
				}
				if n := len(dm.get()); n != len(ds) {
					t.Errorf("damage reported again after it was committed")
				}
			})
		}
	}
}

// TestDamageAcrossSegments damages several records at once: two in
// different segments, two neighbours in one, and a run of zeros over three.
func TestDamageAcrossSegments(t *testing.T) {
	base, where := pristine(t)
	data := func(i int) int64 { return where[i].off + headerLen + 3 }
	tests := []struct {
		name    string
		damage  func(dir string)
		lost    []int
		reports []int // records per report
	}{
		{"two segments", func(dir string) {
			flip(t, filepath.Join(dir, filepath.Base(where[10].file)), data(10))
			flip(t, filepath.Join(dir, filepath.Base(where[20].file)), data(20))
		}, []int{10, 20}, []int{1, 1}},
		{"neighbours", func(dir string) {
			flip(t, filepath.Join(dir, filepath.Base(where[14].file)), data(14))
			flip(t, filepath.Join(dir, filepath.Base(where[15].file)), data(15))
		}, []int{14, 15}, []int{2}},
		{"a run of zeros from record 13's data into record 15's", func(dir string) {
			f := filepath.Join(dir, filepath.Base(where[13].file))
			b := readFile(t, f)
			clear(b[data(13) : where[15].off+headerLen+2])
			writeFile(t, f, b)
		}, []int{13, 14, 15}, []int{1}}, // 14's and 15's headers are gone: one stretch, counted once
		{"first and last record of the last segment", func(dir string) {
			flip(t, filepath.Join(dir, filepath.Base(where[30].file)), where[30].off+5)
			flip(t, filepath.Join(dir, filepath.Base(where[32].file)), data(32))
		}, []int{30, 32}, []int{1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			tc.damage(dir)
			var dm damages
			s := mustOpen(t, dir, Options{SegmentBytes: segBytes, OnDamage: dm.add})
			defer s.Close()
			want := slices.DeleteFunc(recs(9, 33), func(r string) bool {
				return slices.ContainsFunc(tc.lost, func(i int) bool { return r == string(rec(i)) })
			})
			got, _ := read(t, s.NewReader())
			if !slices.Equal(got, want) {
				t.Fatalf("read %v\nwant %v", got, want)
			}
			var per []int
			var bytesLost int64
			for _, d := range dm.get() {
				per = append(per, d.Records)
				bytesLost += d.Bytes
				if q := readFile(t, d.Quarantine); int64(len(q)) != d.Bytes {
					t.Errorf("%s holds %d bytes, reported %d", d.Quarantine, len(q), d.Bytes)
				}
			}
			if !slices.Equal(per, tc.reports) {
				t.Errorf("records per report %v, want %v", per, tc.reports)
			}
			var want64 int64
			for _, i := range tc.lost {
				want64 += where[i].len
			}
			if bytesLost != want64 {
				t.Errorf("%d bytes quarantined, the lost records had %d", bytesLost, want64)
			}
			if len(quarantined(t, dir)) != len(tc.reports) {
				t.Errorf("quarantine files %v", quarantined(t, dir))
			}
		})
	}
}

// TestTornTailIsCut cuts the last record at every byte, as a crash in the
// middle of its write would: the partial record is cut, nothing is
// reported, every whole record before it survives and appending goes on.
func TestTornTailIsCut(t *testing.T) {
	base, where := pristine(t)
	last := where[32]
	for k := int64(1); k < last.len; k++ {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			dir := copyDir(t, base)
			file := filepath.Join(dir, filepath.Base(last.file))
			writeFile(t, file, readFile(t, file)[:last.off+k])
			var dm damages
			s := mustOpen(t, dir, Options{SegmentBytes: segBytes, OnDamage: dm.add})
			defer s.Close()
			if rc := s.Recovery(); rc.TornBytes != k || rc.TornOffset != last.off || rc.TornSegment != filepath.Base(file) {
				t.Errorf("recovery %+v, want %d bytes cut at %d", rc, k, last.off)
			}
			if fi, err := os.Stat(file); err != nil || fi.Size() != last.off {
				t.Fatalf("segment after recovery: %v %v, want %d bytes", fi.Size(), err, last.off)
			}
			mustAppend(t, s, rec(33))
			if got := drain(t, s.NewReader()); !slices.Equal(got, append(recs(9, 32), string(rec(33)))) {
				t.Fatalf("read %v", got)
			}
			if len(dm.get()) != 0 || len(quarantined(t, dir)) != 0 {
				t.Errorf("a torn tail was reported as damage: %+v", dm.get())
			}
		})
	}
}

// TestTornTailAfterDamage: damage in the last segment and a torn write at
// its end. The damage is reported, the torn write cut, the rest kept.
func TestTornTailAfterDamage(t *testing.T) {
	base, where := pristine(t)
	dir := copyDir(t, base)
	file := filepath.Join(dir, filepath.Base(where[31].file))
	flip(t, file, where[31].off+headerLen)
	b := readFile(t, file)
	torn := appendRecord(nil, []byte("a record that never finished"))
	writeFile(t, file, append(b, torn[:20]...))
	var dm damages
	s := mustOpen(t, dir, Options{SegmentBytes: segBytes, OnDamage: dm.add})
	defer s.Close()
	if rc := s.Recovery(); rc.TornBytes != 20 {
		t.Errorf("recovery %+v, want 20 bytes cut", rc)
	}
	want := append(recs(9, 31), string(rec(32)))
	if got, _ := read(t, s.NewReader()); !slices.Equal(got, want) {
		t.Fatalf("read %v", got)
	}
	if ds := dm.get(); len(ds) != 1 || ds[0].Offset != where[31].off || ds[0].Bytes != where[31].len {
		t.Fatalf("reported %+v", ds)
	}
}

// TestDamageFoundWhileRunning: damage to a record after it was written,
// read by a reader of the running spool, then found again by the next
// process (reported again there, to the same quarantine file).
func TestDamageFoundWhileRunning(t *testing.T) {
	dir := t.TempDir()
	var dm damages
	s := mustOpen(t, dir, Options{OnDamage: dm.add})
	mustAppend(t, s, rec(0), rec(1), rec(2))
	l := layout(t, s)
	flip(t, l[1].file, l[1].off+headerLen+1)
	pending := s.NewReader()
	got, corrupt := read(t, pending)
	if !slices.Equal(got, []string{string(rec(0)), string(rec(2))}) || len(corrupt) != 1 || !corrupt[0].Appended {
		t.Fatalf("read %v, %+v", got, corrupt)
	}
	if st := s.Stats(); st.Records != 2 {
		t.Errorf("stats count %d records, want the 2 intact ones", st.Records)
	}
	// A second reader of the same spool (the collector counts the points at
	// start, then the writer reads): the damage is reported once.
	if got, _ := read(t, s.NewReader()); len(got) != 2 || len(dm.get()) != 1 {
		t.Fatalf("second reader: %v, %d reports", got, len(dm.get()))
	}
	mustAppend(t, s, rec(3))
	if got := drain(t, pending); !slices.Equal(got, []string{string(rec(3))}) {
		t.Fatalf("after more appends: %v", got)
	}
	mustClose(t, s)
	s = mustOpen(t, dir, Options{OnDamage: dm.add})
	defer s.Close()
	if got, _ := read(t, s.NewReader()); len(got) != 3 || len(dm.get()) != 2 || dm.get()[1].Quarantine != dm.get()[0].Quarantine {
		t.Fatalf("next process: %v, %+v", got, dm.get())
	}
	if q := quarantined(t, dir); len(q) != 1 {
		t.Fatalf("quarantine files %v", q)
	}
}

// TestCommittedFile: a damaged committed file, or one pointing past the
// end, makes the spool read everything it holds again (replays are
// harmless) instead of skipping pending records; the previous release's
// bare number is read as it is.
func TestCommittedFile(t *testing.T) {
	base, _ := pristine(t)
	tests := []struct {
		name       string
		content    func(old string) string
		want       []string
		unreadable bool
	}{
		{"intact", func(old string) string { return old }, recs(9, 33), false},
		{"a digit changed", func(old string) string { return string(old[0]^1) + old[1:] }, recs(6, 33), true},
		{"the crc changed", func(old string) string { f := strings.Fields(old); return f[0] + " 00000000\n" }, recs(6, 33), true},
		{"garbage", func(string) string { return "\x00\x17" }, recs(6, 33), true},
		{"past the end", func(string) string { return "99999999" }, recs(6, 33), true},
		{"previous release's bare number", func(old string) string { return strings.Fields(old)[0] }, recs(9, 33), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			path := filepath.Join(dir, "committed")
			old := string(readFile(t, path))
			writeFile(t, path, []byte(tc.content(old)))
			s := mustOpen(t, dir, Options{SegmentBytes: segBytes})
			defer s.Close()
			if got := drain(t, s.NewReader()); !slices.Equal(got, tc.want) {
				t.Fatalf("read %v", got)
			}
			if s.Recovery().CommittedUnreadable != tc.unreadable {
				t.Errorf("recovery %+v", s.Recovery())
			}
		})
	}
}

// TestPreviousFormat opens a spool the previous release left on disk
// (testdata/v1: written by that release's spool, 30 records in segments
// of six, 12 committed, an empty last segment): its pending records are
// read in order, new records go to a segment of the current format, and
// once everything is committed the old segments are gone.
func TestPreviousFormat(t *testing.T) {
	dir := copyDir(t, "testdata/v1")
	var dm damages
	s := mustOpen(t, dir, Options{SegmentBytes: 100, OnDamage: dm.add})
	if rc := s.Recovery(); rc.LegacySegments != 3 || rc.TornBytes != 0 || rc.CommittedUnreadable {
		t.Errorf("recovery %+v, want 3 legacy segments", rc)
	}
	if st := s.Stats(); st.Records != 18 {
		t.Errorf("stats %+v, want 18 records", st)
	}
	mustAppend(t, s, rec(30), rec(31))
	r := s.NewReader()
	got := drain(t, r)
	if !slices.Equal(got, recs(12, 32)) {
		t.Fatalf("read %v", got)
	}
	if err := s.Commit(r.Pos(), int64(len(got))); err != nil {
		t.Fatal(err)
	}
	r.Close()
	mustClose(t, s)
	segs, err := listSegments(dir)
	if err != nil || len(segs) != 1 || segs[0].legacy {
		t.Errorf("segments after committing everything: %+v %v", segs, err)
	}
	s = mustOpen(t, dir, Options{SegmentBytes: 100, OnDamage: dm.add})
	defer s.Close()
	mustAppend(t, s, rec(32))
	if got := drain(t, s.NewReader()); !slices.Equal(got, recs(32, 33)) {
		t.Fatalf("after reopen: %v", got)
	}
	if len(dm.get()) != 0 {
		t.Errorf("damage reported: %+v", dm.get())
	}
}

// TestPreviousFormatDamage: in the previous format a damaged record is
// stepped over by its own length when that leads to an intact record;
// when its length is what was damaged, the rest of its segment is lost —
// counted and quarantined, never silently — and later segments are read.
func TestPreviousFormatDamage(t *testing.T) {
	const seg = "seg-00000000000000000252.log" // records 12–17, 21 bytes each
	tests := []struct {
		name  string
		off   int64
		lost  []int
		bytes int64
	}{
		{"data of record 14", 2*21 + 8 + 3, []int{14}, 21},
		{"crc of record 14", 2*21 + 5, []int{14}, 21},
		{"data of the segment's last record", 5*21 + 10, []int{17}, 21},
		{"length of record 14", 2*21 + 1, []int{14, 15, 16, 17}, 4 * 21},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, "testdata/v1")
			if fi, err := os.Stat(filepath.Join(dir, seg)); err != nil || fi.Size() != 6*21 {
				t.Fatalf("testdata: %v", err)
			}
			flip(t, filepath.Join(dir, seg), tc.off)
			var dm damages
			s := mustOpen(t, dir, Options{OnDamage: dm.add})
			defer s.Close()
			want := slices.DeleteFunc(recs(12, 30), func(r string) bool {
				return slices.ContainsFunc(tc.lost, func(i int) bool { return r == string(rec(i)) })
			})
			if got, _ := read(t, s.NewReader()); !slices.Equal(got, want) {
				t.Fatalf("read %v\nwant %v", got, want)
			}
			ds := dm.get()
			if len(ds) != 1 || ds[0].Segment != seg || ds[0].Bytes != tc.bytes || ds[0].Records != 1 {
				t.Fatalf("reported %+v", ds)
			}
			if q := readFile(t, ds[0].Quarantine); int64(len(q)) != tc.bytes {
				t.Errorf("quarantined %d bytes", len(q))
			}
		})
	}
}

// TestPreviousFormatTornTail: the previous format's torn tail is cut as
// that release cut it, and appending goes on in the current format.
func TestPreviousFormatTornTail(t *testing.T) {
	dir := copyDir(t, "testdata/v1")
	if err := os.Remove(filepath.Join(dir, "seg-00000000000000000630.log")); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(dir, "seg-00000000000000000504.log")
	writeFile(t, last, readFile(t, last)[:5*21+12]) // record 29 cut in its data
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	if rc := s.Recovery(); rc.TornBytes != 12 || rc.TornOffset != 5*21 {
		t.Errorf("recovery %+v", rc)
	}
	mustAppend(t, s, rec(30))
	if got := drain(t, s.NewReader()); !slices.Equal(got, append(recs(12, 29), string(rec(30)))) {
		t.Fatalf("read %v", got)
	}
}

func TestCapRefusesAndCommitFrees(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{MaxBytes: 100})
	defer s.Close()
	big := make([]byte, 60)
	mustAppend(t, s, big)
	if err := s.Append([][]byte{big}); !errors.Is(err, ErrFull) {
		t.Fatalf("second append: %v, want ErrFull", err)
	}
	if st := s.Stats(); st.Records != 1 {
		t.Fatalf("a refused append wrote: %+v", st)
	}
	r := s.NewReader()
	if _, ok, err := r.Next(); !ok || err != nil {
		t.Fatal("nothing to read", err)
	}
	changed := s.Changed()
	if err := s.Commit(r.Pos(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Commit did not signal Changed")
	}
	if err := s.Append([][]byte{big}); err != nil {
		t.Fatalf("after commit: %v", err)
	}
}

// TestConcurrentAppendAndRead runs the appender and the reader at once, as
// the collector does, and checks order and completeness.
func TestConcurrentAppendAndRead(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SegmentBytes: 4096})
	defer s.Close()
	const n = 5000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i += 10 {
			var group [][]byte
			for j := i; j < i+10; j++ {
				group = append(group, rec(j))
			}
			if err := s.Append(group); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	r := s.NewReader()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		changed := s.Changed()
		data, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if time.Now().After(deadline) {
				t.Fatalf("read %d of %d", i, n)
			}
			select {
			case <-changed:
			case <-time.After(time.Second):
			}
			continue
		}
		if string(data) != string(rec(i)) {
			t.Fatalf("record %d = %q", i, data)
		}
		i++
		if i%100 == 0 {
			if err := s.Commit(r.Pos(), 100); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Fatalf("after draining: %+v", st)
	}
}

func BenchmarkAppendGroup(b *testing.B) {
	s := mustOpen(b, b.TempDir(), Options{})
	defer s.Close()
	group := make([][]byte, 100)
	for i := range group {
		group[i] = make([]byte, 180) // a typical line-protocol point
	}
	b.ReportAllocs()
	b.SetBytes(100 * (headerLen + 180))
	for b.Loop() {
		mustAppend(b, s, group...)
		if err := s.Commit(s.Stats().Bytes+s.Committed(), 100); err != nil {
			b.Fatal(err)
		}
	}
}
