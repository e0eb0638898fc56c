package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// opensslFiles writes an EC key (key.pem) and a self-signed certificate for it (cert.pem) in a directory, and
// returns a function that runs openssl there and returns the bytes of the file it wrote.
func opensslFiles(t *testing.T) (run func(out string, args ...string) []byte) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skipf("openssl is not installed: %v", err)
	}
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pfx.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "key.pem"), pemBlock("EC PRIVATE KEY", sec1, nil), 0o600))
	must(os.WriteFile(filepath.Join(dir, "cert.pem"), pemBlock("CERTIFICATE", der, nil), 0o600))
	return func(out string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %q: %v\n%s", args, err, b)
		}
		b, err := os.ReadFile(filepath.Join(dir, out))
		must(err)
		return b
	}
}

// TestParsePEMPassphrase reads keys encrypted the ways openssl (and so Node's users) encrypt them, with the
// right passphrase, a wrong one, and a scheme it does not read.
func TestParsePEMPassphrase(t *testing.T) {
	run := opensslFiles(t)
	pass := "pass:s3cret"
	tests := []struct {
		name       string
		args       []string
		passphrase string
		err        error
	}{
		{"legacy PEM, AES-256", []string{"ec", "-in", "key.pem", "-aes256", "-passout", pass, "-out", "out.pem"}, "s3cret", nil},
		{"legacy PEM, 3DES", []string{"ec", "-in", "key.pem", "-des3", "-passout", pass, "-out", "out.pem"}, "s3cret", nil},
		{"PKCS#8 PBES2, AES-256, HMAC-SHA256", []string{"pkey", "-in", "key.pem", "-aes256", "-passout", pass, "-out", "out.pem"}, "s3cret", nil},
		{"PKCS#8 PBES2, AES-128, HMAC-SHA1", []string{"pkcs8", "-topk8", "-in", "key.pem", "-v2", "aes128", "-v2prf", "hmacWithSHA1", "-passout", pass, "-out", "out.pem"}, "s3cret", nil},
		{"PKCS#8 PBES2, 3DES, HMAC-SHA512", []string{"pkcs8", "-topk8", "-in", "key.pem", "-v2", "des3", "-v2prf", "hmacWithSHA512", "-passout", pass, "-out", "out.pem"}, "s3cret", nil},
		{"PKCS#8, wrong passphrase", []string{"pkey", "-in", "key.pem", "-aes256", "-passout", pass, "-out", "out.pem"}, "wrong", ErrBadPassphrase},
		{"legacy PEM, wrong passphrase", []string{"ec", "-in", "key.pem", "-aes256", "-passout", pass, "-out", "out.pem"}, "wrong", ErrBadPassphrase},
		{"PKCS#8 scrypt", []string{"pkcs8", "-topk8", "-in", "key.pem", "-scrypt", "-passout", pass, "-out", "out.pem"}, "s3cret", ErrUnsupportedEncryption},
		{"not encrypted", []string{"pkey", "-in", "key.pem", "-out", "out.pem"}, "anything", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := run("out.pem", tt.args...)
			b, err := ParsePEMPassphrase(data, "out.pem", []byte(tt.passphrase))
			if !errors.Is(err, tt.err) || err != nil && tt.err == nil {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			if err == nil && len(b.Keys) != 1 {
				t.Errorf("%d keys", len(b.Keys))
			}
			if _, err := ParsePEM(data, "out.pem"); tt.name != "not encrypted" && !errors.Is(err, ErrEncryptedKey) {
				t.Errorf("ParsePEM: %v, want ErrEncryptedKey", err)
			}
		})
	}
}

// TestParsePKCS12 reads a PFX file in the legacy algorithms x/crypto/pkcs12 reads, and refuses OpenSSL 3's
// default and a wrong passphrase with errors that say which.
func TestParsePKCS12(t *testing.T) {
	run := opensslFiles(t)
	legacy := []string{"pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-passout", "pass:s3cret", "-out", "out.pfx",
		"-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"}
	modern := []string{"pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-passout", "pass:s3cret", "-out", "out.pfx"}
	tests := []struct {
		name       string
		args       []string
		passphrase string
		err        error
	}{
		{"3DES, SHA-1 MAC", legacy, "s3cret", nil},
		{"wrong passphrase", legacy, "wrong", ErrBadPassphrase},
		{"OpenSSL 3 default", modern, "s3cret", ErrUnsupportedEncryption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParsePKCS12(run("out.pfx", tt.args...), "out.pfx", tt.passphrase)
			if !errors.Is(err, tt.err) || err != nil && tt.err == nil {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			c, err := NewChain(b.Certs, b.Keys[0], nil)
			if err != nil || c.Leaf.Subject.CommonName != "pfx.test" {
				t.Errorf("chain %v, %v", c, err)
			}
		})
	}
}
