package fleet

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"staple/cache"
	"staple/ocspwire"
	"staple/stapler"
)

// TestNearStore: what the fleet's store takes is copied into the node's near cache, what it refuses is not,
// and while etcd is unreachable writes reach the near cache alone (and fail, so that the stapler writes them
// again); the warm start reads the near cache, so a node staples at start with etcd down.
func TestNearStore(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	ca := testCA(t, "near CA")
	chain := testChain(t, ca)
	key, _ := chain.CacheKey()
	near, err := cache.Open(filepath.Join(t.TempDir(), "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	s := &NearStore{Fleet: NewStore(connect(t, cfg), cfg), Near: near}
	now := time.Now().Truncate(time.Second)
	cert := cache.Cert{Leaf: chain.Leaf.Raw, Issuer: chain.Issuer.Raw, URLs: chain.Leaf.OCSPServer, Added: now}

	if err := s.PutCert(key, cert); err != nil {
		t.Fatal(err)
	}
	fresh := record(t, ca, chain, now.Add(-time.Minute))
	if err := s.PutResponse(key, fresh); err != nil {
		t.Fatal(err)
	}
	if got, err := near.Response(key); err != nil || !got.ThisUpdate.Equal(fresh.ThisUpdate) {
		t.Fatalf("the near cache lacks what the fleet's store took: %v", err)
	}
	if err := s.PutResponse(key, record(t, ca, chain, now.Add(-time.Hour))); !errors.Is(err, ErrStale) {
		t.Errorf("an older response: %v, want ErrStale", err)
	}
	if got, _ := near.Response(key); !got.ThisUpdate.Equal(fresh.ThisUpdate) {
		t.Error("a response the fleet's store refused reached the near cache")
	}
	// A revocation stamped with the second of the good answer held is news; the good answer is not, after it.
	revoked := fresh
	revoked.Status = ocspwire.Revoked
	if err := s.PutResponse(key, revoked); err != nil {
		t.Errorf("a revocation with the thisUpdate of the good answer held: %v", err)
	}
	if got, _ := s.Fleet.Response(key); got.Status != ocspwire.Revoked {
		t.Errorf("the fleet's store holds %s, want the revocation", got.Status)
	}
	if err := s.PutResponse(key, fresh); !errors.Is(err, ErrStale) {
		t.Errorf("a good answer with the thisUpdate of the revocation held: %v, want ErrStale", err)
	}
	if got, _ := near.Response(key); got.Status != ocspwire.Revoked {
		t.Errorf("the near cache holds %s, want the revocation", got.Status)
	}

	e.stop()
	newer := record(t, ca, chain, now)
	if err := s.PutResponse(key, newer); err == nil {
		t.Fatal("a write with etcd stopped succeeded: the stapler would not write it again")
	}
	if got, err := near.Response(key); err != nil || !got.ThisUpdate.Equal(newer.ThisUpdate) {
		t.Errorf("with etcd stopped, the near cache was not written: %v", err)
	}
	// A node starting now staples from the near cache.
	st, err := stapler.New(stapler.Config{Fetcher: failingFetcher{}, Storage: s, Manual: true})
	if err == nil {
		err = st.Start()
	}
	if err != nil {
		t.Fatalf("a start with etcd stopped: %v", err)
	}
	defer st.Close(context.Background())
	if got := st.Staple(key); string(got) != string(newer.Raw) {
		t.Error("not stapled from the near cache at start with etcd stopped")
	}
	if c, err := s.Cert(key); err != nil || string(c.Leaf) != string(cert.Leaf) {
		t.Errorf("Cert with etcd stopped: %v", err)
	}
	if err := s.Remove(key); err == nil {
		t.Error("a removal with etcd stopped succeeded")
	}
	if _, err := near.Cert(key); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("the near cache kept a certificate the node removed: %v", err)
	}
}
