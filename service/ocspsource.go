package service

import (
	"context"
	"crypto"
	"crypto/x509"
	"sync"

	"staple/certs"
	"staple/ocspwire"
	"staple/responder"
	"staple/stapler"
)

// sha256Hash is the CertID hash of [fetch] sha256 = true.
const sha256Hash = crypto.SHA256

// certIDIndex finds the watched certificate an OCSP request's CertID names. Only the hash the fetcher uses
// is indexed: the cached responses carry CertIDs of that hash, and a client (OpenSSL's OCSP_resp_find,
// nginx) matches the hash algorithm too, so a request in another hash could not use them.
type certIDIndex struct {
	hash crypto.Hash
	keys map[certIDKey]certs.Key
}

// certIDKey is an issuer (name and key hashes) and a serial, as a request's CertID gives them.
type certIDKey struct {
	nameHash, keyHash, serial string
}

func newCertIDIndex(sites []*site, useSHA256 bool) *certIDIndex {
	ix := &certIDIndex{hash: crypto.SHA1, keys: map[certIDKey]certs.Key{}}
	if useSHA256 {
		ix.hash = crypto.SHA256
	}
	for _, st := range sites {
		if !st.watched {
			continue
		}
		if id, ok := ix.idOf(st.chain.Leaf, st.chain.Issuer); ok {
			ix.keys[id] = st.key
		}
	}
	return ix
}

func (ix *certIDIndex) idOf(leaf, issuer *x509.Certificate) (certIDKey, bool) {
	id, err := ocspwire.NewCertID(issuer, leaf.SerialNumber, ix.hash)
	if err != nil {
		return certIDKey{}, false
	}
	return keyOf(id), true
}

// keyOf returns the map key of id.
func keyOf(id ocspwire.CertID) certIDKey {
	return certIDKey{nameHash: string(id.IssuerNameHash), keyHash: string(id.IssuerKeyHash), serial: responder.SerialKey(id.Serial)}
}

// lookup returns the key the CertID names.
func (ix *certIDIndex) lookup(id ocspwire.CertID) (certs.Key, bool) {
	if id.Hash != ix.hash {
		return certs.Key{}, false
	}
	k, ok := ix.keys[keyOf(id)]
	return k, ok
}

// cachingSource is the caching responder's responder.Source: it answers RFC 5019 requests for the watched
// certificates with the bytes the stapler fetched and verified, signing nothing. Anything it does not hold
// a valid response for is unauthorized (RFC 5019 §2.2.3), as a pre-signing responder answers; a request
// for several certificates too, since each cached response covers one. A nonce cannot be echoed by
// pre-produced responses; RFC 5019 §2.2.1 has clients accept them without one.
type cachingSource struct {
	svc *Service
	// answers caches, per key, the responder.Response made from a staple record, so that its ETag and
	// dates are computed once per response rather than once per request. Records are immutable: the
	// pointer says whether the cached answer is current.
	answers sync.Map // certs.Key → answered
}

type answered struct {
	st   *stapler.Staple
	resp *responder.Response
}

func (c *cachingSource) Response(_ context.Context, req *responder.Request) (*responder.Response, error) {
	if !req.Fault.IsZero() {
		return nil, responder.ErrUnsupportedFault // the caching responder injects no faults
	}
	if len(req.CertIDs) != 1 {
		return nil, responder.ErrUnauthorized
	}
	key, ok := c.svc.front.sites.Load().ids.lookup(req.CertIDs[0])
	if !ok {
		return nil, responder.ErrUnauthorized
	}
	st := c.svc.stapler.Current(key)
	if st == nil {
		return nil, responder.ErrUnauthorized
	}
	if v, ok := c.answers.Load(key); ok && v.(answered).st == st {
		return v.(answered).resp, nil
	}
	resp := responder.NewResponse(st.Raw, st.ThisUpdate, st.Expires)
	c.answers.Store(key, answered{st: st, resp: resp})
	return resp, nil
}
