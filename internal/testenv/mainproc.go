package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// AsMainEnv marks a re-executed test binary that should act as the program
// itself: TestMain calls settings.Main(run) when it is set. Tests use it to
// check exit codes and signals without building the binary.
const AsMainEnv = "GREENPOST_AS_MAIN"

// MainProcess is the program under test, running as a child process.
type MainProcess struct {
	Cmd    *exec.Cmd
	stderr *SyncBuffer
	child  *Child
}

// StartMain re-executes the test binary as the program with the given
// environment (only these variables and PATH/HOME) and arguments.
func StartMain(t *testing.T, env []string, args ...string) *MainProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{AsMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &MainProcess{Cmd: cmd, stderr: &SyncBuffer{}}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	c, err := StartChild(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.child = c
	t.Cleanup(func() { c.Stop(syscall.SIGKILL, time.Minute) })
	return p
}

// Output returns what the program wrote so far.
func (p *MainProcess) Output() string { return p.stderr.String() }

// WaitOutput waits until the program's output contains s.
func (p *MainProcess) WaitOutput(s string, timeout time.Duration) error {
	return waitFor(timeout, func() error {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-p.child.Done():
			return errors.New("exited before writing " + s + ":\n" + p.Output())
		default:
		}
		return errors.New("no " + s + " in output:\n" + p.Output())
	})
}

// Wait waits for the exit and returns the exit code.
func (p *MainProcess) Wait(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-p.child.Done():
	case <-ctx.Done():
		return -1, errors.New("still running after " + timeout.String() + ":\n" + p.Output())
	}
	var ee *exec.ExitError
	err := p.child.Err()
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// ExpectRefused runs the program once per environment and checks that it
// exits 2 with a message naming the setting (the name before the first '='
// of the environment's first entry), as runtime-v1 asks of bad settings.
func ExpectRefused(t *testing.T, envs [][]string) {
	t.Helper()
	for _, env := range envs {
		p := StartMain(t, env)
		code, err := p.Wait(30 * time.Second)
		if err != nil || code != 2 {
			t.Errorf("%v: exit %d, %v; want 2", env, code, err)
		}
		name, _, _ := strings.Cut(env[0], "=")
		if !strings.Contains(p.Output(), name) {
			t.Errorf("%v: message does not name the setting:\n%s", env, p.Output())
		}
	}
}

// ExpectCleanStop starts the program, waits for its "started" log line,
// sends SIGTERM and checks that it exits 0.
func ExpectCleanStop(t *testing.T, env []string) *MainProcess {
	t.Helper()
	p := StartMain(t, env)
	if err := p.WaitOutput(`"msg":"started"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v; want 0\n%s", code, err, p.Output())
	}
	return p
}
