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

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func malformedRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedRequest, fmt.Sprintf(format, args...))
}
