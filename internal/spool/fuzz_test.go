package spool

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzDamagedSegment writes a segment of records, overwrites some of its
// bytes and may cut it short, then opens and reads it. Whatever the damage:
// no panic; exactly the records whose bytes are untouched are read, in
// order; and every byte is accounted for — in an intact record, in a
// quarantine file, or in the torn tail cut at Open. (Damage that forges a
// magic is left out: a forged record whose checks all pass is a record.)
func FuzzDamagedSegment(f *testing.F) {
	f.Add(uint8(5), uint16(40), []byte{0}, uint16(0xffff))
	f.Add(uint8(5), uint16(0), []byte{0, 0, 0, 0, 0, 0, 0, 0}, uint16(0xffff))
	f.Add(uint8(3), uint16(31), []byte{0x7f}, uint16(80))
	f.Add(uint8(8), uint16(60), bytes.Repeat([]byte{0}, 70), uint16(0xffff))
	f.Add(uint8(4), uint16(100), []byte{1, 2, 3}, uint16(100))
	f.Add(uint8(1), uint16(5), []byte{0xff}, uint16(20))
	f.Fuzz(func(t *testing.T, nrec uint8, at uint16, damage []byte, cut uint16) {
		n := int(nrec%16) + 1
		var orig []byte
		var starts []int
		for i := range n {
			starts = append(starts, len(orig))
			orig = appendRecord(orig, rec(i)[:7+i%6]) // lengths vary
		}
		starts = append(starts, len(orig))
		file := slices.Clone(orig)
		for i, b := range damage {
			if int(at)+i < len(file) {
				file[int(at)+i] = b
			}
		}
		if int(cut) < len(file) {
			file = file[:cut]
		}
		for i := 0; ; i++ {
			j := bytes.Index(file[i:], magic[:])
			if j < 0 {
				break
			}
			if i += j; !slices.Contains(starts, i) {
				return // a forged magic: out of this test's domain
			}
		}
		var want []string
		intactBytes := 0
		for i := range n {
			if starts[i+1] <= len(file) && bytes.Equal(file[starts[i]:starts[i+1]], orig[starts[i]:starts[i+1]]) {
				want = append(want, string(rec(i)[:7+i%6]))
				intactBytes += starts[i+1] - starts[i]
			}
		}

		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "seg-00000000000000000000.v2.log"), file, 0o644); err != nil {
			t.Fatal(err)
		}
		var dm damages
		s, err := Open(dir, Options{OnDamage: dm.add})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, _ := read(t, s.NewReader())
		if !slices.Equal(got, want) {
			t.Fatalf("read %q\nwant %q", got, want)
		}
		quarantined, records := int64(0), 0
		for _, d := range dm.get() {
			q, err := os.ReadFile(d.Quarantine)
			if err != nil || int64(len(q)) != d.Bytes || d.Records < 1 {
				t.Fatalf("report %+v: %d bytes kept, %v", d, len(q), err)
			}
			if !bytes.Equal(q, file[d.Offset:d.Offset+d.Bytes]) {
				t.Fatalf("quarantine of %+v holds other bytes", d)
			}
			quarantined += d.Bytes
			records += d.Records
		}
		torn := s.Recovery().TornBytes
		if int64(intactBytes)+quarantined+torn != int64(len(file)) {
			t.Fatalf("%d bytes: %d in intact records, %d quarantined, %d torn", len(file), intactBytes, quarantined, torn)
		}
		if lost := n - len(want); records > lost {
			t.Fatalf("%d damaged records reported, %d records lost", records, lost)
		}
	})
}
