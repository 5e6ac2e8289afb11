package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("record %06d", i)) }

// drain reads every available record.
func drain(t *testing.T, r *Reader) []string {
	t.Helper()
	var out []string
	for {
		data, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, string(data))
	}
}

func TestAppendReadCommitReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 100}) // tiny segments: many rotations
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i += 3 {
		if err := s.Append([][]byte{rec(i), rec(i + 1), rec(i + 2)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Records != 30 || st.Segments < 5 {
		t.Fatalf("stats %+v", st)
	}
	r := s.NewReader()
	got := drain(t, r)
	if len(got) != 30 || got[0] != string(rec(0)) || got[29] != string(rec(29)) {
		t.Fatalf("read %d records: %v", len(got), got)
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
	s.Close()

	s, err = Open(dir, Options{SegmentBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got = drain(t, s.NewReader())
	if len(got) != 18 || got[0] != string(rec(12)) || got[17] != string(rec(29)) {
		t.Fatalf("after reopen read %d: %v", len(got), got)
	}
	if st := s.Stats(); st.Records != 18 {
		t.Fatalf("after reopen: %+v", st)
	}
}

// TestTornTailIsCut simulates a crash in the middle of a write: the partial
// record is cut, every whole record before it survives, and appending goes on.
func TestTornTailIsCut(t *testing.T) {
	for _, cut := range []int{1, 4, 8, 10} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			s, _ := Open(dir, Options{})
			s.Append([][]byte{rec(1), rec(2)})
			s.Close()
			seg := filepath.Join(dir, fmt.Sprintf("seg-%020d.log", 0))
			whole, _ := os.ReadFile(seg)
			torn := append(append([]byte{}, whole...), []byte{20, 0, 0, 0, 1, 2, 3, 4, 'x', 'y'}[:cut]...)
			os.WriteFile(seg, torn, 0o644)

			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if fi, _ := os.Stat(seg); fi.Size() != int64(len(whole)) {
				t.Fatalf("size after recovery %d, want %d", fi.Size(), len(whole))
			}
			s.Append([][]byte{rec(3)})
			got := drain(t, s.NewReader())
			if fmt.Sprint(got) != fmt.Sprint([]string{string(rec(1)), string(rec(2)), string(rec(3))}) {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestBitFlipIsCutAtOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	s.Append([][]byte{rec(1)})
	s.Append([][]byte{rec(2)})
	s.Close()
	seg := filepath.Join(dir, fmt.Sprintf("seg-%020d.log", 0))
	b, _ := os.ReadFile(seg)
	b[len(b)-1] ^= 0xff
	os.WriteFile(seg, b, 0o644)
	s, _ = Open(dir, Options{})
	defer s.Close()
	if got := drain(t, s.NewReader()); len(got) != 1 || got[0] != string(rec(1)) {
		t.Fatalf("got %v", got)
	}
}

func TestCorruptMiddleSegmentIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{SegmentBytes: 1})
	for i := range 3 {
		s.Append([][]byte{rec(i)})
	}
	seg := filepath.Join(dir, fmt.Sprintf("seg-%020d.log", 0))
	b, _ := os.ReadFile(seg)
	b[len(b)-1] ^= 0xff
	os.WriteFile(seg, b, 0o644)
	defer s.Close()
	r := s.NewReader()
	_, _, err := r.Next()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want CorruptError", err)
	}
	if got := drain(t, r); len(got) != 2 || got[0] != string(rec(1)) {
		t.Fatalf("after skip: %v", got)
	}
}

func TestCapRefusesAndCommitFrees(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{MaxBytes: 100})
	defer s.Close()
	big := make([]byte, 60)
	if err := s.Append([][]byte{big}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append([][]byte{big}); !errors.Is(err, ErrFull) {
		t.Fatalf("second append: %v, want ErrFull", err)
	}
	if st := s.Stats(); st.Records != 1 {
		t.Fatalf("a refused append wrote: %+v", st)
	}
	r := s.NewReader()
	if _, ok, _ := r.Next(); !ok {
		t.Fatal("nothing to read")
	}
	changed := s.Changed()
	s.Commit(r.Pos(), 1)
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
	s, _ := Open(t.TempDir(), Options{SegmentBytes: 4096})
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
			s.Commit(r.Pos(), 100)
		}
	}
	wg.Wait()
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Fatalf("after draining: %+v", st)
	}
}

func BenchmarkAppendGroup(b *testing.B) {
	s, _ := Open(b.TempDir(), Options{})
	defer s.Close()
	group := make([][]byte, 100)
	for i := range group {
		group[i] = make([]byte, 180) // a typical line-protocol point
	}
	b.ReportAllocs()
	b.SetBytes(100 * 188)
	for b.Loop() {
		if err := s.Append(group); err != nil {
			b.Fatal(err)
		}
		s.Commit(s.Stats().Bytes+s.Committed(), 100)
	}
}
