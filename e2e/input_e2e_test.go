package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"staple/e2e/harness"
)

// The tests in this file give the built binary what an operator, a script or an attacker may put where a
// file is expected: FIFOs without a writer or without a reader, devices without end, a standard input fed
// without end, device nodes and symbolic links as --out, and signals while the command waits on them. Every
// cache command runs both ways: with no service, and through a running staple serve.

// proc is a staple process started in the background, to be signalled.
type proc struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{}
}

func startProc(t *testing.T, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = stdin, &p.out, &p.errb
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	return p
}

// wait waits for the exit and returns the exit code and standard error; it fails the test past within.
func (p *proc) wait(t *testing.T, within time.Duration) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("staple %s still runs %v on", strings.Join(p.cmd.Args[1:], " "), within)
	}
	return p.cmd.ProcessState.ExitCode(), p.errb.String()
}

// oneLine fails the test unless stderr is one line (the user's) with every part of want, and no panic.
func oneLine(t *testing.T, what, stderr string, want ...string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "goroutine") {
		t.Errorf("%s: stderr is not one line:\n%s", what, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr %q lacks %q", what, stderr, w)
		}
	}
}

// endless is a standard input that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	return len(p), nil
}

// inputFixture is a lab with one certificate whose response is in the cache, its responder, and the two
// ways a cache command runs: mode "offline" (no service) and mode "service" (a staple serve answers on the
// data directory's admin socket).
type inputFixture struct {
	*labFixture
	key, der string // the certificate's cache key, and its response exported as a file
}

func newInputFixture(t *testing.T) *inputFixture {
	t.Helper()
	f := &inputFixture{labFixture: newLabFixture(t, "@every 1h")}
	rs := harness.Start(t, binary, "responder", "--lab", f.Dir, "--listen", "127.0.0.1:"+strconv.Itoa(f.OCSPPort), "--log-format", "json")
	rs.WaitLog("listening", harness.Timeout)
	mustStaple(t, "fetch", f.Cert, "--data-dir", f.DataDir)
	var es []struct{ Key string }
	if err := json.Unmarshal([]byte(mustStaple(t, "cache", "ls", "--json", "--data-dir", f.DataDir)), &es); err != nil || len(es) != 1 {
		t.Fatalf("cache ls --json: %v, %d entries", err, len(es))
	}
	f.key, f.der = es[0].Key, filepath.Join(t.TempDir(), "resp.der")
	mustStaple(t, "cache", "export", f.key, "--out", f.der, "--data-dir", f.DataDir)
	return f
}

// modes runs fn with no service, then with a staple serve running over the same data directory.
func (f *inputFixture) modes(t *testing.T, fn func(t *testing.T, mode string)) {
	t.Run("offline", func(t *testing.T) { fn(t, "offline") })
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	t.Run("service", func(t *testing.T) { fn(t, "service") })
	srv.Stop()
}

