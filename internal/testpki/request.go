package testpki

import (
	"fmt"

	"staple/ocspwire"
)

// Request is what the fake responder recorded of an OCSPRequest.
type Request struct {
	CertIDs []ocspwire.CertID
	// Nonce is the value of the id-pkix-ocsp-nonce requestExtension (inside its OCTET STRING), nil when
	// absent.
	Nonce []byte
}

// ParseRequest parses a DER OCSPRequest with ocspwire.ParseRequest, and refuses on top of it what the fake
// responder cannot answer: a CertID hash it does not know, a nonce not wrapped in an OCTET STRING.
func ParseRequest(der []byte) (*Request, error) {
	r, err := ocspwire.ParseRequest(der)
	if err != nil {
		return nil, fmt.Errorf("testpki: %w", err)
	}
	out := &Request{CertIDs: r.CertIDs}
	for _, id := range r.CertIDs {
		if id.Hash == 0 {
			return nil, fmt.Errorf("testpki: unknown CertID hash %v", id.HashAlgorithm)
		}
	}
	if r.Nonce != nil {
		var ok bool
		if out.Nonce, ok = ocspwire.UnwrapNonce(r.Nonce); !ok {
			return nil, fmt.Errorf("testpki: nonce %x is not an OCTET STRING", r.Nonce)
		}
	}
	return out, nil
}
