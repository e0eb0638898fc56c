//go:build !(openssl && cgo && linux)

package certs

import "crypto"

// servingKey is the key a tls.Certificate signs handshakes with: k itself in the default, pure Go build. A
// build with -tags openssl hands RSA keys to OpenSSL (servingkey_openssl.go).
func servingKey(k crypto.Signer) crypto.Signer { return k }
