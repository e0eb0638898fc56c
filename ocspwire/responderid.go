package ocspwire

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
)

// ResponderID names the signer of a response (RFC 6960 §4.2.1): byName, the DER subject of its
// certificate, or byKey, the SHA-1 of its subjectPublicKey bits. Exactly one is set in a parsed response;
// the encoder writes byKey when KeyHash is set and byName otherwise. The zero value is byName with an empty
// name, which names no certificate.
type ResponderID struct {
	Name    []byte // DER Name, nil for byKey
	KeyHash []byte // nil for byName
}

// NewResponderID returns the ResponderID naming c, byKey or byName.
func NewResponderID(c *x509.Certificate, byKey bool) (ResponderID, error) {
	if !byKey {
		return ResponderID{Name: c.RawSubject}, nil
	}
	bits, err := SubjectPublicKeyBits(c)
	if err != nil {
		return ResponderID{}, err
	}
	sum := sha1.Sum(bits)
	return ResponderID{KeyHash: sum[:]}, nil
}

// Matches reports whether id names c: its subject byte for byte, or the SHA-1 of its subjectPublicKey.
func (id ResponderID) Matches(c *x509.Certificate) bool {
	if id.KeyHash == nil {
		return bytes.Equal(id.Name, c.RawSubject)
	}
	want, err := NewResponderID(c, true)
	return err == nil && bytes.Equal(id.KeyHash, want.KeyHash)
}

// String returns "byName", or "byKey" and the key hash in hex.
func (id ResponderID) String() string {
	if id.KeyHash == nil {
		return "byName"
	}
	return fmt.Sprintf("byKey %X", id.KeyHash)
}
