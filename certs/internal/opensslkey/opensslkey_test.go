//go:build openssl && cgo && linux

package opensslkey

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testKey is made once: an RSA-2048 key takes seconds on a loaded machine.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func TestSignVerifies(t *testing.T) {
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("staple"))
	for _, tc := range []struct {
		name string
		opts crypto.SignerOpts
	}{{"pkcs1v15", crypto.SHA256}, {"pss", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}}} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := s.Sign(rand.Reader, d[:], tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := tc.opts.(*rsa.PSSOptions); ok {
				err = rsa.VerifyPSS(&k.PublicKey, crypto.SHA256, d[:], sig, p)
			} else {
				err = rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	k, _ := testKey()
	s, _ := NewSigner(k)
	d := sha256.Sum256([]byte("staple"))
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	b.Run("openssl", func(b *testing.B) {
		for b.Loop() {
			s.Sign(rand.Reader, d[:], opts)
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			k.Sign(rand.Reader, d[:], opts)
		}
	})
}

// crypto/tls signs its handshakes with the Signer, TLS 1.3 (PSS) and 1.2 alike, and the client verifies them.
func TestTLSHandshake(t *testing.T) {
	k, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		client, server := net.Pipe()
		srv := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: s}}})
		go func() { srv.Handshake(); srv.Close() }()
		c := tls.Client(client, &tls.Config{ServerName: "a.test", RootCAs: pool, MinVersion: v, MaxVersion: v})
		if err := c.Handshake(); err != nil {
			t.Errorf("%s: %v", tls.VersionName(v), err)
		}
		io.ReadAll(c) // the server's tickets, then its close: net.Pipe writes wait for a reader
		c.Close()
	}
}
