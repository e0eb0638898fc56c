package tlsserver

import (
	"bytes"
	"crypto/x509"
	"errors"
	"slices"
	"time"
)

// verifyClient verifies a client's chain (leaf first) against roots at now, and reports the outcome as Node
// does: authorized, or the code of OpenSSL's verification result. Node lets OpenSSL's verification run to
// the end and reports the last error it met, so the order of OpenSSL's checks decides the code (observed
// with Node 20 and OpenSSL 3.0): building the chain (an unknown issuer), then, on a chain that reaches a
// trusted root only, the purpose and CA checks, then every certificate's validity period, which overrides
// the rest. x509.Verify decides nothing here but whether a chain OpenSSL would accept is also one Go accepts.
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
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	chain, code := buildChain(peer, roots)
	if code == "" {
		switch {
		case !slices.ContainsFunc(chain[:len(chain)-1], func(c *x509.Certificate) bool { return !clientPurpose(c, c == leaf) }):
			code = caCode(err)
		default:
			code = "INVALID_PURPOSE"
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		switch c := chain[i]; {
		case now.Before(c.NotBefore):
			code = "CERT_NOT_YET_VALID"
		case now.After(c.NotAfter):
			code = "CERT_HAS_EXPIRED"
		}
	}
	if code == "" && err != nil {
		code = "CERT_REJECTED"
	}
	return code == "", code, err
}

// buildChain follows issuers from the leaf through the client's certificates to a root (by name and
// signature, ignoring times and constraints, as OpenSSL's chain building does). It returns the chain it
// built, root included when reached, and "" or OpenSSL's code for where it stopped.
func buildChain(peer, roots []*x509.Certificate) ([]*x509.Certificate, string) {
	chain := []*x509.Certificate{peer[0]}
	untrusted := slices.Clone(peer[1:])
	for {
		cur := chain[len(chain)-1]
		if i := slices.IndexFunc(roots, func(r *x509.Certificate) bool { return signedBy(cur, r) }); i >= 0 {
			if !cur.Equal(roots[i]) {
				chain = append(chain, roots[i])
			}
			return chain, ""
		}
		if signedBy(cur, cur) {
			if len(chain) == 1 {
				return chain, "DEPTH_ZERO_SELF_SIGNED_CERT"
			}
			return chain, "SELF_SIGNED_CERT_IN_CHAIN"
		}
		i := slices.IndexFunc(untrusted, func(c *x509.Certificate) bool { return signedBy(cur, c) })
		if i < 0 {
			if len(chain) == 1 {
				return chain, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
			}
			return chain, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
		}
		chain = append(chain, untrusted[i])
		untrusted = slices.Delete(untrusted, i, i+1)
	}
}

func signedBy(child, parent *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

// clientPurpose is OpenSSL's check for the "SSL client" purpose: an extended key usage, when present, must
// allow clientAuth; a leaf's key usage, when present, must allow digitalSignature or keyAgreement.
func clientPurpose(c *x509.Certificate, leaf bool) bool {
	if len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return false
		}
	}
	if leaf && c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement) == 0 {
		return false
	}
	return true
}

// caCode maps x509.Verify's error, for a chain that reaches a root with the right purposes, to OpenSSL's
// code for the CA checks; "" when it is none of them.
func caCode(err error) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.NotAuthorizedToSign:
			return "INVALID_CA"
		case x509.TooManyIntermediates:
			return "PATH_LENGTH_EXCEEDED"
		case x509.CANotAuthorizedForThisName:
			return "PERMITTED_VIOLATION"
		}
	}
	var uce x509.UnhandledCriticalExtension
	if errors.As(err, &uce) {
		return "UNHANDLED_CRITICAL_EXTENSION"
	}
	return ""
}
