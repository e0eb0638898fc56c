package certs_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"staple/certs"
	"staple/internal/testpki"
)

func writeFile(t *testing.T, name string, parts ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	var data []byte
	for _, b := range parts {
		data = append(data, b...)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadChainOverTestPKI covers chain order, key placement, issuer choice and Must-Staple over fixtures of
// both key types.
func TestLoadChainOverTestPKI(t *testing.T) {
	for _, kt := range []testpki.KeyType{testpki.ECDSAP256, testpki.RSA2048} {
		root := testpki.NewRoot(t, "Root", kt)
		inter := root.NewIntermediate(t, "Issuing CA", kt)
		leaf := inter.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, OCSPURLs: []string{"http://ocsp1.test", "http://ocsp2.test"}, MustStaple: true, KeyType: kt})
		plain := inter.Issue(t, testpki.LeafOptions{DNSNames: []string{"b.test"}, KeyType: kt})
		self := testpki.NewRoot(t, "self.test", kt)

		tests := []struct {
			name       string
			cert, key  []byte
			issuer     []byte
			wantLeaf   *x509.Certificate
			wantInter  int
			wantIssuer *x509.Certificate
			wantMust   bool
			wantKey    bool
		}{
			{name: "chain then separate key", cert: leaf.ChainPEM(), key: leaf.KeyPEM(), wantLeaf: leaf.Cert, wantInter: 1, wantIssuer: inter.Cert, wantMust: true, wantKey: true},
			{name: "key first, CA first, in one file", cert: concat(leaf.KeyPEM(), inter.CertPEM(), leaf.CertPEM()), wantLeaf: leaf.Cert, wantInter: 1, wantIssuer: inter.Cert, wantMust: true, wantKey: true},
			{name: "root, intermediate, leaf", cert: concat(root.CertPEM(), inter.CertPEM(), plain.CertPEM()), key: plain.KeyPEM(), wantLeaf: plain.Cert, wantInter: 2, wantIssuer: inter.Cert, wantKey: true},
			{name: "leaf only, issuer file", cert: leaf.CertPEM(), issuer: inter.CertPEM(), wantLeaf: leaf.Cert, wantIssuer: inter.Cert, wantMust: true},
			{name: "leaf only, CA bundle with root first", cert: leaf.CertPEM(), issuer: concat(root.CertPEM(), inter.CertPEM()), wantLeaf: leaf.Cert, wantIssuer: inter.Cert, wantMust: true},
			{name: "chain wins over issuer file", cert: leaf.ChainPEM(), issuer: root.CertPEM(), wantLeaf: leaf.Cert, wantInter: 1, wantIssuer: inter.Cert, wantMust: true},
			{name: "leaf only, no issuer", cert: plain.CertPEM(), wantLeaf: plain.Cert},
			{name: "self-signed has no issuer", cert: self.CertPEM(), wantLeaf: self.Cert},
		}
		for _, tt := range tests {
			t.Run(kt.String()+"/"+tt.name, func(t *testing.T) {
				certFile := writeFile(t, "chain.pem", tt.cert)
				keyFile, issuerFile := "", ""
				if tt.key != nil {
					keyFile = writeFile(t, "key.pem", tt.key)
				}
				if tt.issuer != nil {
					issuerFile = writeFile(t, "issuer.pem", tt.issuer)
				}
				c, err := certs.LoadChain(certFile, keyFile, issuerFile)
				if err != nil {
					t.Fatal(err)
				}
				if !c.Leaf.Equal(tt.wantLeaf) {
					t.Errorf("leaf = %s", c.Leaf.Subject)
				}
				if len(c.Intermediates) != tt.wantInter {
					t.Errorf("%d intermediates, want %d", len(c.Intermediates), tt.wantInter)
				}
				if (c.Issuer == nil) != (tt.wantIssuer == nil) || (c.Issuer != nil && !c.Issuer.Equal(tt.wantIssuer)) {
					t.Errorf("issuer = %v, want %v", c.Issuer, tt.wantIssuer)
				}
				if certs.MustStaple(c.Leaf) != tt.wantMust {
					t.Errorf("MustStaple = %v", !tt.wantMust)
				}
				if (c.Key != nil) != tt.wantKey {
					t.Errorf("key loaded = %v, want %v", c.Key != nil, tt.wantKey)
				}
				if tt.wantKey {
					tc, err := c.TLSCertificate()
					if err != nil || len(tc.Certificate) != 1+tt.wantInter || tc.Leaf != c.Leaf {
						t.Errorf("TLSCertificate = %d certificates, %v", len(tc.Certificate), err)
					}
				}
				if k, ok := c.CacheKey(); ok && k != certs.NewKey(tt.wantIssuer, tt.wantLeaf) {
					t.Errorf("CacheKey = %v", k)
				}
			})
		}
	}
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestLoadChainErrors(t *testing.T) {
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	a := root.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}})
	b := root.Issue(t, testpki.LeafOptions{DNSNames: []string{"b.test"}})

	t.Run("key of another certificate names both files", func(t *testing.T) {
		certFile, keyFile := writeFile(t, "a.pem", a.ChainPEM()), writeFile(t, "b.key", b.KeyPEM())
		_, err := certs.LoadChain(certFile, keyFile, "")
		if !errors.Is(err, certs.ErrKeyMismatch) {
			t.Fatalf("error = %v, want ErrKeyMismatch", err)
		}
		if !strings.Contains(err.Error(), certFile) || !strings.Contains(err.Error(), keyFile) {
			t.Errorf("error %q does not name both files", err)
		}
	})
	t.Run("two leaves without a key", func(t *testing.T) {
		_, err := certs.LoadChain(writeFile(t, "two.pem", a.CertPEM(), b.CertPEM()), "", "")
		if !errors.Is(err, certs.ErrAmbiguousLeaf) {
			t.Fatalf("error = %v, want ErrAmbiguousLeaf", err)
		}
	})
	t.Run("two leaves with a key picks the key's", func(t *testing.T) {
		c, err := certs.LoadChain(writeFile(t, "two.pem", a.CertPEM(), b.CertPEM(), b.KeyPEM()), "", "")
		if err != nil || !c.Leaf.Equal(b.Cert) || len(c.Unrelated) != 1 {
			t.Fatalf("LoadChain = %v, %v", c, err)
		}
	})
	t.Run("two keys", func(t *testing.T) {
		_, err := certs.LoadChain(writeFile(t, "k.pem", a.CertPEM(), a.KeyPEM(), b.KeyPEM()), "", "")
		if !errors.Is(err, certs.ErrSeveralKeys) {
			t.Fatalf("error = %v, want ErrSeveralKeys", err)
		}
	})
	t.Run("key file without a key", func(t *testing.T) {
		_, err := certs.LoadChain(writeFile(t, "a.pem", a.CertPEM()), writeFile(t, "nokey.pem", a.CertPEM()), "")
		if err == nil || !strings.Contains(err.Error(), "nokey.pem holds no private key") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("issuer file without certificates", func(t *testing.T) {
		_, err := certs.LoadChain(writeFile(t, "a.pem", a.CertPEM()), "", writeFile(t, "ca.pem", a.KeyPEM()))
		if !errors.Is(err, certs.ErrNoCertificate) {
			t.Fatalf("error = %v, want ErrNoCertificate", err)
		}
	})
	t.Run("key only", func(t *testing.T) {
		_, err := certs.LoadChain(writeFile(t, "k.pem", a.KeyPEM()), "", "")
		if !errors.Is(err, certs.ErrNoCertificate) {
			t.Fatalf("error = %v, want ErrNoCertificate", err)
		}
	})
}

// TestURLsAndNames reads every kind of URL and name from testpki leaves: 0, 1 and 2 OCSP URLs in order, CA
// Issuers URLs, CRL distribution points, DNS and IP names.
func TestURLsAndNames(t *testing.T) {
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	tests := []struct {
		name                string
		o                   testpki.LeafOptions
		ocsp, issuers, crls []string
		names               []string
		mustStaple          bool
	}{
		{name: "no URL", o: testpki.LeafOptions{DNSNames: []string{"x.test"}}, names: []string{"x.test"}},
		{name: "one OCSP URL", o: testpki.LeafOptions{DNSNames: []string{"x.test"}, OCSPURLs: []string{"http://one.test"}},
			ocsp: []string{"http://one.test"}, names: []string{"x.test"}},
		{name: "two OCSP URLs in order", o: testpki.LeafOptions{DNSNames: []string{"x.test"}, OCSPURLs: []string{"http://one.test", "https://two.test/ocsp"}},
			ocsp: []string{"http://one.test", "https://two.test/ocsp"}, names: []string{"x.test"}},
		{name: "CA Issuers and CRLs", o: testpki.LeafOptions{DNSNames: []string{"x.test", "y.test"}, OCSPURLs: []string{"http://ocsp.test:8080/"},
			CAIssuers: []string{"http://ca.test/ca.der", "ldap://ca.test/cn=ca"}, CRLs: []string{"http://crl.test/a.crl", "http://crl2.test/b.crl"}},
			ocsp: []string{"http://ocsp.test:8080/"}, issuers: []string{"http://ca.test/ca.der", "ldap://ca.test/cn=ca"},
			crls: []string{"http://crl.test/a.crl", "http://crl2.test/b.crl"}, names: []string{"x.test", "y.test"}},
		{name: "IP names, Must-Staple", o: testpki.LeafOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, MustStaple: true},
			names: []string{"127.0.0.1", "::1"}, mustStaple: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := root.Issue(t, tt.o)
			if got := certs.OCSPURLs(l.Cert); !slices.Equal(got, tt.ocsp) {
				t.Errorf("OCSPURLs = %q, want %q", got, tt.ocsp)
			}
			if got := certs.CAIssuerURLs(l.Cert); !slices.Equal(got, tt.issuers) {
				t.Errorf("CAIssuerURLs = %q, want %q", got, tt.issuers)
			}
			if got := certs.CRLURLs(l.Cert); !slices.Equal(got, tt.crls) {
				t.Errorf("CRLURLs = %q, want %q", got, tt.crls)
			}
			if got := certs.Names(l.Cert); !slices.Equal(got, tt.names) {
				t.Errorf("Names = %q, want %q", got, tt.names)
			}
			if got := certs.MustStaple(l.Cert); got != tt.mustStaple {
				t.Errorf("MustStaple = %v, want %v", got, tt.mustStaple)
			}
		})
	}
}

