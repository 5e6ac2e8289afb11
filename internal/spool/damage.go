package spool

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Damage is a stretch of a segment that held no intact record (disk
// damage), reported once per Spool when a reader first steps over it.
type Damage struct {
	Segment string // the segment file's name
	Offset  int64  // where the stretch starts in that file
	Bytes   int64
	// Records is how many records were lost: the first plus every record
	// header in the stretch that survived. Two neighbours whose headers
	// were both destroyed count as one; in the previous format the rest of
	// a segment given up counts as one.
	Records int
	// Quarantine is the file holding a copy of the bytes; empty when the
	// copy failed, with Err saying why.
	Quarantine string
	Err        error
}

// quarantineName is the name of the file that keeps the damaged bytes found
// at offset in the segment whose first byte is at position base.
func quarantineName(base, offset int64) string {
	return fmt.Sprintf("quarantine-%020d-%020d.bin", base, offset)
}

// report copies a damaged stretch aside and tells OnDamage, once per
// stretch. Records appended since Open were counted by Append, and are
// taken off the count (those before were never counted).
func (s *Spool) report(g segment, f *os.File, sp span) {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	if s.reported[g.base+sp.from] {
		return
	}
	s.reported[g.base+sp.from] = true
	s.mu.Lock()
	if g.base+sp.from >= s.openEnd {
		s.records -= int64(sp.records)
	}
	s.mu.Unlock()
	d := Damage{Segment: filepath.Base(s.segPath(g)), Offset: sp.from, Bytes: sp.to - sp.from, Records: sp.records}
	path := filepath.Join(s.dir, quarantineName(g.base, sp.from))
	if err := copyAside(path, io.NewSectionReader(f, sp.from, sp.to-sp.from)); err != nil {
		d.Err = err
	} else {
		d.Quarantine = path
	}
	s.opts.OnDamage(d)
}

// copyAside writes src to path durably (the bytes go when their segment is
// committed and removed). A second report of the same stretch, by the next
// process, writes the same bytes again.
func copyAside(path string, src io.Reader) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}
