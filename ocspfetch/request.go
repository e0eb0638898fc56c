package ocspfetch

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"

	"staple/ocspwire"
)

// RequestOptions shapes an OCSP request.
type RequestOptions struct {
	// Hash is the CertID hash: zero means SHA-1, as RFC 5019 and RFC 9919 profile it and every responder
	// understands; crypto.SHA256 is the other choice RFC 9919 allows.
	Hash crypto.Hash
	// Nonce, when non-nil, is sent in a nonce requestExtension (RFC 9654) and must then come back. Nil sends
	// none, which is right for pre-signing responders and for AD CS, which rejects nonces by default.
	Nonce []byte
}

// Request is an encoded OCSP request for one certificate.
type Request struct {
	DER    []byte
	Hash   crypto.Hash
	Serial *big.Int
	Nonce  []byte // nil when none was sent
}

// NonceSize is the size of the nonces NewNonce makes, the 32 octets RFC 9654 recommends.
const NonceSize = 32

// NewNonce returns a fresh random nonce of NonceSize bytes.
func NewNonce() ([]byte, error) {
	n := make([]byte, NonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("ocspfetch: nonce: %w", err)
	}
	return n, nil
}

// NewRequest returns the OCSP request for leaf issued by issuer: one CertID, no signature, and the nonce
// extension only when opts has a nonce (RFC 5019 §2.1.1).
func NewRequest(leaf, issuer *x509.Certificate, opts RequestOptions) (*Request, error) {
	if issuer == nil {
		return nil, ErrNoIssuer
	}
	h := opts.Hash
	if h == 0 {
		h = crypto.SHA1
	}
	id, err := ocspwire.NewCertID(issuer, leaf.SerialNumber, h)
	if err != nil {
		return nil, fromWire(err)
	}
	if n := len(opts.Nonce); opts.Nonce != nil && (n < 1 || n > ocspwire.MaxNonceLen) {
		return nil, fmt.Errorf("ocspfetch: a nonce has 1 to %d bytes, not %d", ocspwire.MaxNonceLen, n)
	}
	der, err := ocspwire.EncodeRequest([]ocspwire.CertID{id}, opts.Nonce)
	if err != nil {
		return nil, fmt.Errorf("ocspfetch: encoding the request: %w", err)
	}
	return &Request{DER: der, Hash: h, Serial: leaf.SerialNumber, Nonce: opts.Nonce}, nil
}
