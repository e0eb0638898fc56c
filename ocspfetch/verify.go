package ocspfetch

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	"staple/ocspwire"
)

// DefaultSkew is the clock skew Verify tolerates on thisUpdate, producedAt and a delegated signer's validity
// (OpenSSL's MAX_VALIDITY_PERIOD).
const DefaultSkew = 5 * time.Minute

// VerifyOptions tunes Verify. The zero value is staple's policy: 5 min skew, no nonce, no pinned responder,
// responses without nextUpdate valid for 1 h, SHA-1 signatures accepted.
type VerifyOptions struct {
	// Skew is the clock difference tolerated; zero means DefaultSkew, negative means none.
	Skew time.Duration
	// Nonce is the nonce sent in the request; when non-nil the response must carry the same one.
	Nonce []byte
	// Responders are locally trusted responder certificates (RFC 6960 §4.2.2.2, second case): a response
	// signed by one of them is accepted without it being issued by the issuer or carrying
	// id-kp-OCSPSigning, and one with a byKey ResponderID verifies although it embeds no certificate.
	Responders []*x509.Certificate
	// NoNextUpdateTTL is how long after thisUpdate a response without nextUpdate is accepted; zero means 1 h
	// (as Policy.NoNextUpdateTTL).
	NoNextUpdateTTL time.Duration
	// RequireNextUpdate rejects responses without nextUpdate (RFC 5019 §4) with ErrNoNextUpdate.
	RequireNextUpdate bool
	// RejectSHA1 rejects responses and delegated signer certificates signed with SHA-1.
	RejectSHA1 bool
	// Cache, when non-nil, remembers certificates parsed from responses and delegations already verified,
	// so that verifying the next response of the same responder costs one signature check.
	Cache *VerifyCache
}

func (o VerifyOptions) skew() time.Duration {
	switch {
	case o.Skew < 0:
		return 0
	case o.Skew == 0:
		return DefaultSkew
	}
	return o.Skew
}

// Verify checks der, a DER OCSPResponse, as the answer about leaf issued by issuer at now, and returns the
// verified response. It accepts only what RFC 6960 allows: responseStatus successful (others come back as
// *ResponderStatusError); the SingleResponse whose whole CertID matches leaf and issuer; a signature by the
// issuer or by a delegated responder certificate issued by the issuer, with id-kp-OCSPSigning, a key usage
// that allows signing and valid at now, named by the ResponderID; thisUpdate and producedAt not after now
// plus the skew; nextUpdate after thisUpdate and after now (or, without nextUpdate, thisUpdate plus the TTL
// after now); no unknown critical extension; the nonce when one was sent. Every error wraps one of the
// package's sentinels. Verify never returns a response together with an error.
func Verify(der []byte, leaf, issuer *x509.Certificate, now time.Time, opts VerifyOptions) (*Response, error) {
	if issuer == nil {
		return nil, ErrNoIssuer
	}
	if leaf == nil || leaf.SerialNumber == nil {
		return nil, fmt.Errorf("%w: no certificate given", ErrNoMatchingResponse)
	}
	p, err := ocspwire.ParseResponse(der)
	if err != nil {
		return nil, fromWire(err)
	}
	signer, isIssuer, err := verifySigner(p, issuer, now, opts)
	if err != nil {
		return nil, err
	}
	single, err := matchSingle(p.Responses, leaf, issuer)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(p, single, now, opts); err != nil {
		return nil, err
	}
	if err := checkExtensions(p, single); err != nil {
		return nil, err
	}
	if opts.Nonce != nil {
		if err := checkNonce(p, opts.Nonce); err != nil {
			return nil, err
		}
	}
	r := &Response{
		Raw:            bytes.Clone(der),
		Status:         single.Status,
		Serial:         single.CertID.Serial,
		CertIDHash:     single.CertID.Hash,
		ProducedAt:     p.ProducedAt,
		ThisUpdate:     single.ThisUpdate,
		NextUpdate:     single.NextUpdate,
		Signer:         signer,
		SignerIsIssuer: isIssuer,
		Verified:       now,
	}
	if single.Status == ocspwire.Revoked {
		r.RevokedAt, r.RevocationReason, r.HasReason = single.RevokedAt, reasonCode(single.Reason), single.Reason != ocspwire.ReasonNone
	}
	return r, nil
}

// reasonCode is the RevocationReason of a Response: the code, or 0 when there is none.
func reasonCode(r ocspwire.Reason) int { return max(int(r), 0) }

