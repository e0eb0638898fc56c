package responder

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"time"

	"staple/certs"
	"staple/ocspwire"
)

// Cache is a Source that answers for a set of certificates with OCSP responses fetched and verified
// elsewhere (a stapler's), signing nothing: RFC 5019's pre-produced responses, for servers that point their
// stapling at it (nginx's ssl_stapling_responder, Apache's SSLStaplingForceURL) so that a fleet asks the CA
// once. A certificate it holds no valid response for is unauthorized (RFC 5019 §2.2.3), as a pre-signing
// responder answers, and so is a request for several certificates, since each response covers one. A nonce
// cannot be echoed by a pre-produced response; RFC 5019 §2.2.1 has clients accept one without it.
//
// Set Lookup and Hash before the first request, and the certificates with Serve; Cache is safe for
// concurrent use.
type Cache struct {
	// Lookup returns the response to hand out for the certificate key names, with its thisUpdate and the
	// instant it stops being valid, or nil when there is none to serve now.
	Lookup func(key certs.Key) (raw []byte, thisUpdate, expires time.Time)
	// Hash is the CertID hash the responses carry (the fetcher's); zero means SHA-1. A request in another
	// hash is not answered: its client (OpenSSL's OCSP_resp_find, nginx) would not match the response.
	Hash crypto.Hash

	ids atomic.Pointer[map[certIDKey]certs.Key]
	// answers holds, per key, the Response made from the last bytes Lookup gave, so that its ETag and dates
	// are computed once per response rather than once per request.
	answers sync.Map // certs.Key → *Response
}

var _ Source = (*Cache)(nil)

// Certificate is one certificate a Cache answers for: its key and what its CertID is made of.
type Certificate struct {
	Key          certs.Key
	Leaf, Issuer *x509.Certificate
}

// certIDKey is an issuer (name and key hashes) and a serial, as a request's CertID gives them.
type certIDKey struct {
	nameHash, keyHash, serial string
}

func keyOf(id ocspwire.CertID) certIDKey {
	return certIDKey{nameHash: string(id.IssuerNameHash), keyHash: string(id.IssuerKeyHash), serial: SerialKey(id.Serial)}
}

// Serve makes cs the certificates the cache answers for, in place of the ones before (a reload).
func (c *Cache) Serve(cs []Certificate) {
	ids := make(map[certIDKey]certs.Key, len(cs))
	for _, cert := range cs {
		if id, err := ocspwire.NewCertID(cert.Issuer, cert.Leaf.SerialNumber, c.hash()); err == nil {
			ids[keyOf(id)] = cert.Key
		}
	}
	c.ids.Store(&ids)
	served := make(map[certs.Key]bool, len(ids))
	for _, key := range ids {
		served[key] = true
	}
	c.answers.Range(func(k, _ any) bool { // what is no longer served is not kept either
		if !served[k.(certs.Key)] {
			c.answers.Delete(k)
		}
		return true
	})
}

func (c *Cache) hash() crypto.Hash {
	if c.Hash == 0 {
		return crypto.SHA1
	}
	return c.Hash
}

// Response answers req from Lookup.
func (c *Cache) Response(_ context.Context, req *Request) (*Response, error) {
	if !req.Fault.IsZero() {
		return nil, ErrUnsupportedFault // a cache injects no faults
	}
	ids := c.ids.Load()
	if len(req.CertIDs) != 1 || ids == nil || req.CertIDs[0].Hash != c.hash() {
		return nil, ErrUnauthorized
	}
	key, ok := (*ids)[keyOf(req.CertIDs[0])]
	if !ok {
		return nil, ErrUnauthorized
	}
	raw, thisUpdate, expires := c.Lookup(key)
	if raw == nil {
		return nil, ErrUnauthorized
	}
	if v, ok := c.answers.Load(key); ok && sameBytes(v.(*Response).Raw, raw) {
		return v.(*Response), nil
	}
	resp := NewResponse(raw, thisUpdate, expires)
	c.answers.Store(key, resp)
	return resp, nil
}

// sameBytes reports whether a and b hold the same bytes, at once when they are the same slice (Lookup hands
// out the engine's shared copy of a response, so that is the usual case).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0] || bytes.Equal(a, b))
}
