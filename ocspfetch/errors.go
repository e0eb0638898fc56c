package ocspfetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"staple/ocspwire"
)

// Verification errors. Verify wraps exactly one of these (with detail) so callers can test with errors.Is.
var (
	ErrMalformed           = errors.New("ocspfetch: malformed response")                      // not an OCSPResponse
	ErrUnsupportedType     = errors.New("ocspfetch: response type is not id-pkix-ocsp-basic") //
	ErrNoMatchingResponse  = errors.New("ocspfetch: no SingleResponse for this certificate")  // CertID mismatch
	ErrDuplicateResponse   = errors.New("ocspfetch: several SingleResponses for this certificate disagree")
	ErrBadSignature        = errors.New("ocspfetch: signature does not verify")
	ErrUnauthorizedSigner  = errors.New("ocspfetch: signer is not authorized for this issuer")
	ErrSignerExpired       = errors.New("ocspfetch: delegated signer certificate is not valid now")
	ErrNotYetValid         = errors.New("ocspfetch: thisUpdate is in the future")
	ErrExpired             = errors.New("ocspfetch: nextUpdate has passed")
	ErrProducedInFuture    = errors.New("ocspfetch: producedAt is in the future")
	ErrBadTimes            = errors.New("ocspfetch: nextUpdate is not after thisUpdate")
	ErrCriticalExtension   = errors.New("ocspfetch: unknown critical extension")
	ErrNonceMismatch       = errors.New("ocspfetch: nonce in the response does not match the request")
	ErrNoIssuer            = errors.New("ocspfetch: no issuer certificate to verify against")
	ErrNoResponderURL      = errors.New("ocspfetch: certificate has no OCSP responder URL")
	ErrResponseTooLarge    = errors.New("ocspfetch: response body exceeds the size limit")
	ErrTooManyRedirects    = errors.New("ocspfetch: too many redirects")
	ErrRedirectScheme      = errors.New("ocspfetch: redirect to a scheme other than http or https")
	ErrUnsupportedHashAlgo = errors.New("ocspfetch: unsupported CertID hash algorithm")
	ErrNoNextUpdate        = errors.New("ocspfetch: response has no nextUpdate") // only with VerifyOptions.RequireNextUpdate
	ErrWrongContentType    = errors.New("ocspfetch: responder sent a Content-Type other than application/ocsp-response")
)

// Non-successful responseStatus values (RFC 6960 §4.2.1). They arrive unsigned, so they are never cached as a
// certificate status; each is wrapped in a *ResponderStatusError.
var (
	ErrMalformedRequest = errors.New("ocspfetch: responder says malformedRequest")
	ErrInternalError    = errors.New("ocspfetch: responder says internalError")
	ErrTryLater         = errors.New("ocspfetch: responder says tryLater")
	ErrSigRequired      = errors.New("ocspfetch: responder says sigRequired")
	ErrUnauthorized     = errors.New("ocspfetch: responder says unauthorized")
)

// ResponderStatusError is a response whose responseStatus was not successful.
type ResponderStatusError struct {
	Status ocspwire.ResponseStatus
}

func (e *ResponderStatusError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the sentinel for the status (ErrTryLater, …), or ErrMalformed for a value RFC 6960 does not
// define.
func (e *ResponderStatusError) Unwrap() error {
	switch e.Status {
	case ocspwire.MalformedRequest:
		return ErrMalformedRequest
	case ocspwire.InternalError:
		return ErrInternalError
	case ocspwire.TryLater:
		return ErrTryLater
	case ocspwire.SigRequired:
		return ErrSigRequired
	case ocspwire.Unauthorized:
		return ErrUnauthorized
	}
	return fmt.Errorf("%w: responseStatus %d", ErrMalformed, int(e.Status))
}

// fromWire returns an error of package ocspwire as one wrapping the sentinel of this package that callers
// test for (keeping ocspwire's too): a non-successful responseStatus becomes a *ResponderStatusError.
func fromWire(err error) error {
	var se *ocspwire.StatusError
	if errors.As(err, &se) {
		return &ResponderStatusError{Status: se.Status}
	}
	for _, m := range []struct{ wire, ours error }{
		{ocspwire.ErrUnsupportedType, ErrUnsupportedType},
		{ocspwire.ErrMalformed, ErrMalformed},
		{ocspwire.ErrUnsupportedHash, ErrUnsupportedHashAlgo},
		{ocspwire.ErrUnsupportedSignature, ErrBadSignature},
		{ocspwire.ErrBadSignature, ErrBadSignature},
	} {
		if errors.Is(err, m.wire) {
			return fmt.Errorf("%w: %w", m.ours, err)
		}
	}
	return err
}

// HTTPError is a responder answering with an HTTP status other than 200.
type HTTPError struct {
	URL        string
	StatusCode int
	// RetryAfter is the delay asked for by a Retry-After header (503, 429); zero when absent.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("ocspfetch: %s answered HTTP %d", RedactURL(e.URL), e.StatusCode)
}

// Reason returns a short, stable label for err, for metrics, history records and one-line reports:
// "timeout", "connection", "http_503", "try_later", "bad_signature", … and "other" for anything unclassified.
func Reason(err error) string {
	if err == nil {
		return "ok"
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return fmt.Sprintf("http_%d", he.StatusCode)
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "connection"
	}
	return "other"
}

var reasons = []struct {
	err   error
	label string
}{
	{ErrMalformed, "malformed"},
	{ErrUnsupportedType, "unsupported_type"},
	{ErrNoMatchingResponse, "no_matching_response"},
	{ErrDuplicateResponse, "duplicate_response"},
	{ErrBadSignature, "bad_signature"},
	{ErrUnauthorizedSigner, "unauthorized_signer"},
	{ErrSignerExpired, "signer_expired"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrExpired, "expired"},
	{ErrProducedInFuture, "produced_in_future"},
	{ErrBadTimes, "bad_times"},
	{ErrCriticalExtension, "critical_extension"},
	{ErrNonceMismatch, "nonce_mismatch"},
	{ErrNoIssuer, "no_issuer"},
	{ErrNoResponderURL, "no_responder_url"},
	{ErrResponseTooLarge, "too_large"},
	{ErrTooManyRedirects, "redirect_loop"},
	{ErrRedirectScheme, "redirect_scheme"},
	{ErrUnsupportedHashAlgo, "unsupported_hash"},
	{ErrNoNextUpdate, "no_next_update"},
	{ErrMalformedRequest, "malformed_request"},
	{ErrInternalError, "internal_error"},
	{ErrTryLater, "try_later"},
	{ErrSigRequired, "sig_required"},
	{ErrUnauthorized, "unauthorized"},
}

// Transient reports whether err is worth retrying soon with the same responder: network trouble, timeouts,
// 5xx and 429, tryLater and internalError, and answers that may be a stale or broken cache in front of the
// responder (expired, not yet valid). Everything else (bad signature, wrong signer, no responder URL, …) is
// permanent until the configuration or the responder changes; the scheduler still retries it, on the slow
// end of the backoff.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500 || he.StatusCode == 429
	}
	switch Reason(err) {
	case "timeout", "connection", "try_later", "internal_error", "expired", "not_yet_valid", "too_large", "other":
		return true
	}
	return false
}
