package tlsserver

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"staple/internal/testpki"
)

// TestClientErrors checks that every way a connection can fail before the secure connection reaches
// ClientError, typed, with the client's address.
func TestClientErrors(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	srv := &Server{SecureContext: f.context(f.leaf), HandshakeTimeout: 300 * time.Millisecond}
	rec.hook(srv)
	addr, port := start(t, srv)
	other := testpki.NewRoot(t, "some other root", testpki.ECDSAP256)
	otherFile := filepath.Join(f.dir, "other.pem")
	must(t, os.WriteFile(otherFile, other.CertPEM(), 0o600))

	expect := func(t *testing.T, local string, check func(error) bool, what string) {
		t.Helper()
		e := rec.nextError(t)
		if !check(e.err) {
			t.Errorf("ClientError got %v (%T), want %s", e.err, e.err, what)
		}
		if local != "" && e.remote != local {
			t.Errorf("ClientError remote address %s, want the client's %s", e.remote, local)
		}
	}
	isAlert := func(code tls.AlertError) func(error) bool {
		return func(err error) bool {
			var a *PeerAlertError
			return errors.As(err, &a) && a.Alert == code
		}
	}

	t.Run("connect and close", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		c.Close()
		expect(t, c.LocalAddr().String(), func(err error) bool { return errors.Is(err, io.EOF) }, "io.EOF")
	})
	t.Run("not TLS", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		expect(t, c.LocalAddr().String(), func(err error) bool {
			var rh tls.RecordHeaderError
			return errors.As(err, &rh)
		}, "tls.RecordHeaderError")
	})
	t.Run("handshake timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		defer c.Close()
		start := time.Now()
		expect(t, c.LocalAddr().String(), func(err error) bool { return errors.Is(err, ErrHandshakeTimeout) }, "ErrHandshakeTimeout")
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("timed out after %v, before HandshakeTimeout", d)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("the idle client read %v, want EOF: the server closes", err)
		}
	})
	t.Run("many handshake timeouts at once", func(t *testing.T) {
		// The handshake sees the deadline and returns, racing the timer that reports it: every one must
		// still reach ClientError as ErrHandshakeTimeout, once.
		const n = 64
		for range n {
			c, err := net.Dial("tcp", addr)
			must(t, err)
			defer c.Close()
		}
		for range n {
			expect(t, "", func(err error) bool { return errors.Is(err, ErrHandshakeTimeout) }, "ErrHandshakeTimeout")
		}
	})
	t.Run("openssl rejects the certificate", func(t *testing.T) {
		// TLS 1.2: the alert is in the clear (unknown_ca, 48).
		r := sClient(t, addr, f, "-tls1_2", "-servername", "localhost", "-verify_return_error", "-CAfile", otherFile)
		if r.hello {
			t.Fatal("openssl accepted a certificate it cannot verify")
		}
		expect(t, "", isAlert(48), "a *PeerAlertError unknown_ca")
		// TLS 1.3: the alert is encrypted under keys the server has not yet switched to; any error will do.
		sClient(t, addr, f, "-tls1_3", "-servername", "localhost", "-verify_return_error", "-CAfile", otherFile)
		expect(t, "", func(err error) bool { return err != nil }, "an error")
	})
	t.Run("go rejects the certificate", func(t *testing.T) {
		cfg := f.goConfig(tls.VersionTLS12)
		cfg.RootCAs = other.Pool()
		if g := goDial(t, addr, cfg); g.err == nil {
			t.Fatal("go accepted a certificate it cannot verify")
		}
		expect(t, "", isAlert(42), "a *PeerAlertError bad_certificate") // Go's client sends bad_certificate
	})
	t.Run("node rejects the certificate", func(t *testing.T) {
		// Node's client verifies after the handshake and then closes: for the server that is a secure
		// connection, not a client error (as with a Node server).
		bad := *f
		bad.rootFile = otherFile
		n := nodeClient(t, port, &bad, nodeConn{Version: "TLSv1.2"})[0]
		if n.Connected || n.Error != "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" {
			t.Fatalf("node: connected=%v error %q", n.Connected, n.Error)
		}
		rec.nextSecure(t)
	})
	t.Run("node offers only TLS 1.1", func(t *testing.T) {
		n := nodeClient(t, port, f, nodeConn{Version: "TLSv1.1"})[0]
		if n.Connected {
			t.Fatal("node connected with TLS 1.1")
		}
		expect(t, "", func(err error) bool { return err != nil }, "an error")
	})
	rec.noError(t)
}
