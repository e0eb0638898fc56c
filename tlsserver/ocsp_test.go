package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"staple/internal/testpki"
)

// TestOCSPRequestStaples checks that a client asking for status gets the hook's response, on TLS 1.2 and
// 1.3, with and without SNI, from all three clients, and that the hook sees the leaf and its issuer.
func TestOCSPRequestStaples(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(f.staple, nil)}
	rec.hook(srv)
	addr, port := start(t, srv)

	for _, v := range versions {
		for _, sni := range []bool{true, false} {
			name := fmt.Sprintf("%s/sni=%v", versionName(v), sni)
			t.Run("openssl/"+name, func(t *testing.T) {
				args := []string{sslFlag(v), "-status", "-noservername"}
				if sni {
					args = []string{sslFlag(v), "-status", "-servername", "localhost"}
				}
				before := rec.ocspCalls()
				r := sClient(t, addr, f, args...)
				if !r.staple || !r.hello {
					t.Fatalf("no staple or no greeting:\n%s", r.out)
				}
				if got := rec.ocspCalls() - before; got != 1 {
					t.Errorf("OCSPRequest called %d times, want 1", got)
				}
				c := rec.lastOCSP(t)
				if !c.cert.Equal(f.leaf.Cert) || c.issuer == nil || !c.issuer.Equal(f.inter.Cert) {
					t.Errorf("OCSPRequest got cert %v issuer %v, want the leaf and the intermediate", c.cert.Subject, c.issuer)
				}
				if s := rec.nextSecure(t); sni != (s.serverName == "localhost") {
					t.Errorf("ServerName %q with sni=%v", s.serverName, sni)
				}
			})
			t.Run("go/"+name, func(t *testing.T) {
				cfg := f.goConfig(v)
				if !sni {
					cfg.ServerName = ""
					cfg.InsecureSkipVerify = true // Go sends no SNI only without a name to verify
				}
				r := goDial(t, addr, cfg)
				must(t, r.err)
				if !bytes.Equal(r.state.OCSPResponse, f.staple) {
					t.Errorf("stapled %d bytes, want the %d-byte response", len(r.state.OCSPResponse), len(f.staple))
				}
				rec.nextSecure(t)
			})
			t.Run("node/"+name, func(t *testing.T) {
				c := nodeConn{Version: versionName(v), RequestOCSP: true, ServerName: str("")}
				if sni {
					c.ServerName = str("localhost")
				}
				r := nodeClient(t, port, f, c)[0]
				resp, ok := r.staple(t)
				if !r.Connected || !ok || !bytes.Equal(resp, f.staple) {
					t.Errorf("node: connected=%v OCSPResponse event=%v, %d bytes; error %q", r.Connected, ok, len(resp), r.Error)
				}
				rec.nextSecure(t)
			})
		}
	}
	rec.noError(t)
}

// TestOCSPRequestOnlyWhenAsked checks that OCSPRequest does not run for clients that did not ask for status.
func TestOCSPRequestOnlyWhenAsked(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(f.staple, nil)}
	rec.hook(srv)
	addr, port := start(t, srv)
	for _, v := range versions {
		r := sClient(t, addr, f, sslFlag(v), "-servername", "localhost")
		if !r.hello || r.staple {
			t.Errorf("openssl %s without -status: greeting=%v staple=%v", versionName(v), r.hello, r.staple)
		}
		n := nodeClient(t, port, f, nodeConn{Version: versionName(v), ServerName: str("localhost")})[0]
		if _, ok := n.staple(t); !n.Connected || ok {
			t.Errorf("node %s without requestOCSP: connected=%v OCSPResponse event=%v", versionName(v), n.Connected, ok)
		}
	}
	if n := rec.ocspCalls(); n != 0 {
		t.Errorf("OCSPRequest called %d times for clients that did not ask", n)
	}
}

// TestOCSPRequestNoResponse checks that a nil response means no staple and a completed handshake.
func TestOCSPRequestNoResponse(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(nil, nil)}
	rec.hook(srv)
	addr, port := start(t, srv)
	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			r := sClient(t, addr, f, sslFlag(v), "-status", "-servername", "localhost")
			if !r.noStaple || !r.hello {
				t.Errorf("openssl: want \"no response sent\" and a greeting:\n%s", r.out)
			}
			g := goDial(t, addr, f.goConfig(v))
			if g.err != nil || g.state.OCSPResponse != nil {
				t.Errorf("go: err %v, staple %d bytes", g.err, len(g.state.OCSPResponse))
			}
			n := nodeClient(t, port, f, nodeConn{Version: versionName(v), RequestOCSP: true, ServerName: str("localhost")})[0]
			if resp, ok := n.staple(t); !n.Connected || !ok || resp != nil {
				t.Errorf("node: connected=%v, OCSPResponse event=%v with %d bytes, want null", n.Connected, ok, len(resp))
			}
		})
	}
	if n := rec.ocspCalls(); n != 6 {
		t.Errorf("OCSPRequest called %d times, want 6", n)
	}
	rec.noError(t)
}

