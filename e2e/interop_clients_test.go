//go:build interop

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/e2e/harness"
)

// interopLab is a lab made by staple with one leaf and its own `staple responder`.
type interopLab struct {
	kind, dir, name       string
	cert, key, root, ca   string
	leaf, issuer          *x509.Certificate
	responderPort         int
	responder             *harness.Process
	responderFlagsAtStart []string
}

func newInteropLab(t *testing.T, base, kind, name string, responderFlags ...string) *interopLab {
	t.Helper()
	l := &interopLab{kind: kind, name: name, dir: filepath.Join(base, "lab-"+kind+"-"+name), responderPort: harness.FreePort(t)}
	mustStaple(t, "lab", "init", l.dir, "--key-type", kind, "--responder-url", "http://127.0.0.1:"+strconv.Itoa(l.responderPort))
	mustStaple(t, "lab", "issue", l.dir, name, "--ip", "127.0.0.1")
	l.cert, l.key = filepath.Join(l.dir, "certs", name+".pem"), filepath.Join(l.dir, "certs", name+".key")
	l.root, l.ca = filepath.Join(l.dir, "root.pem"), filepath.Join(l.dir, "ca.pem")
	l.leaf, l.issuer = readCert(t, l.cert), readCert(t, l.ca)
	l.responderFlagsAtStart = responderFlags
	l.startResponder(t)
	return l
}

func (l *interopLab) startResponder(t *testing.T) {
	t.Helper()
	args := append([]string{"responder", "--lab", l.dir, "--listen", "127.0.0.1:" + strconv.Itoa(l.responderPort), "--log-format", "json"}, l.responderFlagsAtStart...)
	l.responder = harness.Start(t, binary, args...)
	l.responder.WaitLog("listening", harness.Timeout)
}

// verifyStaple checks a staple as a careful client does: signed by the lab's CA or its delegated signer, for
// this leaf, current, with the status wanted.
func (l *interopLab) verifyStaple(t *testing.T, der []byte, want int) {
	t.Helper()
	if der == nil {
		t.Fatalf("%s: no staple", l.name)
	}
	r, err := ocsp.ParseResponseForCert(der, l.leaf, l.issuer)
	if err != nil {
		t.Fatalf("%s: the staple does not verify: %v", l.name, err)
	}
	now := time.Now()
	if r.Status != want || !now.Before(r.NextUpdate) || r.ThisUpdate.After(now.Add(5*time.Minute)) {
		t.Fatalf("%s: staple status %d (want %d), thisUpdate %v, nextUpdate %v", l.name, r.Status, want, r.ThisUpdate, r.NextUpdate)
	}
}

// servedWorld is staple serve with one site per lab, by SNI name.
type servedWorld struct {
	base, dataDir, config, tlsAddr string
	labs                           []*interopLab
	srv                            *harness.Process
	extra                          string
}

func (w *servedWorld) writeConfig(t *testing.T) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir = %q\nlisten = %q\nlog_format = \"json\"\ndrain_timeout = \"5s\"\n%s\n", w.dataDir, w.tlsAddr, w.extra)
	for _, l := range w.labs {
		fmt.Fprintf(&b, "[[site]]\nnames = [%q]\ncert = %q\nkey = %q\n\n", l.name, l.cert, l.key)
	}
	if err := os.WriteFile(w.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newServedWorld(t *testing.T, extra string, labs ...*interopLab) *servedWorld {
	t.Helper()
	base := t.TempDir()
	w := &servedWorld{base: base, dataDir: filepath.Join(base, "data"), config: filepath.Join(base, "staple.toml"),
		tlsAddr: "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), labs: labs, extra: extra}
	w.writeConfig(t)
	w.srv = harness.Start(t, binary, "serve", "--config", w.config)
	w.srv.WaitLog("staple serving", harness.Timeout)
	for _, l := range labs {
		w.waitStaple(t, l, ocsp.Good)
	}
	return w
}

// goStaple makes a Go handshake asking for status and returns the staple.
func (w *servedWorld) goStaple(t *testing.T, l *interopLab, version uint16) []byte {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, l.root))
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", w.tlsAddr,
		&tls.Config{RootCAs: pool, ServerName: l.name, MinVersion: version, MaxVersion: version})
	if err != nil {
		t.Fatalf("Go client to %s: %v", l.name, err)
	}
	defer c.Close()
	return c.ConnectionState().OCSPResponse
}

