package ocspfetch

import (
	"crypto"
	"crypto/x509"
	"math/big"
	"time"

	"staple/ocspwire"
)

// Response is an OCSP response that passed Verify for one certificate. Nothing else in staple builds one,
// so holding a *Response means holding bytes that were verified (at the time given by Verified).
type Response struct {
	// Raw is the DER OCSPResponse exactly as received: the bytes to staple.
	Raw []byte
	// Status is the certificate status the response asserts.
	Status ocspwire.Status
	Serial *big.Int
	// CertIDHash is the hash algorithm of the matching SingleResponse's CertID.
	CertIDHash crypto.Hash

	ProducedAt time.Time
	ThisUpdate time.Time
	// NextUpdate is zero when the response has none (openssl ocsp without -ndays/-nmin): such a response is
	// valid for Policy.NoNextUpdateTTL after ThisUpdate only.
	NextUpdate time.Time

	// RevokedAt and RevocationReason are set for Revoked; HasReason tells a reason of 0 (unspecified) from an
	// absent one.
	RevokedAt        time.Time
	RevocationReason int
	HasReason        bool

	// Signer is the certificate whose key signed the response: the issuer itself or a delegated responder.
	Signer         *x509.Certificate
	SignerIsIssuer bool

	// Verified is the time Verify accepted the response.
	Verified time.Time

	// HTTP describes the exchange that brought the response; zero for responses that did not come over HTTP
	// (imported from a file, read from the cache).
	HTTP HTTPInfo
}

// HTTPInfo is what the HTTP exchange told about a response: where it came from and the RFC 5019 cache hints
// the scheduler honours.
type HTTPInfo struct {
	URL     string        // the responder URL that answered (after overrides, before redirects)
	Method  string        // GET or POST
	Latency time.Duration // from sending the request to the end of the body

	// ContentType is the Content-Type the responder sent; WrongContentType is set when it was not
	// application/ocsp-response (recorded, and the body verified all the same).
	ContentType      string
	WrongContentType bool

	MaxAge       time.Duration // Cache-Control max-age; meaningful only when HasMaxAge
	HasMaxAge    bool
	Expires      time.Time // the Expires header, zero when absent or unparseable
	ETag         string
	LastModified string
	Date         time.Time // the responder's Date header
}

// Stamp is what orders r against another answer about its certificate.
func (r *Response) Stamp() ocspwire.Stamp {
	return ocspwire.Stamp{ThisUpdate: r.ThisUpdate, Status: r.Status}
}

// Expiry returns the instant from which the response must no longer be stapled: NextUpdate, or ThisUpdate plus
// ttl when the response has no NextUpdate.
func (r *Response) Expiry(ttl time.Duration) time.Time {
	if !r.NextUpdate.IsZero() {
		return r.NextUpdate
	}
	return r.ThisUpdate.Add(ttl)
}

// ValidAt reports whether r may be stapled at now: its Expiry (with ttl for a missing NextUpdate) has not come.
func (r *Response) ValidAt(now time.Time, ttl time.Duration) bool {
	return now.Before(r.Expiry(ttl))
}
