package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run the built staple binary as a process, as an operator would, against real
// peers: openssl ocsp as the CA's responder and openssl s_client as the TLS client.

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is a staple (or openssl) process started by a test; its output is kept for the failure message.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
	// lines receives each line of output (stdout and stderr: the JSON log), for waitLog and waitLine.
	lines chan string
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs name with args; the process is killed at the end of the test if still running.
func start(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: filepath.Base(name), done: make(chan struct{}), lines: make(chan string, 4096)}
	p.cmd = exec.Command(name, args...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	// Its own process group, killed whole at the end: nginx's worker and the commands staple runs (export
	// reloads) must not outlive the test, nor keep the output pipe open.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.Write([]byte(line + "\n"))
			select {
			case p.lines <- line:
			default:
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.name, p.output())
		}
	})
	return p
}

// waitLog waits for a log line whose message is msg and returns its fields.
func (p *process) waitLog(msg string, within time.Duration) map[string]any {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case line := <-p.lines:
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
				return m
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, msg, p.output())
		case <-deadline:
			p.t.Fatalf("%s did not log %q within %v:\n%s", p.name, msg, within, p.output())
		}
	}
}

// waitLine waits for a line of stderr that contains substr.
func (p *process) waitLine(substr string, within time.Duration) {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case line := <-p.lines:
			if strings.Contains(line, substr) {
				return
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, substr, p.output())
		case <-deadline:
			p.t.Fatalf("%s did not print %q within %v:\n%s", p.name, substr, within, p.output())
		}
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM, waits for the exit and checks it is 0.
func (p *process) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(testTimeout):
		p.t.Fatalf("%s did not stop within %v after SIGTERM", p.name, testTimeout)
	}
	if p.err != nil {
		p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.output())
	}
}

// opensslResponder runs openssl ocsp -index over a lab, delegated signer, responses valid 5 minutes.
func opensslResponder(t *testing.T, labDir string, port int) *process {
	t.Helper()
	p := start(t, "openssl", "ocsp", "-index", filepath.Join(labDir, "index.txt"), "-port", strconv.Itoa(port),
		"-rsigner", filepath.Join(labDir, "ocsp.pem"), "-rkey", filepath.Join(labDir, "ocsp.key"),
		"-CA", filepath.Join(labDir, "ca.pem"), "-nmin", "5", "-ignore_err")
	// Not a probe connection: openssl ocsp 3.0 hangs for good on a client that connects and closes without
	// a request. It prints ACCEPT once it is bound.
	p.waitLine("ACCEPT ", 10*time.Second)
	return p
}

// staple is what openssl s_client -status saw.
type sClientResult struct {
	out    string
	status string // "good", "revoked", "unknown", or "" when no staple was sent
	serial string // the server certificate's serial
}

var (
	certStatusRe = regexp.MustCompile(`Cert Status: (\w+)`)
	serialRe     = regexp.MustCompile(`(?m)^\s+Serial Number: ([0-9A-Fa-f]+)`)
)