// waitStaple waits until the staple for l says status.
func (w *servedWorld) waitStaple(t *testing.T, l *interopLab, status int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if der := w.goStaple(t, l, tls.VersionTLS13); der != nil {
			if r, err := ocsp.ParseResponseForCert(der, l.leaf, l.issuer); err == nil && r.Status == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no staple with status %d within 20 s", l.name, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A client is a TLS implementation nobody here wrote, asked to connect and report the staple.
type client struct {
	name string
	// check connects to l's site with the TLS version and asserts the staple has status want (ocsp.Good or
	// ocsp.Revoked) as the client itself sees it, verifying the bytes where the client hands them out.
	check func(t *testing.T, w *servedWorld, l *interopLab, version uint16, want int)
}

func statusWord(s int) string {
	if s == ocsp.Revoked {
		return "revoked"
	}
	return "good"
}

// runTool runs a peer's command with a deadline and returns its combined output and exit code.
func runTool(t *testing.T, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	return runCmd(t, timeout, true, name, args...)
}

// runToolStdout is runTool with stdout alone (stderr discarded): for tools that chatter on stderr.
func runToolStdout(t *testing.T, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	return runCmd(t, timeout, false, name, args...)
}

func runCmd(t *testing.T, timeout time.Duration, combined bool, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader("")
	cmd.WaitDelay = time.Second
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var out []byte
	var err error
	if combined {
		out, err = cmd.CombinedOutput()
	} else {
		out, err = cmd.Output()
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), code
}

var clients = []client{
	{"openssl s_client", func(t *testing.T, w *servedWorld, l *interopLab, v uint16, want int) {
		flag := map[uint16]string{tls.VersionTLS12: "-tls1_2", tls.VersionTLS13: "-tls1_3"}[v]
		r := sClient(t, w.tlsAddr, l.root, l.name, flag)
		if r.Status != statusWord(want) {
			t.Fatalf("s_client saw Cert Status %q, want %s:\n%s", r.Status, statusWord(want), r.Out)
		}
		// openssl verifies the same bytes: openssl ocsp -respin with the issuer and the lab's root.
		der := w.goStaple(t, l, v)
		f := filepath.Join(t.TempDir(), "staple.der")
		os.WriteFile(f, der, 0o600)
		out, code := runTool(t, 20*time.Second, "openssl", "ocsp", "-respin", f, "-issuer", l.ca, "-cert", l.cert, "-CAfile", l.root)
		if code != 0 || !strings.Contains(out, "Response verify OK") || !strings.Contains(out, ": "+statusWord(want)) {
			t.Fatalf("openssl ocsp -respin: exit %d\n%s", code, out)
		}
	}},
	{"gnutls-cli --ocsp", func(t *testing.T, w *servedWorld, l *interopLab, v uint16, want int) {
		prio := map[uint16]string{tls.VersionTLS12: "NORMAL:-VERS-ALL:+VERS-TLS1.2", tls.VersionTLS13: "NORMAL:-VERS-ALL:+VERS-TLS1.3"}[v]
		saved := filepath.Join(t.TempDir(), "staple.der")
		host, port, _ := net.SplitHostPort(w.tlsAddr)
		out, code := runTool(t, 20*time.Second, "gnutls-cli", "--x509cafile", l.root, "--ocsp", "--priority", prio,
			"--sni-hostname", l.name, "--verify-hostname", l.name, "--save-ocsp", saved, "-p", port, host)
		switch want {
		case ocsp.Good:
			if code != 0 || !strings.Contains(out, "OCSP status request") || !strings.Contains(out, "The certificate is trusted") {
				t.Fatalf("gnutls-cli: exit %d, want a stapled, trusted certificate:\n%s", code, out)
			}
			der, _ := os.ReadFile(saved)
			l.verifyStaple(t, der, want)
		case ocsp.Revoked:
			// gnutls verifies the staple and ends the handshake before it saves it.
			if code == 0 || !strings.Contains(out, "The certificate was revoked via OCSP") {
				t.Fatalf("gnutls-cli: exit %d, want the certificate refused as revoked via OCSP:\n%s", code, out)
			}
		}
	}},
	{"node tls.connect requestOCSP", func(t *testing.T, w *servedWorld, l *interopLab, v uint16, want int) {
		host, port, _ := net.SplitHostPort(w.tlsAddr)
		out, code := runTool(t, 20*time.Second, "node", "testdata/interop/ocsp-client.js", host, port, l.name, l.root,
			map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[v])
		var r struct {
			OCSP       *string `json:"ocsp"`
			Authorized bool    `json:"authorized"`
			Error      string  `json:"error"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil || code != 0 || r.Error != "" || !r.Authorized {
			t.Fatalf("node: exit %d %v:\n%s", code, err, out)
		}
		if r.OCSP == nil {
			t.Fatalf("node saw no OCSPResponse:\n%s", out)
		}
		der, err := base64.StdEncoding.DecodeString(*r.OCSP)
		if err != nil {
			t.Fatal(err)
		}
		l.verifyStaple(t, der, want)
	}},
	{"curl --cert-status", func(t *testing.T, w *servedWorld, l *interopLab, v uint16, want int) {
		_, port, _ := net.SplitHostPort(w.tlsAddr)
		vflags := map[uint16][]string{tls.VersionTLS12: {"--tlsv1.2", "--tls-max", "1.2"}, tls.VersionTLS13: {"--tlsv1.3"}}[v]
		args := append([]string{"-sS", "-o", "/dev/null", "--max-time", "15", "--cert-status", "--cacert", l.root,
			"--resolve", l.name + ":" + port + ":127.0.0.1"}, vflags...)
		out, code := runTool(t, 20*time.Second, "curl", append(args, "https://"+l.name+":"+port+"/")...)
		switch want {
		case ocsp.Good:
			if code != 0 {
				t.Fatalf("curl --cert-status: exit %d:\n%s", code, out)
			}
		case ocsp.Revoked:
			if code != 91 { // CURLE_SSL_INVALIDCERTSTATUS
				t.Fatalf("curl --cert-status: exit %d, want 91 (invalid certificate status):\n%s", code, out)
			}
		}
	}},
	{"Go crypto/tls", func(t *testing.T, w *servedWorld, l *interopLab, v uint16, want int) {
		l.verifyStaple(t, w.goStaple(t, l, v), want)
	}},
}

// TestInteropClients has every client read staple's staple, TLS 1.2 and 1.3, ECDSA and RSA: each sees a good
// staple it verifies; then both certificates are revoked in their labs, a refresh is forced, and each sees
// revoked.
func TestInteropClients(t *testing.T) {
	for _, tool := range []string{"openssl", "gnutls-cli", "node", "curl"} {
		harness.RequireTool(t, tool)
	}
	base := t.TempDir()
	labs := []*interopLab{newInteropLab(t, base, "ecdsa", "ecdsa.test"), newInteropLab(t, base, "rsa", "rsa.test")}
	w := newServedWorld(t, "", labs...)

	checkAll := func(phase string, want int) {
		for _, c := range clients {
			for _, l := range labs {
				t.Run(phase+"/"+c.name+"/"+l.kind, func(t *testing.T) {
					row := outcome(t, fmt.Sprintf("reads a %s staple (%s, TLS 1.2 and 1.3)", statusWord(want), l.kind), c.name)
					for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
						c.check(t, w, l, v, want)
					}
					row.Note("verified")
				})
			}
		}
	}
	checkAll("good", ocsp.Good)
	for _, l := range labs {
		mustStaple(t, "lab", "revoke", l.dir, l.cert, "--reason", "keyCompromise")
	}
	mustStaple(t, "cache", "refresh", "--data-dir", w.dataDir)
	for _, l := range labs {
		w.waitStaple(t, l, ocsp.Revoked)
	}
	checkAll("revoked", ocsp.Revoked)
}
