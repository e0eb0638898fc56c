package ocspfetch

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Signature algorithm OIDs (RFC 3279, 4055, 5758, 8410).
var (
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

type sigKind int

const (
	sigRSAPKCS1 sigKind = iota + 1
	sigRSAPSS
	sigECDSA
	sigEd25519
)

// sigScheme is a parsed signature AlgorithmIdentifier.
type sigScheme struct {
	kind    sigKind
	hash    crypto.Hash // 0 for Ed25519
	saltLen int         // RSA-PSS only
}

func (s sigScheme) String() string {
	name := map[sigKind]string{sigRSAPKCS1: "RSA", sigRSAPSS: "RSA-PSS", sigECDSA: "ECDSA", sigEd25519: "Ed25519"}[s.kind]
	if s.hash != 0 {
		name += "-" + s.hash.String()
	}
	return name
}

var errUnsupportedSignature = errors.New("unsupported signature algorithm")

// parseSignatureAlgorithm reads a DER AlgorithmIdentifier of a signature. Unlike crypto/x509 it accepts any
// RSA-PSS salt length (OpenSSL signs with the longest salt by default) and SHA-1 (still used by Microsoft's
// Online Responder); what it cannot verify is an error.
func parseSignatureAlgorithm(der []byte) (sigScheme, error) {
	in := cryptobyte.String(der)
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return sigScheme{}, fmt.Errorf("%w: bad signature AlgorithmIdentifier", ErrMalformed)
	}
	noParams := ai.Empty()
	nullParams := len(ai) == 2 && ai[0] == 0x05 && ai[1] == 0x00
	rsaParams := noParams || nullParams
	switch {
	case oid.Equal(oidSHA256WithRSA) && rsaParams:
		return sigScheme{sigRSAPKCS1, crypto.SHA256, 0}, nil
	case oid.Equal(oidSHA384WithRSA) && rsaParams:
		return sigScheme{sigRSAPKCS1, crypto.SHA384, 0}, nil
	case oid.Equal(oidSHA512WithRSA) && rsaParams:
		return sigScheme{sigRSAPKCS1, crypto.SHA512, 0}, nil
	case oid.Equal(oidSHA1WithRSA) && rsaParams:
		return sigScheme{sigRSAPKCS1, crypto.SHA1, 0}, nil
	case oid.Equal(oidECDSAWithSHA256) && noParams:
		return sigScheme{sigECDSA, crypto.SHA256, 0}, nil
	case oid.Equal(oidECDSAWithSHA384) && noParams:
		return sigScheme{sigECDSA, crypto.SHA384, 0}, nil
	case oid.Equal(oidECDSAWithSHA512) && noParams:
		return sigScheme{sigECDSA, crypto.SHA512, 0}, nil
	case oid.Equal(oidECDSAWithSHA1) && noParams:
		return sigScheme{sigECDSA, crypto.SHA1, 0}, nil
	case oid.Equal(oidEd25519) && noParams:
		return sigScheme{sigEd25519, 0, 0}, nil
	case oid.Equal(oidRSAPSS):
		return parsePSSParams(ai)
	}
	return sigScheme{}, fmt.Errorf("%w: %w %v", ErrBadSignature, errUnsupportedSignature, oid)
}