// sClient connects with openssl s_client -status, verifying the chain against caFile.
func sClient(t *testing.T, addr, caFile, serverName string, extra ...string) sClientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"s_client", "-connect", addr, "-servername", serverName, "-status", "-CAfile", caFile,
		"-verify_return_error", "-showcerts"}, extra...)
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	r := sClientResult{out: string(out)}
	if err != nil {
		t.Fatalf("openssl s_client %s: %v\n%s", addr, err, out)
	}
	if !strings.Contains(r.out, "Verify return code: 0 (ok)") {
		t.Fatalf("openssl s_client %s: the chain did not verify:\n%s", addr, out)
	}
	if m := certStatusRe.FindStringSubmatch(r.out); m != nil {
		r.status = m[1]
	}
	// the server certificate, decoded for its serial
	chain := r.out[max(strings.Index(r.out, "Certificate chain"), 0):] // the OCSP response's signer comes before it
	if i := strings.Index(chain, "-----BEGIN CERTIFICATE-----"); i >= 0 {
		pem := chain[i : strings.Index(chain, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----")]
		x := exec.Command("openssl", "x509", "-noout", "-serial")
		x.Stdin = strings.NewReader(pem)
		if s, err := x.Output(); err == nil {
			r.serial = strings.TrimPrefix(strings.TrimSpace(string(s)), "serial=")
		}
	}
	return r
}

// labFixture is a lab made by staple with one leaf, and a configuration serving it.
type labFixture struct {
	dir, dataDir, config, root, cert, key string
	tlsAddr                               string
	ocspPort                              int
}

func newLabFixture(t *testing.T, sweep string) *labFixture {
	t.Helper()
	base := t.TempDir()
	f := &labFixture{dir: filepath.Join(base, "lab"), dataDir: filepath.Join(base, "data"), config: filepath.Join(base, "staple.toml")}
	f.ocspPort = freePort(t)
	f.tlsAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	mustStaple(t, "lab", "init", f.dir, "--responder-url", "http://127.0.0.1:"+strconv.Itoa(f.ocspPort))
	mustStaple(t, "lab", "issue", f.dir, "site.test", "--ip", "127.0.0.1")
	f.root = filepath.Join(f.dir, "root.pem")
	f.cert, f.key = filepath.Join(f.dir, "certs", "site.test.pem"), filepath.Join(f.dir, "certs", "site.test.key")
	conf := fmt.Sprintf(`# staple serve configuration written by the end-to-end test
data_dir = %q
listen = %q
log_format = "json"
drain_timeout = "5s"

[fetch]
sweep = %q

[[site]]
cert = %q
key = %q
`, f.dataDir, f.tlsAddr, sweep, f.cert, f.key)
	if err := os.WriteFile(f.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustStaple(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := staple(t, args...)
	if code != 0 {
		t.Fatalf("staple %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// refreshUntil forces refreshes through the running service until one reports status. openssl ocsp answers
// from the index it read before the last change once more after each change, so the first refresh after a
// revocation or an issue can still see the old state.
func refreshUntil(t *testing.T, f *labFixture, status string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := mustStaple(t, "cache", "refresh", "--data-dir", f.dataDir)
		if strings.Contains(out, status) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache refresh never reported %s:\n%s", status, out)
		}
	}
}

// waitStatus polls with s_client until the staple says want.
func waitStatus(t *testing.T, f *labFixture, want string, within time.Duration) sClientResult {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := sClient(t, f.tlsAddr, f.root, "site.test")
		if r.status == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q staple within %v; last:\n%s", want, within, r.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeAgainstOpenSSLResponder is the life of a self-hosted site: staple serve with a configuration,
// the CA's responder being openssl ocsp. The staple is good; the responder dies and the staple stays; serve
// restarts with the responder still down and its first handshake is stapled from the cache; the cache is
// listed while serve runs and after it stops; the certificate is revoked in index.txt, a refresh is forced,
// and the staple says revoked; a renewed certificate is picked up on SIGHUP and its predecessor dropped.
func TestServeAgainstOpenSSLResponder(t *testing.T) {
	requireTool(t, "openssl")
	f := newLabFixture(t, "@every 1s")
	resp := opensslResponder(t, f.dir, f.ocspPort)

	srv := start(t, binary, "serve", "--config", f.config)
	srv.waitLog("staple serving", testTimeout)
	first := waitStatus(t, f, "good", 20*time.Second)
	if first.serial != "1001" {
		t.Errorf("served serial %q, want 1001", first.serial)
	}

	out := mustStaple(t, "cache", "ls", "--data-dir", f.dataDir)
	if !strings.Contains(out, ":1001") || !strings.Contains(out, "good") {
		t.Errorf("cache ls while serving:\n%s", out)
	}

	// The responder dies: the staple is still served.
	resp.kill()
	if r := sClient(t, f.tlsAddr, f.root, "site.test"); r.status != "good" {
		t.Fatalf("with the responder down: staple %q, want good:\n%s", r.status, r.out)
	}
	srv.stop()

	out = mustStaple(t, "cache", "ls", "--data-dir", f.dataDir)
	if !strings.Contains(out, ":1001") || !strings.Contains(out, "good") {
		t.Errorf("cache ls with no service:\n%s", out)
	}

	// Restart with the responder still down: the very first handshake is stapled, from the cache.
	srv = start(t, binary, "serve", "--config", f.config)
	srv.waitLog("staple serving", testTimeout)
	if r := sClient(t, f.tlsAddr, f.root, "site.test"); r.status != "good" {
		t.Fatalf("first handshake after a restart with the responder down: staple %q, want good:\n%s", r.status, r.out)
	}

	// Revocation: openssl ca marks the row, the responder comes back, a refresh is forced.
	revoke := exec.Command("openssl", "ca", "-config", filepath.Join(f.dir, "openssl.cnf"), "-revoke", f.cert, "-crl_reason", "keyCompromise")
	if out, err := revoke.CombinedOutput(); err != nil {
		t.Fatalf("openssl ca -revoke: %v\n%s", err, out)
	}
	opensslResponder(t, f.dir, f.ocspPort)
	refreshUntil(t, f, "revoked")
	if r := sClient(t, f.tlsAddr, f.root, "site.test"); r.status != "revoked" {
		t.Fatalf("after the revocation and a refresh: staple %q, want revoked:\n%s", r.status, r.out)
	}

	// Renewal: new files in place of the old ones, then SIGHUP. The new certificate is served and stapled
	// at once; the old one leaves the cache.
	mustStaple(t, "lab", "issue", f.dir, "renewed.site.test", "site.test", "--ip", "127.0.0.1")
	for _, ext := range []string{".pem", ".key"} {
		data, err := os.ReadFile(filepath.Join(f.dir, "certs", "renewed.site.test"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.dir, "certs", "site.test"+ext), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog("configuration reloaded", testTimeout)
	refreshUntil(t, f, "good") // openssl ocsp says unknown until it reloads its index
	r := waitStatus(t, f, "good", 20*time.Second)
	if r.serial != "1002" {
		t.Errorf("after SIGHUP: serial %q, want the renewed 1002", r.serial)
	}
	out = mustStaple(t, "cache", "ls", "--data-dir", f.dataDir)
	if strings.Contains(out, ":1001 ") || !strings.Contains(out, ":1002") {
		t.Errorf("after the renewal the cache should hold 1002 and not 1001:\n%s", out)
	}
	srv.stop()
}

// TestServeEmbeddedDefault is 'make run' on a fresh machine: no configuration, no certificate. serve makes
// its lab under the data directory, runs the lab responder in process, and staples localhost from the first
// handshake the banner invites; the status page shows the certificate as good.
func TestServeEmbeddedDefault(t *testing.T) {
	requireTool(t, "openssl")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "staple-data")
	tlsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	// Only the ports differ from make run's defaults, so that the test runs beside anything on 8443/8889.
	conf := filepath.Join(dir, "ports.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen = %q\nlab_responder_url = \"http://127.0.0.1:%d\"\n", tlsAddr, freePort(t))), 0o600)
	srv := start(t, binary, "serve", "--config", conf, "--data-dir", dataDir, "--log-format", "json")
	srv.waitLog("staple serving", testTimeout)
	root := filepath.Join(dataDir, "lab", "root.pem")
	for _, name := range []string{"root.pem", "ca.key", "ocsp.key", "certs/localhost.key"} {
		st, err := os.Stat(filepath.Join(dataDir, "lab", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".key") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	for _, name := range []string{"cache.db", "admin.sock"} {
		if st, err := os.Stat(filepath.Join(dataDir, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", name, st.Mode().Perm(), err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := sClient(t, tlsAddr, root, "localhost")
		if r.status == "good" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the embedded default did not staple within 15 s:\n%s", r.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The banner tells the command to run.
	waitFor(t, 15*time.Second, func() bool { return strings.Contains(srv.output(), "openssl s_client -connect "+tlsAddr) },
		"the banner with the s_client command")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	curl := exec.CommandContext(ctx, "curl", "-sS", "--cacert", root, "-H", "Accept: application/json",
		"--resolve", "localhost:"+strings.Split(tlsAddr, ":")[1]+":127.0.0.1", "https://localhost:"+strings.Split(tlsAddr, ":")[1]+"/")
	body, err := curl.Output()
	if err != nil {
		t.Fatalf("curl the status page: %v", err)
	}
	var doc struct {
		Ready        bool `json:"ready"`
		Certificates []struct {
			Names  []string `json:"names"`
			Status string   `json:"status"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("status page JSON: %v\n%s", err, body)
	}
	if !doc.Ready || len(doc.Certificates) != 1 || doc.Certificates[0].Status != "good" || doc.Certificates[0].Names[0] != "localhost" {
		t.Errorf("status page: %s", body)
	}
	srv.stop()

	// A second start reuses the lab: same root, same certificate.
	rootBefore, _ := os.ReadFile(root)
	srv = start(t, binary, "serve", "--config", conf, "--data-dir", dataDir, "--log-format", "json")
	srv.waitLog("staple serving", testTimeout)
	if r := sClient(t, tlsAddr, root, "localhost"); r.status != "good" {
		t.Errorf("second start: the first handshake got staple %q", r.status)
	}
	rootAfter, _ := os.ReadFile(root)
	if !bytes.Equal(rootBefore, rootAfter) {
		t.Error("the lab CA was made again on the second start")
	}
	srv.stop()
}

// TestServeBadInput checks that each way serve can be started wrongly is one clear line and exit 1 (2 for
// the command line), with nothing listening afterwards.
func TestServeBadInput(t *testing.T) {
	requireTool(t, "openssl")
	f := newLabFixture(t, "@every 30s")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := filepath.Join(dir, "other")
	mustStaple(t, "lab", "init", other)
	mustStaple(t, "lab", "issue", other, "other.test")
	occupied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupied.Close()
	notDir := write("plain-file", "x")

	tests := []struct {
		name string
		args []string
		code int
		want string // a substring of the one line
	}{
		{"unknown key", []string{"--config", write("unknown.toml", "listen = \"127.0.0.1:0\"\nbogus = 1\n")}, 1, "unknown.toml:2: bogus"},
		{"bad value", []string{"--config", write("badval.toml", "[fetch]\nsweep = \"every so often\"\n")}, 1, "fetch.sweep"},
		{"site without cert", []string{"--config", write("nocert.toml", "[[site]]\nnames = [\"a.test\"]\n")}, 1, "site[1]: cert is missing"},
		{"missing cert file", []string{"--cert", filepath.Join(dir, "absent.pem"), "--data-dir", filepath.Join(dir, "d1")}, 1, "absent.pem"},
		{"wrong key", []string{"--cert", f.cert, "--key", filepath.Join(other, "certs", "other.test.key"), "--data-dir", filepath.Join(dir, "d2")}, 1, "does not match"},
		{"data dir is a file", []string{"--cert", f.cert, "--key", f.key, "--data-dir", filepath.Join(notDir, "sub")}, 1, "data directory"},
		{"occupied port", []string{"--cert", f.cert, "--key", f.key, "--data-dir", filepath.Join(dir, "d3"), "--listen", occupied.Addr().String()}, 1, "the address is in use"},
		{"key without cert", []string{"--key", f.key}, 2, "--key, --issuer, --upstream and --forward go with --cert"},
		{"operand", []string{"extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := staple(t, append([]string{"serve", "--log-format", "json", "--log-level", "error"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "staple: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line %q, want a 'staple: ' line containing %q (all: %q)", last, tt.want, errOut)
			}
			if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
				t.Errorf("stack trace: %s", errOut)
			}
		})
	}
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
}

func waitFor(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