// matchSingle returns the SingleResponse whose whole CertID (hash algorithm, issuer name hash, issuer key hash,
// serial) names leaf under issuer. Several matching ones must agree.
func matchSingle(singles []ocspwire.SingleResponse, leaf, issuer *x509.Certificate) (*ocspwire.SingleResponse, error) {
	var match *ocspwire.SingleResponse
	unsupported := false
	for i := range singles {
		s := &singles[i]
		if h := s.CertID.Hash; h == 0 || !h.Available() {
			unsupported = true
			continue
		}
		if !s.CertID.Matches(issuer, leaf.SerialNumber) {
			continue
		}
		if match == nil {
			match = s
			continue
		}
		if s.Status != match.Status || !s.RevokedAt.Equal(match.RevokedAt) || reasonCode(s.Reason) != reasonCode(match.Reason) {
			return nil, fmt.Errorf("%w: %v and %v for serial %X", ErrDuplicateResponse, match.Status, s.Status, leaf.SerialNumber)
		}
	}
	switch {
	case match != nil:
		return match, nil
	case unsupported:
		return nil, fmt.Errorf("%w: no SingleResponse with a known hash matches", ErrUnsupportedHashAlgo)
	case len(singles) == 0:
		return nil, fmt.Errorf("%w: the response holds no SingleResponse", ErrNoMatchingResponse)
	}
	return nil, fmt.Errorf("%w: serial %X under %q", ErrNoMatchingResponse, leaf.SerialNumber, issuer.Subject.CommonName)
}

// verifySigner finds the certificate that signed p and checks that it may: the issuer, a delegated responder
// of the issuer, or a pinned responder. It returns the signer and whether it is the issuer.
func verifySigner(p *ocspwire.BasicResponse, issuer *x509.Certificate, now time.Time, opts VerifyOptions) (*x509.Certificate, bool, error) {
	scheme, err := ocspwire.ParseSignatureAlgorithm(p.SignatureAlgorithm)
	if err != nil {
		return nil, false, fromWire(err)
	}
	if opts.RejectSHA1 && scheme.Hash == crypto.SHA1 {
		return nil, false, fmt.Errorf("%w: SHA-1 signature refused", ErrBadSignature)
	}
	var firstErr error
	if p.ResponderID.Matches(issuer) {
		err := scheme.Verify(issuer.PublicKey, p.TBS, p.Signature)
		if err == nil {
			return issuer, true, nil
		}
		firstErr = fromWire(err)
	}
	certs, err := opts.Cache.certificates(p.Certs)
	if err != nil {
		return nil, false, err
	}
	candidates := 0
	try := func(c *x509.Certificate, pinned bool) *x509.Certificate {
		if bytes.Equal(c.Raw, issuer.Raw) || !p.ResponderID.Matches(c) {
			return nil
		}
		candidates++
		err := checkDelegate(c, issuer, pinned, now, opts)
		if err == nil {
			err = fromWire(scheme.Verify(c.PublicKey, p.TBS, p.Signature))
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return nil
		}
		return c
	}
	for _, c := range opts.Responders {
		if s := try(c, true); s != nil {
			return s, false, nil
		}
	}
	for _, c := range certs {
		if slices.ContainsFunc(opts.Responders, func(r *x509.Certificate) bool { return bytes.Equal(r.Raw, c.Raw) }) {
			continue
		}
		if s := try(c, false); s != nil {
			return s, false, nil
		}
	}
	if firstErr != nil {
		return nil, false, firstErr
	}
	return nil, false, fmt.Errorf("%w: no certificate matches the ResponderID %v", ErrUnauthorizedSigner, p.ResponderID)
}

