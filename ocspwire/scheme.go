package ocspwire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// Scheme is a signature algorithm as an AlgorithmIdentifier names it. The zero value names nothing.
type Scheme struct {
	// Key is the kind of key that signs: x509.RSA, x509.ECDSA or x509.Ed25519.
	Key x509.PublicKeyAlgorithm
	// Hash is the digest; zero for Ed25519, which signs the message whole.
	Hash crypto.Hash
	// PSS selects RSASSA-PSS over PKCS #1 v1.5, with MGF1 over Hash and SaltLength octets of salt.
	PSS        bool
	SaltLength int
}

// String returns a short name such as "ECDSA-SHA-256", "RSA-PSS-SHA-256" or "Ed25519".
func (s Scheme) String() string {
	name := s.Key.String()
	if s.PSS {
		name = "RSA-PSS"
	}
	if s.Hash != 0 {
		name += "-" + s.Hash.String()
	}
	return name
}

// signatureAlgorithms are the signature algorithms staple signs and verifies (RFC 3279, 4055, 5758, 8410):
// crypto/x509's name, the AlgorithmIdentifier OID, the scheme, and the name OpenSSL prints. The RSA-PSS
// rows share one OID; their parameters name the hash and the salt.
var signatureAlgorithms = []struct {
	alg    x509.SignatureAlgorithm
	oid    asn1.ObjectIdentifier
	scheme Scheme
	name   string
}{
	{x509.SHA256WithRSA, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, Scheme{Key: x509.RSA, Hash: crypto.SHA256}, "sha256WithRSAEncryption"},
	{x509.SHA384WithRSA, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, Scheme{Key: x509.RSA, Hash: crypto.SHA384}, "sha384WithRSAEncryption"},
	{x509.SHA512WithRSA, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, Scheme{Key: x509.RSA, Hash: crypto.SHA512}, "sha512WithRSAEncryption"},
	{x509.SHA1WithRSA, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, Scheme{Key: x509.RSA, Hash: crypto.SHA1}, "sha1WithRSAEncryption"},
	{x509.ECDSAWithSHA256, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}, Scheme{Key: x509.ECDSA, Hash: crypto.SHA256}, "ecdsa-with-SHA256"},
	{x509.ECDSAWithSHA384, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}, Scheme{Key: x509.ECDSA, Hash: crypto.SHA384}, "ecdsa-with-SHA384"},
	{x509.ECDSAWithSHA512, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}, Scheme{Key: x509.ECDSA, Hash: crypto.SHA512}, "ecdsa-with-SHA512"},
	{x509.ECDSAWithSHA1, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}, Scheme{Key: x509.ECDSA, Hash: crypto.SHA1}, "ecdsa-with-SHA1"},
	{x509.PureEd25519, asn1.ObjectIdentifier{1, 3, 101, 112}, Scheme{Key: x509.Ed25519}, "ED25519"},
	{x509.SHA256WithRSAPSS, oidRSAPSS, Scheme{Key: x509.RSA, Hash: crypto.SHA256, PSS: true}, "rsassaPss"},
	{x509.SHA384WithRSAPSS, oidRSAPSS, Scheme{Key: x509.RSA, Hash: crypto.SHA384, PSS: true}, "rsassaPss"},
	{x509.SHA512WithRSAPSS, oidRSAPSS, Scheme{Key: x509.RSA, Hash: crypto.SHA512, PSS: true}, "rsassaPss"},
}

// SchemeFor returns the scheme a key of pub signs with under alg. Zero alg means the key's default: ECDSA
// with SHA-256, SHA-384 or SHA-512 after the curve (P-256, P-384, P-521), sha256WithRSAEncryption, or
// Ed25519. For the RSA-PSS algorithms saltLen is the salt length, zero meaning the hash length. A key and
// algorithm that do not go together are an error wrapping ErrUnsupportedSignature.
func SchemeFor(pub crypto.PublicKey, alg x509.SignatureAlgorithm, saltLen int) (Scheme, error) {
	if alg == x509.UnknownSignatureAlgorithm {
		switch k := pub.(type) {
		case *rsa.PublicKey:
			alg = x509.SHA256WithRSA
		case *ecdsa.PublicKey:
			alg = map[elliptic.Curve]x509.SignatureAlgorithm{elliptic.P256(): x509.ECDSAWithSHA256,
				elliptic.P384(): x509.ECDSAWithSHA384, elliptic.P521(): x509.ECDSAWithSHA512}[k.Curve]
		case ed25519.PublicKey:
			alg = x509.PureEd25519
		}
	}
	for _, a := range signatureAlgorithms {
		if a.alg != alg || a.scheme.Key != keyAlgorithm(pub) {
			continue
		}
		s := a.scheme
		if s.PSS {
			s.SaltLength = saltLen
			if saltLen == 0 {
				s.SaltLength = s.Hash.Size()
			}
		}
		return s, nil
	}
	return Scheme{}, fmt.Errorf("%w: %v with a %T", ErrUnsupportedSignature, alg, pub)
}

// keyAlgorithm returns the kind of pub, or x509.UnknownPublicKeyAlgorithm.
func keyAlgorithm(pub crypto.PublicKey) x509.PublicKeyAlgorithm {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.RSA
	case *ecdsa.PublicKey:
		return x509.ECDSA
	case ed25519.PublicKey:
		return x509.Ed25519
	}
	return x509.UnknownPublicKeyAlgorithm
}
