package ocspwire

import (
	"errors"
	"fmt"
)

// Errors of the parsers and encoders. Each error returned wraps exactly one of them, with detail.
var (
	// ErrMalformed: bytes that are not the DER structure expected (a response, an AlgorithmIdentifier, a
	// certificate's SubjectPublicKeyInfo).
	ErrMalformed = errors.New("ocspwire: malformed")
	// ErrMalformedRequest: bytes that are not an OCSPRequest staple answers (ParseRequest).
	ErrMalformedRequest = errors.New("ocspwire: malformed OCSP request")
	// ErrUnsupportedType: a successful response whose responseType is not id-pkix-ocsp-basic.
	ErrUnsupportedType = errors.New("ocspwire: response type is not id-pkix-ocsp-basic")
	// ErrUnsupportedHash: a CertID hash staple cannot compute.
	ErrUnsupportedHash = errors.New("ocspwire: unsupported CertID hash algorithm")
	// ErrUnsupportedSignature: a signature algorithm staple cannot verify, or a key and algorithm it cannot
	// sign with.
	ErrUnsupportedSignature = errors.New("ocspwire: unsupported signature algorithm")
	// ErrBadSignature: a signature that does not verify.
	ErrBadSignature = errors.New("ocspwire: signature does not verify")
	// ErrBadReason: a revocation reason or hold instruction name that OpenSSL does not know.
	ErrBadReason = errors.New("ocspwire: unknown revocation reason")
)

func malformed(format string, args ...any) error { return newError(ErrMalformed, format, args) }

func malformedRequest(format string, args ...any) error {
	return newError(ErrMalformedRequest, format, args)
}

// wireError is one of the package's sentinels and what was wrong. It costs one allocation when the detail
// is a constant: the parsers refuse garbage at the rate a client can send it.
type wireError struct {
	sentinel error
	detail   string
}

func newError(sentinel error, format string, args []any) error {
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	return &wireError{sentinel, format}
}

func (e *wireError) Error() string { return e.sentinel.Error() + ": " + e.detail }
func (e *wireError) Unwrap() error { return e.sentinel }
