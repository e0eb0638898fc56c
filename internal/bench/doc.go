// Package bench is the measuring side of make bench: it runs staple serve, nginx, a bare crypto/tls server,
// staple responder and openssl ocsp as processes pinned to one CPU, drives them the same way from another
// CPU (internal/loadgen for TLS, a raw HTTP/1.x client for OCSP GETs), reads each server's own CPU time
// from /proc, and turns interleaved, repeated rounds into medians and ratios against a baseline measured in
// the same run. It also refreshes thousands of certificates through the stapler and ocspfetch against
// staple responder, and times staple serve's warm start from a large cache file it fills with the cache
// package.
//
// It measures; it never fails because a machine is slow. An error means a server could not be started or
// answered wrongly (a handshake without a staple, an OCSP GET that is not 200), and names it.
package bench
