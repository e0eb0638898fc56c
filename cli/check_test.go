package cli

import (
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspwire"
)

// stapleServer serves leaf with the given staple (nil: none) on a local port.
func stapleServer(t *testing.T, leaf *testpki.Leaf, staple []byte) string {
	t.Helper()
	cert := leaf.TLSCertificate()
	cert.OCSPStaple = staple
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func TestCheck(t *testing.T) {
	root := testpki.NewRoot(t, "Check Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "Check CA", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"check.test"}, OCSPURLs: []string{"http://ocsp.check.test"}})
	other := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"other.test"}})
	caFile := filepath.Join(t.TempDir(), "root.pem")
	os.WriteFile(caFile, root.CertPEM(), 0o600)
	now := testpki.Epoch().Add(time.Minute)

	tests := []struct {
		name   string
		staple []byte
		code   int
		want   string
		golden string
	}{
		{"good", ca.Respond(t, leaf.Cert, testpki.ResponseOptions{}), ExitOK, "staple: good, verified", "check-good"},
		{"revoked", ca.Respond(t, leaf.Cert, testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 1}), ExitRevoked, "(keyCompromise)", ""},
		{"unknown", ca.Respond(t, leaf.Cert, testpki.ResponseOptions{Status: ocspwire.Unknown}), ExitUnknown, "staple: unknown, verified", ""},
		{"none", nil, ExitFailure, "no OCSP response was stapled", ""},
		{"another certificate's", ca.Respond(t, other.Cert, testpki.ResponseOptions{}), ExitFailure, "invalid staple: ocspfetch: no SingleResponse", ""},
		{"expired", ca.Respond(t, leaf.Cert, testpki.ResponseOptions{ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-24 * time.Hour)}), ExitFailure, "invalid staple: ocspfetch: nextUpdate has passed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := stapleServer(t, leaf, tt.staple)
			out, err := run(t, now, "check", addr, "--servername", "check.test", "--ca", caFile)
			if code := ExitCode(err); code != tt.code {
				t.Errorf("exit %d (%v), want %d", code, err, tt.code)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
			if !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Errorf("chain not verified:\n%s", out)
			}
			if tt.golden != "" {
				// The address and the negotiated cipher vary by run and machine.
				out = regexp.MustCompile(`(?m)^CONNECTED\(.*$`).ReplaceAllString(out, "CONNECTED(ADDRESS)")
				golden(t, tt.golden, out)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		addr := stapleServer(t, leaf, tests[0].staple)
		out, err := run(t, now, "check", addr, "--servername", "check.test", "--ca", caFile, "--json", "--tls", "1.2")
		if err != nil || !strings.Contains(out, `"status": "good"`) || !strings.Contains(out, `"tls_version": "TLS 1.2"`) {
			t.Errorf("%v\n%s", err, out)
		}
	})
}

func TestCheckErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no address", []string{"check"}, ExitUsage, "check: give one HOST:PORT"},
		{"not host:port", []string{"check", "example.com"}, ExitUsage, `check: "example.com" is not HOST:PORT`},
		{"bad version", []string{"check", "a:1", "--tls", "1.1"}, ExitUsage, `--tls "1.1"`},
		{"refused", []string{"check", closed, "--timeout", "2s"}, ExitFailure, "check " + closed + ":"},
		{"missing ca file", []string{"check", closed, "--ca", "/nonexistent.pem"}, ExitFailure, "/nonexistent.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, time.Now(), tt.args...)
			if ExitCode(err) != tt.code || !strings.Contains(Message(err), tt.want) || strings.Contains(Message(err), "\n") {
				t.Errorf("exit %d %q; want %d and %q", ExitCode(err), Message(err), tt.code, tt.want)
			}
		})
	}
}

// TestCheckAgainstOpenSSLServer checks the staple of a real peer: openssl s_server -status_file.
func TestCheckAgainstOpenSSLServer(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	root := testpki.NewRoot(t, "Check Root", testpki.RSA2048)
	leaf := root.Issue(t, testpki.LeafOptions{DNSNames: []string{"openssl.test"}, KeyType: testpki.RSA2048})
	dir := t.TempDir()
	certFile, keyFile := leaf.WriteFiles(t, dir)
	resp := filepath.Join(dir, "resp.der")
	os.WriteFile(resp, root.Respond(t, leaf.Cert, testpki.ResponseOptions{Status: ocspwire.Revoked}), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("openssl", "s_server", "-accept", "127.0.0.1:"+strconv.Itoa(port), "-cert", certFile, "-key", keyFile,
		"-status_file", resp, "-quiet", "-naccept", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("openssl s_server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process's port, with a deadline
	}
	caFile := filepath.Join(dir, "root.pem")
	os.WriteFile(caFile, root.CertPEM(), 0o600)
	for _, v := range []string{"1.2", "1.3"} {
		out, err := run(t, testpki.Epoch(), "check", addr, "--servername", "openssl.test", "--ca", caFile, "--tls", v)
		if ExitCode(err) != ExitRevoked || !strings.Contains(out, "staple: revoked, verified") {
			t.Errorf("TLS %s: exit %d (%v)\n%s", v, ExitCode(err), err, out)
		}
	}
}
