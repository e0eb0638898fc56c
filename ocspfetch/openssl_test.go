package ocspfetch_test

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// opensslLab is a CA whose index.txt an `openssl ocsp` responder serves.
type opensslLab struct {
	bin  string
	dir  string
	ca   *testpki.CA
	good *testpki.Leaf
	rev  *testpki.Leaf
	// revokedAt is the revocation time written in index.txt (second precision).
	revokedAt time.Time
	unknown   *testpki.Leaf // issued but absent from the index
}

func newOpenSSLLab(t *testing.T, kt testpki.KeyType) *opensslLab {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	root := testpki.NewRoot(t, "OpenSSL Lab Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "OpenSSL Lab CA", kt)
	l := &opensslLab{bin: bin, dir: t.TempDir(), ca: ca,
		good: ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"good.test"}}),
		rev:  ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"revoked.test"}}),
		// openssl writes times to the second: compare at that precision.
		revokedAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Second),
	}
	l.unknown = ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"unknown.test"}})
	const ts = "060102150405Z"
	exp := l.good.Cert.NotAfter.UTC().Format(ts)
	index := fmt.Sprintf("V\t%s\t\t%X\tunknown\t/CN=good.test\nR\t%s\t%s,keyCompromise\t%X\tunknown\t/CN=revoked.test\n",
		exp, l.good.Cert.SerialNumber, exp, l.revokedAt.Format(ts), l.rev.Cert.SerialNumber)
	l.write(t, "index.txt", []byte(index))
	l.write(t, "ca.pem", ca.CertPEM())
	l.write(t, "ca.key", testpki.KeyPEM(ca.Key))
	return l
}

