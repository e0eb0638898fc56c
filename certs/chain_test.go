package certs_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
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

func pemOf(c *x509.Certificate) []byte { return (&testpki.Leaf{Cert: c}).CertPEM() }

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

func TestOCSPURLsAndNames(t *testing.T) {
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	for _, urls := range [][]string{nil, {"http://one.test"}, {"http://one.test", "https://two.test/ocsp"}} {
		l := root.Issue(t, testpki.LeafOptions{DNSNames: []string{"x.test"}, OCSPURLs: urls})
		got := certs.OCSPURLs(l.Cert)
		if strings.Join(got, " ") != strings.Join(urls, " ") {
			t.Errorf("OCSPURLs = %q, want %q", got, urls)
		}
		if n := certs.Names(l.Cert); len(n) == 0 || n[0] != "x.test" {
			t.Errorf("Names = %q", n)
		}
	}
}

func TestTLSFeatures(t *testing.T) {
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	must := root.Issue(t, testpki.LeafOptions{MustStaple: true})
	f, err := certs.TLSFeatures(must.Cert)
	if err != nil || len(f) != 1 || f[0] != 5 {
		t.Errorf("TLSFeatures = %v, %v; want [5]", f, err)
	}
	plain := root.Issue(t, testpki.LeafOptions{})
	if f, err := certs.TLSFeatures(plain.Cert); f != nil || err != nil || certs.MustStaple(plain.Cert) {
		t.Errorf("plain certificate: %v, %v", f, err)
	}
}
