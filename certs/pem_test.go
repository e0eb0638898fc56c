package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"staple/atomicfile"
)

func pemBlock(typ string, der []byte, headers map[string]string) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers})
}

func mustDER(t *testing.T, der []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestParsePEMKeys covers every key encoding the loader accepts and the ones it must refuse.
func TestParsePEMKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte { b, err := x509.MarshalPKCS8PrivateKey(k); return mustDER(t, b, err) }
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want crypto.PublicKey
		err  error
	}{
		{"PKCS#1 RSA", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk), nil), rk.Public(), nil},
		{"PKCS#8 RSA", pemBlock("PRIVATE KEY", pkcs8(rk), nil), rk.Public(), nil},
		{"SEC1 EC", pemBlock("EC PRIVATE KEY", sec1, nil), ec.Public(), nil},
		{"SEC1 EC after EC PARAMETERS", append(pemBlock("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}, nil), pemBlock("EC PRIVATE KEY", sec1, nil)...), ec.Public(), nil},
		{"PKCS#8 EC", pemBlock("PRIVATE KEY", pkcs8(ec), nil), ec.Public(), nil},
		{"PKCS#8 Ed25519", pemBlock("PRIVATE KEY", pkcs8(ed), nil), ed.Public(), nil},
		{"PKCS#8 encrypted", pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}, nil), nil, ErrEncryptedKey},
		{"legacy encrypted PEM", pemBlock("RSA PRIVATE KEY", []byte{1, 2, 3}, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}), nil, ErrEncryptedKey},
		{"garbage key", pemBlock("PRIVATE KEY", []byte("not a key"), nil), nil, ErrBadPrivateKey},
		{"PKCS#1 label on PKCS#8 bytes", pemBlock("RSA PRIVATE KEY", pkcs8(ec), nil), nil, ErrBadPrivateKey},
		{"certificate request", pemBlock("CERTIFICATE REQUEST", []byte{0x30, 0}, nil), nil, ErrUnsupportedPEM},
		{"bad certificate", pemBlock("CERTIFICATE", []byte("nope"), nil), nil, ErrBadCertificate},
		{"no PEM at all", []byte("hello"), nil, ErrNoPEM},
		{"empty file", nil, nil, ErrNoPEM},
		{"broken second block", append(pemBlock("PRIVATE KEY", pkcs8(ec), nil), []byte("-----BEGIN CERTIFICATE-----\n!!!\n")...), nil, errTrailingGarbage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParsePEM(tt.data, "test.pem")
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error = %v, want %v", err, tt.err)
				}
				if !strings.Contains(err.Error(), "test.pem") {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Keys) != 1 {
				t.Fatalf("%d keys, want 1", len(b.Keys))
			}
			if !b.Keys[0].Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
				t.Error("wrong key")
			}
		})
	}
}

func TestParsePEMDERCertificate(t *testing.T) {
	b, err := LoadFile(filepath.Join("..", "testdata", "certs", "google-leaf.pem"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := ParsePEM(b.Certs[0].Raw, "leaf.der")
	if err != nil || len(der.Certs) != 1 || !der.Certs[0].Equal(b.Certs[0]) {
		t.Fatalf("DER certificate: %v", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadFile(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	if _, err := LoadFile(dir); !errors.Is(err, atomicfile.ErrNotRegular) {
		t.Errorf("directory: %v, want atomicfile.ErrNotRegular", err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file, or a device without end, is read no further than the bound.
	for _, path := range []string{big, "/dev/zero"} {
		if _, err := LoadFile(path); !errors.Is(err, atomicfile.ErrTooLarge) {
			t.Errorf("%s: %v, want atomicfile.ErrTooLarge", path, err)
		}
	}
}

// FuzzParsePEM feeds the loader arbitrary files: it must never panic, and whatever it accepts must be usable.
func FuzzParsePEM(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "certs", "*.pem"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	f.Add(pemBlock("EC PRIVATE KEY", sec1, nil))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParsePEM(data, "fuzz.pem")
		if err != nil {
			return
		}
		for _, c := range b.Certs {
			if c == nil || len(c.Raw) == 0 {
				t.Fatal("nil certificate accepted")
			}
		}
		for _, k := range b.Keys {
			if k == nil || k.Public() == nil {
				t.Fatal("unusable key accepted")
			}
		}
		if len(b.Certs) > 0 {
			if _, err := NewChain(b.Certs, nil, nil); err != nil && !errors.Is(err, ErrAmbiguousLeaf) {
				t.Fatalf("NewChain: %v", err)
			}
		}
	})
}
