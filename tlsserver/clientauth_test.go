package tlsserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"staple/internal/testpki"
)

// TestClientAuthEveryContext checks Node's meaning of requestCert, rejectUnauthorized and ALPNProtocols given
// to the server: they hold in every context, an added one included, while each context verifies client
// certificates against its own CA (Node 20: a certificate issued by B is authorized on the host added with
// ca B and not on the default host with ca A, and the reverse). A context's ClientAuth and ALPNProtocols, the
// Go extension, override them for that context only.
func TestClientAuthEveryContext(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	other := f.root.NewUnrelatedRoot(t, "other root", testpki.ECDSAP256)
	now := time.Now()
	clientOpts := testpki.LeafOptions{DNSNames: []string{"client.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ClientAuth: true}
	certA, certB := f.client.TLSCertificate(), other.Issue(t, clientOpts).TLSCertificate()
	host := func(name string, ca *testpki.CA, auth *ClientAuth, alpn []string) *SecureContext {
		c := f.context(f.issue(t, name))
		c.CA, c.ClientAuth, c.ALPNProtocols = []*x509.Certificate{ca.Cert}, auth, alpn
		return c
	}
	tests := []struct {
		name   string
		allow  bool   // the server's AllowUnauthorized
		sni    string // "" for the default context (CA: the fixture's root)
		cert   *tls.Certificate
		want   string // "" authorized; an authorizationError; "rejected: …" a ClientError
		alpn   string
		reject error // with want "rejected": the error ClientError gets, for errors.Is
	}{
		{"default, its CA", true, "", &certA, "", "h2", nil},
		{"default, other CA", true, "", &certB, "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "h2", nil},
		{"default, none", true, "", nil, "UNABLE_TO_GET_ISSUER_CERT", "h2", nil},
		{"added, its CA", true, "b.test", &certB, "", "h2", nil},
		{"added, other CA", true, "b.test", &certA, "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "h2", nil},
		{"added, none", true, "b.test", nil, "UNABLE_TO_GET_ISSUER_CERT", "h2", nil},
		{"added, none, rejected", false, "b.test", nil, "rejected", "", ErrNoClientCertificate},
		{"added, other CA, rejected", false, "b.test", &certA, "rejected", "", &UnauthorizedError{}},
		{"added, its CA, rejecting", false, "b.test", &certB, "", "h2", nil},
		{"override: no request", false, "open.test", nil, "unrequested", "", nil},
		{"override: allow", false, "lax.test", nil, "UNABLE_TO_GET_ISSUER_CERT", "http/1.1", nil},
	}
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(tt.name+"/"+versionName(v), func(t *testing.T) {
				rec := newRecorder()
				def := f.context(f.leaf)
				def.CA = []*x509.Certificate{f.root.Cert}
				srv := &Server{SecureContext: def, RequestCert: true, AllowUnauthorized: tt.allow, ALPNProtocols: []string{"h2", "http/1.1"}}
				rec.hook(srv)
				must(t, srv.AddContext("b.test", host("b.test", other, nil, nil)))
				must(t, srv.AddContext("open.test", host("open.test", other, &ClientAuth{}, []string{})))
				must(t, srv.AddContext("lax.test", host("lax.test", other, &ClientAuth{RequestCert: true, AllowUnauthorized: true}, []string{"http/1.1"})))
				addr, _ := start(t, srv)
				cfg := &tls.Config{RootCAs: f.rootPool(), ServerName: tt.sni, InsecureSkipVerify: true,
					NextProtos: []string{"h2", "http/1.1"}, MinVersion: v, MaxVersion: v,
					GetClientCertificate: sendCert(&tls.Certificate{})}
				if tt.cert != nil {
					cfg.GetClientCertificate = sendCert(tt.cert)
				}
				g := goDial(t, addr, cfg)
				if tt.want == "rejected" {
					e := rec.nextError(t)
					if target := (*UnauthorizedError)(nil); errors.As(tt.reject, &target) {
						if !errors.As(e.err, &target) || target.Code != "UNABLE_TO_VERIFY_LEAF_SIGNATURE" {
							t.Errorf("ClientError got %v, want *UnauthorizedError UNABLE_TO_VERIFY_LEAF_SIGNATURE", e.err)
						}
					} else if !errors.Is(e.err, tt.reject) {
						t.Errorf("ClientError got %v, want %v", e.err, tt.reject)
					}
					if g.data != "" {
						t.Errorf("a rejected client got %q", g.data)
					}
					return
				}
				must(t, g.err)
				s := rec.nextSecure(t)
				want := tt.want
				if want == "unrequested" {
					want = "" // Node: authorized false, authorizationError undefined
					if s.authorized {
						t.Error("authorized without a certificate requested")
					}
				} else if s.authorized != (want == "") {
					t.Errorf("authorized %v, want %v", s.authorized, want == "")
				}
				if s.authErr != want || s.alpn != tt.alpn {
					t.Errorf("authorizationError %q ALPN %q, want %q %q", s.authErr, s.alpn, want, tt.alpn)
				}
				rec.noError(t)
			})
		}
	}
}
