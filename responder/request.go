package responder

import (
	"errors"
	"math/big"

	"staple/ocspwire"
)

// ErrMalformedRequest is returned by ParseRequest for bytes that are not an OCSPRequest staple can answer.
// The responder answers it with the malformedRequest status.
var ErrMalformedRequest = errors.New("responder: malformed OCSP request")

// SerialKey returns serial in the form of OpenSSL's index.txt: upper-case hex with an even number of digits
// ("1000", "0ABC", "00"), a leading "-" for a negative serial, and "" for nil.
func SerialKey(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	var buf [64]byte
	b := serial.Bytes() // the magnitude
	if len(b) > len(buf) {
		b = b[len(b)-len(buf):] // beyond any real serial; keep the low bytes rather than allocate
	}
	if len(b) == 0 {
		b = []byte{0}
	}
	out := make([]byte, 0, 2*len(b)+1)
	if serial.Sign() < 0 {
		out = append(out, '-')
	}
	const digits = "0123456789ABCDEF"
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0x0f])
	}
	return string(out)
}

// Request is a parsed OCSPRequest (every certificate it asks about and its nonce, see ocspwire.Request) and
// the fault, if any, to answer it with.
type Request struct {
	ocspwire.Request

	// Fault, when not zero, asks the Source to answer wrongly on purpose (lab fault injection): only the kinds
	// for which Fault.Kind.Signed() is true reach a Source. A Source that cannot misbehave that way returns
	// ErrUnsupportedFault.
	Fault Fault
}

// ParseRequest parses a DER OCSPRequest with ocspwire.ParseRequest, whose limits and strictness apply. Any
// error wraps ErrMalformedRequest.
func ParseRequest(der []byte) (*Request, error) {
	r, err := ocspwire.ParseRequest(der)
	if err != nil {
		return nil, errors.Join(ErrMalformedRequest, err)
	}
	return &Request{Request: *r}, nil
}
