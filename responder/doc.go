// Package responder owns staple's OCSP responder: an RFC 6960 / RFC 5019 (RFC 9919) HTTP handler that parses
// requests (GET with the base64 request in the path, POST application/ocsp-request), asks a one-method Source
// for the answer, and writes it with the RFC 5019 cache headers, answering If-None-Match with 304.
//
// The responder signs nothing itself. A Source answers from whatever it holds: package lab provides one that
// signs from an OpenSSL index.txt and pre-signs per serial; the stapler's cache can be another (the caching
// responder for fleets). Error statuses (malformedRequest, unauthorized, tryLater, internalError) are unsigned
// by definition (RFC 6960 §2.3), so the responder writes them itself (ocspwire.ErrorResponse).
//
// For labs, Faults makes the responder misbehave on purpose, per serial or for every request, switchable at
// run time through the admin endpoint /-/faults (see Responder.ServeHTTP): delays, HTTP errors, garbage,
// dropped connections, redirect loops, oversized bodies, and, through the Source, expired, wrongly signed or
// mismatched responses.
//
// Requests are read by ocspwire.ParseRequest, a parser of outside input that never panics and has a fuzz
// target. Responder is safe for concurrent use; Serve gives every connection read, write and idle deadlines
// so a slow client blocks nobody.
package responder
