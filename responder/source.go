package responder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"
)

// Source answers OCSP requests: the one thing a Responder needs. It returns a complete, signed DER
// OCSPResponse covering every CertID of req, or one of the errors below. Implementations must be safe for
// concurrent use and must not keep req.
//
// A Source decides how it answers: lab.Source signs from an OpenSSL index.txt (pre-signed per serial, fresh
// when a nonce or several certificates are asked for); a caching responder hands out the bytes it fetched.
type Source interface {
	Response(ctx context.Context, req *Request) (*Response, error)
}

// Errors a Source returns; the Responder turns each into the unsigned OCSP status named, and anything else
// into internalError.
var (
	// ErrUnauthorized: the Source is not authoritative for (one of) the certificates: a foreign issuer, or a
	// pre-signing Source that holds nothing for the serial (RFC 5019 §2.2.3).
	ErrUnauthorized = errors.New("responder: not authoritative for this certificate")
	// ErrTryLater: the Source cannot answer now (tryLater).
	ErrTryLater = errors.New("responder: try later")
	// ErrUnsupportedFault: req.Fault asks for a misbehaviour this Source cannot produce (internalError).
	ErrUnsupportedFault = errors.New("responder: fault not supported by this source")
)

// Response is a signed OCSPResponse and the times the HTTP cache headers are made from. A Source may hand
// the same *Response to many requests: nobody modifies one after NewResponse.
type Response struct {
	// Raw is the DER OCSPResponse sent as the body.
	Raw []byte
	// ThisUpdate gives Last-Modified; NextUpdate gives Expires and max-age. A zero NextUpdate makes the
	// response uncacheable (Cache-Control: max-age=0, no-cache).
	ThisUpdate, NextUpdate time.Time
	// ETag is the strong validator sent as ETag and matched against If-None-Match, quoted. NewResponse sets
	// the quoted hex SHA-256 of Raw (as cfssl and Boulder do); empty means the responder computes it per request.
	ETag string

	// The Last-Modified and Expires values, formatted once by NewResponse.
	lastMod, expiresAt string
}

// NewResponse returns a Response for raw with its ETag and date headers computed once.
func NewResponse(raw []byte, thisUpdate, nextUpdate time.Time) *Response {
	r := &Response{Raw: raw, ThisUpdate: thisUpdate, NextUpdate: nextUpdate, ETag: etagOf(raw)}
	r.lastMod, r.expiresAt = r.lastModified(), r.expires()
	return r
}

func (r *Response) lastModified() string {
	if r.lastMod != "" {
		return r.lastMod
	}
	return r.ThisUpdate.UTC().Format(http.TimeFormat)
}

func (r *Response) expires() string {
	if r.expiresAt != "" {
		return r.expiresAt
	}
	return r.NextUpdate.UTC().Format(http.TimeFormat)
}

func etagOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func (r *Response) etag() string {
	if r.ETag != "" {
		return r.ETag
	}
	return etagOf(r.Raw)
}
