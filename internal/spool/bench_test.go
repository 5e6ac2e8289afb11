package spool

import (
	"bytes"
	"os"
	"testing"

	"github.com/greenpost/greenpost/internal/testenv"
)

// BenchmarkGroup is the spool's share of the collector's work for one
// group commit of 4096 points of 180 bytes: append with one fsync, read
// back, commit. The group is framed as one record (the previous collector)
// or as one record per point (this one, so that damage costs one point).
// It uses only the API both formats share, to run on either release.
func BenchmarkGroup(b *testing.B) {
	const points, size = 4096, 180
	for _, perPoint := range []bool{false, true} {
		name := "record-per-group"
		if perPoint {
			name = "record-per-point"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			group := make([][]byte, points)
			for i := range group {
				group[i] = bytes.Repeat([]byte{'x'}, size)
			}
			if !perPoint {
				group = [][]byte{bytes.Join(group, nil)}
			}
			r := s.NewReader()
			defer r.Close()
			b.SetBytes(points * size)
			b.ReportAllocs()
			before, err := testenv.ReadProcStats(os.Getpid())
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				if err := s.Append(group); err != nil {
					b.Fatal(err)
				}
				read := 0
				for {
					_, ok, err := r.Next()
					if err != nil {
						b.Fatal(err)
					}
					if !ok {
						break
					}
					read++
				}
				if read != len(group) {
					b.Fatalf("read %d records of %d", read, len(group))
				}
				if err := s.Commit(r.Pos(), int64(read)); err != nil {
					b.Fatal(err)
				}
				n++
			}
			after, err := testenv.ReadProcStats(os.Getpid())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric((after.CPUSeconds-before.CPUSeconds)*1e9/float64(n*points), "cpu-ns/point")
		})
	}
}
