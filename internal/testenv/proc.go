package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is one child process with a fixed command line, so that it can be
// killed and started again on the same ports and data.
type server struct {
	name string
	args []string
	log  string // file that collects the child's output

	mu    sync.Mutex
	child *Child
}

func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's ^C stops the tests, not the servers first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c, err := StartChild(cmd, func() { logf.Close() })
	if err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.child = c
	return nil
}

func (s *server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child == nil {
		return fmt.Errorf("%s is not running", s.name)
	}
	return s.child.Signal(sig)
}

// stop sends sig and waits for the process to exit (SIGKILL after timeout).
func (s *server) stop(sig syscall.Signal, timeout time.Duration) {
	s.mu.Lock()
	c := s.child
	s.child = nil
	s.mu.Unlock()
	if c != nil {
		c.Stop(sig, timeout)
	}
}

// boot starts the process and waits until ready succeeds; a failure says
// why, with the end of the server's log.
func (s *server) boot(timeout time.Duration, ready func() error) error {
	if err := s.start(); err != nil {
		return err
	}
	if err := waitFor(timeout, ready); err != nil {
		return fmt.Errorf("%s did not come up: %v\n%s", s.name, err, s.tail())
	}
	return nil
}

// tail returns the end of the server's log, for failure messages.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// waitFor polls ready until it succeeds or the deadline passes.
func waitFor(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort asks the kernel for a free loopback port and reserves it among
// GreenPost test processes: between closing the probe listener and the
// server binding the port, a test binary of another package (go test runs
// them in parallel) could be handed the same port, and a health check would
// then be answered by the wrong server. A lock file per port, held until
// this process exits, keeps our servers apart.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if reservePort(port) {
			return port, nil
		}
	}
	return 0, errors.New("no free port could be reserved")
}

var reserved struct {
	mu    sync.Mutex
	files []*os.File // kept open: the locks last as long as the process
}

func reservePort(port int) bool {
	dir := filepath.Join(os.TempDir(), "greenpost-ports")
	os.MkdirAll(dir, 0o777)
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true // cannot coordinate: fall back to the kernel's choice
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reserved.mu.Lock()
	reserved.files = append(reserved.files, f)
	reserved.mu.Unlock()
	return true
}

// waitState waits until the process is in the given /proc state (T: stopped).
func (s *server) waitState(want byte, timeout time.Duration) error {
	pid := s.pid()
	return waitFor(timeout, func() error {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return err
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return errors.New("unreadable /proc stat")
		}
		if b[i+2] != want {
			return fmt.Errorf("process %d in state %c, want %c", pid, b[i+2], want)
		}
		return nil
	})
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// findBinary returns the first candidate that exists: an environment
// override, fixed paths, then PATH.
func findBinary(env string, paths []string, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", errors.New(name + " not found")
}

// tempDir makes a directory that outlives a single test, for shared servers.
func tempDir(tb testing.TB, pattern string) string {
	if tb != nil {
		return tb.TempDir()
	}
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		panic(err)
	}
	return d
}

func cacheDir() string {
	if d := os.Getenv("GREENPOST_CACHE_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "greenpost")
}

// FreePort returns a free loopback port reserved among GreenPost test
// processes, for a program that cannot be told to listen on :0 (make run's
// script).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