// TestTLSFeatures reads the TLS Feature extension (RFC 7633) in its forms: Must-Staple is status_request (5)
// among the features; status_request_v2 (17) alone is not; a malformed extension counts as Must-Staple.
func TestTLSFeatures(t *testing.T) {
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}
	tests := []struct {
		name       string
		value      []byte // nil: no extension
		features   []int
		err        error
		mustStaple bool
	}{
		{name: "no extension", value: nil},
		{name: "status_request", value: []byte{0x30, 0x03, 0x02, 0x01, 0x05}, features: []int{5}, mustStaple: true},
		{name: "status_request_v2 only", value: []byte{0x30, 0x03, 0x02, 0x01, 0x11}, features: []int{17}},
		{name: "both", value: []byte{0x30, 0x06, 0x02, 0x01, 0x11, 0x02, 0x01, 0x05}, features: []int{17, 5}, mustStaple: true},
		{name: "empty list", value: []byte{0x30, 0x00}, features: []int{}},
		{name: "not a SEQUENCE", value: []byte{0x02, 0x01, 0x05}, err: certs.ErrBadTLSFeature, mustStaple: true},
		{name: "not INTEGERs", value: []byte{0x30, 0x03, 0x04, 0x01, 0x05}, err: certs.ErrBadTLSFeature, mustStaple: true},
		{name: "trailing bytes", value: []byte{0x30, 0x03, 0x02, 0x01, 0x05, 0x00}, err: certs.ErrBadTLSFeature, mustStaple: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &x509.Certificate{}
			if tt.value != nil {
				c.Extensions = []pkix.Extension{{Id: oid, Value: tt.value}}
			}
			f, err := certs.TLSFeatures(c)
			if !errors.Is(err, tt.err) {
				t.Fatalf("TLSFeatures error = %v, want %v", err, tt.err)
			}
			if !slices.Equal(f, tt.features) || (f == nil) != (tt.features == nil) {
				t.Errorf("TLSFeatures = %v, want %v", f, tt.features)
			}
			if got := certs.MustStaple(c); got != tt.mustStaple {
				t.Errorf("MustStaple = %v, want %v", got, tt.mustStaple)
			}
		})
	}
	// And as testpki writes it into a signed certificate.
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	if f, err := certs.TLSFeatures(root.Issue(t, testpki.LeafOptions{MustStaple: true}).Cert); err != nil || !slices.Equal(f, []int{5}) {
		t.Errorf("testpki Must-Staple leaf: %v, %v", f, err)
	}
}