// TestOCSPRequestError checks that a hook error destroys the connection without an alert and reaches
// ClientError with the remote address.
func TestOCSPRequestError(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	errResponder := errors.New("responder down")
	srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(nil, errResponder)}
	rec.hook(srv)
	addr, port := start(t, srv)
	check := func(t *testing.T, client string) {
		t.Helper()
		e := rec.nextError(t)
		var he *HookError
		if !errors.Is(e.err, errResponder) || !errors.As(e.err, &he) || he.Hook != "OCSPRequest" {
			t.Errorf("%s: ClientError got %v, want the hook's error in a *HookError", client, e.err)
		}
		if e.remote == "" {
			t.Errorf("%s: no remote address", client)
		}
	}
	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			r := sClient(t, addr, f, sslFlag(v), "-status", "-servername", "localhost")
			if r.hello || bytes.Contains([]byte(r.out), []byte("alert")) {
				t.Errorf("openssl: want the connection dropped with no alert:\n%s", r.out)
			}
			check(t, "openssl")
			g := goDial(t, addr, f.goConfig(v))
			if g.err == nil {
				t.Error("go: handshake succeeded")
			} else if _, alert := peerAlert(g.err); alert {
				t.Errorf("go: got an alert: %v", g.err)
			}
			check(t, "go")
			n := nodeClient(t, port, f, nodeConn{Version: versionName(v), RequestOCSP: true, ServerName: str("localhost")})[0]
			if n.Connected || n.Error == "" || bytes.Contains([]byte(n.Error), []byte("ALERT")) {
				t.Errorf("node: connected=%v error %q, want a dropped connection with no alert", n.Connected, n.Error)
			}
			check(t, "node")
		})
	}
}

// TestOCSPRequestIssuer checks the issuer given to OCSPRequest for each way a context can hold it, as Node 20
// chooses it: from the chain, from the context's CA, none for a lone leaf; a self-signed leaf is its own
// issuer when its chain or CA holds it (as measured: node, OCSPRequest with cert and ca the same file), and
// has none otherwise.
func TestOCSPRequestIssuer(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	self := testpki.NewRoot(t, "localhost", testpki.ECDSAP256)
	leafOnly := f.leaf.TLSCertificate()
	leafOnly.Certificate = leafOnly.Certificate[:1]
	selfCert := tls.Certificate{Certificate: [][]byte{self.Cert.Raw}, PrivateKey: self.Key}
	selfTwice := tls.Certificate{Certificate: [][]byte{self.Cert.Raw, self.Cert.Raw}, PrivateKey: self.Key}
	now := time.Now()
	selfLeaf := selfSignedLeaf(t, now.Add(-time.Hour), now.Add(time.Hour)) // not a CA
	selfLeafCert := selfLeaf.TLSCertificate()
	chain := f.leaf.TLSCertificate()
	tests := []struct {
		name string
		sc   *SecureContext
		want *x509.Certificate
	}{
		{"chain", &SecureContext{Certificate: &chain}, f.inter.Cert},
		{"leaf and ca", &SecureContext{Certificate: &leafOnly, CA: []*x509.Certificate{f.root.Cert, f.inter.Cert}}, f.inter.Cert},
		{"leaf only", &SecureContext{Certificate: &leafOnly}, nil},
		{"self-signed", &SecureContext{Certificate: &selfCert}, nil},
		{"self-signed in ca", &SecureContext{Certificate: &selfCert, CA: []*x509.Certificate{self.Cert}}, self.Cert},
		{"self-signed in chain", &SecureContext{Certificate: &selfTwice}, self.Cert},
		{"self-signed leaf in ca", &SecureContext{Certificate: &selfLeafCert, CA: []*x509.Certificate{selfLeaf.Cert}}, selfLeaf.Cert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			srv := &Server{SecureContext: tt.sc, OCSPRequest: rec.stapleFrom(nil, nil)}
			rec.hook(srv)
			addr, _ := start(t, srv)
			g := goDial(t, addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
			must(t, g.err)
			c := rec.lastOCSP(t)
			if tt.want == nil && c.issuer != nil || tt.want != nil && (c.issuer == nil || !c.issuer.Equal(tt.want)) {
				t.Errorf("issuer %v, want %v", c.issuer, tt.want)
			}
		})
	}
}

// TestOCSPStapleIsPerConnection checks that each connection gets its own staple and the context's
// certificate is left untouched.
func TestOCSPStapleIsPerConnection(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	cert := f.leaf.TLSCertificate()
	n := 0
	srv := &Server{
		SecureContext: &SecureContext{Certificate: &cert},
		OCSPRequest: func(context.Context, *x509.Certificate, *x509.Certificate) ([]byte, error) {
			n++ // connections are sequential here
			return []byte(fmt.Sprintf("staple %d", n)), nil
		},
	}
	addr, _ := start(t, srv)
	for i := 1; i <= 3; i++ {
		g := goDial(t, addr, f.goConfig(tls.VersionTLS13))
		must(t, g.err)
		if want := fmt.Sprintf("staple %d", i); string(g.state.OCSPResponse) != want {
			t.Errorf("connection %d stapled %q, want %q", i, g.state.OCSPResponse, want)
		}
	}
	if cert.OCSPStaple != nil {
		t.Errorf("the context's certificate was given a staple: %q", cert.OCSPStaple)
	}
}
