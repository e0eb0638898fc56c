package ocspwire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ParseSignatureAlgorithm reads a DER AlgorithmIdentifier of a signature. Unlike crypto/x509 it accepts any
// RSA-PSS salt length (OpenSSL signs with the longest salt by default) and SHA-1 (still used by Microsoft's
// Online Responder). A structure it cannot read is an error wrapping ErrMalformed; an algorithm it cannot
// verify one wrapping ErrUnsupportedSignature.
func ParseSignatureAlgorithm(der []byte) (Scheme, error) {
	in := cryptobyte.String(der)
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return Scheme{}, malformed("bad signature AlgorithmIdentifier")
	}
	if oid.Equal(oidRSAPSS) {
		return parsePSSParams(ai)
	}
	for _, a := range signatureAlgorithms {
		// RSA takes NULL parameters or none; ECDSA and Ed25519 none.
		if oid.Equal(a.oid) && (ai.Empty() || a.scheme.Key == x509.RSA && readNull(&ai)) {
			return a.scheme, nil
		}
	}
	return Scheme{}, fmt.Errorf("%w: %v", ErrUnsupportedSignature, oid)
}

// parsePSSParams reads RSASSA-PSS-params (RFC 4055 §3.1) with their defaults: SHA-1, MGF1 with SHA-1, salt
// 20, trailer 1. The MGF1 hash must be the message hash (crypto/rsa uses one hash for both).
func parsePSSParams(in cryptobyte.String) (Scheme, error) {
	s := Scheme{Key: x509.RSA, PSS: true, Hash: crypto.SHA1, SaltLength: 20}
	bad := malformed("bad RSA-PSS parameters")
	var params, f cryptobyte.String
	var has bool
	if !in.ReadASN1(&params, cbasn1.SEQUENCE) || !in.Empty() || !params.ReadOptionalASN1(&f, &has, tag0C) {
		return s, bad
	}
	if has && (!readHashAlgorithm(&f, &s.Hash) || !f.Empty()) {
		return s, bad
	}
	mgfHash := crypto.SHA1
	if !params.ReadOptionalASN1(&f, &has, tag1C) {
		return s, bad
	}
	if has {
		var mgf cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !f.ReadASN1(&mgf, cbasn1.SEQUENCE) || !f.Empty() || !mgf.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidMGF1) ||
			!readHashAlgorithm(&mgf, &mgfHash) || !mgf.Empty() {
			return s, bad
		}
	}
	if !params.ReadOptionalASN1(&f, &has, tag2C) || has && (!f.ReadASN1Integer(&s.SaltLength) || !f.Empty() || s.SaltLength < 0) {
		return s, bad
	}
	var trailer int
	if !params.ReadOptionalASN1(&f, &has, tag3C) || has && (!f.ReadASN1Integer(&trailer) || !f.Empty() || trailer != 1) {
		return s, bad
	}
	if !params.Empty() || mgfHash != s.Hash {
		return s, fmt.Errorf("%w: RSA-PSS with MGF1 over another hash", ErrUnsupportedSignature)
	}
	return s, nil
}

// readHashAlgorithm reads a hash AlgorithmIdentifier with absent or NULL parameters.
func readHashAlgorithm(in *cryptobyte.String, h *crypto.Hash) bool {
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) || !ai.Empty() && !readNull(&ai) {
		return false
	}
	*h = hashFromOID(oid)
	return *h != 0
}

// add writes s as a DER AlgorithmIdentifier: NULL parameters for RSA PKCS #1 v1.5, explicit
// RSASSA-PSS-params for RSA-PSS, none for ECDSA and Ed25519.
func (s Scheme) add(b *cryptobyte.Builder) {
	addHash := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(HashOID(s.Hash))
			b.AddASN1NULL()
		})
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if s.PSS {
			b.AddASN1ObjectIdentifier(oidRSAPSS)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(tag0C, addHash)
				b.AddASN1(tag1C, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						addHash(b)
					})
				})
				b.AddASN1(tag2C, func(b *cryptobyte.Builder) { b.AddASN1Int64(int64(s.SaltLength)) })
			})
			return
		}
		for _, a := range signatureAlgorithms {
			if a.scheme == s {
				b.AddASN1ObjectIdentifier(a.oid)
				if s.Key == x509.RSA {
					b.AddASN1NULL()
				}
				return
			}
		}
		b.SetError(fmt.Errorf("%w: %v", ErrUnsupportedSignature, s))
	})
}

// sign signs msg with key under s.
func (s Scheme) sign(key crypto.Signer, msg []byte) ([]byte, error) {
	var opts crypto.SignerOpts = s.Hash
	if s.PSS {
		opts = &rsa.PSSOptions{SaltLength: s.SaltLength, Hash: s.Hash}
	}
	sig, err := key.Sign(rand.Reader, s.digest(msg), opts)
	if err != nil {
		return nil, fmt.Errorf("ocspwire: signing: %w", err)
	}
	return sig, nil
}

// digest returns what a key of s signs for msg: its hash, or msg itself for Ed25519.
func (s Scheme) digest(msg []byte) []byte {
	if s.Hash == 0 {
		return msg
	}
	return digest(s.Hash, msg)
}

// Verify checks that sig is a signature under s over msg by the key pub. A key of another kind than s names
// is an error wrapping ErrUnsupportedSignature; a signature that does not verify one wrapping
// ErrBadSignature.
func (s Scheme) Verify(pub crypto.PublicKey, msg, sig []byte) error {
	if keyAlgorithm(pub) != s.Key || s.Key == x509.UnknownPublicKeyAlgorithm {
		return fmt.Errorf("%w: %v signature from a %T key", ErrUnsupportedSignature, s, pub)
	}
	var ok bool
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if s.PSS {
			ok = rsa.VerifyPSS(k, s.Hash, s.digest(msg), sig, &rsa.PSSOptions{SaltLength: s.SaltLength, Hash: s.Hash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(k, s.Hash, s.digest(msg), sig) == nil
		}
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, s.digest(msg), sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, msg, sig)
	}
	if !ok {
		return fmt.Errorf("%w (%v)", ErrBadSignature, s)
	}
	return nil
}

// CheckCertSignature verifies that issuer's key signed c, and returns the scheme it signed with. It reads
// c's signature algorithm itself so that RSA-PSS with any salt and SHA-1, which crypto/x509 refuses, verify
// as they do in a response. Errors are those of ParseSignatureAlgorithm and Scheme.Verify.
func CheckCertSignature(c, issuer *x509.Certificate) (Scheme, error) {
	in := cryptobyte.String(c.Raw)
	var cert, ai cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.SkipASN1(cbasn1.SEQUENCE) || !cert.ReadASN1Element(&ai, cbasn1.SEQUENCE) {
		return Scheme{}, malformed("certificate structure")
	}
	s, err := ParseSignatureAlgorithm(ai)
	if err != nil {
		return s, err
	}
	return s, s.Verify(issuer.PublicKey, c.RawTBSCertificate, c.Signature)
}
