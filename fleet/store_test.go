package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspwire"
	"staple/stapler"
)

// TestPutResponseNewerOnly: a slow node's older response does not overwrite the fresher one another node
// stored; the same thisUpdate is not written again; a newer one is.
func TestPutResponseNewerOnly(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	fast, slow := NewStore(connect(t, cfg), cfg), NewStore(connect(t, cfg), cfg)
	ca := testpki.NewRoot(t, "newer-only CA", testpki.ECDSAP256)
	chain := testChain(t, ca)
	key := certs.NewKey(chain.Issuer, chain.Leaf)
	t0 := time.Now().Truncate(time.Second)
	older, newer, newest := record(t, ca, chain, t0), record(t, ca, chain, t0.Add(time.Minute)), record(t, ca, chain, t0.Add(2*time.Minute))
	putCert(t, fast, chain)

	if err := fast.PutResponse(key, newer); err != nil {
		t.Fatalf("first write: %v", err)
	}
	rev := modRevision(t, fast, key)
	err := slow.PutResponse(key, older)
	if !errors.Is(err, ErrStale) || !errors.Is(err, cache.ErrOlder) {
		t.Fatalf("older write: %v, want ErrStale wrapping cache.ErrOlder", err)
	}
	if err := slow.PutResponse(key, newer); err != nil {
		t.Errorf("the same thisUpdate again: %v, want nil", err)
	}
	if got := modRevision(t, fast, key); got != rev {
		t.Errorf("the response key changed (revision %d → %d) though nothing newer was written", rev, got)
	}
	if got, err := slow.Response(key); err != nil || !bytes.Equal(got.Raw, newer.Raw) {
		t.Fatalf("stored after the slow node's write: %v, newer kept %v", err, bytes.Equal(got.Raw, newer.Raw))
	}
	if err := slow.PutResponse(key, newest); err != nil {
		t.Fatalf("newer write: %v", err)
	}
	if got, _ := fast.Response(key); !got.ThisUpdate.Equal(newest.ThisUpdate) {
		t.Errorf("stored thisUpdate %s, want %s", got.ThisUpdate, newest.ThisUpdate)
	}
}

// TestPutResponseRace: many nodes writing responses of different ages at once leave the newest stored.
func TestPutResponseRace(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	ca := testpki.NewRoot(t, "race CA", testpki.ECDSAP256)
	chain := testChain(t, ca)
	key := certs.NewKey(chain.Issuer, chain.Leaf)
	t0 := time.Now().Truncate(time.Second)
	const nodes, each = 4, 10
	recs := make([]cache.Response, nodes*each)
	for i := range recs {
		recs[i] = record(t, ca, chain, t0.Add(time.Duration((i*7)%len(recs))*time.Second)) // shuffled ages
	}
	putCert(t, NewStore(connect(t, cfg), cfg), chain)
	var wg sync.WaitGroup
	var stale, failed sync.Map
	for n := range nodes {
		st := NewStore(connect(t, cfg), cfg)
		wg.Go(func() {
			for i := n * each; i < (n+1)*each; i++ {
				err := st.PutResponse(key, recs[i])
				switch {
				case errors.Is(err, ErrStale):
					stale.Store(i, true)
				case err != nil:
					failed.Store(i, err)
				}
			}
		})
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("write %v: %v", k, v); return true })
	got, err := NewStore(connect(t, cfg), cfg).Response(key)
	if err != nil {
		t.Fatal(err)
	}
	want := t0.Add(time.Duration(len(recs)-1) * time.Second)
	if !got.ThisUpdate.Equal(want) {
		t.Errorf("stored thisUpdate %s after the race, want the newest %s", got.ThisUpdate, want)
	}
}