func mkfifo(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSignalEndsBlockedCommand: every command that reads a file given to it, pointed at a FIFO that no one
// writes (or, for --out, that no one reads), blocks in the open; SIGTERM or SIGINT ends it within seconds,
// with one line saying so and exit 1, both with and without a running service.
func TestSignalEndsBlockedCommand(t *testing.T) {
	f := newInputFixture(t)
	type tc struct {
		name string
		args func(fifo string) []string
	}
	dd := func(a ...string) []string { return append(a, "--data-dir", f.DataDir) }
	cacheCases := []tc{
		{"cache show", func(p string) []string { return dd("cache", "show", p) }},
		{"cache show --issuer", func(p string) []string { return dd("cache", "show", f.Cert, "--issuer", p) }},
		{"cache export", func(p string) []string { return dd("cache", "export", p, "--format", "base64") }},
		{"cache export --out", func(p string) []string { return dd("cache", "export", f.key, "--out", p) }},
		{"cache import response", func(p string) []string { return dd("cache", "import", p, "--cert", f.Cert) }},
		{"cache import --cert", func(p string) []string { return dd("cache", "import", f.der, "--cert", p) }},
		{"cache rm", func(p string) []string { return dd("cache", "rm", p) }},
		{"cache refresh", func(p string) []string { return dd("cache", "refresh", p) }},
		{"cache ls --config", func(p string) []string { return dd("cache", "ls", "--config", p) }},
		{"fetch", func(p string) []string { return dd("fetch", p) }},
		{"fetch --issuer", func(p string) []string { return dd("fetch", f.Cert, "--issuer", p) }},
	}
	otherCases := []tc{
		{"check --ca", func(p string) []string { return []string{"check", f.TLSAddr, "--ca", p} }},
		{"lab revoke", func(p string) []string { return []string{"lab", "revoke", f.Dir, p} }},
		{"responder --index", func(p string) []string {
			return []string{"responder", "--index", p, "--ca", filepath.Join(f.Dir, "ca.pem"), "--key", filepath.Join(f.Dir, "ca.key")}
		}},
		{"serve --cert", func(p string) []string {
			return []string{"serve", "--cert", p, "--key", f.Key, "--data-dir", t.TempDir()}
		}},
		{"serve --config", func(p string) []string { return []string{"serve", "--config", p} }},
	}
	run := func(t *testing.T, cases []tc) {
		for i, c := range cases {
			sig, sigName := syscall.SIGTERM, "terminated"
			if i%2 == 1 {
				sig, sigName = syscall.SIGINT, "interrupt"
			}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				p := startProc(t, nil, c.args(mkfifo(t, "fifo"))...)
				select {
				case <-p.done:
					t.Fatalf("exited before the signal: %s", p.errb.String())
				case <-time.After(time.Second): // blocked in the open of the FIFO
				}
				p.cmd.Process.Signal(sig)
				code, stderr := p.wait(t, 10*time.Second)
				if code != 1 {
					t.Errorf("exit %d after %v, want 1", code, sig)
				}
				oneLine(t, c.name, stderr, sigName+" signal received", "stopped before it finished")
			})
		}
	}
	f.modes(t, func(t *testing.T, _ string) { run(t, cacheCases) })
	t.Run("other commands", func(t *testing.T) { run(t, otherCases) })
}

// TestInputWithoutEndIsBounded: a device without end (/dev/zero) and a standard input fed without end, given
// where a certificate, a key, a response, a configuration or an index is read, fail at once with one line
// naming the file and exit 1, and the process never holds more than a few tens of MiB.
func TestInputWithoutEndIsBounded(t *testing.T) {
	f := newInputFixture(t)
	type tc struct {
		name string
		args []string
	}
	dd := func(a ...string) []string { return append(a, "--data-dir", f.DataDir) }
	bounded := func(t *testing.T, cases []tc) {
		for _, c := range cases {
			for _, in := range []string{"/dev/zero", "/dev/stdin"} {
				t.Run(c.name+" "+in, func(t *testing.T) {
					args := make([]string, len(c.args))
					for i, a := range c.args {
						args[i] = strings.ReplaceAll(a, "INPUT", in)
					}
					p := startProc(t, endless{}, args...)
					code, stderr := p.wait(t, 30*time.Second)
					if code != 1 {
						t.Errorf("exit %d, want 1", code)
					}
					oneLine(t, c.name, stderr, in, "more than")
					if rss := p.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss; rss > 150<<10 {
						t.Errorf("the process held %d MiB at most, want a bounded read", rss>>10)
					}
				})
			}
		}
	}
	f.modes(t, func(t *testing.T, _ string) {
		bounded(t, []tc{
			{"cache show", dd("cache", "show", "INPUT")},
			{"cache import response", dd("cache", "import", "INPUT", "--cert", f.Cert)},
			{"cache import --cert", dd("cache", "import", f.der, "--cert", "INPUT")},
			{"cache refresh --issuer", dd("cache", "refresh", f.Cert, "--issuer", "INPUT")},
			{"fetch", dd("fetch", "INPUT")},
		})
	})
	bounded(t, []tc{
		{"serve --config", []string{"serve", "--config", "INPUT"}},
		{"serve --key", []string{"serve", "--cert", f.Cert, "--key", "INPUT", "--data-dir", t.TempDir()}},
		{"lab revoke", []string{"lab", "revoke", f.Dir, "INPUT"}},
		{"responder --index", []string{"responder", "--index", "INPUT", "--ca", filepath.Join(f.Dir, "ca.pem"), "--key", filepath.Join(f.Dir, "ca.key")}},
	})

	// A stream that ends is read like a file: the certificate through standard input, both ways.
	f.modes(t, func(t *testing.T, _ string) {
		pem, err := os.ReadFile(f.Cert)
		if err != nil {
			t.Fatal(err)
		}
		p := startProc(t, bytes.NewReader(pem), dd("cache", "show", "/dev/stdin")...)
		if code, stderr := p.wait(t, 30*time.Second); code != 0 || !strings.Contains(p.out.String(), f.key) {
			t.Errorf("cache show /dev/stdin: exit %d, %s%s", code, p.out.String(), stderr)
		}
	})
}

