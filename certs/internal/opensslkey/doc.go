//go:build !(openssl && cgo && linux)

// Package opensslkey hands RSA private-key operations to OpenSSL's libcrypto through cgo in builds made with
// -tags openssl (see opensslkey.go). In the default build it is empty and Enabled is false.
package opensslkey

// Enabled reports whether this build hands RSA signatures to OpenSSL.
const Enabled = false
