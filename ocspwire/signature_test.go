package ocspwire_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"staple/internal/testpki"
	"staple/ocspwire"
)

func TestSchemeFor(t *testing.T) {
	rsaKey := testpki.NewRoot(t, "RSA", testpki.RSA2048).Key.Public()
	edKey := testpki.NewRoot(t, "Ed25519", testpki.Ed25519).Key.Public()
	ecKey := func(c elliptic.Curve) crypto.PublicKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		alg  x509.SignatureAlgorithm
		salt int
		want ocspwire.Scheme
		err  error
	}{
		{"RSA default", rsaKey, 0, 0, ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA256}, nil},
		{"RSA SHA-1", rsaKey, x509.SHA1WithRSA, 0, ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA1}, nil},
		{"RSA SHA-512", rsaKey, x509.SHA512WithRSA, 0, ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA512}, nil},
		{"RSA-PSS, salt of the hash length", rsaKey, x509.SHA384WithRSAPSS, 0, ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA384, PSS: true, SaltLength: 48}, nil},
		{"RSA-PSS, given salt", rsaKey, x509.SHA256WithRSAPSS, 222, ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA256, PSS: true, SaltLength: 222}, nil},
		{"P-256 default", ecKey(elliptic.P256()), 0, 0, ocspwire.Scheme{Key: x509.ECDSA, Hash: crypto.SHA256}, nil},
		{"P-384 default", ecKey(elliptic.P384()), 0, 0, ocspwire.Scheme{Key: x509.ECDSA, Hash: crypto.SHA384}, nil},
		{"P-521 default", ecKey(elliptic.P521()), 0, 0, ocspwire.Scheme{Key: x509.ECDSA, Hash: crypto.SHA512}, nil},
		{"P-256 with SHA-384", ecKey(elliptic.P256()), x509.ECDSAWithSHA384, 0, ocspwire.Scheme{Key: x509.ECDSA, Hash: crypto.SHA384}, nil},
		{"P-224 has no default", ecKey(elliptic.P224()), 0, 0, ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"Ed25519", edKey, 0, 0, ocspwire.Scheme{Key: x509.Ed25519}, nil},
		{"Ed25519 with an ECDSA algorithm", edKey, x509.ECDSAWithSHA256, 0, ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"RSA with an ECDSA algorithm", rsaKey, x509.ECDSAWithSHA256, 0, ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"MD5 with RSA", rsaKey, x509.MD5WithRSA, 0, ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"not a key", "key", 0, 0, ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ocspwire.SchemeFor(tt.pub, tt.alg, tt.salt)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("SchemeFor = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// algID encodes an AlgorithmIdentifier with params (DER) after the OID.
func algID(oid asn1.ObjectIdentifier, params ...byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddBytes(params)
	})
	return b.BytesOrPanic()
}

// pss encodes RSASSA-PSS-params with the given fields; a zero hash leaves its field out.
func pss(hash, mgfHash crypto.Hash, salt int) []byte {
	hashAlg := func(b *cryptobyte.Builder, h crypto.Hash) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(ocspwire.HashOID(h)) })
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if hash != 0 {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { hashAlg(b, hash) })
		}
		if mgfHash != 0 {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8})
					hashAlg(b, mgfHash)
				})
			})
		}
		if salt >= 0 {
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(int64(salt)) })
		}
	})
	return b.BytesOrPanic()
}

func TestParseSignatureAlgorithm(t *testing.T) {
	rsaPSS := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	sha256RSA := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	ecdsaSHA1 := asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	tests := []struct {
		name string
		der  []byte
		want ocspwire.Scheme
		err  error
	}{
		{"RSA with NULL", algID(sha256RSA, 5, 0), ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA256}, nil},
		{"RSA without parameters", algID(sha256RSA), ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA256}, nil},
		{"RSA with other parameters", algID(sha256RSA, 2, 1, 0), ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"ECDSA with SHA-1", algID(ecdsaSHA1), ocspwire.Scheme{Key: x509.ECDSA, Hash: crypto.SHA1}, nil},
		{"ECDSA with NULL", algID(ecdsaSHA1, 5, 0), ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"RSA-PSS defaults", algID(rsaPSS, pss(0, 0, -1)...), ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA1, PSS: true, SaltLength: 20}, nil},
		{"RSA-PSS SHA-256, longest salt", algID(rsaPSS, pss(crypto.SHA256, crypto.SHA256, 222)...), ocspwire.Scheme{Key: x509.RSA, Hash: crypto.SHA256, PSS: true, SaltLength: 222}, nil},
		{"RSA-PSS, MGF1 over another hash", algID(rsaPSS, pss(crypto.SHA256, crypto.SHA1, 32)...), ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"RSA-PSS without parameters", algID(rsaPSS), ocspwire.Scheme{}, ocspwire.ErrMalformed},
		{"MD5 with RSA", algID(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}, 5, 0), ocspwire.Scheme{}, ocspwire.ErrUnsupportedSignature},
		{"garbage", []byte("garbage"), ocspwire.Scheme{}, ocspwire.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ocspwire.ParseSignatureAlgorithm(tt.der)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) || tt.err == nil && got != tt.want {
				t.Errorf("= %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSchemeVerifyWrongKey(t *testing.T) {
	rsaCA := testpki.NewRoot(t, "RSA", testpki.RSA2048)
	ecCA := testpki.NewRoot(t, "ECDSA", testpki.ECDSAP256)
	s := ocspwire.Scheme{Key: x509.ECDSA, Hash: crypto.SHA256}
	if err := s.Verify(rsaCA.Cert.PublicKey, []byte("msg"), []byte("sig")); !errors.Is(err, ocspwire.ErrUnsupportedSignature) {
		t.Errorf("an ECDSA signature from an RSA key: %v", err)
	}
	if err := s.Verify(ecCA.Cert.PublicKey, []byte("msg"), []byte("sig")); !errors.Is(err, ocspwire.ErrBadSignature) {
		t.Errorf("a bad ECDSA signature: %v", err)
	}
	leaf := ecCA.Issue(t, testpki.LeafOptions{})
	if _, err := ocspwire.CheckCertSignature(leaf.Cert, ecCA.Cert); err != nil {
		t.Errorf("the issuer's signature: %v", err)
	}
	if _, err := ocspwire.CheckCertSignature(leaf.Cert, rsaCA.Cert); err == nil {
		t.Error("another CA's key verifies the leaf")
	}
}
