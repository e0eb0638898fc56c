//go:build openssl && cgo && linux

package certs

import (
	"crypto"
	"crypto/rsa"

	"staple/certs/internal/opensslkey"
)

// servingKey is the key a tls.Certificate signs handshakes with: in a build with -tags openssl, an RSA key
// signs through OpenSSL's libcrypto (about three times as fast as crypto/rsa: BENCHMARKS.md), any other key
// as itself. A key OpenSSL cannot load is served by crypto/rsa.
func servingKey(k crypto.Signer) crypto.Signer {
	if rk, ok := k.(*rsa.PrivateKey); ok {
		if s, err := opensslkey.NewSigner(rk); err == nil {
			return s
		}
	}
	return k
}
