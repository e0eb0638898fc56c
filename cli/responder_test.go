package cli

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/certs"
	"staple/lab"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// responderRun is a staple responder command running in-process.
type responderRun struct {
	url  string
	done chan struct{}
	err  error // Run's result, once done is closed
}

// startResponder runs `staple responder ARGS` on a free loopback port until the test ends (the command is
// interrupted then, and must exit 0) and returns its URL, read from its "listening" log line.
func startResponder(t *testing.T, args ...string) *responderRun {
	t.Helper()
	logs, logw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	r := &responderRun{done: make(chan struct{})}
	go func() {
		r.err = Run(ctx, Env{Stdout: io.Discard, Stderr: logw},
			append([]string{"responder", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...))
		logw.Close()
		close(r.done)
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() { // to the end, so that logging never blocks
			var ev struct {
				Message string `json:"message"`
				URL     string `json:"url"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Message == "listening" {
				urls <- ev.URL
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if r.err != nil {
			t.Errorf("responder exited with %v after the interrupt, want nil", r.err)
		}
	})
	select {
	case r.url = <-urls:
	case <-r.done:
		t.Fatalf("responder exited before listening: %v", r.err)
	case <-time.After(20 * time.Second):
		t.Fatal("responder did not start listening")
	}
	return r
}

// tool runs a real peer in dir with a deadline; the test is skipped when it is not installed.
func tool(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	out, err := tool(t, dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func wantAll(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func concatFiles(t *testing.T, dst string, srcs ...string) string {
	t.Helper()
	var data []byte
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestResponderCommandLab serves a lab made by staple lab init: openssl ocsp and staple's fetcher verify its
// answers, --validity and --fault take effect, the fault endpoint switches faults at run time, and a
// revocation with staple lab revoke shows from the very next request.
func TestResponderCommandLab(t *testing.T) {
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "lab")
	for _, args := range [][]string{{"lab", "init", dir}, {"lab", "issue", dir, "good.test"}, {"lab", "issue", dir, "victim.test"}} {
		if out, err := run(t, now, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	l, err := lab.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := readCert(t, l.Path(lab.CertsDir, "good.test.pem"))
	victim := readCert(t, l.Path(lab.CertsDir, "victim.test.pem"))
	victimSerial := certs.NewKey(l.CA, victim).SerialHex()
	rs := startResponder(t, "--lab", dir, "--validity", "10m", "--fault", victimSerial+":http503=7s")
	client := &ocspfetch.Client{Timeout: 5 * time.Second}
	ctx := context.Background()

	r, err := client.FetchURL(ctx, rs.url, good, l.CA)
	if err != nil || r.Status != ocspwire.Good || r.NextUpdate.Sub(r.ThisUpdate) != 10*time.Minute || !r.Signer.Equal(l.Signer) {
		t.Fatalf("good: %+v, %v", r, err)
	}
	var he *ocspfetch.HTTPError
	if _, err := client.FetchURL(ctx, rs.url, victim, l.CA); !errors.As(err, &he) || he.StatusCode != 503 || he.RetryAfter != 7*time.Second {
		t.Errorf("--fault: %v, want HTTP 503 with Retry-After 7s", err)
	}

	// The fault endpoint: clear the victim's fault, make the next request for anyone try later.
	for _, req := range []struct{ method, path, body string }{
		{http.MethodDelete, "/-/faults/" + victimSerial, ""},
		{http.MethodPut, "/-/faults/all", "try-later,times=1"},
	} {
		hreq, err := http.NewRequest(req.method, rs.url+req.path, strings.NewReader(req.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: HTTP %d", req.method, req.path, resp.StatusCode)
		}
	}
	if _, err := client.FetchURL(ctx, rs.url, victim, l.CA); !errors.Is(err, ocspfetch.ErrTryLater) {
		t.Errorf("after PUT try-later: %v, want ErrTryLater", err)
	}
	if r, err := client.FetchURL(ctx, rs.url, victim, l.CA); err != nil || r.Status != ocspwire.Good {
		t.Errorf("after the fault ran out: %+v, %v", r, err)
	}

	// openssl ocsp as the client, with and without a nonce; then a revocation, seen by the next request.
	work := t.TempDir()
	chain := concatFiles(t, filepath.Join(work, "chain.pem"), l.Path(lab.CACertFile), l.Path(lab.RootCertFile))
	query := func(nonce string) string {
		return mustTool(t, work, "openssl", "ocsp", "-issuer", l.Path(lab.CACertFile), "-cert", l.Path(lab.CertsDir, "victim.test.pem"),
			"-url", rs.url, "-CAfile", chain, "-timeout", "5", nonce)
	}
	wantAll(t, query("-nonce"), "Response verify OK", "victim.test.pem: good")
	wantAll(t, query("-no_nonce"), "Response verify OK", "victim.test.pem: good")
	if out, err := run(t, now, "lab", "revoke", dir, victimSerial, "--reason", "keyCompromise"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	wantAll(t, query("-no_nonce"), "Response verify OK", "victim.test.pem: revoked", "Reason: keyCompromise")
}

// opensslCA is a CA made with openssl alone (openssl req, openssl ca over an index.txt), as a lab built
// without staple would be: a root, an issuing CA kept by openssl ca, a delegated OCSP signer and a leaf.
type opensslCA struct {
	dir                          string
	index, ca, caKey, chain      string
	signer, signerKey, leaf      string
	leafCert, caCert, signerCert *x509.Certificate
}

const opensslCAConfig = `[ ca ]
default_ca = issuing
[ issuing ]
dir = .
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 30
policy = pol_any
unique_subject = no
[ pol_any ]
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:leaf.test
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:http://127.0.0.1:18888
[ ocsp_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,OCSPSigning
noCheck = ignored
authorityKeyIdentifier = keyid
`

func newOpenSSLCA(t *testing.T) *opensslCA {
	t.Helper()
	d := t.TempDir()
	c := &opensslCA{dir: d, index: filepath.Join(d, "index.txt"), ca: filepath.Join(d, "ca.pem"), caKey: filepath.Join(d, "ca.key"),
		chain: filepath.Join(d, "chain.pem"), signer: filepath.Join(d, "ocsp.pem"), signerKey: filepath.Join(d, "ocsp.key"),
		leaf: filepath.Join(d, "leaf.pem")}
	for name, data := range map[string]string{"index.txt": "", "serial": "1000\n", "index.txt.attr": "unique_subject = no\n", "ca.cnf": opensslCAConfig} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(d, "newcerts"), 0o700); err != nil {
		t.Fatal(err)
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	ssl := func(args ...string) { mustTool(t, d, "openssl", args...) }
	ssl(append(append([]string{"req", "-x509"}, ec...), "-keyout", "root.key", "-out", "root.pem", "-days", "3650", "-subj", "/CN=OpenSSL Root CA",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")...)
	ssl(append(append([]string{"req", "-new"}, ec...), "-keyout", "ca.key", "-out", "ca.csr", "-subj", "/CN=OpenSSL Issuing CA")...)
	if err := os.WriteFile(filepath.Join(d, "ext.cnf"), []byte("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ssl("x509", "-req", "-in", "ca.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-days", "1825", "-extfile", "ext.cnf", "-out", "ca.pem")
	concatFiles(t, c.chain, c.ca, filepath.Join(d, "root.pem"))
	for _, n := range []string{"leaf", "ocsp"} {
		ssl(append(append([]string{"req", "-new"}, ec...), "-keyout", n+".key", "-out", n+".csr", "-subj", "/CN="+n+".test")...)
	}
	ssl("ca", "-batch", "-config", "ca.cnf", "-extensions", "leaf_ext", "-in", "leaf.csr", "-out", "leaf.pem", "-notext")
	ssl("ca", "-batch", "-config", "ca.cnf", "-extensions", "ocsp_ext", "-in", "ocsp.csr", "-out", "ocsp.pem", "-notext")
	c.leafCert, c.caCert, c.signerCert = readCert(t, c.leaf), readCert(t, c.ca), readCert(t, c.signer)
	return c
}

// TestResponderCommandOpenSSLCA is the other way round from a lab: staple responder over a CA that openssl
// made and openssl ca keeps, signing with its delegated signer or with the CA itself. openssl ocsp and
// staple's fetcher verify the answers, and a revocation by openssl ca -revoke shows from the very next
// request.
func TestResponderCommandOpenSSLCA(t *testing.T) {
	c := newOpenSSLCA(t)
	delegated := startResponder(t, "--index", c.index, "--ca", c.ca, "--signer", c.signer, "--key", c.signerKey)
	issuerSigned := startResponder(t, "--index", c.index, "--ca", c.ca, "--key", c.caKey)
	client := &ocspfetch.Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	query := func(url string) string {
		return mustTool(t, c.dir, "openssl", "ocsp", "-issuer", c.ca, "-cert", c.leaf, "-url", url, "-CAfile", c.chain, "-timeout", "5")
	}
	for _, tt := range []struct {
		name     string
		url      string
		byIssuer bool
	}{
		{"delegated signer", delegated.url, false},
		{"the CA signs", issuerSigned.url, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantAll(t, query(tt.url), "Response verify OK", c.leaf+": good")
			r, err := client.FetchURL(ctx, tt.url, c.leafCert, c.caCert)
			if err != nil || r.Status != ocspwire.Good || r.SignerIsIssuer != tt.byIssuer {
				t.Fatalf("fetcher: %+v, %v", r, err)
			}
			if !tt.byIssuer && !r.Signer.Equal(c.signerCert) {
				t.Errorf("signed by %v, want ocsp.test", r.Signer.Subject)
			}
		})
	}
	mustTool(t, c.dir, "openssl", "ca", "-config", "ca.cnf", "-revoke", "leaf.pem", "-crl_reason", "superseded")
	wantAll(t, query(delegated.url), "Response verify OK", c.leaf+": revoked", "Reason: superseded")
	r, err := client.FetchURL(ctx, issuerSigned.url, c.leafCert, c.caCert)
	if err != nil || r.Status != ocspwire.Revoked || !r.HasReason || r.RevocationReason != int(ocspwire.ReasonSuperseded) {
		t.Errorf("fetcher after openssl ca -revoke: %+v, %v", r, err)
	}
}

// TestResponderCommandErrors checks the command-line errors of staple responder.
func TestResponderCommandErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	if _, err := run(t, time.Now(), "lab", "init", dir); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"nothing to serve", nil},
		{"--lab with --index", []string{"--lab", dir, "--index", filepath.Join(dir, "index.txt")}},
		{"--index without --key", []string{"--index", filepath.Join(dir, "index.txt"), "--ca", filepath.Join(dir, "ca.pem")}},
		{"short validity", []string{"--lab", dir, "--validity", "1s"}},
		{"bad fault", []string{"--lab", dir, "--fault", "explode"}},
		{"bad log level", []string{"--lab", dir, "--log-level", "loud"}},
		{"operand", []string{"--lab", dir, "extra"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), Env{Stdout: io.Discard, Stderr: io.Discard}, append([]string{"responder"}, tt.args...))
			if ExitCode(err) != ExitUsage {
				t.Errorf("exit %d (%v), want %d", ExitCode(err), err, ExitUsage)
			}
		})
	}
	err := Run(context.Background(), Env{Stdout: io.Discard, Stderr: io.Discard}, []string{"responder", "--lab", t.TempDir()})
	if !errors.Is(err, lab.ErrNotLab) {
		t.Errorf("--lab on a directory that is no lab: %v, want lab.ErrNotLab", err)
	}
}
