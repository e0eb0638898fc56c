package stapler

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no fetcher", Config{}},
		{"bad cron spec", Config{Fetcher: newFakeResponder(t, nil, day), Sweep: "every thirty seconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("New accepted the configuration")
			}
		})
	}
}

func TestWatchTwiceFetchesOnce(t *testing.T) {
	ca := testpki.NewRoot(t, "twice CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		s := mustNew(t, Config{Fetcher: fake})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		k1, err1 := s.Watch(chain)
		k2, err2 := s.Watch(chain)
		synctest.Wait()
		if err1 != nil || err2 != nil || k1 != k2 {
			t.Fatalf("Watch twice: %v %v, keys %v %v", err1, err2, k1, k2)
		}
		if n := len(fake.log()); n != 1 {
			t.Errorf("%d fetches for a certificate watched twice, want 1", n)
		}
		if s.Staple(k1) == nil {
			t.Fatal("no staple after the fetch")
		}
		if err := s.Unwatch(k1); err != nil {
			t.Fatal(err)
		}
		if s.Staple(k1) == nil {
			t.Error("the first Unwatch dropped a certificate still watched once")
		}
		if err := s.Unwatch(k1); err != nil {
			t.Fatal(err)
		}
		if s.Staple(k1) != nil {
			t.Error("a certificate no longer watched is still stapled")
		}
		if err := s.Unwatch(k1); !errors.Is(err, ErrNotWatched) {
			t.Errorf("Unwatch of an unwatched key: %v, want ErrNotWatched", err)
		}
		if _, ok := s.Entry(k1); ok {
			t.Error("Entry of an unwatched key")
		}
	})
}

func TestWatchNeedsIssuer(t *testing.T) {
	ca := testpki.NewRoot(t, "no issuer CA", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{})
	chain, err := certs.NewChain([]*x509.Certificate{leaf.Cert}, leaf.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, day)})
	if _, err := s.Watch(chain); !errors.Is(err, ocspfetch.ErrNoIssuer) {
		t.Errorf("Watch of a chain without issuer: %v, want ocspfetch.ErrNoIssuer", err)
	}
}

// TestRestartServesWithoutFetch closes the stapler and the store, reopens both, and checks that the first
// lookup returns the staple with no fetch, and that the history survived.
func TestRestartServesWithoutFetch(t *testing.T) {
	ca := testpki.NewRoot(t, "restart CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}, MustStaple: true})
		fake := newFakeResponder(t, ca, 4*day)
		store, err := cache.Open(path, cache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := New(Config{Fetcher: fake, Storage: store, Rand: noJitter})
		s.Start()
		key, _ := s.Watch(chain)
		synctest.Wait()
		before := s.Staple(key)
		if before == nil {
			t.Fatal("no staple before the restart")
		}
		s.Close(context.Background())
		store.Close()

		time.Sleep(time.Hour) // the restart takes a while; the response is still valid
		store2, err := cache.Open(path, cache.Options{})
		if err != nil {
			t.Fatalf("reopening: %v", err)
		}
		defer store2.Close()
		var calls atomic.Int32
		counting := fetcherFunc(func(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error) {
			calls.Add(1)
			return fake.Fetch(ctx, leaf, issuer)
		})
		s2 := mustNew(t, Config{Fetcher: counting, Storage: store2, Rand: noJitter})
		if err := s2.Start(); err != nil {
			t.Fatal(err)
		}
		if got := s2.Staple(key); !bytes.Equal(got, before) {
			t.Fatalf("first lookup after the restart: %d bytes, want the %d stored", len(got), len(before))
		}
		if !s2.Ready() {
			t.Error("not Ready after a warm start with a valid response")
		}
		synctest.Wait()
		if n := calls.Load(); n != 0 {
			t.Errorf("%d fetches after the restart, want 0", n)
		}
		info, ok := s2.Entry(key)
		if !ok || !info.Fetchable || !info.MustStaple || len(info.History) != 1 || !info.History[0].OK() {
			t.Errorf("entry after the restart: %+v", info)
		}
		// The restored entry still refreshes on schedule (midpoint: two days after the first fetch, within a
		// sweep), from its stored certificate.
		time.Sleep(time.Until(t0.Add(2*day + time.Minute)))
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("%d fetches at the refresh time after the restart, want 1", n)
		}
		info, _ = s2.Entry(key)
		if late := info.ThisUpdate.Sub(t0.Add(2 * day)); info.LastError != "" || late < 0 || late > 30*time.Second {
			t.Errorf("refresh of a restored entry came %v after its time: %q", late, info.LastError)
		}
	})
}