func (l *opensslLab) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serve starts `openssl ocsp` as a responder signing with signer (nil: the CA) and extra flags, and returns
// its URL. The process is killed when the test ends.
func (l *opensslLab) serve(t *testing.T, signer *testpki.Leaf, flags ...string) string {
	t.Helper()
	rsigner, rkey := filepath.Join(l.dir, "ca.pem"), filepath.Join(l.dir, "ca.key")
	if signer != nil {
		name := fmt.Sprintf("signer-%X", signer.Cert.SerialNumber)
		rsigner = l.write(t, name+".pem", signer.CertPEM())
		rkey = l.write(t, name+".key", signer.KeyPEM())
	}
	port := freePort(t)
	args := append([]string{"ocsp", "-index", filepath.Join(l.dir, "index.txt"), "-port", port,
		"-rsigner", rsigner, "-rkey", rkey, "-CA", filepath.Join(l.dir, "ca.pem"), "-ignore_err"}, flags...)
	cmd := exec.Command(l.bin, args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// openssl says when it listens. (Probing the port with a connection instead would wedge it: the
	// single-threaded responder waits forever on a connection that sends nothing.)
	ready := make(chan struct{})
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "waiting for OCSP client connections") {
				close(ready)
				signalled = true
			}
		}
		pr.Close()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("openssl ocsp %s:\n%s", strings.Join(flags, " "), log.String())
			logMu.Unlock()
		}
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("openssl ocsp did not start listening")
	}
	addr := "127.0.0.1:" + port
	return "http://" + addr
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Against a real `openssl ocsp -index` responder (it signs with the real clock, so the client does too).
func TestOpenSSLResponder(t *testing.T) {
	l := newOpenSSLLab(t, testpki.ECDSAP256)
	signer := l.ca.NewSigner(t, testpki.SignerOptions{NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), NoCheck: true})
	delegated := l.serve(t, signer, "-nmin", "5")
	issuerNoNext := l.serve(t, nil)
	byKey := l.serve(t, signer, "-ndays", "1", "-resp_key_id")

	tests := []struct {
		name       string
		url        string
		leaf       *testpki.Leaf
		client     func(c *ocspfetch.Client)
		wantStatus ocspwire.Status
		wantMethod string
		check      func(t *testing.T, r *ocspfetch.Response)
	}{
		{name: "good, delegated, GET", url: delegated, leaf: l.good, wantStatus: ocspwire.Good, wantMethod: "GET", check: func(t *testing.T, r *ocspfetch.Response) {
			if r.SignerIsIssuer || r.Signer.SerialNumber.Cmp(signer.Cert.SerialNumber) != 0 {
				t.Errorf("signer %q", r.Signer.Subject.CommonName)
			}
			if d := r.NextUpdate.Sub(r.ThisUpdate); d != 5*time.Minute {
				t.Errorf("validity %v, want -nmin 5", d)
			}
		}},
		{name: "good, delegated, POST", url: delegated + "/" + strings.Repeat("p", 250), leaf: l.good, wantStatus: ocspwire.Good, wantMethod: "POST"},
		{name: "revoked with reason and time", url: delegated, leaf: l.rev, wantStatus: ocspwire.Revoked, wantMethod: "GET", check: func(t *testing.T, r *ocspfetch.Response) {
			if !r.HasReason || r.RevocationReason != 1 || !r.RevokedAt.Equal(l.revokedAt) {
				t.Errorf("reason %v %d at %v, want keyCompromise at %v", r.HasReason, r.RevocationReason, r.RevokedAt, l.revokedAt)
			}
		}},
		{name: "unknown serial", url: delegated, leaf: l.unknown, wantStatus: ocspwire.Unknown, wantMethod: "GET"},
		{name: "issuer signed, embeds the issuer, no nextUpdate", url: issuerNoNext, leaf: l.good, wantStatus: ocspwire.Good, wantMethod: "GET", check: func(t *testing.T, r *ocspfetch.Response) {
			if !r.SignerIsIssuer || !r.NextUpdate.IsZero() {
				t.Errorf("issuer-signed %v, nextUpdate %v", r.SignerIsIssuer, r.NextUpdate)
			}
		}},
		{name: "issuer signed, POST", url: issuerNoNext + "/" + strings.Repeat("p", 250), leaf: l.rev, wantStatus: ocspwire.Revoked, wantMethod: "POST"},
		{name: "byKey responder id, nonce echoed, SHA-256", url: byKey, leaf: l.good, wantStatus: ocspwire.Good, wantMethod: "GET",
			client: func(c *ocspfetch.Client) { c.Nonce, c.Hash = true, crypto.SHA256 },
			check: func(t *testing.T, r *ocspfetch.Response) {
				if r.CertIDHash != crypto.SHA256 || r.NextUpdate.Sub(r.ThisUpdate) != 24*time.Hour {
					t.Errorf("hash %v, validity %v", r.CertIDHash, r.NextUpdate.Sub(r.ThisUpdate))
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ocspfetch.Client{Timeout: 5 * time.Second, Overrides: map[string]string{"http://aia.test": tc.url}}
			if tc.client != nil {
				tc.client(c)
			}
			leaf := *tc.leaf.Cert
			leaf.OCSPServer = []string{"http://aia.test"}
			r, err := c.Fetch(context.Background(), &leaf, l.ca.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.wantStatus || r.HTTP.Method != tc.wantMethod {
				t.Errorf("status %v by %s, want %v by %s", r.Status, r.HTTP.Method, tc.wantStatus, tc.wantMethod)
			}
			if r.HTTP.HasMaxAge || r.HTTP.ETag != "" {
				t.Errorf("openssl sends no cache headers, got %+v", r.HTTP)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// Signers x/crypto cannot verify: RSA-PSS with OpenSSL's default (maximal) salt, Ed25519.
func TestOpenSSLResponderSignatureSchemes(t *testing.T) {
	tests := []struct {
		name  string
		kt    testpki.KeyType
		flags []string
	}{
		{"RSA-PSS issuer", testpki.RSA2048, []string{"-ndays", "1", "-rsigopt", "rsa_padding_mode:pss"}},
		{"RSA PKCS#1 SHA-384", testpki.RSA2048, []string{"-ndays", "1", "-rmd", "sha384"}},
		{"Ed25519 issuer", testpki.Ed25519, []string{"-ndays", "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newOpenSSLLab(t, tc.kt)
			url := l.serve(t, nil, tc.flags...)
			r, err := (&ocspfetch.Client{Timeout: 5 * time.Second}).FetchURL(context.Background(), url, l.rev.Cert, l.ca.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != ocspwire.Revoked || !r.SignerIsIssuer {
				t.Errorf("status %v, issuer-signed %v", r.Status, r.SignerIsIssuer)
			}
		})
	}
}

// A response about a serial in no index row but of another CA: openssl answers unknown when the issuer
// hash matches none of its -CA; an expired index row ("E") gets a response without any SingleResponse.
func TestOpenSSLResponderOddRows(t *testing.T) {
	l := newOpenSSLLab(t, testpki.ECDSAP256)
	expired := l.ca.Issue(t, testpki.LeafOptions{})
	row := fmt.Sprintf("E\t%s\t\t%X\tunknown\t/CN=expired.test\n", expired.Cert.NotAfter.UTC().Format("060102150405Z"), expired.Cert.SerialNumber)
	data, _ := os.ReadFile(filepath.Join(l.dir, "index.txt"))
	l.write(t, "index.txt", append(data, row...))
	url := l.serve(t, nil, "-ndays", "1")
	_, err := (&ocspfetch.Client{Timeout: 5 * time.Second}).FetchURL(context.Background(), url, expired.Cert, l.ca.Cert)
	if !errors.Is(err, ocspfetch.ErrNoMatchingResponse) {
		t.Errorf("E row: %v, want ErrNoMatchingResponse", err)
	}
	other := testpki.NewRoot(t, "Not The Lab", testpki.ECDSAP256)
	stranger := other.Issue(t, testpki.LeafOptions{Serial: big.NewInt(0x1000)})
	_, err = (&ocspfetch.Client{Timeout: 5 * time.Second}).FetchURL(context.Background(), url, stranger.Cert, other.Cert)
	// openssl signs with the lab CA and embeds it; the lab CA is no delegate of the other root.
	if !errors.Is(err, ocspfetch.ErrUnauthorizedSigner) {
		t.Errorf("foreign issuer: %v, want ErrUnauthorizedSigner", err)
	}
}
