package certs

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Chain is a certificate ready to serve and to staple: the leaf, the certificates sent after it, its issuer
// (when known) and its private key (when loaded).
type Chain struct {
	Leaf *x509.Certificate
	// Intermediates are the certificates after the leaf in chain order: each one issued the one before it.
	// A self-signed root in the file is kept at the end, as the file had it.
	Intermediates []*x509.Certificate
	// Unrelated are certificates of the files that are not on the leaf's path; they are not sent.
	Unrelated []*x509.Certificate
	// Issuer signed Leaf: the first of Intermediates that did, else one from the issuer file or CA bundle.
	// Nil when the leaf is self-signed or its issuer was not given: no OCSP request can be built then.
	Issuer *x509.Certificate
	// Key is the leaf's private key; nil when none was loaded (enough for fetching, not for serving).
	Key crypto.Signer

	CertFile, KeyFile, IssuerFile string
}

// LoadChain loads a certificate chain from certFile (PEM bundle, certificates in any order, optionally with
// the key), its private key from keyFile (may be "" when certFile holds it, or when no key is needed), and
// extra issuer candidates from issuerFile (an issuer certificate or a CA bundle; may be "").
//
// The key must match the leaf: a mismatch is ErrKeyMismatch naming both files.
func LoadChain(certFile, keyFile, issuerFile string) (*Chain, error) {
	b, err := LoadFile(certFile)
	if err != nil {
		return nil, err
	}
	keys := b.Keys
	if keyFile != "" && keyFile != certFile {
		kb, err := LoadFile(keyFile)
		if err != nil {
			return nil, err
		}
		if len(kb.Keys) == 0 {
			return nil, fmt.Errorf("certs: %s holds no private key", keyFile)
		}
		keys = kb.Keys
	} else {
		keyFile = certFile
	}
	if len(keys) > 1 {
		return nil, fmt.Errorf("%w in %s: keep one key per file", ErrSeveralKeys, keyFile)
	}
	var key crypto.Signer
	if len(keys) == 1 {
		key = keys[0]
	} else {
		keyFile = ""
	}
	var extra []*x509.Certificate
	if issuerFile != "" {
		ib, err := LoadFile(issuerFile)
		if err != nil {
			return nil, err
		}
		if len(ib.Certs) == 0 {
			return nil, fmt.Errorf("%w in issuer file %s", ErrNoCertificate, issuerFile)
		}
		extra = ib.Certs
	}
	c, err := NewChain(b.Certs, key, extra)
	if errors.Is(err, ErrKeyMismatch) {
		return nil, fmt.Errorf("%w: the key in %s is not the key of any certificate in %s", ErrKeyMismatch, keyFile, certFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, certFile)
	}
	c.CertFile, c.KeyFile, c.IssuerFile = certFile, keyFile, issuerFile
	return c, nil
}

// NewChain orders certs (any order) into a chain. The leaf is the certificate whose public key is key's,
// when key is given; else the one certificate that issued none of the others, preferring a non-CA. The
// issuer is chosen from the chain, then from extra, as ChooseIssuer does.
func NewChain(certs []*x509.Certificate, key crypto.Signer, extra []*x509.Certificate) (*Chain, error) {
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	leaf, err := findLeaf(certs, key)
	if err != nil {
		return nil, err
	}
	c := &Chain{Leaf: leaf, Key: key}
	used := map[*x509.Certificate]bool{leaf: true}
	for cur := leaf; ; {
		next := issuerIn(cur, certs, used)
		if next == nil {
			break
		}
		c.Intermediates = append(c.Intermediates, next)
		used[next] = true
		cur = next
	}
	for _, x := range certs {
		if !used[x] && !bytes.Equal(x.Raw, leaf.Raw) {
			c.Unrelated = append(c.Unrelated, x)
		}
	}
	c.Issuer = ChooseIssuer(leaf, c.Intermediates, extra)
	return c, nil
}

func findLeaf(certs []*x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	if key != nil {
		for _, c := range certs {
			if publicKeyEqual(c, key) {
				return c, nil
			}
		}
		return nil, fmt.Errorf("%w: no certificate in the file has the private key's public key", ErrKeyMismatch)
	}
	// Candidates: certificates that issued no other certificate of the set.
	var candidates []*x509.Certificate
	for _, c := range certs {
		issuedOther := false
		for _, o := range certs {
			if o != c && !bytes.Equal(o.Raw, c.Raw) && IsIssuer(c, o) {
				issuedOther = true
				break
			}
		}
		if !issuedOther {
			candidates = append(candidates, c)
		}
	}
	var nonCA []*x509.Certificate
	for _, c := range candidates {
		if !c.IsCA {
			nonCA = append(nonCA, c)
		}
	}
	switch {
	case len(nonCA) == 1:
		return nonCA[0], nil
	case len(nonCA) == 0 && len(candidates) == 1:
		return candidates[0], nil
	case len(nonCA) == 0 && len(candidates) == 0:
		return certs[0], nil // a cycle (cross-signed pair): take the file's first
	}
	return nil, fmt.Errorf("%w: %d certificates could each be the leaf; load them with their key, or one leaf per file", ErrAmbiguousLeaf, max(len(nonCA), len(candidates)))
}

// issuerIn returns the first certificate of set, not yet used, that issued c.
func issuerIn(c *x509.Certificate, set []*x509.Certificate, used map[*x509.Certificate]bool) *x509.Certificate {
	for _, x := range set {
		if !used[x] && !bytes.Equal(x.Raw, c.Raw) && IsIssuer(x, c) {
			return x
		}
	}
	return nil
}

// IsIssuer reports whether candidate issued c: candidate's subject is c's issuer name and c's signature
// verifies under candidate's key (OpenSSL's X509_check_issued, which Node uses, checks the same).
func IsIssuer(candidate, c *x509.Certificate) bool {
	if candidate == nil || c == nil || !bytes.Equal(candidate.RawSubject, c.RawIssuer) {
		return false
	}
	return c.CheckSignatureFrom(candidate) == nil
}

// ChooseIssuer chooses leaf's issuer the way Node's OCSPRequest does: the first certificate in chain that
// issued the leaf, else the first such certificate in extra (the "ca" option, an issuer file, a CA bundle),
// else nil. A self-signed leaf has no issuer: nil.
func ChooseIssuer(leaf *x509.Certificate, chain, extra []*x509.Certificate) *x509.Certificate {
	for _, list := range [][]*x509.Certificate{chain, extra} {
		for _, c := range list {
			if !bytes.Equal(c.Raw, leaf.Raw) && IsIssuer(c, leaf) {
				return c
			}
		}
	}
	return nil
}

// CacheKey returns the chain's cache key; false when the issuer is unknown.
func (c *Chain) CacheKey() (Key, bool) {
	if c.Issuer == nil {
		return Key{}, false
	}
	return NewKey(c.Issuer, c.Leaf), true
}

// TLSCertificate returns the chain as a tls.Certificate (leaf then intermediates, Leaf set), for serving.
// It needs the private key.
func (c *Chain) TLSCertificate() (tls.Certificate, error) {
	if c.Key == nil {
		return tls.Certificate{}, fmt.Errorf("certs: no private key loaded for %s", c.CertFile)
	}
	tc := tls.Certificate{PrivateKey: servingKey(c.Key), Leaf: c.Leaf, Certificate: [][]byte{c.Leaf.Raw}}
	for _, x := range c.Intermediates {
		tc.Certificate = append(tc.Certificate, x.Raw)
	}
	return tc, nil
}