type fetcherFunc func(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error)

func (f fetcherFunc) Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error) {
	return f(ctx, leaf, issuer)
}

// TestWarmStartFetchesMissing: at start, certificates whose stored response expired (or that have none) are
// fetched at once; those with a valid one are not.
func TestWarmStartFetchesMissing(t *testing.T) {
	ca := testpki.NewRoot(t, "warm CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		fresh := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		stale := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}, MustStaple: true})
		fake := newFakeResponder(t, ca, 4*day)
		store := openStore(t, path)
		s, _ := New(Config{Fetcher: fake, Storage: store})
		s.Start()
		kFresh, _ := s.Watch(fresh)
		kStale, _ := s.Watch(stale)
		synctest.Wait()
		s.Close(context.Background())
		// Make the second one's response expired, as if the service had been down for days.
		r, _ := store.Response(kStale)
		r.Expires = time.Now().Add(-time.Second)
		store.DeleteResponse(kStale)
		if err := store.PutResponse(kStale, r); err != nil {
			t.Fatal(err)
		}
		before := len(fake.log())

		// The fetch the warm start makes at once waits at the gate: what is stapled before it comes back is
		// what the store held (checked without it, the fetch raced the checks, and won once in 20 runs under
		// load).
		gate := make(chan struct{})
		fake.mu.Lock()
		fake.gate = gate
		fake.mu.Unlock()
		s2 := mustNew(t, Config{Fetcher: fake, Storage: store})
		if err := s2.Start(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the warm start's fetch is at the gate
		if s2.Staple(kStale) != nil {
			t.Error("an expired stored response is served")
		}
		if s2.Staple(kFresh) == nil {
			t.Error("the valid stored response is not served at once")
		}
		if s2.Ready() {
			t.Error("Ready before the Must-Staple certificate's fetch")
		}
		close(gate)
		synctest.Wait()
		reqs := fake.log()[before:]
		if len(reqs) != 1 || reqs[0].serial != stale.Leaf.SerialNumber.String() {
			t.Errorf("fetches after the warm start: %+v, want one, of the stale certificate", reqs)
		}
		if s2.Staple(kStale) == nil || s2.Staple(kFresh) == nil || !s2.Ready() {
			t.Error("not both stapled and ready after the warm start's fetch")
		}
	})
}

// TestPerHostLimit watches 1,000 certificates behind one responder and checks that no more than MaxPerHost
// requests are ever in flight to it, and that all are fetched.
func TestPerHostLimit(t *testing.T) {
	ca := testpki.NewRoot(t, "busy CA", testpki.ECDSAP256)
	chains := make([]*certs.Chain, 1000)
	for i := range chains {
		chains[i] = leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.busy.test/"}})
	}
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeResponder(t, ca, 4*day)
		fake.latency = 200 * time.Millisecond
		s := mustNew(t, Config{Fetcher: fake})
		s.Start()
		keys := make([]certs.Key, len(chains))
		for i, c := range chains {
			keys[i], _ = s.Watch(c)
		}
		synctest.Wait()
		time.Sleep(time.Minute) // 1,000 fetches of 200 ms, 4 at a time, take 50 s
		synctest.Wait()
		perHost, total := fake.peaks()
		if perHost["ocsp.busy.test"] != DefaultMaxPerHost || total > DefaultMaxPerHost {
			t.Errorf("peak in flight: %d to the host, %d overall; want exactly %d", perHost["ocsp.busy.test"], total, DefaultMaxPerHost)
		}
		if n := len(fake.log()); n != len(chains) {
			t.Errorf("%d fetches, want %d", n, len(chains))
		}
		for _, k := range keys {
			if s.Staple(k) == nil {
				t.Fatalf("%v has no staple", k)
			}
		}
	})
}

