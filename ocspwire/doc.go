// Package ocspwire owns the OCSP wire format (RFC 6960, RFC 5019): its object identifiers, the status,
// response status and CRL reason codes, CertIDs and ResponderIDs, the parsers and encoders of requests and
// responses, the signature algorithms a response is signed with, and the openssl-like text rendering of a
// response. Nothing else in staple reads or writes OCSP ASN.1.
//
// It parses and encodes; it does not decide whom to trust. Package ocspfetch verifies responses on top of
// it, package responder answers requests with it, and package lab and the test fixtures sign with its one
// encoder, whose options can also write the odd and malformed responses tests need.
//
// The parsers read outside input: they never panic and have fuzz targets. Every function is pure (time is
// passed in) and safe for concurrent use; errors wrap the package's sentinels.
package ocspwire
