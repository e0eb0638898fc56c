// Package certs owns everything staple reads from certificates, with no network I/O: loading PEM chains and
// private keys, matching a key to its certificate, ordering a chain from the leaf, choosing the issuer the way
// Node's OCSPRequest does, the AIA OCSP and CA Issuers URLs, CRL distribution points, Must-Staple (the TLS
// Feature extension of RFC 7633), and the cache key of a certificate.
//
// Errors name the file they came from. Sentinels (ErrNoCertificate, ErrKeyMismatch, ErrEncryptedKey, …) are
// wrapped with %w so callers can test them with errors.Is.
package certs
