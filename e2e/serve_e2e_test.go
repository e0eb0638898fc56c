package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// The tests in this file run the built staple binary as a process, as an operator would, against real
// peers: openssl ocsp as the CA's responder and openssl s_client as the TLS client.

// opensslResponder runs openssl ocsp -index over a lab, delegated signer, responses valid 5 minutes.
func opensslResponder(t *testing.T, labDir string, port int) *harness.Process {
	t.Helper()
	p := harness.Start(t, "openssl", "ocsp", "-index", filepath.Join(labDir, "index.txt"), "-port", strconv.Itoa(port),
		"-rsigner", filepath.Join(labDir, "ocsp.pem"), "-rkey", filepath.Join(labDir, "ocsp.key"),
		"-CA", filepath.Join(labDir, "ca.pem"), "-nmin", "5", "-ignore_err")
	// Not a probe connection: openssl ocsp 3.0 hangs for good on a client that connects and closes without
	// a request. It prints ACCEPT once it is bound.
	p.WaitLine("ACCEPT ", 10*time.Second)
	return p
}

// refreshUntil forces refreshes through the running service until one reports status. openssl ocsp answers
// from the index it read before the last change once more after each change, so the first refresh after a
// revocation or an issue can still see the old state.
func refreshUntil(t *testing.T, f *labFixture, status string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := mustStaple(t, "cache", "refresh", "--data-dir", f.DataDir)
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
		r := sClient(t, f.TLSAddr, f.Root, "site.test")
		if r.Status == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q staple within %v; last:\n%s", want, within, r.Out)
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
	harness.RequireTool(t, "openssl")
	f := newLabFixture(t, "@every 1s")
	resp := opensslResponder(t, f.Dir, f.OCSPPort)

	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	first := waitStatus(t, f, "good", 20*time.Second)
	if first.Serial != "1001" {
		t.Errorf("served serial %q, want 1001", first.Serial)
	}

	out := mustStaple(t, "cache", "ls", "--data-dir", f.DataDir)
	if !strings.Contains(out, ":1001") || !strings.Contains(out, "good") {
		t.Errorf("cache ls while serving:\n%s", out)
	}

	// The responder dies: the staple is still served.
	resp.Kill()
	if r := sClient(t, f.TLSAddr, f.Root, "site.test"); r.Status != "good" {
		t.Fatalf("with the responder down: staple %q, want good:\n%s", r.Status, r.Out)
	}
	srv.Stop()

	out = mustStaple(t, "cache", "ls", "--data-dir", f.DataDir)
	if !strings.Contains(out, ":1001") || !strings.Contains(out, "good") {
		t.Errorf("cache ls with no service:\n%s", out)
	}

	// Restart with the responder still down: the very first handshake is stapled, from the cache.
	srv = harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	if r := sClient(t, f.TLSAddr, f.Root, "site.test"); r.Status != "good" {
		t.Fatalf("first handshake after a restart with the responder down: staple %q, want good:\n%s", r.Status, r.Out)
	}

	// Revocation: openssl ca marks the row, the responder comes back, a refresh is forced.
	revoke := exec.Command("openssl", "ca", "-config", filepath.Join(f.Dir, "openssl.cnf"), "-revoke", f.Cert, "-crl_reason", "keyCompromise")
	if out, err := revoke.CombinedOutput(); err != nil {
		t.Fatalf("openssl ca -revoke: %v\n%s", err, out)
	}
	opensslResponder(t, f.Dir, f.OCSPPort)
	refreshUntil(t, f, "revoked")
	if r := sClient(t, f.TLSAddr, f.Root, "site.test"); r.Status != "revoked" {
		t.Fatalf("after the revocation and a refresh: staple %q, want revoked:\n%s", r.Status, r.Out)
	}

	// Renewal: new files in place of the old ones, then SIGHUP. The new certificate is served and stapled
	// at once; the old one leaves the cache.
	mustStaple(t, "lab", "issue", f.Dir, "renewed.site.test", "site.test", "--ip", "127.0.0.1")
	for _, ext := range []string{".pem", ".key"} {
		data, err := os.ReadFile(filepath.Join(f.Dir, "certs", "renewed.site.test"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.Dir, "certs", "site.test"+ext), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv.Cmd.Process.Signal(syscall.SIGHUP)
	srv.WaitLog("configuration reloaded", harness.Timeout)
	refreshUntil(t, f, "good") // openssl ocsp says unknown until it reloads its index
	r := waitStatus(t, f, "good", 20*time.Second)
	if r.Serial != "1002" {
		t.Errorf("after SIGHUP: serial %q, want the renewed 1002", r.Serial)
	}
	out = mustStaple(t, "cache", "ls", "--data-dir", f.DataDir)
	if strings.Contains(out, ":1001 ") || !strings.Contains(out, ":1002") {
		t.Errorf("after the renewal the cache should hold 1002 and not 1001:\n%s", out)
	}
	srv.Stop()
}

// TestServeEmbeddedDefault is 'make run' on a fresh machine: no configuration, no certificate. serve makes
// its lab under the data directory, runs the lab responder in process, and staples localhost from the first
// handshake the banner invites; the status page shows the certificate as good.
func TestServeEmbeddedDefault(t *testing.T) {
	harness.RequireTool(t, "openssl")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "staple-data")
	tlsAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	// Only the ports differ from make run's defaults, so that the test runs beside anything on 8443/8889.
	conf := filepath.Join(dir, "ports.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen = %q\nlab_responder_url = \"http://127.0.0.1:%d\"\n", tlsAddr, harness.FreePort(t))), 0o600)
	srv := harness.Start(t, binary, "serve", "--config", conf, "--data-dir", dataDir, "--log-format", "json")
	srv.WaitLog("staple serving", harness.Timeout)
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
		if r.Status == "good" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the embedded default did not staple within 15 s:\n%s", r.Out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The banner tells the command to run.
	harness.WaitFor(t, 15*time.Second, func() bool { return strings.Contains(srv.Output(), "openssl s_client -connect "+tlsAddr) },
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
	srv.Stop()

	// A second start reuses the lab: same root, same certificate.
	rootBefore, _ := os.ReadFile(root)
	srv = harness.Start(t, binary, "serve", "--config", conf, "--data-dir", dataDir, "--log-format", "json")
	srv.WaitLog("staple serving", harness.Timeout)
	if r := sClient(t, tlsAddr, root, "localhost"); r.Status != "good" {
		t.Errorf("second start: the first handshake got staple %q", r.Status)
	}
	rootAfter, _ := os.ReadFile(root)
	if !bytes.Equal(rootBefore, rootAfter) {
		t.Error("the lab CA was made again on the second start")
	}
	srv.Stop()
}

// TestServeBadInput checks that each way serve can be started wrongly is one clear line and exit 1 (2 for
// the command line), with nothing listening afterwards.
func TestServeBadInput(t *testing.T) {
	harness.RequireTool(t, "openssl")
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
		{"wrong key", []string{"--cert", f.Cert, "--key", filepath.Join(other, "certs", "other.test.key"), "--data-dir", filepath.Join(dir, "d2")}, 1, "does not match"},
		{"data dir is a file", []string{"--cert", f.Cert, "--key", f.Key, "--data-dir", filepath.Join(notDir, "sub")}, 1, "data directory"},
		{"occupied port", []string{"--cert", f.Cert, "--key", f.Key, "--data-dir", filepath.Join(dir, "d3"), "--listen", occupied.Addr().String()}, 1, "the address is in use"},
		{"key without cert", []string{"--key", f.Key}, 2, "--key, --issuer, --upstream and --forward go with --cert"},
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
