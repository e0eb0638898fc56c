package stapler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// countingStore is a cache.Store that counts response writes.
type countingStore struct {
	*cache.Store
	puts atomic.Int64
}

func (s *countingStore) PutResponse(key certs.Key, r cache.Response) error {
	s.puts.Add(1)
	return s.Store.PutResponse(key, r)
}

func (s *countingStore) PutFetched(key certs.Key, r cache.Response, a cache.Attempt) error {
	s.puts.Add(1)
	return s.Store.PutFetched(key, r, a)
}

// roleSwitch is what an election would answer, switched by the test.
type roleSwitch struct{ v atomic.Int32 }

func (r *roleSwitch) get() Role  { return Role(r.v.Load()) }
func (r *roleSwitch) set(v Role) { r.v.Store(int32(v)) }

// storedResponse is a response record as another node would have stored it: valid from this to
// this+validity, its refresh planned at the midpoint.
func storedResponse(t *testing.T, ca *testpki.CA, chain *certs.Chain, this time.Time, validity time.Duration) cache.Response {
	t.Helper()
	next := this.Add(validity)
	raw := ca.Respond(t, chain.Leaf, testpki.ResponseOptions{ThisUpdate: this, NextUpdate: next, ProducedAt: this})
	return cache.Response{Raw: raw, Status: ocspwire.Good, ProducedAt: this, ThisUpdate: this, NextUpdate: next,
		Expires: next, RefreshAt: this.Add(validity / 2), Fetched: this, URL: "http://ocsp.test/"}
}

// TestFollowerTakesOffersAndFetchesOnlyAsLeader plays a follower: it fetches nothing, staples what the
// leader stored without writing it again, refuses an older response, and fetches at once when it becomes
// the leader.
func TestFollowerTakesOffersAndFetchesOnlyAsLeader(t *testing.T) {
	ca := testpki.NewRoot(t, "follower CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		st := &countingStore{Store: openStore(t, path)}
		var role roleSwitch
		role.set(Follower)
		var events eventLog
		s := mustNew(t, Config{Fetcher: fake, Storage: st, Role: role.get, Rand: noJitter, OnEvent: events.add})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		key, err := s.Watch(chain)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(fake.log()); n != 0 {
			t.Fatalf("a follower fetched %d times of its own accord", n)
		}
		if s.Staple(key) != nil {
			t.Fatal("a staple before any response")
		}

		rec := storedResponse(t, ca, chain, time.Now(), 4*day)
		if err := s.Offer(key, rec); err != nil {
			t.Fatalf("Offer: %v", err)
		}
		if !bytes.Equal(s.Staple(key), rec.Raw) {
			t.Fatal("the offered response is not stapled")
		}
		if err := s.Offer(key, rec); err != nil {
			t.Errorf("Offer of the response held: %v", err)
		}
		if n := events.count(Updated); n != 1 {
			t.Errorf("%d Updated events for one response offered twice, want 1", n)
		}
		older := storedResponse(t, ca, chain, time.Now().Add(-time.Hour), 4*day)
		if err := s.Offer(key, older); !errors.Is(err, ErrOlderResponse) {
			t.Errorf("Offer of an older response: %v, want ErrOlderResponse", err)
		}
		if info, _ := s.Entry(key); !info.Persisted || !info.NextRefresh.Equal(rec.RefreshAt) {
			t.Errorf("offered entry: persisted %v, next refresh %s, want true and %s", info.Persisted, info.NextRefresh, rec.RefreshAt)
		}

		time.Sleep(3 * day) // past the planned refresh: the leader's job, not this node's
		synctest.Wait()
		if n := len(fake.log()); n != 0 {
			t.Fatalf("a follower fetched %d times past the refresh time", n)
		}
		if st.puts.Load() != 0 {
			t.Errorf("%d response writes by a follower, want 0", st.puts.Load())
		}
		if !bytes.Equal(s.Staple(key), rec.Raw) {
			t.Fatal("the offered response is no longer stapled while valid")
		}

		role.set(Leader)
		s.RoleChanged()
		synctest.Wait()
		if n := len(fake.log()); n != 1 {
			t.Fatalf("%d fetches right after becoming leader, want 1", n)
		}
		if got := s.Staple(key); got == nil || bytes.Equal(got, rec.Raw) {
			t.Error("the new leader's fetch is not stapled")
		}
		if st.puts.Load() != 1 {
			t.Errorf("%d response writes by the leader, want 1", st.puts.Load())
		}
		if m := s.Metrics(); m.Offered != 1 {
			t.Errorf("Metrics.Offered = %d, want 1", m.Offered)
		}
	})
}

