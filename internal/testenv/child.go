package testenv

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Child is a started child process: the one way tests, the whole-system
// test and the benchmarks start and stop programs (servers, binaries under
// test, Telegraf). It dies with its parent, even one killed by a timeout.
type Child struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartChild starts cmd (set its Env, Stdout and Stderr first). onExit,
// when set, runs once the process has exited (closing its log, say).
func StartChild(cmd *exec.Cmd, onExit func()) (*Child, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	c := &Child{Cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		if onExit != nil {
			onExit()
		}
		close(c.done)
	}()
	return c, nil
}

// Done is closed when the process has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is the process's exit error, once Done is closed.
func (c *Child) Err() error { <-c.done; return c.err }

// PID is the process id.
func (c *Child) PID() int { return c.Cmd.Process.Pid }

// Signal sends sig.
func (c *Child) Signal(sig syscall.Signal) error { return c.Cmd.Process.Signal(sig) }

// Stop sends sig (a paused process is continued first, or it could not
// exit) and waits for the exit, killing the process after timeout.
func (c *Child) Stop(sig syscall.Signal, timeout time.Duration) {
	c.Cmd.Process.Signal(syscall.SIGCONT)
	c.Cmd.Process.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.Cmd.Process.Kill()
		<-c.done
	}
}
