package stapler

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// fakeResponder is a Fetcher that answers like a CA's responder, in process: real DER responses signed by a
// testpki CA, with thisUpdate at the time of the request and nextUpdate Validity later. It can be taken down,
// told to revoke, to answer unknown, to answer with an old response, and to be slow; it counts requests in
// flight per responder host.
type fakeResponder struct {
	t        testing.TB
	ca       *testpki.CA
	validity time.Duration
	latency  time.Duration // each request takes this long (on the bubble's clock)

	mu        sync.Mutex
	down      error // when set, every request fails with it
	revoked   map[string]time.Time
	unknown   map[string]bool
	backdate  time.Duration // thisUpdate = now − backdate (a stale cache in front of the responder)
	gate      chan struct{} // when set, a request waits for it to be closed
	inFlight  map[string]int
	peakHost  map[string]int
	total     int
	peakTotal int

	exchanges
}

// exchanges records what a responder answered: every request's outcome, and every response sent.
type exchanges struct {
	xmu      sync.Mutex
	requests []request
	issued   []issued
}

type request struct {
	at     time.Time // when the answer was sent
	serial string
	err    error
	// thisUpdate and nextUpdate of a successful answer.
	thisUpdate, nextUpdate time.Time
}

// issued is a response a responder sent.
type issued struct {
	raw                    []byte
	serial                 string
	thisUpdate, nextUpdate time.Time
	status                 ocspwire.Status
}

func (x *exchanges) record(r request, sent *issued) {
	x.xmu.Lock()
	defer x.xmu.Unlock()
	x.requests = append(x.requests, r)
	if sent != nil {
		x.issued = append(x.issued, *sent)
	}
}

func (x *exchanges) log() []request {
	x.xmu.Lock()
	defer x.xmu.Unlock()
	return append([]request(nil), x.requests...)
}

func (x *exchanges) issuedSnapshot() []issued {
	x.xmu.Lock()
	defer x.xmu.Unlock()
	return append([]issued(nil), x.issued...)
}

// newestValid returns the response with the latest thisUpdate sent for serial that is valid at now, if any:
// what a correct stapler must be stapling then.
func (x *exchanges) newestValid(serial string, now time.Time) (issued, bool) {
	x.xmu.Lock()
	defer x.xmu.Unlock()
	var best issued
	found := false
	for _, r := range x.issued {
		if r.serial == serial && now.Before(r.nextUpdate) && (!found || r.thisUpdate.After(best.thisUpdate)) {
			best, found = r, true
		}
	}
	return best, found
}

func newFakeResponder(t testing.TB, ca *testpki.CA, validity time.Duration) *fakeResponder {
	return &fakeResponder{t: t, ca: ca, validity: validity, revoked: map[string]time.Time{},
		unknown: map[string]bool{}, inFlight: map[string]int{}, peakHost: map[string]int{}}
}

func (f *fakeResponder) Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error) {
	host := responderHost(leaf.OCSPServer)
	url := firstURL(leaf.OCSPServer)
	f.mu.Lock()
	f.inFlight[host]++
	f.total++
	f.peakHost[host] = max(f.peakHost[host], f.inFlight[host])
	f.peakTotal = max(f.peakTotal, f.total)
	gate := f.gate
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[host]--
		f.total--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	now := time.Now()
	serial := leaf.SerialNumber.String()
	f.mu.Lock()
	down, revokedAt, isRevoked, unknown, backdate := f.down, f.revoked[serial], false, f.unknown[serial], f.backdate
	_, isRevoked = f.revoked[serial]
	f.mu.Unlock()
	if down != nil {
		f.record(request{at: now, serial: serial, err: down}, nil)
		return nil, down
	}
	this := now.Add(-backdate)
	o := testpki.ResponseOptions{ThisUpdate: this, NextUpdate: this.Add(f.validity), ProducedAt: this}
	st := ocspwire.Good
	switch {
	case isRevoked:
		o.Status, o.RevokedAt, o.Reason = ocspwire.Revoked, revokedAt, 1
		st = ocspwire.Revoked
	case unknown:
		o.Status, st = ocspwire.Unknown, ocspwire.Unknown
	}
	raw := f.ca.Respond(f.t, leaf, o)
	f.record(request{at: now, serial: serial, thisUpdate: this, nextUpdate: this.Add(f.validity)},
		&issued{raw: raw, serial: serial, thisUpdate: this, nextUpdate: this.Add(f.validity), status: st})
	r := &ocspfetch.Response{Raw: raw, Status: st, Serial: leaf.SerialNumber, ProducedAt: this, ThisUpdate: this,
		NextUpdate: this.Add(f.validity), Verified: now, HTTP: ocspfetch.HTTPInfo{URL: url, Method: "GET"}}
	if isRevoked {
		r.RevokedAt, r.RevocationReason, r.HasReason = revokedAt, 1, true
	}
	return r, nil
}