// TestNoLeaderFetchesNearExpiry: with no leader in sight, a node fetches for itself only within the
// self-fetch margin of expiry; a negative margin never fetches, and the staple expires.
func TestNoLeaderFetchesNearExpiry(t *testing.T) {
	tests := []struct {
		name      string
		margin    time.Duration
		fetchFrom time.Duration // after thisUpdate; 0: never
	}{
		{"one hour", time.Hour, 4*day - time.Hour},
		{"default", 0, 4*day - DefaultSelfFetchMargin},
		{"never", -1, 0},
	}
	ca := testpki.NewRoot(t, "no leader CA", testpki.ECDSAP256)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
				fake := newFakeResponder(t, ca, 4*day)
				var role roleSwitch
				role.set(NoLeader)
				s := mustNew(t, Config{Fetcher: fake, Role: role.get, SelfFetchMargin: tt.margin, Rand: noJitter})
				t0 := time.Now()
				rec := storedResponse(t, ca, chain, t0, 4*day)
				key := certs.NewKey(chain.Issuer, chain.Leaf)
				if err := s.Offer(key, rec); err != nil {
					t.Fatal(err)
				}
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Watch(chain); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if n := len(fake.log()); n != 0 {
					t.Fatalf("%d fetches with a valid response far from expiry", n)
				}
				if tt.fetchFrom == 0 {
					time.Sleep(4*day + time.Minute)
					synctest.Wait()
					if n := len(fake.log()); n != 0 {
						t.Errorf("%d fetches with self-fetch disabled", n)
					}
					if s.Staple(key) != nil {
						t.Error("stapled after expiry")
					}
					return
				}
				time.Sleep(tt.fetchFrom - time.Minute)
				synctest.Wait()
				if n := len(fake.log()); n != 0 {
					t.Fatalf("%d fetches before the margin", n)
				}
				time.Sleep(2 * time.Minute) // a sweep (every 30 s) falls in here
				synctest.Wait()
				log := fake.log()
				if len(log) != 1 {
					t.Fatalf("%d fetches within the margin, want 1", len(log))
				}
				if at := log[0].at.Sub(t0); at < tt.fetchFrom || at > tt.fetchFrom+time.Minute {
					t.Errorf("self-fetch %s after thisUpdate, want within a sweep of %s", at, tt.fetchFrom)
				}
				if got := s.Staple(key); got == nil || bytes.Equal(got, rec.Raw) {
					t.Error("the self-fetched response is not stapled")
				}
			})
		})
	}
}

// TestRefreshFetchesOnFollower: an operator's refresh fetches whatever the role.
func TestRefreshFetchesOnFollower(t *testing.T) {
	ca := testpki.NewRoot(t, "refresh follower CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		fake := newFakeResponder(t, ca, 4*day)
		s := mustNew(t, Config{Fetcher: fake, Role: func() Role { return Follower }})
		s.Start()
		key, _ := s.Watch(chain)
		info, err := s.Refresh(context.Background(), key)
		if err != nil || !info.Stapled {
			t.Fatalf("Refresh on a follower: %v, stapled %v", err, info.Stapled)
		}
		if n := len(fake.log()); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
	})
}