// TestGlobalLimit spreads 600 certificates over 12 responder hosts: at most MaxPerHost per host and MaxInFlight
// overall are in flight, and the overall limit is reached.
func TestGlobalLimit(t *testing.T) {
	ca := testpki.NewRoot(t, "many hosts CA", testpki.ECDSAP256)
	var chains []*certs.Chain
	for h := range 12 {
		for range 50 {
			url := fmt.Sprintf("http://ocsp%d.test/", h)
			chains = append(chains, leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{url}}))
		}
	}
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeResponder(t, ca, 4*day)
		fake.latency = 100 * time.Millisecond
		s := mustNew(t, Config{Fetcher: fake})
		s.Start()
		for _, c := range chains {
			s.Watch(c)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		perHost, total := fake.peaks()
		for h, n := range perHost {
			if n > DefaultMaxPerHost {
				t.Errorf("%d in flight to %s, limit %d", n, h, DefaultMaxPerHost)
			}
		}
		if total != DefaultMaxInFlight {
			t.Errorf("peak %d in flight overall, want exactly %d", total, DefaultMaxInFlight)
		}
		if m := s.Metrics(); m.PeakInFlight != DefaultMaxInFlight || m.Fetches != uint64(len(chains)) {
			t.Errorf("metrics: peak %d, %d fetches", m.PeakInFlight, m.Fetches)
		}
	})
}

func TestOlderResponseIsRejected(t *testing.T) {
	ca := testpki.NewRoot(t, "older CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		s := mustNew(t, Config{Fetcher: fake})
		s.Start()
		key, _ := s.Watch(chain)
		synctest.Wait()
		held := s.Staple(key)

		// A cache in front of the responder now serves a response from before the one held.
		fake.mu.Lock()
		fake.backdate = time.Hour
		fake.mu.Unlock()
		time.Sleep(30 * time.Minute)
		info, err := s.Refresh(context.Background(), key)
		if !errors.Is(err, ErrOlderResponse) {
			t.Fatalf("Refresh: %v, want ErrOlderResponse", err)
		}
		if !bytes.Equal(s.Staple(key), held) {
			t.Error("an older response replaced the one held")
		}
		if info.LastReason != "older_response" || info.Failures != 1 {
			t.Errorf("entry after an older response: reason %q, %d failures", info.LastReason, info.Failures)
		}
		if m := s.Metrics(); m.Failures["older_response"] != 1 {
			t.Errorf("failures by reason: %v", m.Failures)
		}
	})
}

func TestUnknownStatus(t *testing.T) {
	for _, stapleUnknown := range []bool{false, true} {
		t.Run(fmt.Sprintf("StapleUnknown=%v", stapleUnknown), func(t *testing.T) {
			ca := testpki.NewRoot(t, "unknown CA", testpki.ECDSAP256)
			synctest.Test(t, func(t *testing.T) {
				chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
				fake := newFakeResponder(t, ca, 4*day)
				s := mustNew(t, Config{Fetcher: fake, StapleUnknown: stapleUnknown})
				s.Start()
				key, _ := s.Watch(chain)
				synctest.Wait()
				if s.Staple(key) == nil {
					t.Fatal("good is not stapled")
				}
				fake.mu.Lock()
				fake.unknown[chain.Leaf.SerialNumber.String()] = true
				fake.mu.Unlock()
				time.Sleep(time.Minute)
				info, err := s.Refresh(context.Background(), key)
				if err != nil || info.Status != ocspwire.Unknown {
					t.Fatalf("Refresh: %v, status %v", err, info.Status)
				}
				if got := s.Staple(key) != nil; got != stapleUnknown {
					t.Errorf("unknown stapled = %v, want %v (a good held before must not be stapled either)", got, stapleUnknown)
				}
				if stapleUnknown {
					return
				}
				// Not stapled, so asked again within the first backoff step (1 min, +10% jitter), not at the
				// midpoint two days away: the responder now knows the certificate.
				if wait := time.Until(info.NextRefresh); wait > 66*time.Second {
					t.Errorf("next refresh after unknown in %v, want the first backoff step", wait)
				}
				// The fetch itself succeeded, as its history says: no failure to count (a command reading
				// the stored history after a restart counts the same).
				if info.Failures != 0 {
					t.Errorf("%d failures counted for an answered fetch, want 0", info.Failures)
				}
				fake.mu.Lock()
				delete(fake.unknown, chain.Leaf.SerialNumber.String())
				fake.mu.Unlock()
				time.Sleep(2 * time.Minute)
				synctest.Wait()
				if s.Staple(key) == nil {
					t.Error("good is not stapled again two minutes after unknown")
				}
			})
		})
	}
}

