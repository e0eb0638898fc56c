package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Key identifies a certificate in the cache: the SHA-256 of its issuer's SubjectPublicKeyInfo, then its
// serial number. A renewed certificate has a new serial and so a new key: it never inherits its
// predecessor's staple. Key is comparable and can be used as a map key; the zero Key matches no certificate.
type Key struct {
	// IssuerHash is SHA-256 over the issuer's DER SubjectPublicKeyInfo.
	IssuerHash [32]byte
	// serial is the big-endian magnitude of the serial number (at least one byte).
	serial string
}

// ErrBadKey is returned by ParseKey and KeyFromBytes for text or bytes that are not a cache key.
var ErrBadKey = errors.New("certs: not a cache key")

// NewKey returns the cache key of leaf as issued by issuer.
func NewKey(issuer, leaf *x509.Certificate) Key {
	return KeyFor(issuer.RawSubjectPublicKeyInfo, leaf.SerialNumber)
}

// KeyFor returns the cache key for a serial number under the issuer whose DER SubjectPublicKeyInfo is spki.
func KeyFor(spki []byte, serial *big.Int) Key {
	return Key{IssuerHash: sha256.Sum256(spki), serial: string(serialBytes(serial))}
}

func serialBytes(serial *big.Int) []byte {
	b := serial.Bytes()
	if len(b) == 0 {
		return []byte{0}
	}
	return b
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k == Key{} }

// Serial returns the serial number.
func (k Key) Serial() *big.Int { return new(big.Int).SetBytes([]byte(k.serial)) }

// SerialHex returns the serial number in upper-case hexadecimal with an even number of digits, the form of
// OpenSSL's index.txt and `openssl x509 -serial`.
func (k Key) SerialHex() string { return strings.ToUpper(hex.EncodeToString([]byte(k.serial))) }

// String returns the human-facing form: the first 16 hex digits of the issuer hash, a colon, the serial in
// hex ("3f2a9c0d11e4b7a2:1000").
func (k Key) String() string {
	if k.IsZero() {
		return "<none>"
	}
	return hex.EncodeToString(k.IssuerHash[:8]) + ":" + k.SerialHex()
}

// Bytes returns the binary form used as a sort key on disk: the 32-byte issuer hash then the serial bytes.
// Keys of one issuer sort together; KeyFromBytes reverses it.
func (k Key) Bytes() []byte {
	b := make([]byte, 0, 32+len(k.serial))
	b = append(b, k.IssuerHash[:]...)
	return append(b, k.serial...)
}

// KeyFromBytes parses the output of Key.Bytes.
func KeyFromBytes(b []byte) (Key, error) {
	if len(b) < 33 || len(b) > 32+maxSerialLen {
		return Key{}, fmt.Errorf("%w: %d bytes", ErrBadKey, len(b))
	}
	var k Key
	copy(k.IssuerHash[:], b[:32])
	k.serial = string(b[32:])
	return k, nil
}

// maxSerialLen bounds serial numbers: RFC 5280 allows 20 octets; some CAs have issued a few more.
const maxSerialLen = 32

// KeyRef is a parsed human-facing key: a prefix of the issuer hash and a serial. It selects the keys it
// matches; 16 hex digits of the hash make a collision between two issuers in one cache vanishingly unlikely.
type KeyRef struct {
	IssuerPrefix []byte // 1 to 32 bytes
	Serial       *big.Int
}

// ParseKey parses "<issuer hash prefix hex>:<serial hex>", the output of Key.String. The serial may carry a
// 0x prefix, colons between bytes (as openssl prints it) and either case.
func ParseKey(s string) (KeyRef, error) {
	issuer, serial, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return KeyRef{}, fmt.Errorf("%w: %q has no colon (want ISSUERHASH:SERIAL, as staple cache ls prints)", ErrBadKey, s)
	}
	prefix, err := hex.DecodeString(issuer)
	if err != nil || len(prefix) == 0 || len(prefix) > 32 {
		return KeyRef{}, fmt.Errorf("%w: %q: the issuer hash must be 2 to 64 hex digits", ErrBadKey, s)
	}
	serial = strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(serial, "0x"), "0X"), ":", "")
	n, ok := new(big.Int).SetString(serial, 16)
	if !ok || n.Sign() < 0 || len(serial) == 0 || len(serial) > 2*maxSerialLen+2 {
		return KeyRef{}, fmt.Errorf("%w: %q: the serial must be hex digits", ErrBadKey, s)
	}
	return KeyRef{IssuerPrefix: prefix, Serial: n}, nil
}

// Matches reports whether k is selected by r.
func (r KeyRef) Matches(k Key) bool {
	return bytes.HasPrefix(k.IssuerHash[:], r.IssuerPrefix) && k.serial == string(serialBytes(r.Serial))
}

// String returns r as ParseKey reads it: the issuer hash prefix and the serial, in hex.
func (r KeyRef) String() string { return fmt.Sprintf("%x:%X", r.IssuerPrefix, r.Serial) }