func TestOfferRefusesExpired(t *testing.T) {
	ca := testpki.NewRoot(t, "offer expired CA", testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, day), Role: func() Role { return Follower }})
		rec := storedResponse(t, ca, chain, time.Now().Add(-2*day), day)
		key := certs.NewKey(chain.Issuer, chain.Leaf)
		if err := s.Offer(key, rec); !errors.Is(err, ocspfetch.ErrExpired) {
			t.Errorf("Offer of an expired response: %v, want ocspfetch.ErrExpired", err)
		}
		if s.Staple(key) != nil {
			t.Error("an expired offer is stapled")
		}
		if err := s.Offer(key, cache.Response{}); err == nil {
			t.Error("Offer of an empty response")
		}
	})
}

// TestAdoptLetsTheLeaderFetch: a certificate another node watches, adopted from storage, is fetched by the
// leader (its certificates read from storage) and not by a follower.
func TestAdoptLetsTheLeaderFetch(t *testing.T) {
	ca := testpki.NewRoot(t, "adopt CA", testpki.ECDSAP256)
	for _, role := range []Role{Leader, Follower} {
		t.Run(role.String(), func(t *testing.T) {
			path := tempStorePath(t)
			synctest.Test(t, func(t *testing.T) {
				chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
				key := certs.NewKey(chain.Issuer, chain.Leaf)
				st := openStore(t, path)
				c := cache.Cert{Leaf: chain.Leaf.Raw, Issuer: chain.Issuer.Raw, URLs: chain.Leaf.OCSPServer, Added: time.Now()}
				if err := st.PutCert(key, c); err != nil { // as the node that watches it did
					t.Fatal(err)
				}
				fake := newFakeResponder(t, ca, 4*day)
				s := mustNew(t, Config{Fetcher: fake, Storage: &countingStore{Store: st}, Role: func() Role { return role }})
				s.Start()
				if err := s.Adopt(key, c); err != nil {
					t.Fatal(err)
				}
				if err := s.Adopt(key, c); err != nil {
					t.Fatalf("Adopt twice: %v", err)
				}
				synctest.Wait()
				want := 0
				if role == Leader {
					want = 1
				}
				if n := len(fake.log()); n != want {
					t.Fatalf("%d fetches of an adopted certificate by a %s, want %d", n, role, want)
				}
				if stapled := s.Staple(key) != nil; stapled != (role == Leader) {
					t.Errorf("stapled %v", stapled)
				}
				if err := s.Adopt(key, cache.Cert{}); err == nil {
					t.Error("Adopt of an empty record")
				}
			})
		})
	}
}

// TestFlushWritesTheBacklog: responses whose write failed are written at once by Flush, not at the next
// sweep.
func TestFlushWritesTheBacklog(t *testing.T) {
	ca := testpki.NewRoot(t, "flush CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		st := &faultyStore{Store: openStore(t, path)}
		st.setFail(errDiskFull)
		s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, 4*day), Storage: st, Sweep: "@every 1h"})
		s.Start()
		key, _ := s.Watch(chain)
		synctest.Wait()
		if m := s.Metrics(); m.PersistBacklog != 1 {
			t.Fatalf("backlog %d with a failing store, want 1", m.PersistBacklog)
		}
		st.setFail(nil)
		s.Flush()
		if m := s.Metrics(); m.PersistBacklog != 0 {
			t.Errorf("backlog %d after Flush, want 0", m.PersistBacklog)
		}
		if _, err := st.Response(key); err != nil {
			t.Errorf("stored after Flush: %v", err)
		}
	})
}

