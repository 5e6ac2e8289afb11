package metrics

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Cold days. A compact day (compact.go) is ~1 KB per outlet-day, and at
// 10,000 outlets a 94-day horizon holds ~920 MB of them, which a request
// reads only where a window starts inside an old day: about once an hour
// per outlet and window length (runs.go keeps what was combined). So when
// the roll-up is given a directory, a compact day's deflated hours go to a
// file there and the block keeps where they are; its day summary stays in
// memory, as every whole day is answered from it.
//
// One file per day, opened and at once removed from the directory: it
// lives as long as its descriptor, which is closed when the last block
// that points into it is collected (an os.File closes itself when
// unreachable), so a day that leaves the horizon gives its disk back
// after the last snapshot that read it, and a crash leaves nothing behind.
// Blocks of a day re-rolled by late data are appended anew; the old bytes
// stay until the day leaves the horizon (late data for old days is rare;
// coldStore counts what it wrote).
//
// Reads are pread(2) of about a kilobyte, from the page cache while the
// machine has room for it (the kernel's to give back, not the Go heap's).
// The bytes are those the block held in memory, so every answer is too.

// coldStore places the compact hours of the roll-up's old days in files.
type coldStore struct {
	dir string

	mu    sync.Mutex
	files map[int64]*coldFile // by day (UTC midnight, ns)

	written atomic.Int64 // bytes written (live and replaced)
	failed  atomic.Int64 // blocks kept in memory because a write failed
}

// coldFile is one day's file.
type coldFile struct {
	f    *os.File
	mu   sync.Mutex // serializes appends
	size int64
}

// coldRef is where a compact block's hours are.
type coldRef struct {
	file *coldFile
	off  int64
	n    int
}

// newColdStore checks that dir takes files (it must exist).
func newColdStore(dir string) (*coldStore, error) {
	c := &coldStore{dir: dir, files: map[int64]*coldFile{}}
	f, err := c.open()
	if err != nil {
		return nil, err
	}
	_ = f.Close()
	return c, nil
}

// open makes a file that is already removed from the directory.
func (c *coldStore) open() (*os.File, error) {
	f, err := os.CreateTemp(c.dir, "greenpost-rollup-cold-*")
	if err != nil {
		return nil, fmt.Errorf("roll-up cold days: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("roll-up cold days: %w", err)
	}
	return f, nil
}

// blockAt is a block's place in a snapshot being built, and its day.
type blockAt struct {
	p   **dayBlock
	day int64
}

// spillAll moves the compact hours of the given blocks to their days'
// files, one write per day, replacing each block in place. A day c cannot
// take stays in memory and is counted: the roll-up goes on with more
// memory, not less data. A nil store keeps everything in memory.
func (c *coldStore) spillAll(blocks []blockAt) {
	if c == nil {
		return
	}
	byDay := map[int64][]blockAt{}
	for _, b := range blocks {
		if (*b.p).z != nil {
			byDay[b.day] = append(byDay[b.day], b)
		}
	}
	var buf []byte
	for day, bs := range byDay {
		buf = buf[:0]
		for _, b := range bs {
			buf = append(buf, (*b.p).z...)
		}
		cf, off, err := c.put(day, buf)
		if err != nil {
			c.failed.Add(int64(len(bs)))
			continue
		}
		for _, b := range bs {
			old := *b.p
			// The summary may share an array with z (a day row as read):
			// a copy of its own lets that array go.
			*b.p = &dayBlock{sum: append([]byte(nil), old.sum...), cold: &coldRef{file: cf, off: off, n: len(old.z)}}
			off += int64(len(old.z))
		}
	}
}

// put appends data to its day's file and returns the file and where the
// data starts.
func (c *coldStore) put(day int64, data []byte) (*coldFile, int64, error) {
	c.mu.Lock()
	cf := c.files[day]
	if cf == nil {
		f, err := c.open()
		if err != nil {
			c.mu.Unlock()
			return nil, 0, err
		}
		cf = &coldFile{f: f}
		c.files[day] = cf
	}
	c.mu.Unlock()
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if _, err := cf.f.WriteAt(data, cf.size); err != nil {
		return nil, 0, fmt.Errorf("roll-up cold days: %w", err)
	}
	off := cf.size
	cf.size += int64(len(data))
	c.written.Add(int64(len(data)))
	return cf, off, nil
}

// forget drops the files of days before `before` from the store's table:
// no new block goes there, and each closes once no block points into it.
func (c *coldStore) forget(before int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range c.files {
		if d < before {
			delete(c.files, d)
		}
	}
}

// read returns the bytes ref names.
func (ref *coldRef) read() ([]byte, error) {
	b := make([]byte, ref.n)
	if _, err := ref.file.f.ReadAt(b, ref.off); err != nil {
		return nil, fmt.Errorf("roll-up cold days: %w", err)
	}
	return b, nil
}

// coldCounts are a cold store's counters.
type coldCounts struct{ written, failed int64 }

func (ix *index) coldStats() coldCounts {
	if ix.cold == nil {
		return coldCounts{}
	}
	return coldCounts{ix.cold.written.Load(), ix.cold.failed.Load()}
}
