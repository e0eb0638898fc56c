package ocspfetch

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"

	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
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
	p, err := parseResponse(der)
	if err != nil {
		return nil, err
	}
	signer, isIssuer, err := verifySigner(p, issuer, now, opts)
	if err != nil {
		return nil, err
	}
	single, err := matchSingle(p.responses, leaf, issuer)
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
		Status:         single.status,
		Serial:         single.serial,
		CertIDHash:     hashFromOID(single.hashOID),
		ProducedAt:     p.producedAt,
		ThisUpdate:     single.thisUpdate,
		NextUpdate:     single.nextUpdate,
		Signer:         signer,
		SignerIsIssuer: isIssuer,
		Verified:       now,
	}
	if single.status == Revoked {
		r.RevokedAt, r.RevocationReason, r.HasReason = single.revokedAt, single.reason, single.hasReason
	}
	return r, nil
}

// certIDHashes are the issuer's name and key hashes under one algorithm, computed once per Verify.
type certIDHashes struct {
	hash          crypto.Hash
	name, keyHash []byte
}

// matchSingle returns the SingleResponse whose whole CertID (hash algorithm, issuer name hash, issuer key hash,
// serial) names leaf under issuer. Several matching ones must agree.
func matchSingle(singles []singleResponse, leaf, issuer *x509.Certificate) (*singleResponse, error) {
	keyBits, err := subjectPublicKeyBits(issuer)
	if err != nil {
		return nil, err
	}
	var computed []certIDHashes
	hashesFor := func(h crypto.Hash) certIDHashes {
		for _, c := range computed {
			if c.hash == h {
				return c
			}
		}
		nh, kh := h.New(), h.New()
		nh.Write(issuer.RawSubject)
		kh.Write(keyBits)
		c := certIDHashes{hash: h, name: nh.Sum(nil), keyHash: kh.Sum(nil)}
		computed = append(computed, c)
		return c
	}
	var match *singleResponse
	unsupported := false
	for i := range singles {
		s := &singles[i]
		h := hashFromOID(s.hashOID)
		if h == 0 || !h.Available() {
			unsupported = true
			continue
		}
		if s.serial.Cmp(leaf.SerialNumber) != 0 {
			continue
		}
		want := hashesFor(h)
		if !bytes.Equal(s.nameHash, want.name) || !bytes.Equal(s.keyHash, want.keyHash) {
			continue
		}
		if match == nil {
			match = s
			continue
		}
		if s.status != match.status || !s.revokedAt.Equal(match.revokedAt) || s.reason != match.reason {
			return nil, fmt.Errorf("%w: %v and %v for serial %X", ErrDuplicateResponse, match.status, s.status, leaf.SerialNumber)
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
func verifySigner(p *basicResponse, issuer *x509.Certificate, now time.Time, opts VerifyOptions) (*x509.Certificate, bool, error) {
	scheme, err := parseSignatureAlgorithm(p.sigAlg)
	if err != nil {
		return nil, false, err
	}
	if opts.RejectSHA1 && scheme.hash == crypto.SHA1 {
		return nil, false, fmt.Errorf("%w: SHA-1 signature refused", ErrBadSignature)
	}
	var firstErr error
	if p.responderIDMatches(issuer) {
		err := checkSignature(issuer.PublicKey, scheme, p.tbs, p.signature)
		if err == nil {
			return issuer, true, nil
		}
		firstErr = err
	}
	certs, err := opts.Cache.certificates(p.certs)
	if err != nil {
		return nil, false, err
	}
	candidates := 0
	try := func(c *x509.Certificate, pinned bool) *x509.Certificate {
		if bytes.Equal(c.Raw, issuer.Raw) || !p.responderIDMatches(c) {
			return nil
		}
		candidates++
		err := checkDelegate(c, issuer, pinned, now, opts)
		if err == nil {
			err = checkSignature(c.PublicKey, scheme, p.tbs, p.signature)
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
	return nil, false, fmt.Errorf("%w: no certificate matches the ResponderID %s", ErrUnauthorizedSigner, p.responderIDString())
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
			s, err := checkCertSignature(c, issuer)
			if err != nil {
				return fmt.Errorf("%w: %q is not signed by %q: %w", ErrUnauthorizedSigner, name, issuer.Subject.CommonName, err)
			}
			if opts.RejectSHA1 && s.hash == crypto.SHA1 {
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

// responderIDMatches reports whether p's ResponderID names c: its subject, byte for byte, or the SHA-1 of its
// subjectPublicKey.
func (p *basicResponse) responderIDMatches(c *x509.Certificate) bool {
	if p.responderDN != nil {
		return bytes.Equal(p.responderDN, c.RawSubject)
	}
	bits, err := subjectPublicKeyBits(c)
	if err != nil {
		return false
	}
	sum := sha1.Sum(bits)
	return bytes.Equal(p.responderKey, sum[:])
}

func (p *basicResponse) responderIDString() string {
	if p.responderDN != nil {
		return "byName"
	}
	return fmt.Sprintf("byKey %X", p.responderKey)
}

// subjectPublicKeyBits returns the contents of c's subjectPublicKey BIT STRING: what issuerKeyHash and a
// byKey ResponderID hash.
func subjectPublicKeyBits(c *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.SkipASN1(cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, fmt.Errorf("%w: SubjectPublicKeyInfo of %q", ErrMalformed, c.Subject.CommonName)
	}
	return bits.Bytes, nil
}

// checkTimes applies RFC 6960 §3.2 and §4.2.2.1 to the matched SingleResponse.
func checkTimes(p *basicResponse, s *singleResponse, now time.Time, opts VerifyOptions) error {
	skew := opts.skew()
	if s.thisUpdate.After(now.Add(skew)) {
		return fmt.Errorf("%w: thisUpdate %s, now %s", ErrNotYetValid, s.thisUpdate.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if p.producedAt.After(now.Add(skew)) {
		return fmt.Errorf("%w: producedAt %s, now %s", ErrProducedInFuture, p.producedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if s.nextUpdate.IsZero() {
		if opts.RequireNextUpdate {
			return ErrNoNextUpdate
		}
		ttl := opts.NoNextUpdateTTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		if end := s.thisUpdate.Add(ttl); !now.Before(end) {
			return fmt.Errorf("%w: no nextUpdate and thisUpdate %s is older than %v", ErrExpired, s.thisUpdate.Format(time.RFC3339), ttl)
		}
		return nil
	}
	if !s.nextUpdate.After(s.thisUpdate) {
		return fmt.Errorf("%w: thisUpdate %s, nextUpdate %s", ErrBadTimes, s.thisUpdate.Format(time.RFC3339), s.nextUpdate.Format(time.RFC3339))
	}
	if !now.Before(s.nextUpdate) {
		return fmt.Errorf("%w: nextUpdate %s, now %s", ErrExpired, s.nextUpdate.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Extensions staple understands, and so accepts even when marked critical.
var (
	knownResponseExtensions = []asn1.ObjectIdentifier{oidNonce, oidExtendedRevoke}
	knownSingleExtensions   = []asn1.ObjectIdentifier{
		{2, 5, 29, 21},                     // reasonCode
		{2, 5, 29, 23},                     // holdInstructionCode
		{2, 5, 29, 24},                     // invalidityDate
		{1, 3, 6, 1, 5, 5, 7, 48, 1, 3},    // id-pkix-ocsp-crl
		{1, 3, 6, 1, 5, 5, 7, 48, 1, 6},    // id-pkix-ocsp-archive-cutoff
		{1, 3, 6, 1, 4, 1, 311, 21, 4},     // Microsoft next CRL publish
		{1, 3, 6, 1, 5, 5, 7, 48, 1, 9},    // extended revoke (misplaced by some responders)
		{1, 3, 6, 1, 4, 1, 11129, 2, 4, 5}, // CT SCT list in OCSP
	}
)

func checkExtensions(p *basicResponse, s *singleResponse) error {
	for _, e := range p.extensions {
		if e.critical && !slices.ContainsFunc(knownResponseExtensions, e.id.Equal) {
			return fmt.Errorf("%w: responseExtension %v", ErrCriticalExtension, e.id)
		}
	}
	for _, e := range s.extensions {
		if e.critical && !slices.ContainsFunc(knownSingleExtensions, e.id.Equal) {
			return fmt.Errorf("%w: singleExtension %v", ErrCriticalExtension, e.id)
		}
	}
	return nil
}

// checkNonce checks the response's nonce against the one sent. The extension value is an OCTET STRING
// wrapping the nonce (RFC 6960 §4.4.1); a bare nonce, written by some older responders, is accepted too.
func checkNonce(p *basicResponse, nonce []byte) error {
	for _, e := range p.extensions {
		if !e.id.Equal(oidNonce) {
			continue
		}
		v := cryptobyte.String(e.value)
		var inner []byte
		if v.ReadASN1Bytes(&inner, cbasn1.OCTET_STRING) && v.Empty() && bytes.Equal(inner, nonce) {
			return nil
		}
		if bytes.Equal(e.value, nonce) {
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
