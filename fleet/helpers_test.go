package fleet

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// caResponder is a Fetcher that answers like one CA's responder for the whole fleet: real DER responses
// signed by a testpki CA, each with a thisUpdate a second after the previous one (OCSP times have whole
// seconds), valid for validity. It counts requests by serial, and can be taken down.
type caResponder struct {
	t        testing.TB
	ca       *testpki.CA
	validity time.Duration

	mu    sync.Mutex
	last  time.Time
	down  bool
	count map[string]int
}

var errResponderDown = errors.New("test responder down")

func newCAResponder(t testing.TB, ca *testpki.CA, validity time.Duration) *caResponder {
	return &caResponder{t: t, ca: ca, validity: validity, count: map[string]int{}}
}

func (f *caResponder) Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error) {
	f.mu.Lock()
	if f.down {
		f.mu.Unlock()
		return nil, errResponderDown
	}
	this := time.Now().Truncate(time.Second)
	if !this.After(f.last) {
		this = f.last.Add(time.Second)
	}
	f.last = this
	f.count[leaf.SerialNumber.String()]++
	f.mu.Unlock()
	next := this.Add(f.validity)
	raw := f.ca.Respond(f.t, leaf, testpki.ResponseOptions{ThisUpdate: this, NextUpdate: next, ProducedAt: this})
	return &ocspfetch.Response{Raw: raw, Status: ocspwire.Good, Serial: leaf.SerialNumber, ProducedAt: this,
		ThisUpdate: this, NextUpdate: next, Verified: time.Now(), HTTP: ocspfetch.HTTPInfo{URL: firstOCSP(leaf)}}, nil
}

func (f *caResponder) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.count {
		n += c
	}
	return n
}

func (f *caResponder) lastThisUpdate() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// testCA is an ECDSA root for a test.
func testCA(t testing.TB, name string) *testpki.CA {
	return testpki.NewRoot(t, name, testpki.ECDSAP256)
}

func firstOCSP(c *x509.Certificate) string {
	if len(c.OCSPServer) == 0 {
		return ""
	}
	return c.OCSPServer[0]
}

// testChain issues a leaf with a responder URL and returns its chain.
func testChain(t testing.TB, ca *testpki.CA) *certs.Chain {
	t.Helper()
	return leafChain(t, ca.Issue(t, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}), ca)
}

// leafChain is the chain of a leaf ca issued.
func leafChain(t testing.TB, leaf *testpki.Leaf, ca *testpki.CA) *certs.Chain {
	t.Helper()
	chain, err := certs.NewChain(leaf.Chain, leaf.Key, []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// record returns a response record for chain's leaf with the given thisUpdate, valid for a day.
func record(t testing.TB, ca *testpki.CA, chain *certs.Chain, this time.Time) cache.Response {
	t.Helper()
	next := this.Add(24 * time.Hour)
	raw := ca.Respond(t, chain.Leaf, testpki.ResponseOptions{ThisUpdate: this, NextUpdate: next, ProducedAt: this})
	return cache.Response{Raw: raw, Status: ocspwire.Good, ProducedAt: this, ThisUpdate: this, NextUpdate: next,
		Expires: next, RefreshAt: this.Add(12 * time.Hour), Fetched: this, URL: "http://ocsp.test/"}
}

func clientv3WithPrefix() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithPrefix()} }

func leaseID(id int64) clientv3.LeaseID { return clientv3.LeaseID(id) }
