package cache

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"staple/certs"
)

// TestPutEntries stores more entries than one transaction holds and reads every one back; an older response
// does not replace a newer one; a bad record is refused before anything is written.
func TestPutEntries(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	const n = bulkTxSize*2 + 17
	es := make([]Entry, n)
	for i := range es {
		c := Cert{Leaf: []byte("leaf"), Issuer: []byte("issuer"), URLs: []string{"http://ocsp.test/"}, Added: t0}
		r := testResponse(t0, 300)
		es[i] = Entry{Key: testKey("bulk", int64(i+1)), Cert: &c, Response: &r}
	}
	if err := s.PutEntries(es); err != nil {
		t.Fatal(err)
	}
	certsN, respsN := 0, 0
	s.Certs(func(_ certs.Key, _ Cert, err error) error { certsN++; return err })
	s.Responses(func(_ certs.Key, _ Response, err error) error { respsN++; return err })
	if certsN != n || respsN != n {
		t.Errorf("stored %d certificates and %d responses, want %d each", certsN, respsN, n)
	}

	newer := testResponse(t0.Add(time.Hour), 300)
	if err := s.PutResponse(es[0].Key, newer); err != nil {
		t.Fatal(err)
	}
	older := testResponse(t0, 300)
	if err := s.PutEntries([]Entry{{Key: es[0].Key, Response: &older}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Response(es[0].Key); !got.ThisUpdate.Equal(newer.ThisUpdate) {
		t.Errorf("an older response replaced the newer one: thisUpdate %v", got.ThisUpdate)
	}

	bad := Response{} // no DER
	fresh := testKey("bulk", 999999)
	err := s.PutEntries([]Entry{{Key: fresh, Cert: es[1].Cert}, {Key: fresh, Response: &bad}})
	if err == nil {
		t.Fatal("PutEntries accepted a response without DER")
	}
	if _, err := s.Cert(fresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused batch wrote its first entry: %v", err)
	}
}

// TestRemoveAll forgets more keys than one transaction holds, with their histories, and leaves the others.
func TestRemoveAll(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	const n = bulkTxSize + 10
	es := make([]Entry, n)
	keys := make([]certs.Key, n)
	for i := range es {
		c := Cert{Leaf: []byte("leaf"), Issuer: []byte("issuer"), Added: t0}
		r := testResponse(t0, 100)
		keys[i] = testKey("rm", int64(i+1))
		es[i] = Entry{Key: keys[i], Cert: &c, Response: &r}
	}
	if err := s.PutEntries(es); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAttempt(keys[0], Attempt{Time: t0, Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAll(keys[:n-1]); err != nil {
		t.Fatal(err)
	}
	left := 0
	s.Responses(func(k certs.Key, _ Response, err error) error {
		left++
		if k != keys[n-1] {
			t.Errorf("%s was not removed", k)
		}
		return err
	})
	if h, _ := s.History(keys[0]); left != 1 || len(h) != 0 {
		t.Errorf("%d responses left, history of a removed key %v", left, h)
	}
}

// TestPutFetched stores a response and its attempt in one write; an older response is kept out with ErrOlder
// while its attempt is still recorded.
func TestPutFetched(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	key := testKey("fetched", 1)
	newer, older := testResponse(t0.Add(time.Hour), 200), testResponse(t0, 200)
	if err := s.PutFetched(key, newer, Attempt{Time: t0.Add(time.Hour), Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFetched(key, older, Attempt{Time: t0.Add(2 * time.Hour), Reason: "ok"}); !errors.Is(err, ErrOlder) {
		t.Errorf("an older response: %v, want ErrOlder", err)
	}
	if got, _ := s.Response(key); !got.ThisUpdate.Equal(newer.ThisUpdate) {
		t.Errorf("stored thisUpdate %v, want the newer %v", got.ThisUpdate, newer.ThisUpdate)
	}
	if h, _ := s.History(key); len(h) != 2 {
		t.Errorf("history has %d attempts, want 2 (the older response's attempt too)", len(h))
	}
}

// TestPutFetchedGroupCommit: concurrent PutFetched calls, committed together, each get their own outcome:
// every response stored, every attempt recorded once (a batch that fails is run again write by write),
// ErrOlder to the one older than what is stored, and a write that fails (its key leads to a bucket in a
// mangled file) fails alone.
func TestPutFetchedGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	bad := testKey("group", 999)
	s := openTest(t, path, Options{})
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.Bucket(bucketHistory).CreateBucket(EncodeKey(bad))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stale := testKey("group", 1000)
	if err := s.PutResponse(stale, testResponse(t0.Add(time.Hour), 200)); err != nil {
		t.Fatal(err)
	}
	put := func(key certs.Key, r Response) error { return s.PutFetched(key, r, Attempt{Time: t0, Reason: "ok"}) }

	// Good writes only.
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = put(testKey("group", int64(i+1)), testResponse(t0, 200)) })
	}
	wg.Wait()

	// With a failing and an older one among them: each its own outcome.
	var badErr, staleErr error
	wg.Go(func() { badErr = put(bad, testResponse(t0, 200)) })
	wg.Go(func() { staleErr = put(stale, testResponse(t0, 200)) })
	for i := range n {
		wg.Go(func() {
			if err := put(testKey("group", int64(i+1)), testResponse(t0.Add(time.Second), 200)); err != nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
			continue
		}
		key := testKey("group", int64(i+1))
		if r, err := s.Response(key); err != nil || !r.ThisUpdate.Equal(t0.Add(time.Second)) {
			t.Errorf("write %d: stored %v, %v; want the second response", i, r.ThisUpdate, err)
		}
		if h, _ := s.History(key); len(h) != 2 {
			t.Errorf("write %d: %d attempts, want 2", i, len(h))
		}
	}
	if !errors.Is(badErr, ErrCorrupt) {
		t.Errorf("the write to a mangled key: %v, want ErrCorrupt", badErr)
	}
	if !errors.Is(staleErr, ErrOlder) {
		t.Errorf("the older response: %v, want ErrOlder", staleErr)
	}
	if h, _ := s.History(stale); len(h) != 1 {
		t.Errorf("the older response's attempt: %d recorded, want 1", len(h))
	}
	if err := s.PutFetched(testKey("group", 1), testResponse(t0.Add(time.Minute), 200), Attempt{Time: t0, Reason: "ok"}); err != nil {
		t.Errorf("a lone write after the group: %v", err)
	}
}
