package cache

import (
	"fmt"
	"time"

	"staple/certs"
	"staple/ocspwire"
)

// Response is a verified OCSP response as the cache keeps it: the DER to staple and what the scheduler and the
// inspection commands need to know about it without parsing it again.
type Response struct {
	// Raw is the DER OCSPResponse exactly as the responder sent it.
	Raw    []byte
	Status ocspwire.Status

	ProducedAt time.Time
	ThisUpdate time.Time
	// NextUpdate is zero when the response has none.
	NextUpdate time.Time
	// Expires is the instant from which the response must not be stapled: NextUpdate, or ThisUpdate plus the
	// policy's TTL when there is no NextUpdate.
	Expires time.Time
	// RefreshAt is when the stapler planned to fetch a newer response; zero when nobody planned it (an import).
	RefreshAt time.Time

	// RevokedAt, RevocationReason and HasReason are set for a revoked status.
	RevokedAt        time.Time
	RevocationReason int
	HasReason        bool

	// Fetched is when the response was verified and accepted.
	Fetched time.Time
	// URL is the responder that answered; empty for an imported response.
	URL string
	// ETag and LastModified are the responder's HTTP validators, empty when it sent none.
	ETag, LastModified string
}

// ValidAt reports whether the response may be stapled at now.
func (r Response) ValidAt(now time.Time) bool { return now.Before(r.Expires) }

// Stamp is what orders r against another answer about its certificate.
func (r Response) Stamp() ocspwire.Stamp {
	return ocspwire.Stamp{ThisUpdate: r.ThisUpdate, Status: r.Status}
}

// older says, wrapping ErrOlder, why r may not replace the stored record old; nil when it may (or when old
// does not decode, which r then replaces).
func older(key certs.Key, old []byte, r Response) error {
	prev, err := DecodeResponse(old)
	if err != nil || !r.Stamp().Before(prev.Stamp()) {
		return nil
	}
	return fmt.Errorf("%w: %s: stored %s, new %s", ErrOlder, key, prev.Stamp(), r.Stamp())
}

// Cert is a watched certificate: what the stapler needs to fetch its status after a restart.
type Cert struct {
	// Leaf and Issuer are DER certificates.
	Leaf, Issuer []byte
	// URLs are the leaf's OCSP responder URLs, in the order the certificate lists them.
	URLs []string
	// MustStaple is set when the leaf carries the TLS Feature status_request (RFC 7633).
	MustStaple bool
	// Added is when the certificate was first watched.
	Added time.Time
}

// Attempt is one fetch in a certificate's history.
type Attempt struct {
	Time time.Time
	// Reason is "ok" for a verified response and otherwise the ocspfetch.Reason label of the failure
	// ("timeout", "http_503", "bad_signature", …).
	Reason string
	// Status is the status of the response; meaningful only when Reason is "ok".
	Status ocspwire.Status
	// Error is the error text of a failure, empty on success.
	Error string
	// URL is the responder asked; empty when none was (no responder URL).
	URL     string
	Latency time.Duration
}

// OK reports whether the attempt brought a verified response.
func (a Attempt) OK() bool { return a.Reason == "ok" }

// TicketKeys are the TLS session ticket keys at rest: the key new tickets are sealed with and the one before
// it, still accepted for resumption.
type TicketKeys struct {
	Current, Previous []byte
	// Rotated is when Current became current.
	Rotated time.Time
}