// TestStoreRecords walks more certificates than a page, in key order, and stores the cache's record bytes.
func TestStoreRecords(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cli := connect(t, cfg)
	st := NewStore(cli, cfg)
	ca := testpki.NewRoot(t, "records CA", testpki.ECDSAP256)
	chain := testChain(t, ca)
	n := pageSize + 44
	for i := range n {
		k := certs.KeyFor(bytes.Repeat([]byte{1}, 32), big.NewInt(int64(n-i))) // written in reverse order
		c := cache.Cert{Leaf: []byte(fmt.Sprintf("leaf %d", i)), Issuer: []byte("issuer"), URLs: []string{"http://ocsp.test/"}}
		if err := st.PutCert(k, c); err != nil {
			t.Fatal(err)
		}
	}
	var prev []byte
	seen := 0
	err := st.Certs(func(key certs.Key, c cache.Cert, err error) error {
		if err != nil {
			return err
		}
		if b := cache.EncodeKey(key); prev != nil && bytes.Compare(prev, b) >= 0 {
			t.Errorf("walk out of order at %s", key)
		} else {
			prev = b
		}
		seen++
		return nil
	})
	if err != nil || seen != n {
		t.Fatalf("Certs walked %d of %d: %v", seen, n, err)
	}
	stop := errors.New("stop")
	if err := st.Certs(func(certs.Key, cache.Cert, error) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("an error from fn: %v, want it returned", err)
	}

	key := certs.NewKey(chain.Issuer, chain.Leaf)
	rec := record(t, ca, chain, time.Now().Truncate(time.Second))
	putCert(t, st, chain)
	if err := st.PutResponse(key, rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := cli.Get(ctx, st.keys.response(key))
	if err != nil || len(raw.Kvs) != 1 {
		t.Fatalf("raw get: %v", err)
	}
	if want, _ := cache.EncodeResponse(rec); !bytes.Equal(raw.Kvs[0].Value, want) {
		t.Error("the etcd value is not the cache's response record")
	}
	if _, err := st.Cert(certs.KeyFor(bytes.Repeat([]byte{2}, 32), big.NewInt(1))); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Cert of an unwatched key: %v, want cache.ErrNotFound", err)
	}

	// The history of two nodes adding at once: every attempt is kept, up to MaxHistory.
	other := NewStore(connect(t, cfg), cfg)
	var wg sync.WaitGroup
	for _, s := range []*Store{st, other} {
		wg.Go(func() {
			for i := range cache.MaxHistory / 2 {
				if err := s.AddAttempt(key, cache.Attempt{Time: time.Now(), Reason: "ok", Status: ocspwire.Good, URL: fmt.Sprint(i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if h, err := st.History(key); err != nil || len(h) != cache.MaxHistory {
		t.Errorf("history of %d attempts after %d concurrent adds: %v", len(h), cache.MaxHistory, err)
	}

	if err := st.Remove(key); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Response(key); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Response after Remove: %v, want cache.ErrNotFound", err)
	}
	if h, err := st.History(key); err != nil || h != nil {
		t.Errorf("History after Remove: %v, %v", h, err)
	}
	putCert(t, st, chain)
	if err := st.PutResponse(key, record(t, ca, chain, rec.ThisUpdate.Add(-time.Hour))); err != nil {
		t.Errorf("a write after Remove and a new PutCert compares with nothing: %v", err)
	}
}

// TestStoreNeedsTheCert: a response or an attempt for a certificate the store does not hold (removed while a
// fetch was in flight) is refused with ErrNoCert and leaves nothing behind, so that no node takes up a
// response for a certificate that nobody serves.
func TestStoreNeedsTheCert(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cli := connect(t, cfg)
	st := NewStore(cli, cfg)
	ca := testpki.NewRoot(t, "needs-the-cert CA", testpki.ECDSAP256)
	chain := testChain(t, ca)
	key := certs.NewKey(chain.Issuer, chain.Leaf)
	t0 := time.Now().Truncate(time.Second)
	attempt := cache.Attempt{Time: t0, Reason: "ok", Status: ocspwire.Good, URL: "http://ocsp.test/"}
	refused := func(when string) {
		t.Helper()
		err := st.PutResponse(key, record(t, ca, chain, t0.Add(time.Hour)))
		if !errors.Is(err, ErrNoCert) || !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("%s: PutResponse: %v, want ErrNoCert wrapping cache.ErrNotFound", when, err)
		}
		if err := st.AddAttempt(key, attempt); !errors.Is(err, ErrNoCert) {
			t.Errorf("%s: AddAttempt: %v, want ErrNoCert", when, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, k := range []string{st.keys.response(key), st.keys.thisUpdate(key), st.keys.history(key)} {
			if got, err := cli.Get(ctx, k); err != nil || len(got.Kvs) != 0 {
				t.Errorf("%s: %s is stored (%v)", when, k, err)
			}
		}
	}
	refused("never stored")

	putCert(t, st, chain)
	if err := st.PutResponse(key, record(t, ca, chain, t0)); err != nil {
		t.Fatalf("with the certificate stored: %v", err)
	}
	if err := st.AddAttempt(key, attempt); err != nil {
		t.Fatalf("with the certificate stored: %v", err)
	}
	if err := st.Remove(key); err != nil {
		t.Fatal(err)
	}
	refused("after Remove")
}

// putCert stores chain's certificate, as a Watch does before any response is written.
func putCert(t testing.TB, st *Store, chain *certs.Chain) {
	t.Helper()
	c := cache.Cert{Leaf: chain.Leaf.Raw, Issuer: chain.Issuer.Raw, URLs: chain.Leaf.OCSPServer, Added: time.Now()}
	if err := st.PutCert(certs.NewKey(chain.Issuer, chain.Leaf), c); err != nil {
		t.Fatal(err)
	}
}

// TestStaplerWarmStartsFromEtcd: a stapler on the fleet's store persists what it fetched, and a second node
// starting on the same store staples it at once without asking the CA.
func TestStaplerWarmStartsFromEtcd(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	ca := testpki.NewRoot(t, "warm CA", testpki.ECDSAP256)
	chain := testChain(t, ca)
	fetcher := newCAResponder(t, ca, 24*time.Hour)

	a, err := stapler.New(stapler.Config{Fetcher: fetcher, Storage: NewStore(connect(t, cfg), cfg)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	a.Start()
	key, _ := a.Watch(chain)
	eventually(t, 10*time.Second, "node A's response reaches etcd", func() bool { return a.Metrics().Persisted == 1 })

	b, err := stapler.New(stapler.Config{Fetcher: fetcher, Storage: NewStore(connect(t, cfg), cfg)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Staple(key), a.Staple(key)) || b.Staple(key) == nil {
		t.Fatal("node B does not staple A's response right after its warm start")
	}
	if n := fetcher.requests(); n != 1 {
		t.Errorf("%d requests to the CA for two nodes, want 1", n)
	}
	if info, _ := b.Entry(key); len(info.History) != 1 {
		t.Errorf("B sees %d history entries, want A's one", len(info.History))
	}
}

// TestStoreFailsWhileEtcdIsDown: with etcd stopped, calls fail within their deadline, never hang.
func TestStoreFailsWhileEtcdIsDown(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.RequestTimeout = 500 * time.Millisecond
	st := NewStore(connect(t, cfg), cfg)
	ca := testpki.NewRoot(t, "down CA", testpki.ECDSAP256)
	chain := testChain(t, ca)
	key := certs.NewKey(chain.Issuer, chain.Leaf)
	putCert(t, st, chain)
	if err := st.PutResponse(key, record(t, ca, chain, time.Now().Truncate(time.Second))); err != nil {
		t.Fatal(err)
	}
	e.stop()
	for range 3 {
		start := time.Now()
		err := st.PutResponse(key, record(t, ca, chain, time.Now().Truncate(time.Second).Add(time.Minute)))
		if err == nil {
			t.Fatal("a write succeeded with etcd stopped")
		}
		if d := time.Since(start); d > 2*cfg.RequestTimeout {
			t.Errorf("a write took %s with etcd stopped, want at most about %s", d, cfg.RequestTimeout)
		}
		t.Logf("%s: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

func modRevision(t testing.TB, s *Store, key certs.Key) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keys.response(key))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v", err)
	}
	return resp.Kvs[0].ModRevision
}
