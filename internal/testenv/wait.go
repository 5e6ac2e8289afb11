package testenv

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond until it returns "" (the condition holds) or the
// timeout passes, and then fails the test with cond's last answer, which
// says what was still missing. Tests wait for conditions this way, never
// for a fixed time.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer safe for a process's output and a test
// reading it at the same time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
