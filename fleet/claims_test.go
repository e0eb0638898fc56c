package fleet

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/certs"
)

// TestRemoveUnclaimed: the leader's removal compares, in its transaction, that no node claims the
// certificate: a claim (under any node's lease) keeps it, and once the claim's lease is gone it is removed
// with its response.
func TestRemoveUnclaimed(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cli := connect(t, cfg)
	st := NewStore(cli, cfg)
	ca := testCA(t, "unclaimed CA")
	chain, other := testChain(t, ca), testChain(t, ca)
	key, otherKey := certs.NewKey(chain.Issuer, chain.Leaf), certs.NewKey(other.Issuer, other.Leaf)
	putCert(t, st, chain)
	putCert(t, st, other)
	if err := st.PutResponse(key, record(t, ca, chain, time.Now().Truncate(time.Second))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	// A claim on the other certificate, whose key shares a prefix with none of key's claims.
	for _, k := range []certs.Key{key, otherKey} {
		if _, err := cli.Put(ctx, st.keys.claim(k, lease.ID), "node", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if removed, err := st.RemoveUnclaimed(key); removed || err != nil {
		t.Fatalf("RemoveUnclaimed of a claimed certificate: removed %v, %v", removed, err)
	}
	if _, err := st.Cert(key); err != nil {
		t.Fatalf("the claimed certificate is gone: %v", err)
	}
	if _, err := cli.Delete(ctx, st.keys.claim(key, lease.ID)); err != nil {
		t.Fatal(err)
	}
	if removed, err := st.RemoveUnclaimed(key); !removed || err != nil {
		t.Fatalf("RemoveUnclaimed with no claim left: removed %v, %v", removed, err)
	}
	if _, err := st.Cert(key); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("certificate after RemoveUnclaimed: %v, want cache.ErrNotFound", err)
	}
	if _, err := st.Response(key); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("response after RemoveUnclaimed: %v, want cache.ErrNotFound", err)
	}
	if removed, err := st.RemoveUnclaimed(otherKey); removed || err != nil {
		t.Errorf("RemoveUnclaimed of the other, still claimed, certificate: removed %v, %v", removed, err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if removed, err := st.RemoveUnclaimed(otherKey); !removed || err != nil {
		t.Errorf("RemoveUnclaimed once the claiming node's lease is revoked: removed %v, %v", removed, err)
	}
}

// TestFleetRemovesUnserved: a certificate whose only node stopped (renewed while the node was down, or the
// node left the fleet) is removed by the leader once nobody has claimed it for UnservedAfter, from the store
// and from every node; one that a live node serves stays, however long; a node coming back with the
// certificate claims it again and it stays.
func TestFleetRemovesUnserved(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	cfg.UnservedAfter = 2 * time.Second
	ca := testCA(t, "unserved CA")
	kept, gone := testChain(t, ca), testChain(t, ca)
	fetcher := newCAResponder(t, ca, time.Hour)
	a := startMember(t, cfg, "a", fetcher, 0)
	b := startMember(t, cfg, "b", fetcher, 0)
	keptKey, _ := b.st.Watch(kept)
	goneKey, _ := a.st.Watch(gone)
	eventually(t, 10*time.Second, "both nodes staple both certificates", func() bool {
		return a.staple(keptKey) != nil && a.staple(goneKey) != nil && b.staple(keptKey) != nil && b.staple(goneKey) != nil
	})
	eventually(t, 10*time.Second, "each node claims its certificate", func() bool {
		return a.claims.Stats().Claimed >= 1 && b.claims.Stats().Claimed >= 1
	})

	// Twice the grace with both nodes up: nothing leaves.
	time.Sleep(2*cfg.UnservedAfter + time.Second)
	for _, k := range []certs.Key{keptKey, goneKey} {
		if _, err := b.store.Cert(k); err != nil {
			t.Fatalf("a certificate a live node serves left the store: %v", err)
		}
	}

	// a stops (to come back with a renewed certificate, say): its claims go with it, and once the grace has
	// passed the leader (b, now) removes what only a served, from the store and from itself.
	a.stop()
	eventually(t, 20*time.Second, "the certificate nobody serves leaves the store", func() bool {
		_, err := b.store.Cert(goneKey)
		return errors.Is(err, cache.ErrNotFound)
	})
	if _, err := b.store.Response(goneKey); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("its response is still stored: %v", err)
	}
	eventually(t, 10*time.Second, "b forgets it", func() bool {
		_, ok := b.st.Entry(goneKey)
		return !ok && b.staple(goneKey) == nil
	})
	if got := b.claims.Stats().Removed; got != 1 {
		t.Errorf("the leader removed %d certificates, want 1", got)
	}
	if _, err := b.store.Cert(keptKey); err != nil || b.staple(keptKey) == nil {
		t.Errorf("the certificate b serves: stored %v, stapled %v", err, b.staple(keptKey) != nil)
	}

	// A node that comes back with the certificate that was removed serves and claims it again, and it stays.
	c := startMember(t, cfg, "c", fetcher, 0)
	c.st.Watch(gone)
	eventually(t, 10*time.Second, "the returning certificate is stored and stapled by both", func() bool {
		_, err := c.store.Cert(goneKey)
		return err == nil && c.staple(goneKey) != nil && b.staple(goneKey) != nil
	})
	time.Sleep(2*cfg.UnservedAfter + time.Second)
	if _, err := c.store.Cert(goneKey); err != nil {
		t.Errorf("the certificate c serves left the store: %v", err)
	}
}