// TestBlockedWriteDoesNotDelayStaple holds the disk write of a new response and checks that the new response
// is stapled while the write waits.
func TestBlockedWriteDoesNotDelayStaple(t *testing.T) {
	ca := testpki.NewRoot(t, "slow disk CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		store := &faultyStore{Store: openStore(t, tempStorePath(t))}
		s := mustNew(t, Config{Fetcher: fake, Storage: store})
		s.Start()
		key, _ := s.Watch(chain)
		synctest.Wait()
		first := s.Staple(key)

		block := make(chan struct{})
		store.mu.Lock()
		store.block, store.entered = block, make(chan struct{}, 1)
		store.mu.Unlock()
		time.Sleep(time.Hour)
		go s.Refresh(context.Background(), key)
		<-store.entered
		synctest.Wait() // the fetch goroutine is now blocked in the disk write
		got := s.Staple(key)
		if got == nil || bytes.Equal(got, first) {
			t.Fatal("the new response is not stapled while its write is blocked")
		}
		if info, _ := s.Entry(key); info.Persisted {
			t.Error("entry says persisted while the write is blocked")
		}
		close(block)
		settle()
		stored, err := store.Response(key)
		if err != nil || !bytes.Equal(stored.Raw, got) {
			t.Errorf("stored after the write was released: %v", err)
		}
	})
}

func TestReadyCountsAttemptsForOrdinaryCertificates(t *testing.T) {
	ca := testpki.NewRoot(t, "ready CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		plain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		fake.setDown(outage)
		var events eventLog
		s := mustNew(t, Config{Fetcher: fake, OnEvent: events.add, Rand: noJitter})
		if s.Ready() {
			t.Error("Ready before Start")
		}
		s.Start()
		key, _ := s.Watch(plain)
		synctest.Wait()
		if !s.Ready() {
			t.Error("not Ready after an ordinary certificate's first attempt failed")
		}
		if events.count(FetchFailed) != 1 {
			t.Errorf("%d FetchFailed events, want 1", events.count(FetchFailed))
		}
		info, _ := s.Entry(key)
		if info.LastReason != "http_503" || info.HasResponse || info.Failures != 1 || len(info.History) != 1 {
			t.Errorf("entry after a failed fetch: %+v", info)
		}
		if !info.NextRefresh.Equal(time.Now().Add(10 * time.Second)) {
			t.Errorf("retry in %v, want in 10 s (nothing to staple meanwhile)", time.Until(info.NextRefresh))
		}
	})
}

// TestNoResponderURLIsQuiet: a certificate without an OCSP URL is a normal state: no FetchFailed event, no
// warning, Ready, and retried only at the slow end of the backoff.
func TestNoResponderURLIsQuiet(t *testing.T) {
	ca := testpki.NewRoot(t, "no URL CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{})
		var calls atomic.Int32
		fetcher := fetcherFunc(func(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error) {
			calls.Add(1)
			return nil, fmt.Errorf("fetch: %w", ocspfetch.ErrNoResponderURL)
		})
		var events eventLog
		var logs logBuffer
		s := mustNew(t, Config{Fetcher: fetcher, OnEvent: events.add, Logger: testLogger(&logs), Rand: noJitter})
		s.Start()
		key, _ := s.Watch(chain)
		synctest.Wait()
		if events.count(FetchFailed) != 0 {
			t.Error("a FetchFailed event for a certificate without a responder URL")
		}
		if logged(t, logs.String(), "warn", "fetch_failed", "") || logged(t, logs.String(), "error", "fetch_failed", "") {
			t.Error("a warning for a certificate without a responder URL")
		}
		if !s.Ready() {
			t.Error("not Ready")
		}
		info, _ := s.Entry(key)
		if info.LastReason != "no_responder_url" || !info.NextRefresh.Equal(time.Now().Add(time.Hour)) {
			t.Errorf("entry: reason %q, next in %v; want no_responder_url, 1h", info.LastReason, time.Until(info.NextRefresh))
		}
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if calls.Load() != 1 {
			t.Errorf("%d calls within the hour, want 1", calls.Load())
		}
	})
}

