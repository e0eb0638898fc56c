// Package lab owns the offline CA test lab: making one (a root CA, an issuing CA, a delegated OCSP signer),
// issuing and revoking certificates into an OpenSSL-format index.txt that `openssl ca` and `openssl ocsp
// -index` share with staple both ways, and the signing responder.Source that answers OCSP requests from that
// index: responses pre-signed per serial, re-signed halfway through their validity and as soon as index.txt
// changes, and signed wrongly on purpose when a fault asks for it.
//
// The directory layout is fixed so that scripts and other tools can rely on it (see the *File constants):
// root.pem, ca.pem and ca.key (the issuing CA), ocsp.pem and ocsp.key (the signer), index.txt, serial, and
// certs/NAME.pem (leaf then issuing CA) with certs/NAME.key per leaf. Keys are written 0600. Every change to
// the lab (Init, Issue, Revoke, the embedded lab's renewal) holds an exclusive lock on index.txt.lock, so that
// concurrent staple processes never lose a row nor make two CAs in one directory; every file is written to a
// temporary file and renamed into place.
//
// ParseIndex reads outside input: it never panics and has a fuzz target. Responses are encoded and signed by
// ocspwire.Sign; the revocation reasons and hold instructions of index.txt are ocspwire's Reason and
// HoldInstruction, with OpenSSL's spellings.
package lab
