package tlsserver

import (
	"bytes"
	"crypto/x509"
	"errors"
	"time"
)

// verifyClient verifies a client's chain (leaf first) against roots at now, and reports the outcome as
// Node does: authorized, or OpenSSL's error code. OpenSSL first builds the chain (an unknown issuer wins
// over every other error), then checks the purpose, then signatures and validity times; x509.Verify checks
// the leaf's validity first, so the issuer question is settled here before asking it.
func verifyClient(peer []*x509.Certificate, roots []*x509.Certificate, now time.Time) (bool, string, error) {
	leaf := peer[0]
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	_, err := leaf.Verify(opts)
	if err == nil {
		return true, "", nil
	}
	if code := chainCode(peer, roots); code != "" {
		return false, code, err
	}
	// The chain reaches a root: ask about the purpose at a time the leaf is valid, as OpenSSL checks it
	// before validity times.
	purpose := opts
	purpose.CurrentTime = leaf.NotBefore
	var inv x509.CertificateInvalidError
	if _, perr := leaf.Verify(purpose); errors.As(perr, &inv) && inv.Reason == x509.IncompatibleUsage {
		return false, "INVALID_PURPOSE", err
	}
	return false, invalidCode(err, now), err
}

// chainCode follows issuers from the leaf through the client's chain to roots (by name and signature,
// ignoring times and constraints, as OpenSSL's chain building does) and returns OpenSSL's code for where
// it stops, or "" when it reaches a root.
func chainCode(peer, roots []*x509.Certificate) string {
	cur := peer[0]
	untrusted := peer[1:]
	for depth := 0; depth <= len(peer); depth++ {
		for _, r := range roots {
			if signedBy(cur, r) {
				return ""
			}
		}
		if selfSigned(cur) {
			if depth == 0 {
				return "DEPTH_ZERO_SELF_SIGNED_CERT"
			}
			return "SELF_SIGNED_CERT_IN_CHAIN"
		}
		next := -1
		for i, c := range untrusted {
			if signedBy(cur, c) {
				next = i
				break
			}
		}
		if next < 0 {
			if depth == 0 {
				return "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
			}
			return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
		}
		cur = untrusted[next]
		untrusted = append(untrusted[:next:next], untrusted[next+1:]...)
	}
	return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
}

func signedBy(child, parent *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

func selfSigned(c *x509.Certificate) bool { return signedBy(c, c) }

// invalidCode maps x509.Verify's error, for a chain that reaches a root, to OpenSSL's code.
func invalidCode(err error, now time.Time) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			if inv.Cert != nil && now.Before(inv.Cert.NotBefore) {
				return "CERT_NOT_YET_VALID"
			}
			return "CERT_HAS_EXPIRED"
		case x509.IncompatibleUsage:
			return "INVALID_PURPOSE"
		case x509.NotAuthorizedToSign, x509.CANotAuthorizedForThisName, x509.CANotAuthorizedForExtKeyUsage:
			return "INVALID_CA"
		case x509.TooManyIntermediates:
			return "PATH_LENGTH_EXCEEDED"
		}
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return "CERT_SIGNATURE_FAILURE"
	}
	return "CERT_REJECTED"
}