func (f *fakeResponder) setDown(err error) {
	f.mu.Lock()
	f.down = err
	f.mu.Unlock()
}

func (f *fakeResponder) revoke(serial *big.Int, at time.Time) {
	f.mu.Lock()
	f.revoked[serial.String()] = at
	f.mu.Unlock()
}

func (f *fakeResponder) peaks() (perHost map[string]int, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for k, v := range f.peakHost {
		m[k] = v
	}
	return m, f.peakTotal
}

// outage is what an unreachable responder looks like to the stapler.
var outage = &ocspfetch.HTTPError{URL: "http://ocsp.test/", StatusCode: 503}

// faultyStore is a cache.Store whose response writes can be made to fail or to block.
type faultyStore struct {
	*cache.Store
	mu      sync.Mutex
	fail    error
	block   chan struct{} // when set, PutResponse waits for it to be closed
	entered chan struct{} // receives when a PutResponse starts blocking
}

func (s *faultyStore) PutResponse(key certs.Key, r cache.Response) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.PutResponse(key, r)
}

// PutFetched is the stapler's one-transaction write of a fetch, under the same faults.
func (s *faultyStore) PutFetched(key certs.Key, r cache.Response, a cache.Attempt) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.PutFetched(key, r, a)
}

// fault blocks while a block is set, then returns the failure set, if any.
func (s *faultyStore) fault() error {
	s.mu.Lock()
	fail, block, entered := s.fail, s.block, s.entered
	s.mu.Unlock()
	if block != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		<-block
	}
	return fail
}

func (s *faultyStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

var errDiskFull = errors.New("disk full")

func openStore(t testing.TB, path string) *cache.Store {
	t.Helper()
	st, err := cache.Open(path, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func tempStorePath(t testing.TB) string { return filepath.Join(t.TempDir(), "cache.db") }

// eventLog collects events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) count(kind EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func (l *eventLog) last(kind EventKind) (Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0; i-- {
		if l.events[i].Kind == kind {
			return l.events[i], true
		}
	}
	return Event{}, false
}

// logBuffer is a zerolog destination a test can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(w io.Writer) zerolog.Logger { return zerolog.New(w).With().Timestamp().Logger() }

// leafChain issues a leaf from ca with the given responder URLs and returns it as a certs.Chain.
func leafChain(t testing.TB, ca *testpki.CA, o testpki.LeafOptions) *certs.Chain {
	t.Helper()
	leaf := ca.Issue(t, o)
	chain, err := certs.NewChain(leaf.Chain, leaf.Key, []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if chain.Issuer == nil {
		t.Fatal("test chain has no issuer")
	}
	return chain
}

// mustNew makes a stapler for a test. It reads time.Now on every Staple unless the test set Now: the
// tests check staples to the nanosecond of their expiry, which the hot path's 50 ms clock (TestHotClock)
// gives up.
func mustNew(t testing.TB, cfg Config) *Stapler {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// noJitter makes the policy's jitter zero, so refresh times are exact.
func noJitter() float64 { return 0.5 }