// TestExportOutKeepsWhatIsThere: cache export --out replaces a regular file, writes through a symbolic link
// to the file it names, streams into a FIFO (which a reader drains) and into a character device (which both
// stay what they were), and refuses a directory with one line, both ways.
func TestExportOutKeepsWhatIsThere(t *testing.T) {
	f := newInputFixture(t)
	want, err := os.ReadFile(f.der)
	if err != nil {
		t.Fatal(err)
	}
	export := func(out string) (int, string) {
		_, stderr, code := staple(t, "cache", "export", f.key, "--out", out, "--data-dir", f.DataDir)
		return code, stderr
	}
	f.modes(t, func(t *testing.T, mode string) {
		dir := t.TempDir()
		t.Run("regular file and symbolic link", func(t *testing.T) {
			target, link := filepath.Join(dir, "target.der"), filepath.Join(dir, "link.der")
			os.WriteFile(target, []byte("old"), 0o644)
			os.Symlink(target, link)
			for _, out := range []string{target, link} {
				if code, stderr := export(out); code != 0 {
					t.Fatalf("export --out %s: exit %d: %s", out, code, stderr)
				}
			}
			if got, _ := os.ReadFile(target); !bytes.Equal(got, want) {
				t.Errorf("%s holds %d bytes, not the response", target, len(got))
			}
			if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the symbolic link became %v", st.Mode())
			}
		})
		t.Run("FIFO", func(t *testing.T) {
			fifo := mkfifo(t, "out.fifo")
			got := make(chan []byte, 1)
			go func() { b, _ := os.ReadFile(fifo); got <- b }()
			if code, stderr := export(fifo); code != 0 {
				t.Fatalf("export --out FIFO: exit %d: %s", code, stderr)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Errorf("the FIFO's reader got %d bytes, not the response", len(b))
			}
			if st, _ := os.Lstat(fifo); st.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("the FIFO became %v", st.Mode())
			}
		})
		t.Run("character device", func(t *testing.T) {
			null := filepath.Join(dir, "null")
			if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("cannot make a device node: %v", err)
			}
			if code, stderr := export(null); code != 0 {
				t.Fatalf("export --out a device: exit %d: %s", code, stderr)
			}
			if st, _ := os.Lstat(null); st.Mode()&os.ModeCharDevice == 0 {
				t.Errorf("the device node became %v", st.Mode())
			}
		})
		t.Run("directory", func(t *testing.T) {
			code, stderr := export(dir)
			if code != 1 {
				t.Errorf("export --out a directory: exit %d, want 1", code)
			}
			oneLine(t, "export --out a directory", stderr, dir, "is a directory")
		})
	})
}

