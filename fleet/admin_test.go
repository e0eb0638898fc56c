package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"staple/admin"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/stapler"
)

// TestCacheCommandsOnTheFleetStore: the admin operations behind `staple cache` work on the fleet's store,
// and a response imported there reaches a running node by its watch. Each call runs a new engine over the
// store, as each `staple cache` command does.
func TestCacheCommandsOnTheFleetStore(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	ca := testCA(t, "admin CA")
	now := time.Now()
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, OCSPURLs: []string{"http://ocsp.test/"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)})
	responder := newCAResponder(t, ca, 24*time.Hour)
	responder.down = true // the node's own fetches fail: what it staples is the import
	node := startMember(t, cfg, "node", responder, 0)

	store := NewStore(connect(t, cfg), cfg)
	b := cacheCommand(t, store)
	ctx := context.Background()
	this := now.Add(-time.Minute).Truncate(time.Second)
	der := ca.Respond(t, leaf.Cert, testpki.ResponseOptions{ThisUpdate: this, NextUpdate: this.Add(24 * time.Hour), ProducedAt: this})
	entry, err := b.Import(ctx, admin.ImportRequest{DER: der, Chain: leaf.CertPEM(), Issuer: ca.CertPEM()})
	if err != nil {
		t.Fatalf("import into the fleet's store: %v", err)
	}
	key := certs.NewKey(ca.Cert, leaf.Cert)
	eventually(t, 5*time.Second, "the running node staples the imported response", func() bool {
		return bytes.Equal(node.staple(key), der)
	})
	d, err := b.Entry(ctx, certs.KeyRef{IssuerPrefix: key.IssuerHash[:], Serial: key.Serial()})
	if err != nil || !d.Fleet || len(d.ServedBy) != 0 || d.ServedByError != "" {
		t.Errorf("Entry of an imported certificate nobody serves: fleet %v, served by %q (%s), %v", d.Fleet, d.ServedBy, d.ServedByError, err)
	}
	node.st.Watch(leafChain(t, leaf, ca))
	eventually(t, 10*time.Second, "the node's claim shows in Entry", func() bool {
		d, err := cacheCommand(t, store).Entry(ctx, certs.KeyRef{IssuerPrefix: key.IssuerHash[:], Serial: key.Serial()})
		return err == nil && len(d.ServedBy) == 1 && d.ServedBy[0] == "node"
	})
	b = cacheCommand(t, store)
	es, err := b.Entries(ctx)
	if err != nil || len(es) != 1 || es[0].Key != entry.Key || es[0].Status != "good" {
		t.Fatalf("Entries on the fleet's store = %+v, %v", es, err)
	}
	st, err := b.Stats(ctx)
	if err != nil || st.ReadOnly || st.DatabasePath != store.Path() {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	ref, _ := certs.ParseKey(entry.Key)
	if _, err := b.Remove(ctx, ref); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the node writes back the certificate it serves", func() bool {
		es, _ := cacheCommand(t, store).Entries(ctx)
		return len(es) == 1
	})
	if err := node.st.Unwatch(key); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "gone once the node stops serving it", func() bool {
		es, _ := cacheCommand(t, store).Entries(ctx)
		return len(es) == 0
	})
}

// cacheCommand returns the backend a `staple cache` command runs when no service answers: a manual engine
// over the fleet's store, read afresh.
func cacheCommand(t *testing.T, store *Store) *admin.Engine {
	t.Helper()
	st, err := stapler.New(stapler.Config{Fetcher: failingFetcher{}, Storage: store, Manual: true})
	if err == nil {
		err = st.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return &admin.Engine{Stapler: st, Database: store.Path(), ServedBy: store.ServedBy}
}

// failingFetcher is the fetcher of an engine that is never asked to fetch.
type failingFetcher struct{}

func (failingFetcher) Fetch(context.Context, *x509.Certificate, *x509.Certificate) (*ocspfetch.Response, error) {
	return nil, errors.New("fleet test: no fetch expected")
}