func TestRefreshAndRemove(t *testing.T) {
	ca := testpki.NewRoot(t, "refresh CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		store := openStore(t, tempStorePath(t))
		s := mustNew(t, Config{Fetcher: fake, Storage: store})
		s.Start()
		if _, err := s.Refresh(context.Background(), certs.Key{}); !errors.Is(err, ErrNotWatched) {
			t.Errorf("Refresh of an unknown key: %v, want ErrNotWatched", err)
		}
		key, _ := s.Watch(chain)
		synctest.Wait()
		time.Sleep(time.Hour)
		asked := time.Now()
		info, err := s.Refresh(context.Background(), key)
		if err != nil || !info.ThisUpdate.Equal(asked) || !info.Stapled {
			t.Fatalf("Refresh: %v, %+v", err, info)
		}
		if n := len(fake.log()); n != 2 {
			t.Errorf("%d fetches, want 2", n)
		}
		entries := s.Entries()
		if len(entries) != 1 || entries[0].Key != key || !entries[0].Watched || entries[0].State != "idle" {
			t.Errorf("Entries: %+v", entries)
		}
		// Watched (a site serves it), it is not forgotten: its response and history go and a fresh response is
		// fetched at once.
		time.Sleep(time.Hour)
		held, removed := s.Staple(key), time.Now()
		info, err = s.Remove(context.Background(), key)
		if err != nil || !info.Watched || !info.Stapled || bytes.Equal(info.Raw, held) || info.ThisUpdate.Before(removed) {
			t.Fatalf("Remove of a watched certificate: %v, %+v", err, info)
		}
		if n := len(fake.log()); n != 3 {
			t.Errorf("%d fetches, want 3", n)
		}
		if h, err := store.History(key); err != nil || len(h) != 1 {
			t.Errorf("stored history after Remove and its fetch: %d attempts (%v), want 1", len(h), err)
		}
		if r, err := store.Response(key); err != nil || !bytes.Equal(r.Raw, info.Raw) {
			t.Errorf("stored response after Remove is not the fresh one: %v", err)
		}
		if _, err := store.Cert(key); err != nil {
			t.Errorf("the certificate of a watched entry left storage: %v", err)
		}
		// Unwatched, it goes.
		if err := s.Unwatch(key); err != nil {
			t.Fatal(err)
		}
		if info, err := s.Remove(context.Background(), key); err != nil || info.Watched || info.Key != key {
			t.Errorf("Remove of a forgotten certificate: %v, %+v", err, info)
		}
		if s.Staple(key) != nil || len(s.Entries()) != 0 {
			t.Error("still stapled or listed after Remove")
		}
		if _, err := store.Response(key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("stored response after Remove: %v", err)
		}
		if _, err := store.Cert(key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("stored certificate after Remove: %v", err)
		}
	})
}

// TestCustomSweep runs the sweep every 10 seconds (a cron spec with seconds): a refresh comes within 10 s of
// its time.
func TestCustomSweep(t *testing.T) {
	ca := testpki.NewRoot(t, "sweep CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		fake.latency = 1300 * time.Millisecond
		s := mustNew(t, Config{Fetcher: fake, Sweep: "*/10 * * * * *", Rand: noJitter})
		s.Start()
		s.Watch(chain)
		time.Sleep(2*day + time.Minute)
		synctest.Wait()
		reqs := fake.log()
		if len(reqs) != 2 {
			t.Fatalf("%d fetches, want 2", len(reqs))
		}
		due := reqs[0].at.Add(2 * day)
		if late := reqs[1].at.Sub(due) - fake.latency; late < 0 || late > 10*time.Second {
			t.Errorf("refresh came %v after its time, want within the 10 s sweep", late)
		}
	})
}

func TestStapleAllocatesNothing(t *testing.T) {
	ca := testpki.NewRoot(t, "alloc CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, 4*day)})
		s.Start()
		key, _ := s.Watch(chain)
		synctest.Wait()
		miss := certs.KeyFor([]byte("other"), chain.Leaf.SerialNumber)
		if allocs := testing.AllocsPerRun(1000, func() {
			if s.Staple(key) == nil || s.Staple(miss) != nil {
				panic("lookup")
			}
		}); allocs != 0 {
			t.Errorf("Staple allocates %.1f times per call, want 0", allocs)
		}
	})
}

