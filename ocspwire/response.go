package ocspwire

import (
	"crypto/x509/pkix"
	"time"
)

// SingleResponse is one certificate's status in a response (RFC 6960 §4.2.1), as parsed or to be encoded.
// The zero value says good about a zero CertID.
type SingleResponse struct {
	// CertID names the certificate; a responder echoes the request's.
	CertID CertID
	Status Status
	// RevokedAt and Reason are for Revoked. ReasonNone leaves revocationReason out, and a parsed response
	// without one has ReasonNone; the zero value is unspecified (0).
	RevokedAt time.Time
	Reason    Reason
	// ThisUpdate is required; a zero NextUpdate is none (openssl ocsp without -ndays or -nmin).
	ThisUpdate, NextUpdate time.Time
	// Extensions are the singleExtensions in order (see HoldInstructionExtension and
	// InvalidityDateExtension); nil or empty writes none.
	Extensions []pkix.Extension
}

// ResponseData is the tbsResponseData of a BasicOCSPResponse (RFC 6960 §4.2.1): what is signed. The zero
// value is a v1 response about nothing, produced at the zero time by an empty byName ResponderID.
type ResponseData struct {
	// Version, when non-zero, is written explicitly; v1 is 0 and left out as the DEFAULT. The parser refuses
	// any version but v1, so a parsed response has 0.
	Version int
	// ResponderID names the signer.
	ResponderID ResponderID
	ProducedAt  time.Time
	// Responses are the SingleResponses in order; a response may (wrongly) hold none.
	Responses []SingleResponse
	// Extensions are the responseExtensions in order (see NonceExtension); nil or empty writes none.
	Extensions []pkix.Extension
}

// BasicResponse is a parsed successful OCSPResponse of type id-pkix-ocsp-basic: its ResponseData and what
// verifying it needs. The byte slices are slices of the parsed input.
type BasicResponse struct {
	ResponseData
	// TBS is the whole DER tbsResponseData: the bytes the signature covers.
	TBS []byte
	// SignatureAlgorithm is the whole DER AlgorithmIdentifier (see ParseSignatureAlgorithm); Signature the
	// signature bits.
	SignatureAlgorithm []byte
	Signature          []byte
	// Certs are the DER certificates of the certs field in order; nil when the field is absent.
	Certs [][]byte
}
