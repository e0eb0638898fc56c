// Package testpki owns the test fixtures every staple test builds on: CAs (roots and intermediates with RSA,
// ECDSA P-256 or Ed25519 keys), leaves, delegated OCSP signers, OCSP responses of every kind (including the
// ones a correct client must reject, all written by ocspwire's one encoder), and a fault-injecting fake OCSP
// responder on httptest.
//
// It is imported only from _test.go files and test helpers: it never ships in the binary. Every date derives
// from Epoch (2026-01-01T00:00:00Z), and keys are deterministic: ECDSA and Ed25519 keys are derived from the
// name of what they belong to, RSA keys come from a fixed pool committed under testdata (made by
// generate_keys.go), so fixtures are fast to build and the same on every run. Distinct CAs and signers of one
// hierarchy (a root and everything under it) never share a key.
package testpki
