package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"staple/internal/loadgen"
)

// Proc is a server process under measure, started pinned to one CPU with taskset, its output kept in a
// file for when it fails.
type Proc struct {
	Name string
	Addr string // the address it serves on, when it has one
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // of Wait, once done is closed
}

// StartProc starts argv pinned to cpu (no pinning when cpu < 0), with env added to the environment, its
// stdout and stderr in dir/name.log.
func StartProc(name, dir string, cpu int, env []string, argv ...string) (*Proc, error) {
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a ^C to make stops us; we stop them
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (taskset execs the command in place, so it is the server's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the end of the process's output, for error messages.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// failure describes why the process is not usable, with its output.
func (p *Proc) failure(what error) error {
	if p.Exited() {
		return fmt.Errorf("bench: %s exited (%v): %w\n%s", p.Name, p.err, what, p.Tail())
	}
	return fmt.Errorf("bench: %s: %w\n%s", p.Name, what, p.Tail())
}

// WaitListening waits until addr accepts TCP connections, or the process exits, or timeout passes.
func (p *Proc) WaitListening(addr string, timeout time.Duration) error {
	p.Addr = addr
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return p.failure(fmt.Errorf("not listening on %s: %w", addr, err))
		}
		time.Sleep(10 * time.Millisecond) // polling another process's port
	}
}

// CPU returns the CPU time used so far by the process and its descendants (nginx's worker).
func (p *Proc) CPU() (time.Duration, error) {
	var total time.Duration
	for _, pid := range tree(p.Pid()) {
		d, err := loadgen.ProcessCPU(pid)
		if err != nil {
			if pid == p.Pid() {
				return 0, p.failure(err)
			}
			continue // a child that just ended
		}
		total += d
	}
	return total, nil
}

// RSS returns the resident memory of the process and its descendants, in bytes.
func (p *Proc) RSS() (int64, error) {
	var total int64
	for _, pid := range tree(p.Pid()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err == nil {
					total += kb << 10
				}
			}
		}
	}
	if total == 0 {
		return 0, p.failure(errors.New("no resident memory reported"))
	}
	return total, nil
}

// tree returns pid and its descendants, from /proc/PID/task/TID/children.
func tree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", out[i]))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for f := range strings.FieldsSeq(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// Stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// Procs stops a set of processes together.
type Procs struct {
	mu    sync.Mutex
	procs []*Proc
}

func (ps *Procs) Add(p *Proc) *Proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.procs = append(ps.procs, p)
	return p
}

// StopAll stops every process added, the last first.
func (ps *Procs) StopAll() {
	ps.mu.Lock()
	procs := ps.procs
	ps.procs = nil
	ps.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(5 * time.Second)
	}
}

// FreeAddr returns a loopback address with a port free now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitUntil polls cond every interval until it holds, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
