package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"testing"

	"staple/internal/testpki"
)

// TestSetContextsReplacesAll swaps the default context and the named ones while serving, as a configuration
// reload does, and checks that the next handshakes see only the new ones: a renewed default certificate,
// a dropped name that falls back to the default, and a new name.
func TestSetContextsReplacesAll(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	old := f.issue(t, "old.example.test")
	srv := &Server{SecureContext: f.context(f.leaf)}
	rec := newRecorder()
	rec.hook(srv)
	must(t, srv.AddContext("old.example.test", f.context(old)))
	addr, _ := start(t, srv)

	serial := func(sni string) string {
		t.Helper()
		cfg := &tls.Config{RootCAs: f.rootPool(), ServerName: sni, InsecureSkipVerify: true}
		r := goDial(t, addr, cfg)
		must(t, r.err)
		rec.nextSecure(t)
		return r.state.PeerCertificates[0].SerialNumber.String()
	}
	if got := serial("old.example.test"); got != old.Cert.SerialNumber.String() {
		t.Fatalf("before: old.example.test got serial %s", got)
	}

	renewed := f.issue(t, "localhost")
	added := f.issue(t, "new.example.test")
	must(t, srv.SetContexts(f.context(renewed), []HostContext{{"new.example.test", f.context(added)}}))
	for sni, want := range map[string]*testpki.Leaf{
		"localhost":        renewed,
		"old.example.test": renewed, // the name is gone: the default answers
		"new.example.test": added,
	} {
		if got := serial(sni); got != want.Cert.SerialNumber.String() {
			t.Errorf("after SetContexts: %s got serial %s, want %s", sni, got, want.Cert.SerialNumber)
		}
	}
	if srv.SecureContext.Certificate.Leaf != renewed.Cert && !srv.SecureContext.Certificate.Leaf.Equal(renewed.Cert) {
		t.Error("SetContexts did not set the SecureContext field")
	}
}

// TestSetContextsInvalidChangesNothing checks that a bad context leaves the server as it was.
func TestSetContextsInvalidChangesNothing(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	srv := &Server{SecureContext: f.context(f.leaf)}
	before := srv.SecureContext
	err := srv.SetContexts(f.context(f.leaf), []HostContext{{"bad.test", &SecureContext{}}})
	if !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("SetContexts with an empty context: %v, want ErrNoCertificate", err)
	}
	if err := srv.SetContexts(f.context(f.leaf), []HostContext{{"a(b", f.context(f.leaf)}}); !errors.Is(err, ErrBadPattern) {
		t.Errorf("SetContexts with an unbalanced parenthesis: %v, want ErrBadPattern", err)
	}
	if srv.SecureContext != before {
		t.Error("a failed SetContexts changed the SecureContext field")
	}
}

// TestConnReportsOCSP checks that SecureConnection can tell whether OCSPRequest ran and what was stapled:
// the staple on a full handshake that asked, nothing when the client did not ask or resumed.
func TestConnReportsOCSP(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	type report struct {
		requested bool
		staple    []byte
		resumed   bool
	}
	reports := make(chan report, 8)
	sc := f.context(f.leaf)
	leaf := f.leaf.Cert
	sc.Certificate.Leaf = leaf
	srv := &Server{
		SecureContext: sc,
		OCSPRequest:   func(context.Context, *x509.Certificate, *x509.Certificate) ([]byte, error) { return f.staple, nil },
		SecureConnection: func(c *Conn) {
			if c.Leaf() != leaf {
				t.Errorf("Leaf() is not the context's Certificate.Leaf")
			}
			reports <- report{c.OCSPRequested(), c.OCSPStaple(), c.Resumed()}
			io.WriteString(c, "hello\n")
		},
	}
	addr, _ := start(t, srv)
	for _, v := range versions {
		cache := tls.NewLRUClientSessionCache(4)
		cfg := f.goConfig(v)
		cfg.ClientSessionCache = cache
		must(t, goDial(t, addr, cfg).err)
		if r := <-reports; !r.requested || !bytes.Equal(r.staple, f.staple) || r.resumed {
			t.Errorf("%s full handshake: requested=%v staple=%d bytes resumed=%v", versionName(v), r.requested, len(r.staple), r.resumed)
		}
		must(t, goDial(t, addr, cfg).err)
		if r := <-reports; r.requested || r.staple != nil || !r.resumed {
			t.Errorf("%s resumed handshake: requested=%v staple=%d bytes resumed=%v", versionName(v), r.requested, len(r.staple), r.resumed)
		}
		res := sClient(t, addr, f, sslFlag(v), "-servername", "localhost")
		if !res.hello {
			t.Fatalf("openssl %s: no greeting:\n%s", versionName(v), res.out)
		}
		if r := <-reports; r.requested || r.staple != nil {
			t.Errorf("%s without status_request: requested=%v staple=%d bytes", versionName(v), r.requested, len(r.staple))
		}
	}
}