// TestDrainOutlivesStopGrace: the grace a command has after a signal does not cut a drain. staple serve (its
// caching responder) and staple responder each have a request in flight, its body half sent, when SIGTERM
// comes: each is still draining past the grace, and exits 0 when its drain gives up on it (5 s).
func TestDrainOutlivesStopGrace(t *testing.T) {
	f := newLabFixture(t, "@every 1h")
	port := strconv.Itoa(harness.FreePort(t))
	for _, c := range []struct {
		name  string
		args  []string
		ready string
	}{
		{"serve", []string{"serve", "--config", f.Config, "--responder-listen", "127.0.0.1:" + port}, "staple serving"},
		{"responder", []string{"responder", "--lab", f.Dir, "--listen", "127.0.0.1:" + port, "--log-format", "json"}, "listening"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := harness.Start(t, binary, c.args...)
			p.WaitLog(c.ready, harness.Timeout)
			conn, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n0")
			time.Sleep(500 * time.Millisecond) // the request is read up to its body
			p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.Done():
				t.Fatalf("exited %v while it drained a request:\n%s", p.Err(), p.Output())
			case <-time.After(3 * time.Second):
			}
			<-p.Done()
			if err := p.Err(); err != nil || strings.Contains(p.Output(), "stopped before it finished") {
				t.Errorf("after its drain: %v:\n%s", err, p.Output())
			}
		})
	}
}

// TestLabChangesAtOnce: staple processes changing one lab at once. Of several lab init of one directory,
// one makes the lab and every other exits 1 with one line saying it exists; the CA key matches its
// certificate (openssl's view of both public keys); issues and revokes at once then all land in index.txt.
func TestLabChangesAtOnce(t *testing.T) {
	harness.RequireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "lab")
	const n = 4
	var ps []*proc
	for range n {
		ps = append(ps, startProc(t, nil, "lab", "init", dir))
	}
	made := 0
	for _, p := range ps {
		switch code, stderr := p.wait(t, harness.Timeout); code {
		case 0:
			made++
		case 1:
			oneLine(t, "the losing lab init", stderr, "already exists", dir)
		default:
			t.Errorf("lab init: exit %d: %s", code, stderr)
		}
	}
	if made != 1 {
		t.Fatalf("%d lab init made the lab, want 1", made)
	}
	pub := func(args ...string) string {
		out, err := exec.Command("openssl", args...).Output()
		if err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
		return string(out)
	}
	if pub("x509", "-noout", "-pubkey", "-in", filepath.Join(dir, "ca.pem")) != pub("pkey", "-pubout", "-in", filepath.Join(dir, "ca.key")) {
		t.Fatal("the CA key does not match the CA certificate")
	}

	ps = ps[:0]
	for i := range n {
		ps = append(ps, startProc(t, nil, "lab", "issue", dir, "c"+strconv.Itoa(i)+".test"))
	}
	ps = append(ps, startProc(t, nil, "lab", "revoke", dir, "1000"))
	for _, p := range ps {
		if code, stderr := p.wait(t, harness.Timeout); code != 0 {
			t.Errorf("%v: exit %d: %s", p.cmd.Args[1:], code, stderr)
		}
	}
	var rows []struct{ Status, Serial string }
	if err := json.Unmarshal([]byte(mustStaple(t, "lab", "ls", dir, "--json")), &rows); err != nil || len(rows) != n+1 || rows[0].Status != "revoked" {
		t.Errorf("lab ls after issues and a revoke at once: %v, %+v", err, rows)
	}
}

// TestReloadBlockedOnFIFODoesNotStopDrain: a SIGHUP whose new configuration names a FIFO that no one writes
// blocks its reading; a SIGTERM then still drains and stops serve, exit 0, without the grace cutting it.
func TestReloadBlockedOnFIFODoesNotStopDrain(t *testing.T) {
	f := newLabFixture(t, "@every 1h")
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	if err := os.Rename(f.Cert, f.Cert+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(f.Cert, 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Cmd.Process.Signal(syscall.SIGHUP)
	srv.WaitLog("SIGHUP: reloading the configuration and the certificates", 10*time.Second)
	time.Sleep(300 * time.Millisecond) // blocked in the open of the FIFO
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	srv.WaitLog("reload given up: stopping while its files are still being read", 10*time.Second)
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10 s of SIGTERM during a blocked reload")
	}
	if err := srv.Err(); err != nil || strings.Contains(srv.Output(), "stopped before it finished") {
		t.Errorf("serve after SIGTERM during a blocked reload: %v", err)
	}
}
