// Package ocspfetch owns everything about talking to OCSP responders and trusting what they say: building
// requests, HTTP GET and POST with deadlines and size caps, verifying responses against RFC 6960 in full
// (stricter than golang.org/x/crypto/ocsp, which checks only the serial and a signature), and the refresh
// policy that says when to fetch next. The OCSP structures themselves are read and written by package
// ocspwire.
//
// Responder URLs may carry credentials: RedactURL is the one place that hides them, used by this package's
// errors and by every package that shows a URL to a person.
//
// It knows nothing of bbolt or TLS. Verify and the policy functions are pure functions of their inputs and
// of now; Client is safe for concurrent use.
package ocspfetch