// TestWithdraw: a certificate removed from the fleet's store is forgotten by a node that only knew it from the
// fleet (no more fetches, no staple), and written back by a node that watches it, which keeps stapling.
func TestWithdraw(t *testing.T) {
	ca := testpki.NewRoot(t, "withdraw CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		adopted := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		watched := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		adoptedKey := certs.NewKey(adopted.Issuer, adopted.Leaf)
		st := openStore(t, path)
		c := cache.Cert{Leaf: adopted.Leaf.Raw, Issuer: adopted.Issuer.Raw, URLs: adopted.Leaf.OCSPServer, Added: time.Now()}
		if err := st.PutCert(adoptedKey, c); err != nil {
			t.Fatal(err)
		}
		fake := newFakeResponder(t, ca, 4*day)
		s := mustNew(t, Config{Fetcher: fake, Storage: st, Role: func() Role { return Leader }, Sweep: "@every 1m"})
		s.Start()
		if err := s.Adopt(adoptedKey, c); err != nil {
			t.Fatal(err)
		}
		watchedKey, err := s.Watch(watched)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s.Staple(adoptedKey) == nil || s.Staple(watchedKey) == nil {
			t.Fatal("not stapled before the withdrawal")
		}

		// Another node removed both from the store.
		if err := errors.Join(st.Remove(adoptedKey), st.Remove(watchedKey)); err != nil {
			t.Fatal(err)
		}
		if kept, err := s.Withdraw(adoptedKey); kept || err != nil {
			t.Errorf("Withdraw of an adopted certificate: kept %v, %v; want forgotten", kept, err)
		}
		if kept, err := s.Withdraw(watchedKey); !kept || err != nil {
			t.Errorf("Withdraw of a watched certificate: kept %v, %v; want kept", kept, err)
		}
		if _, ok := s.Entry(adoptedKey); ok || s.Staple(adoptedKey) != nil {
			t.Error("the adopted certificate is still known or stapled")
		}
		if s.Staple(watchedKey) == nil {
			t.Error("the watched certificate is no longer stapled")
		}
		if back, err := st.Cert(watchedKey); err != nil || !bytes.Equal(back.Leaf, watched.Leaf.Raw) {
			t.Errorf("the watched certificate was not written back: %v", err)
		}
		if back, err := st.Response(watchedKey); err != nil || !bytes.Equal(back.Raw, s.Staple(watchedKey)) {
			t.Errorf("the watched certificate's response was not written back: %v", err)
		}
		if _, err := st.Cert(adoptedKey); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("the adopted certificate is in storage again: %v", err)
		}
		if kept, err := s.Withdraw(adoptedKey); kept || !errors.Is(err, ErrNotWatched) {
			t.Errorf("Withdraw of an unknown key: kept %v, %v; want ErrNotWatched", kept, err)
		}

		// Days later, only the watched certificate was fetched again.
		before := len(fake.log())
		time.Sleep(3 * day)
		synctest.Wait()
		for _, f := range fake.log()[before:] {
			if f.serial == adopted.Leaf.SerialNumber.String() {
				t.Fatal("the withdrawn certificate was fetched")
			}
		}
		if len(fake.log()) == before {
			t.Error("the watched certificate was not refreshed")
		}
		s.Close(context.Background())
	})
}

// certFirstStore is a cache.Store that refuses, as the fleet's store does, a response for a certificate it
// does not hold, and whose certificate writes can be made to fail.
type certFirstStore struct {
	*cache.Store
	certFail  atomic.Pointer[error]
	certBlock atomic.Pointer[chan struct{}] // when set, PutCert waits for it to be closed
	refused   atomic.Int64
}

func (s *certFirstStore) PutCert(key certs.Key, c cache.Cert) error {
	if b := s.certBlock.Load(); b != nil {
		<-*b
	}
	if err := s.certFail.Load(); err != nil {
		return *err
	}
	return s.Store.PutCert(key, c)
}

func (s *certFirstStore) PutResponse(key certs.Key, r cache.Response) error {
	if _, err := s.Store.Cert(key); err != nil {
		s.refused.Add(1)
		return fmt.Errorf("no certificate stored: %w", err)
	}
	return s.Store.PutResponse(key, r)
}

func (s *certFirstStore) PutFetched(key certs.Key, r cache.Response, a cache.Attempt) error {
	if err := s.PutResponse(key, r); err != nil {
		return err
	}
	return s.Store.AddAttempt(key, a)
}

