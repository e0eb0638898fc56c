package tlsserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"staple/internal/testpki"
)

// selfSignedLeaf makes a self-signed client certificate that is not a CA, as `openssl req -x509` users
// often have, valid over [notBefore, notAfter].
func selfSignedLeaf(t testing.TB, notBefore, notAfter time.Time) *testpki.Leaf {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "self-signed client"},
		NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	must(t, err)
	c, err := x509.ParseCertificate(der)
	must(t, err)
	return &testpki.Leaf{Cert: c, Key: k, Chain: []*x509.Certificate{c}}
}

// sendCert makes Go's client send c whatever CA names the server asked for (by default it sends only a
// certificate issued by one of them; OpenSSL and Node send theirs anyway).
func sendCert(c *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c, nil }
}

// TestVerifyClientCodes checks authorizationError over the kinds of client certificate, against the
// codes Node 20 (OpenSSL 3.0) reported for the same kinds with requestCert: true, rejectUnauthorized:
// false and the root as ca (recorded by hand from a Node server and openssl s_client -cert [-cert_chain]).
func TestVerifyClientCodes(t *testing.T) {
	now := testpki.Epoch()
	root := testpki.NewRoot(t, "root", testpki.ECDSAP256)
	inter := root.NewIntermediate(t, "inter", testpki.ECDSAP256)
	other := root.NewUnrelatedRoot(t, "other root", testpki.ECDSAP256)
	otherInter := other.NewIntermediate(t, "other inter", testpki.ECDSAP256)
	client := testpki.LeafOptions{DNSNames: []string{"client.test"}, ClientAuth: true}
	expired, future, serverOnly := client, client, client
	expired.NotBefore, expired.NotAfter = now.AddDate(0, 0, -3), now.AddDate(0, 0, -1)
	future.NotBefore, future.NotAfter = now.AddDate(0, 0, 1), now.AddDate(0, 0, 3)
	serverOnly.ClientAuth = false

	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	badKU := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "cert-sign only"},
		NotBefore: now.AddDate(0, 0, -1), NotAfter: now.AddDate(0, 0, 1),
		KeyUsage: x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, badKU, root.Cert, k.Public(), root.Key)
	must(t, err)
	badKUCert, err := x509.ParseCertificate(der)
	must(t, err)

	viaInter := inter.Issue(t, client)
	unknownViaInter := otherInter.Issue(t, client)
	tests := []struct {
		name string
		peer []*x509.Certificate
		want string // "" = authorized
	}{
		{"root-signed", []*x509.Certificate{root.Issue(t, client).Cert}, ""},
		{"intermediate sent", viaInter.Chain, ""},
		{"intermediate not sent", viaInter.Chain[:1], "UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
		{"unknown root", []*x509.Certificate{other.Issue(t, client).Cert}, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
		{"unknown intermediate sent", unknownViaInter.Chain, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"},
		{"unknown chain to its root", append(unknownViaInter.Chain[:2:2], other.Cert), "SELF_SIGNED_CERT_IN_CHAIN"},
		{"self-signed", []*x509.Certificate{selfSignedLeaf(t, now.Add(-time.Hour), now.Add(time.Hour)).Cert}, "DEPTH_ZERO_SELF_SIGNED_CERT"},
		{"expired", []*x509.Certificate{root.Issue(t, expired).Cert}, "CERT_HAS_EXPIRED"},
		{"not yet valid", []*x509.Certificate{root.Issue(t, future).Cert}, "CERT_NOT_YET_VALID"},
		{"serverAuth only", []*x509.Certificate{root.Issue(t, serverOnly).Cert}, "INVALID_PURPOSE"},
		{"keyCertSign only", []*x509.Certificate{badKUCert}, "INVALID_PURPOSE"},
		{"expired, unknown root", []*x509.Certificate{other.Issue(t, expired).Cert}, "CERT_HAS_EXPIRED"},
		{"serverAuth only, unknown root", []*x509.Certificate{other.Issue(t, serverOnly).Cert}, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
		{"expired, serverAuth only", []*x509.Certificate{root.Issue(t, func() testpki.LeafOptions { o := expired; o.ClientAuth = false; return o }()).Cert}, "CERT_HAS_EXPIRED"},
		{"self-signed, expired", []*x509.Certificate{selfSignedLeaf(t, now.Add(-2*time.Hour), now.Add(-time.Hour)).Cert}, "CERT_HAS_EXPIRED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, code, _ := verifyClient(tt.peer, []*x509.Certificate{root.Cert}, now)
			if ok != (tt.want == "") || code != tt.want {
				t.Errorf("authorized=%v code %q, want %q", ok, code, tt.want)
			}
		})
	}
}

// TestClientCertificates checks Authorized and AuthorizationError with each client, and the two
// rejectUnauthorized behaviours: no certificate fails the handshake; an unverified one completes it and is
// closed, reported to ClientError as *UnauthorizedError.
func TestClientCertificates(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	now := time.Now()
	self := selfSignedLeaf(t, now.Add(-time.Hour), now.Add(time.Hour))
	selfCert, selfKey := writeLeaf(t, f.dir, "self", self)
	selfTLS := self.TLSCertificate()
	clientTLS := f.client.TLSCertificate()
	sc := func() *SecureContext {
		c := f.context(f.leaf)
		c.CA = []*x509.Certificate{f.root.Cert}
		return c
	}

	t.Run("allow unauthorized", func(t *testing.T) {
		rec := newRecorder()
		srv := &Server{SecureContext: sc(), RequestCert: true, AllowUnauthorized: true}
		rec.hook(srv)
		addr, port := start(t, srv)
		cases := []struct {
			name      string
			cert, key string
			tc        *tls.Certificate
			want      string
		}{
			{"none", "", "", nil, "UNABLE_TO_GET_ISSUER_CERT"},
			{"CA-signed", f.clientCert, f.clientKey, &clientTLS, ""},
			{"self-signed", selfCert, selfKey, &selfTLS, "DEPTH_ZERO_SELF_SIGNED_CERT"},
		}
		for _, c := range cases {
			for _, v := range versions {
				t.Run(c.name+"/"+versionName(v), func(t *testing.T) {
					check := func(client string) {
						t.Helper()
						s := rec.nextSecure(t)
						if s.authorized != (c.want == "") || s.authErr != c.want {
							t.Errorf("%s: authorized=%v authorizationError %q, want %q", client, s.authorized, s.authErr, c.want)
						}
					}
					args := []string{sslFlag(v), "-servername", "localhost"}
					if c.cert != "" {
						args = append(args, "-cert", c.cert, "-key", c.key)
					}
					if r := sClient(t, addr, f, args...); !r.hello {
						t.Fatalf("openssl:\n%s", r.out)
					}
					check("openssl")
					cfg := f.goConfig(v)
					if c.tc != nil {
						cfg.GetClientCertificate = sendCert(c.tc)
					}
					must(t, goDial(t, addr, cfg).err)
					check("go")
					n := nodeConn{Version: versionName(v), Cert: c.cert, Key: c.key}
					if r := nodeClient(t, port, f, n)[0]; !r.Connected {
						t.Fatalf("node: %s", r.Error)
					}
					check("node")
				})
			}
		}
		rec.noError(t)
	})

	t.Run("reject unauthorized", func(t *testing.T) {
		rec := newRecorder()
		srv := &Server{SecureContext: sc(), RequestCert: true}
		rec.hook(srv)
		addr, port := start(t, srv)
		for _, v := range versions {
			t.Run(versionName(v), func(t *testing.T) {
				// A verified certificate gets through, also on a resumed session.
				sess := filepath.Join(t.TempDir(), "sess.pem")
				a := sClient(t, addr, f, sslFlag(v), "-servername", "localhost", "-cert", f.clientCert, "-key", f.clientKey, "-sess_out", sess)
				b := sClient(t, addr, f, sslFlag(v), "-servername", "localhost", "-cert", f.clientCert, "-key", f.clientKey, "-sess_in", sess)
				if !a.hello || !b.hello || !b.reused {
					t.Fatalf("openssl with a CA-signed certificate: greeting %v/%v, reused %v\n%s", a.hello, b.hello, b.reused, b.out)
				}
				for range 2 {
					if s := rec.nextSecure(t); !s.authorized {
						t.Errorf("CA-signed certificate not authorized: %q", s.authErr)
					}
				}
				// No certificate: the handshake fails.
				if r := sClient(t, addr, f, sslFlag(v), "-servername", "localhost"); r.hello {
					t.Errorf("openssl without a certificate got through:\n%s", r.out)
				}
				if e := rec.nextError(t); !errors.Is(e.err, ErrNoClientCertificate) {
					t.Errorf("ClientError got %v, want ErrNoClientCertificate", e.err)
				}
				// A self-signed certificate: the handshake completes, then the connection is closed.
				if r := sClient(t, addr, f, sslFlag(v), "-servername", "localhost", "-cert", selfCert, "-key", selfKey); r.hello {
					t.Errorf("openssl with a self-signed certificate got through:\n%s", r.out)
				}
				cfg := f.goConfig(v)
				cfg.GetClientCertificate = sendCert(&selfTLS)
				if g := goDial(t, addr, cfg); g.err == nil && g.data != "" {
					t.Errorf("go with a self-signed certificate got %q", g.data)
				}
				if r := nodeClient(t, port, f, nodeConn{Version: versionName(v), Cert: selfCert, Key: selfKey})[0]; r.Data != "" {
					t.Errorf("node with a self-signed certificate got %q", r.Data)
				}
				for _, client := range []string{"openssl", "go", "node"} {
					e := rec.nextError(t)
					var ue *UnauthorizedError
					if !errors.As(e.err, &ue) || ue.Code != "DEPTH_ZERO_SELF_SIGNED_CERT" {
						t.Errorf("%s: ClientError got %v, want *UnauthorizedError DEPTH_ZERO_SELF_SIGNED_CERT", client, e.err)
					}
				}
			})
		}
		rec.noError(t)
	})
}
