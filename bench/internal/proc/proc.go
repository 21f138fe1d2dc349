package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Spec says how to start a process.
type Spec struct {
	Name string   // short name used for the log file, e.g. "server-sidecar"
	Path string   // binary
	Args []string // arguments
	// Env is added to the harness's environment (KEY=VALUE).
	Env []string
	// CPUs, when non-empty, pins the process with taskset -c CPUs (taskset
	// execs the binary, so the PID is the binary's).
	CPUs string
	// LogDir receives NAME.log with stdout and stderr. Required.
	LogDir string
	// Dir is the working directory; empty is the harness's.
	Dir string
}

// Process is a running child process.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// Start starts the process described by s.
func Start(s Spec) (*Process, error) {
	if s.Name == "" || s.Path == "" || s.LogDir == "" {
		return nil, errors.New("start: Name, Path and LogDir are required")
	}
	logPath := filepath.Join(s.LogDir, s.Name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	path, args := s.Path, s.Args
	if s.CPUs != "" {
		path, args = "taskset", append([]string{"-c", s.CPUs, s.Path}, s.Args...)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), s.Env...)
	// Own process group so Close reaches workers a proxy forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Process{name: s.Name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Name is the Spec's name.
func (p *Process) Name() string { return p.name }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// LogTail returns the last n bytes of the process's output, for error messages.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return strings.TrimSpace(string(data))
}

// Logged reports whether the process's output so far contains substr.
func (p *Process) Logged(substr string) bool {
	data, err := os.ReadFile(p.logPath)
	return err == nil && strings.Contains(string(data), substr)
}

// Close stops the process group: SIGTERM, then SIGKILL after 5 s. It waits
// for the process to be reaped. Closing an exited process is a no-op.
func (p *Process) Close() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-p.done
	return nil
}

// Group closes many processes in reverse start order.
type Group struct{ procs []*Process }

// Add records p for Close.
func (g *Group) Add(p *Process) *Process { g.procs = append(g.procs, p); return p }

// Close stops every process, last started first.
func (g *Group) Close() error {
	var errs []error
	for i := len(g.procs) - 1; i >= 0; i-- {
		errs = append(errs, g.procs[i].Close())
	}
	g.procs = nil
	return errors.Join(errs...)
}

// WaitHTTP polls url until it answers 2xx, the process exits, or ctx ends.
// p may be nil.
func WaitHTTP(ctx context.Context, p *Process, url string) error {
	client := &http.Client{Timeout: time.Second}
	return poll(ctx, p, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, "wait "+url)
}

// WaitTCP polls addr until it accepts a connection.
func WaitTCP(ctx context.Context, p *Process, addr string) error {
	return poll(ctx, p, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}, "wait "+addr)
}

// Poll calls cond every 50 ms until it returns nil, p exits, or ctx ends.
func Poll(ctx context.Context, p *Process, op string, cond func() error) error {
	return poll(ctx, p, cond, op)
}

func poll(ctx context.Context, p *Process, cond func() error, op string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		if p != nil {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s: %s exited (%v): %s", op, p.name, err, p.LogTail(400))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", op, ctx.Err(), last)
		case <-tick.C:
		}
	}
}