// TestCertificateBeforeResponse: with a store that takes no response without its certificate (the fleet's),
// a Watch stores the certificate before the first fetch's response; a certificate whose write failed, or
// that an operator removed while it is watched, is written again by the backlog before the response, and
// nothing stays unwritten.
func TestCertificateBeforeResponse(t *testing.T) {
	ca := testpki.NewRoot(t, "cert-first CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		st := &certFirstStore{Store: openStore(t, path)}
		s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, 4*day), Storage: st, Sweep: "@every 1m"})
		s.Start()
		defer s.Close(context.Background())
		stored := func(what string, key certs.Key) {
			t.Helper()
			if _, err := st.Cert(key); err != nil {
				t.Errorf("%s: certificate not stored: %v", what, err)
			}
			if _, err := st.Response(key); err != nil {
				t.Errorf("%s: response not stored: %v", what, err)
			}
			if info, _ := s.Entry(key); !info.Persisted {
				t.Errorf("%s: the entry says its response is not at rest", what)
			}
		}

		// A Watch: the certificate lands before the response; nothing is refused.
		first, _ := s.Watch(leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}))
		synctest.Wait()
		if n := st.refused.Load(); n != 0 {
			t.Errorf("%d responses refused after a Watch, want 0: the fetch raced the certificate's write", n)
		}
		stored("watched", first)

		// The certificate's write fails: the staple is served all the same, and the next sweep, once the
		// store is back, writes the certificate, then the response.
		failure := errDiskFull
		st.certFail.Store(&failure)
		second, _ := s.Watch(leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}))
		synctest.Wait()
		if s.Staple(second) == nil {
			t.Fatal("not stapled while the certificate's write failed")
		}
		if m := s.Metrics(); m.PersistBacklog != 1 {
			t.Errorf("backlog %d with the certificate unwritten, want 1", m.PersistBacklog)
		}
		st.certFail.Store(nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		stored("after the certificate's write failed", second)

		// An operator removes a watched certificate from the store: the next response is refused, and the
		// backlog writes the certificate back, then the response.
		if err := st.Remove(first); err != nil {
			t.Fatal(err)
		}
		refused := st.refused.Load()
		if _, err := s.Refresh(context.Background(), first); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st.refused.Load() == refused {
			t.Fatal("the refreshed response was not refused: the test does not exercise the write back")
		}
		s.Flush()
		stored("after the operator's removal", first)
		if m := s.Metrics(); m.PersistBacklog != 0 {
			t.Errorf("backlog %d at the end, want 0", m.PersistBacklog)
		}
	})
}

// TestRefreshDuringCertificateWrite: a Refresh that comes while a Watch writes the certificate (the entry
// is held, not fetched) fetches as soon as the write ends, rather than at the entry's next refresh.
func TestRefreshDuringCertificateWrite(t *testing.T) {
	ca := testpki.NewRoot(t, "refresh-hold CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		key := certs.NewKey(chain.Issuer, chain.Leaf)
		st := &certFirstStore{Store: openStore(t, path)}
		fake := newFakeResponder(t, ca, 4*day)
		s := mustNew(t, Config{Fetcher: fake, Storage: st, Sweep: "@every 1h"})
		s.Start()
		defer s.Close(context.Background())
		// The response came first (another node's, through the fleet's watch): valid, refreshed in two days.
		if err := s.Offer(key, storedResponse(t, ca, chain, time.Now(), 4*day)); err != nil {
			t.Fatal(err)
		}
		block := make(chan struct{})
		st.certBlock.Store(&block)
		go s.Watch(chain)
		synctest.Wait() // the Watch waits in PutCert
		refreshed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := s.Refresh(ctx, key)
			refreshed <- err
		}()
		synctest.Wait()
		close(block)
		if err := <-refreshed; err != nil {
			t.Errorf("Refresh during the certificate's write: %v", err)
		}
		if n := len(fake.log()); n != 1 {
			t.Errorf("%d fetches, want the Refresh's one", n)
		}
	})
}
