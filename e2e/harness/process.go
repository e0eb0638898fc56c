package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeout bounds every process a test starts.
const Timeout = 60 * time.Second

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Process is a process started by a test (staple, openssl, nginx, etcd …); its output is kept for the
// failure message. Its methods fail the test that started it.
type Process struct {
	Name string // the command's base name
	Cmd  *exec.Cmd
	t    testing.TB
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
	// lines receives each line of output (stdout and stderr: the JSON log), for WaitLog and WaitLine.
	lines chan string
}

// Output is everything the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Done is closed when the process has exited; Err is then what Wait returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended, once Done is closed.
func (p *Process) Err() error { return p.err }

// Start runs name with args; the process is killed at the end of the test if still running.
func Start(tb testing.TB, name string, args ...string) *Process {
	tb.Helper()
	p := &Process{t: tb, Name: filepath.Base(name), done: make(chan struct{}), lines: make(chan string, 4096)}
	p.Cmd = exec.Command(name, args...)
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	// Its own process group, killed whole at the end: nginx's worker and the commands staple runs (export
	// reloads) must not outlive the test, nor keep the output pipe open.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.Cmd.WaitDelay = 5 * time.Second
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default:
			}
		}
	}()
	go func() {
		p.err = p.Cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if tb.Failed() {
			tb.Logf("output of %s:\n%s", p.Name, p.Output())
		}
	})
	return p
}

// WaitLog waits for a log line whose message is msg and returns its fields.
func (p *Process) WaitLog(msg string, within time.Duration) map[string]any {
	p.t.Helper()
	var fields map[string]any
	p.wait("logging", "log", msg, within, func(line string) bool {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			fields = m
			return true
		}
		return false
	})
	return fields
}

// WaitLine waits for a line of output that contains substr.
func (p *Process) WaitLine(substr string, within time.Duration) {
	p.t.Helper()
	p.wait("printing", "print", substr, within, func(line string) bool { return strings.Contains(line, substr) })
}

// wait reads lines until match says yes, and fails the test if the process exits first or within passes.
func (p *Process) wait(doing, do, what string, within time.Duration, match func(line string) bool) {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case line := <-p.lines:
			if match(line) {
				return
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before %s %q:\n%s", p.Name, p.err, doing, what, p.Output())
		case <-deadline:
			p.t.Fatalf("%s did not %s %q within %v:\n%s", p.Name, do, what, within, p.Output())
		}
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Process) Kill() {
	p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM, waits for the exit and checks it is 0.
func (p *Process) Stop() {
	p.t.Helper()
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(Timeout):
		p.t.Fatalf("%s did not stop within %v after SIGTERM", p.Name, Timeout)
	}
	if p.err != nil {
		p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.Name, p.err, p.Output())
	}
}

// RequireTool skips the test when name is not on $PATH.
func RequireTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Skipf("%s is not installed (.ci/run installs it)", name)
	}
}

// WaitFor polls cond every 50 ms and fails the test if it is not true within the time given.
func WaitFor(tb testing.TB, within time.Duration, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