// TestHotClock checks the hot path's clock (Config.Now nil) on synctest's clock: a staple is served to the
// last nanosecond before its expiry and never at or after it, and after Close Staple reads the clock itself.
func TestHotClock(t *testing.T) {
	ca := testpki.NewRoot(t, "hot clock CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, time.Hour)
		s, err := New(Config{Fetcher: fake})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		key, _ := s.Watch(chain)
		synctest.Wait()
		info, _ := s.Entry(key)
		if !info.HasResponse {
			t.Fatal("no response fetched")
		}
		fake.setDown(outage) // no refresh: the response held runs out
		expires := info.Expires
		time.Sleep(time.Until(expires) - hotTick - time.Millisecond)
		for time.Now().Before(expires.Add(-time.Millisecond)) {
			if s.Staple(key) == nil {
				t.Fatalf("at %v, before its expiry %v: not stapled", time.Now(), expires)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Until(expires) - time.Nanosecond)
		if s.Staple(key) == nil {
			t.Error("not stapled the nanosecond before its expiry")
		}
		time.Sleep(time.Nanosecond)
		for time.Now().Before(expires.Add(2 * hotTick)) {
			if s.Staple(key) != nil {
				t.Fatalf("stapled at %v, at or after its expiry %v", time.Now(), expires)
			}
			time.Sleep(time.Millisecond)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s.Staple(key) != nil {
			t.Error("stapled after Close past its expiry")
		}
	})
}

// TestRemoveAll forgets several certificates at once: not stapled, not listed, not in storage, and the
// others untouched.
func TestRemoveAll(t *testing.T) {
	ca := testpki.NewRoot(t, "remove all CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeResponder(t, ca, 4*day)
		store := openStore(t, tempStorePath(t))
		s := mustNew(t, Config{Fetcher: fake, Storage: store})
		s.Start()
		var keys []certs.Key
		for range 3 {
			key, err := s.Watch(leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}))
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key)
		}
		settle()
		if err := s.RemoveAll(keys[:2]); err != nil {
			t.Fatal(err)
		}
		for i, key := range keys {
			_, stored := store.Response(key)
			kept := i == 2
			if (s.Staple(key) != nil) != kept || (stored == nil) != kept {
				t.Errorf("key %d: stapled %v, stored %v; want both %v", i, s.Staple(key) != nil, stored == nil, kept)
			}
		}
		if n := len(s.Entries()); n != 1 {
			t.Errorf("%d entries left, want 1", n)
		}
	})
}

// TestWarmStartSkipsCorruptRecord flips one bit of a stored response in the cache file, as a failing disk
// would: at start the record's checksum does not match, so the response is not stapled, not even while the
// responder is down, and is fetched anew once it is back.
func TestWarmStartSkipsCorruptRecord(t *testing.T) {
	ca := testpki.NewRoot(t, "corrupt record CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		store := openStore(t, path)
		s := mustNew(t, Config{Fetcher: fake, Storage: store})
		s.Start()
		key, _ := s.Watch(chain)
		settle()
		stored, err := store.Response(key)
		if err != nil {
			t.Fatal(err)
		}
		s.Close(context.Background())
		store.Close()

		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Every copy: bbolt keeps a small bucket inside its parent's page, so pages that later commits freed
		// may still hold the response's bytes, and only one copy is the live record.
		copies := 0
		for from := 0; ; copies++ {
			at := bytes.Index(file[from:], stored.Raw)
			if at < 0 {
				break
			}
			at += from
			file[at+len(stored.Raw)/2] ^= 0x10
			from = at + len(stored.Raw)
		}
		if copies == 0 {
			t.Fatal("the response's bytes are not in the file")
		}
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}

		fake.setDown(outage)
		before := len(fake.log())
		s2 := mustNew(t, Config{Fetcher: fake, Storage: openStore(t, path)})
		if err := s2.Start(); err != nil {
			t.Fatal(err)
		}
		if s2.Staple(key) != nil {
			t.Fatal("a response whose record was damaged on disk is stapled at start")
		}
		synctest.Wait()
		if s2.Staple(key) != nil {
			t.Fatal("a damaged response is stapled while the responder is down")
		}
		fake.setDown(nil)
		time.Sleep(2 * time.Minute) // past the first retry
		synctest.Wait()
		if n := len(fake.log()) - before; n < 2 {
			t.Errorf("%d fetches after the start, want the failed one and the one that succeeded", n)
		}
		got := s2.Staple(key)
		if got == nil {
			t.Fatal("no staple once the responder is back")
		}
		if _, err := ocspfetch.Verify(got, chain.Leaf, chain.Issuer, time.Now(), ocspfetch.VerifyOptions{}); err != nil {
			t.Errorf("the staple served does not verify: %v", err)
		}
	})
}