// parsePSSParams reads RSASSA-PSS-params (RFC 4055 §3.1) with their defaults: SHA-1, MGF1 with SHA-1, salt
// 20, trailer 1. The MGF1 hash must be the message hash (crypto/rsa uses one hash for both).
func parsePSSParams(in cryptobyte.String) (sigScheme, error) {
	bad := fmt.Errorf("%w: bad RSA-PSS parameters", ErrMalformed)
	var params cryptobyte.String
	if !in.ReadASN1(&params, cbasn1.SEQUENCE) || !in.Empty() {
		return sigScheme{}, bad
	}
	s := sigScheme{kind: sigRSAPSS, hash: crypto.SHA1, saltLen: 20}
	mgfHash := crypto.SHA1
	var f cryptobyte.String
	var has bool
	if !params.ReadOptionalASN1(&f, &has, tag0C) {
		return s, bad
	}
	if has {
		h, ok := readHashAlgorithm(&f)
		if !ok || !f.Empty() {
			return s, bad
		}
		s.hash = h
	}
	if !params.ReadOptionalASN1(&f, &has, tag1C) {
		return s, bad
	}
	if has {
		var mgf cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !f.ReadASN1(&mgf, cbasn1.SEQUENCE) || !f.Empty() || !mgf.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidMGF1) {
			return s, bad
		}
		h, ok := readHashAlgorithm(&mgf)
		if !ok || !mgf.Empty() {
			return s, bad
		}
		mgfHash = h
	}
	if !params.ReadOptionalASN1(&f, &has, tag2C) {
		return s, bad
	}
	if has {
		if !f.ReadASN1Integer(&s.saltLen) || !f.Empty() || s.saltLen < 0 {
			return s, bad
		}
	}
	if !params.ReadOptionalASN1(&f, &has, cbasn1.Tag(3).Constructed().ContextSpecific()) {
		return s, bad
	}
	if has {
		var trailer int
		if !f.ReadASN1Integer(&trailer) || !f.Empty() || trailer != 1 {
			return s, bad
		}
	}
	if !params.Empty() || s.hash == 0 || mgfHash != s.hash {
		return s, fmt.Errorf("%w: %w: RSA-PSS with MGF1 over another hash", ErrBadSignature, errUnsupportedSignature)
	}
	return s, nil
}

// readHashAlgorithm reads a hash AlgorithmIdentifier with absent or NULL parameters.
func readHashAlgorithm(in *cryptobyte.String) (crypto.Hash, bool) {
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return 0, false
	}
	if !ai.Empty() && !(len(ai) == 2 && ai[0] == 0x05 && ai[1] == 0x00) {
		return 0, false
	}
	h := hashFromOID(oid)
	return h, h != 0
}

// checkSignature verifies sig over msg with pub under s.
func checkSignature(pub crypto.PublicKey, s sigScheme, msg, sig []byte) error {
	var digest []byte
	if s.hash != 0 {
		h := s.hash.New()
		h.Write(msg)
		digest = h.Sum(nil)
	}
	var ok bool
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch s.kind {
		case sigRSAPKCS1:
			ok = rsa.VerifyPKCS1v15(k, s.hash, digest, sig) == nil
		case sigRSAPSS:
			ok = rsa.VerifyPSS(k, s.hash, digest, sig, &rsa.PSSOptions{SaltLength: s.saltLen, Hash: s.hash}) == nil
		default:
			return fmt.Errorf("%w: %v signature from an RSA key", ErrBadSignature, s)
		}
	case *ecdsa.PublicKey:
		if s.kind != sigECDSA {
			return fmt.Errorf("%w: %v signature from an ECDSA key", ErrBadSignature, s)
		}
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		if s.kind != sigEd25519 {
			return fmt.Errorf("%w: %v signature from an Ed25519 key", ErrBadSignature, s)
		}
		ok = ed25519.Verify(k, msg, sig)
	default:
		return fmt.Errorf("%w: unsupported public key %T", ErrBadSignature, pub)
	}
	if !ok {
		return fmt.Errorf("%w (%v)", ErrBadSignature, s)
	}
	return nil
}

// checkCertSignature verifies that issuer's key signed c. It reads c's signature algorithm itself so that
// RSA-PSS with any salt and SHA-1 (refused by crypto/x509) verify as they do in the response.
func checkCertSignature(c, issuer *x509.Certificate) (sigScheme, error) {
	in := cryptobyte.String(c.Raw)
	var cert, tbs, ai cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&ai, cbasn1.SEQUENCE) {
		return sigScheme{}, fmt.Errorf("%w: certificate structure", ErrMalformed)
	}
	s, err := parseSignatureAlgorithm(ai)
	if err != nil {
		return s, err
	}
	return s, checkSignature(issuer.PublicKey, s, c.RawTBSCertificate, c.Signature)
}
