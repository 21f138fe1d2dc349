package demo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// child is one process the demo started.
type child struct {
	name string // "trellisd", "proxy-reviews-v3", "app-reviews-v3"
	log  string // its log file
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	err  error         // cmd.Wait's result; read only after done is closed
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// children owns the processes of one demo run. Its methods are called from
// one goroutine (Run); a waiter goroutine per child reports its exit on
// exited and ends, so every goroutine is gone once stop returns.
type children struct {
	logDir string
	list   []*child
	exited chan *child // buffered to the number of children: waiters never block
}

// maxChildren bounds the demo's process count; it sizes exited.
const maxChildren = 32

func newChildren(logDir string) *children {
	return &children{logDir: logDir, exited: make(chan *child, maxChildren)}
}

// start runs path with args, its stdout and stderr going to LOGDIR/NAME.log.
func (cs *children) start(name, path string, args, env []string) (*child, error) {
	if len(cs.list) == maxChildren {
		return nil, fmt.Errorf("start %s: more than %d children", name, maxChildren)
	}
	logPath := filepath.Join(cs.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	cs.list = append(cs.list, c)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		cs.exited <- c
	}()
	return c, nil
}

// stop sends SIGTERM to every child still running, SIGKILL to those left
// after timeout, and returns once every child has been waited for.
func (cs *children) stop(timeout time.Duration) {
	for _, c := range cs.list {
		signalGroup(c, syscall.SIGTERM)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, c := range cs.list {
		select {
		case <-c.done:
		case <-deadline.C:
			for _, c := range cs.list {
				signalGroup(c, syscall.SIGKILL)
			}
			for _, c := range cs.list {
				<-c.done
			}
			return
		}
	}
}

// signalGroup sends sig to c's process group (the child leads its own) unless c
// has already been waited for.
func signalGroup(c *child, sig syscall.Signal) {
	select {
	case <-c.done:
		return
	default:
	}
	if err := syscall.Kill(-c.pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = c.cmd.Process.Signal(sig) // no group after all: the process itself
	}
}

// exitError describes why c ended.
func (c *child) exitError() error {
	if c.err == nil {
		return fmt.Errorf("%s exited (status 0); see %s", c.name, c.log)
	}
	return fmt.Errorf("%s exited: %w; see %s", c.name, c.err, c.log)
}