// TestForgetUnwatched drops the certificates restored from storage that nobody watched again, and keeps the
// watched ones.
func TestForgetUnwatched(t *testing.T) {
	ca := testpki.NewRoot(t, "forget CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeResponder(t, ca, 4*day)
		store := openStore(t, path)
		s := mustNew(t, Config{Fetcher: fake, Storage: store})
		s.Start()
		kept := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		keptKey, _ := s.Watch(kept)
		goneKey, _ := s.Watch(leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}))
		synctest.Wait()
		s.Close(context.Background())
		store.Close()

		s2 := mustNew(t, Config{Fetcher: fake, Storage: openStore(t, path)})
		s2.Start()
		if _, err := s2.Watch(kept); err != nil {
			t.Fatal(err)
		}
		gone, err := s2.ForgetUnwatched()
		if err != nil || len(gone) != 1 || gone[0] != goneKey {
			t.Fatalf("ForgetUnwatched = %v, %v; want only the certificate not watched again", gone, err)
		}
		if s2.Staple(goneKey) != nil || s2.Staple(keptKey) == nil {
			t.Error("the forgotten one is stapled, or the watched one is not")
		}
	})
}

// settle waits until every goroutine of the bubble is blocked, past the cache's batching of fetched responses
// (bbolt's Batch waits up to 10 ms of the bubble's clock for more writers to join a commit).
func settle() {
	synctest.Wait()
	time.Sleep(50 * time.Millisecond)
	synctest.Wait()
}

// TestRefreshAll: one call refreshes every certificate through the scheduler's queue, within the per-host
// limit, and returns each entry after its fetch; a failed fetch is in the entry's LastError, not the call's
// error; a follower refreshes too, since it was asked.
func TestRefreshAll(t *testing.T) {
	ca := testpki.NewRoot(t, "refresh-all CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeResponder(t, ca, 4*day)
		fake.latency = 10 * time.Millisecond
		s := mustNew(t, Config{Fetcher: fake, Role: func() Role { return Follower }})
		s.Start()
		defer s.Close(context.Background())
		const n = 50
		keys := map[certs.Key]bool{}
		for range n {
			k, _ := s.Watch(leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.all.test/"}}))
			keys[k] = true
		}
		synctest.Wait()
		if got := len(fake.log()); got != 0 {
			t.Fatalf("a follower fetched %d of its own accord", got)
		}
		start := time.Now()
		infos, err := s.RefreshAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != n {
			t.Fatalf("%d entries returned, want %d", len(infos), n)
		}
		for i, in := range infos {
			if !keys[in.Key] || !in.HasResponse || in.Fetched.Before(start) || in.LastError != "" {
				t.Errorf("entry %d: %s fetched %v (refresh at %v), error %q", i, in.Key, in.Fetched, start, in.LastError)
			}
			if i > 0 && bytes.Compare(infos[i-1].Key.Bytes(), in.Key.Bytes()) >= 0 {
				t.Error("entries not in key order")
			}
		}
		if got := len(fake.log()); got != n {
			t.Errorf("%d fetches, want %d", got, n)
		}
		if perHost, _ := fake.peaks(); perHost["ocsp.all.test"] > DefaultMaxPerHost {
			t.Errorf("%d requests in flight to one host, limit %d", perHost["ocsp.all.test"], DefaultMaxPerHost)
		}
		if want := n / DefaultMaxPerHost * 10 * time.Millisecond; time.Since(start) < want {
			t.Errorf("the refresh took %v, less than %v: the per-host limit was not in force", time.Since(start), want)
		}

		refused := errors.New("connection refused")
		fake.setDown(refused)
		infos, err = s.RefreshAll(context.Background())
		if !errors.Is(err, refused) || len(infos) != n {
			t.Fatalf("RefreshAll with the responder down: %d entries, %v; want every entry and the failures", len(infos), err)
		}
		if joined, ok := err.(interface{ Unwrap() []error }); !ok || len(joined.Unwrap()) != n {
			t.Errorf("RefreshAll's error joins %T, want one failure per certificate (%d)", err, n)
		}
		for _, in := range infos {
			if in.LastError == "" || !in.Stapled {
				t.Errorf("%s: error %q, stapled %v; want the failure reported and the valid staple kept", in.Key, in.LastError, in.Stapled)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.RefreshAll(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("RefreshAll with a cancelled context: %v", err)
		}
	})
}

// TestFailedWritesAreReported: a response taken but not written says so (Persisted false, StoreError), for
// a fetch and for an import, so that a command can fail rather than report a write that did not happen;
// the next successful write clears it.
func TestFailedWritesAreReported(t *testing.T) {
	ca := testpki.NewRoot(t, "failing disk CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		store := &faultyStore{Store: openStore(t, tempStorePath(t))}
		s := mustNew(t, Config{Fetcher: fake, Storage: store, Manual: true})
		s.Start()
		key, _ := s.Watch(chain)
		store.setFail(errors.New("disk full"))
		time.Sleep(time.Hour)
		info, err := s.Refresh(context.Background(), key)
		if err != nil || info.Persisted || !strings.Contains(info.StoreError, "disk full") || !info.Stapled {
			t.Fatalf("a fetch whose write failed: %v, persisted %v, store error %q, stapled %v", err, info.Persisted, info.StoreError, info.Stapled)
		}
		time.Sleep(time.Hour)
		der := ca.Respond(t, chain.Leaf, testpki.ResponseOptions{ThisUpdate: time.Now()})
		if info, err = s.Import(chain, der); !errors.Is(err, ErrNotStored) || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("an import whose write failed: %v, want ErrNotStored saying why", err)
		}
		if !bytes.Equal(s.Staple(key), der) {
			t.Error("the import is not stapled although its write failed")
		}
		store.setFail(nil)
		time.Sleep(time.Hour)
		if info, err = s.Refresh(context.Background(), key); err != nil || !info.Persisted || info.StoreError != "" {
			t.Errorf("after a write that succeeded: %v, persisted %v, store error %q", err, info.Persisted, info.StoreError)
		}
	})
}