// checkDelegate checks that c may sign responses for issuer's certificates (RFC 6960 §4.2.2.2): issued
// directly by issuer (unless pinned), id-kp-OCSPSigning (unless pinned), a key usage that allows digital
// signatures, and valid at now within the skew.
func checkDelegate(c, issuer *x509.Certificate, pinned bool, now time.Time, opts VerifyOptions) error {
	name := c.Subject.CommonName
	if !pinned {
		if !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
			return fmt.Errorf("%w: %q is not issued by %q", ErrUnauthorizedSigner, name, issuer.Subject.CommonName)
		}
		if !opts.Cache.isDelegated(c, issuer) {
			s, err := ocspwire.CheckCertSignature(c, issuer)
			if err != nil {
				return fmt.Errorf("%w: %q is not signed by %q: %w", ErrUnauthorizedSigner, name, issuer.Subject.CommonName, fromWire(err))
			}
			if opts.RejectSHA1 && s.Hash == crypto.SHA1 {
				return fmt.Errorf("%w: %q is signed with SHA-1", ErrUnauthorizedSigner, name)
			}
			opts.Cache.rememberDelegated(c, issuer)
		}
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return fmt.Errorf("%w: %q lacks the id-kp-OCSPSigning extended key usage", ErrUnauthorizedSigner, name)
		}
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: the key usage of %q does not allow digital signatures", ErrUnauthorizedSigner, name)
	}
	skew := opts.skew()
	if now.Add(skew).Before(c.NotBefore) || now.Add(-skew).After(c.NotAfter) {
		return fmt.Errorf("%w: %q is valid from %s to %s", ErrSignerExpired, name,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// checkTimes applies RFC 6960 §3.2 and §4.2.2.1 to the matched SingleResponse.
func checkTimes(p *ocspwire.BasicResponse, s *ocspwire.SingleResponse, now time.Time, opts VerifyOptions) error {
	skew := opts.skew()
	if s.ThisUpdate.After(now.Add(skew)) {
		return fmt.Errorf("%w: thisUpdate %s, now %s", ErrNotYetValid, s.ThisUpdate.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if p.ProducedAt.After(now.Add(skew)) {
		return fmt.Errorf("%w: producedAt %s, now %s", ErrProducedInFuture, p.ProducedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if s.NextUpdate.IsZero() {
		if opts.RequireNextUpdate {
			return ErrNoNextUpdate
		}
		ttl := opts.NoNextUpdateTTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		if end := s.ThisUpdate.Add(ttl); !now.Before(end) {
			return fmt.Errorf("%w: no nextUpdate and thisUpdate %s is older than %v", ErrExpired, s.ThisUpdate.Format(time.RFC3339), ttl)
		}
		return nil
	}
	if !s.NextUpdate.After(s.ThisUpdate) {
		return fmt.Errorf("%w: thisUpdate %s, nextUpdate %s", ErrBadTimes, s.ThisUpdate.Format(time.RFC3339), s.NextUpdate.Format(time.RFC3339))
	}
	if !now.Before(s.NextUpdate) {
		return fmt.Errorf("%w: nextUpdate %s, now %s", ErrExpired, s.NextUpdate.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkExtensions(p *ocspwire.BasicResponse, s *ocspwire.SingleResponse) error {
	if e, ok := p.UnknownCritical(); ok {
		return fmt.Errorf("%w: responseExtension %v", ErrCriticalExtension, e.Id)
	}
	if e, ok := s.UnknownCritical(); ok {
		return fmt.Errorf("%w: singleExtension %v", ErrCriticalExtension, e.Id)
	}
	return nil
}

// checkNonce checks the response's nonce against the one sent. The extension value is an OCTET STRING
// wrapping the nonce (RFC 6960 §4.4.1); a bare nonce, written by some older responders, is accepted too.
func checkNonce(p *ocspwire.BasicResponse, nonce []byte) error {
	for _, e := range p.Extensions {
		if !e.Id.Equal(ocspwire.OIDNonce) {
			continue
		}
		if inner, ok := ocspwire.UnwrapNonce(e.Value); ok && bytes.Equal(inner, nonce) || bytes.Equal(e.Value, nonce) {
			return nil
		}
		return fmt.Errorf("%w: a different nonce came back", ErrNonceMismatch)
	}
	return fmt.Errorf("%w: no nonce in the response", ErrNonceMismatch)
}

// VerifyCache remembers facts about responder certificates that do not change with time: certificates
// parsed from responses, and which delegated signer certificates an issuer signed. Expiry, key usage and the
// response signature are checked every time. The zero value is ready to use and it is safe for concurrent
// use; a nil *VerifyCache caches nothing. It holds at most a few hundred entries.
type VerifyCache struct {
	mu        sync.Mutex
	parsed    map[[32]byte]*x509.Certificate
	delegated map[[64]byte]bool
}

const verifyCacheMax = 256

// parseCertificates parses DER certificates, skipping none: one that does not parse makes the response
// malformed.
func parseCertificates(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate in certs: %v", ErrMalformed, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (vc *VerifyCache) certificates(ders [][]byte) ([]*x509.Certificate, error) {
	if vc == nil {
		return parseCertificates(ders)
	}
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		k := sha256.Sum256(d)
		vc.mu.Lock()
		c := vc.parsed[k]
		vc.mu.Unlock()
		if c == nil {
			parsed, err := parseCertificates([][]byte{d})
			if err != nil {
				return nil, err
			}
			c = parsed[0]
			vc.mu.Lock()
			if vc.parsed == nil || len(vc.parsed) >= verifyCacheMax {
				vc.parsed = make(map[[32]byte]*x509.Certificate)
			}
			vc.parsed[k] = c
			vc.mu.Unlock()
		}
		out = append(out, c)
	}
	return out, nil
}

func delegationKey(c, issuer *x509.Certificate) (k [64]byte) {
	a, b := sha256.Sum256(c.Raw), sha256.Sum256(issuer.Raw)
	copy(k[:32], a[:])
	copy(k[32:], b[:])
	return k
}

func (vc *VerifyCache) isDelegated(c, issuer *x509.Certificate) bool {
	if vc == nil {
		return false
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.delegated[delegationKey(c, issuer)]
}

func (vc *VerifyCache) rememberDelegated(c, issuer *x509.Certificate) {
	if vc == nil {
		return
	}
	k := delegationKey(c, issuer)
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.delegated == nil || len(vc.delegated) >= verifyCacheMax {
		vc.delegated = make(map[[64]byte]bool)
	}
	vc.delegated[k] = true
}
