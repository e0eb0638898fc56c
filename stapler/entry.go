package stapler

import (
	"crypto/x509"
	"net/url"
	"time"

	"staple/cache"
	"staple/certs"
)

// state is where an entry is in its fetch cycle.
type state int

const (
	idle       state = iota
	queued           // waiting in its host's queue for a free slot
	fetching         // a fetch is in flight
	persisting       // the fetch is done; its outcome is being written to storage
)

// entry is the stapler's state for one certificate. Every field is guarded by Stapler.mu.
type entry struct {
	key certs.Key
	// leaf and issuer are nil for an entry restored from storage until its first fetch loads them.
	leaf, issuer *x509.Certificate
	urls         []string
	host         string // responder host the per-host limit counts against
	mustStaple   bool
	// names are the leaf's DNS names and IP addresses, for listings; namesKnown says they were read (from the
	// leaf a Watch or Import gave, or once from storage: see loadNames).
	names      []string
	namesKnown bool

	// refs counts Watch calls not yet matched by Unwatch. An entry restored from storage has refs 0 and is
	// kept fresh all the same; hasCert says storage holds (or Watch gave) what a fetch needs.
	refs    int
	hasCert bool

	resp *cache.Response // newest accepted response, nil when none

	state    state
	next     time.Time // when the next fetch is due
	failures int       // consecutive failed fetches, as the history records them
	retries  int       // the backoff's step: failures, and answers that staple nothing new (unknown, already due)
	lastErr  error
	lastTry  time.Time
	// attempted is set once a fetch has finished since Start, whatever its outcome.
	attempted bool
	// again asks for another fetch as soon as the one in flight ends (Refresh during a fetch).
	again bool
	// waiters are closed when the next fetch to start has finished; Refresh waits on them.
	waiters []chan struct{}
	// dirty is set while resp has not reached storage.
	dirty bool
	// certDirty is set while the certificate a Watch gave has not reached storage (its write failed, or a
	// fleet's store lost it): the backlog writes it, before resp, since a fleet's store refuses a response
	// without its certificate.
	certDirty bool
	// storeErr is why the last write of resp or the certificate failed, while one of them is dirty.
	storeErr error
	// expiredSeen is set once the Expired event has been raised for resp.
	expiredSeen bool
	timer       *time.Timer // retry wake-up
	history     []cache.Attempt
	removed     bool
}

// know gives e the certificate of chain: its leaf and issuer, OCSP URLs, Must-Staple and names.
func (e *entry) know(chain *certs.Chain) {
	e.leaf, e.issuer, e.hasCert = chain.Leaf, chain.Issuer, true
	e.urls, e.mustStaple = certs.OCSPURLs(chain.Leaf), certs.MustStaple(chain.Leaf)
	e.setNames(chain.Leaf)
	if e.state == idle {
		e.host = responderHost(e.urls)
	}
}

// setNames records the names of e's leaf.
func (e *entry) setNames(leaf *x509.Certificate) { e.names, e.namesKnown = certs.Names(leaf), true }

func (e *entry) fetchable() bool { return e.hasCert && !e.removed }

// stored records the outcome of a write of e's certificate or response: err, kept while either is dirty.
func (e *entry) stored(err error) {
	if err != nil {
		e.storeErr = err
	} else if !e.dirty && !e.certDirty {
		e.storeErr = nil
	}
}

// certRecord is the storage record of e's certificate, which a Watch or Import gave (e.leaf is set).
func (e *entry) certRecord(added time.Time) cache.Cert {
	return cache.Cert{Leaf: e.leaf.Raw, Issuer: e.issuer.Raw, URLs: e.urls, MustStaple: e.mustStaple, Added: added}
}

func (e *entry) stopTimer() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// responderHost returns the host of the first responder URL, the one the per-host limit counts against; ""
// for none.
func responderHost(urls []string) string {
	if len(urls) == 0 {
		return ""
	}
	u, err := url.Parse(urls[0])
	if err != nil {
		return urls[0]
	}
	return u.Host
}