// walkCountingStore counts the walks of the stored certificates; once hide is set, a walk gives no record
// for that key (a record gone unreadable, or one the walk does not reach: a fleet's near cache).
type walkCountingStore struct {
	*cache.Store
	walks atomic.Int32
	hide  atomic.Pointer[certs.Key]
}

func (s *walkCountingStore) Certs(fn func(certs.Key, cache.Cert, error) error) error {
	s.walks.Add(1)
	return s.Store.Certs(func(key certs.Key, c cache.Cert, err error) error {
		if h := s.hide.Load(); h != nil && *h == key {
			return fn(key, cache.Cert{}, errors.New("unreadable"))
		}
		return fn(key, c, err)
	})
}

// TestNamesAreReadOnce: the names of restored certificates are read in one walk, once, even when a record
// does not parse; listing again (the status page, every metrics scrape) reads storage no more.
func TestNamesAreReadOnce(t *testing.T) {
	ca := testpki.NewRoot(t, "names CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	store := openStore(t, path)
	good := leafChain(t, ca, testpki.LeafOptions{DNSNames: []string{"good.test"}, OCSPURLs: []string{"http://ocsp.test/"}})
	goodKey, _ := good.CacheKey()
	badKey := certs.NewKey(ca.Cert, leafChain(t, ca, testpki.LeafOptions{}).Leaf)
	hidden := leafChain(t, ca, testpki.LeafOptions{DNSNames: []string{"hidden.test"}})
	hiddenKey, _ := hidden.CacheKey()
	for key, leaf := range map[certs.Key][]byte{goodKey: good.Leaf.Raw, badKey: []byte("not a certificate"), hiddenKey: hidden.Leaf.Raw} {
		if err := store.PutCert(key, cache.Cert{Leaf: leaf, Issuer: ca.Cert.Raw, URLs: []string{"http://ocsp.test/"}}); err != nil {
			t.Fatal(err)
		}
	}
	counting := &walkCountingStore{Store: store}
	s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, 4*day), Storage: counting, Manual: true})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	counting.hide.Store(&hiddenKey)
	counting.walks.Store(0)
	for range 3 {
		es := s.Entries()
		if len(es) != 3 {
			t.Fatalf("%d entries, want 3", len(es))
		}
		for _, e := range es {
			if want := map[certs.Key]string{goodKey: "[good.test]", badKey: "[]", hiddenKey: "[]"}[e.Key]; fmt.Sprint(e.Names) != want {
				t.Errorf("%s: names %v, want %s", e.Key, e.Names, want)
			}
		}
	}
	if n := counting.walks.Load(); n > 1 {
		t.Errorf("%d walks of the stored certificates for three listings, want at most 1", n)
	}
}
