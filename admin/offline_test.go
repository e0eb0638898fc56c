package admin

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

func openStore(t *testing.T, path string, readOnly bool) *cache.Store {
	t.Helper()
	s, err := cache.Open(path, cache.Options{ReadOnly: readOnly, Now: testpki.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOfflineBackend(t *testing.T) {
	ctx := context.Background()
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "CA", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, OCSPURLs: []string{"http://ocsp.test"}, MustStaple: true})
	revoked := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"r.test"}, OCSPURLs: []string{"http://ocsp.test"}})
	path := filepath.Join(t.TempDir(), "cache.db")

	rwStore := openStore(t, path, false)
	rw := &OfflineBackend{Store: rwStore, Now: testpki.Epoch}
	// Import verifies: a response about another certificate is refused and nothing is stored.
	wrong := ca.Respond(t, revoked.Cert, testpki.ResponseOptions{})
	if _, err := rw.Import(ctx, ImportRequest{DER: wrong, Chain: leaf.ChainPEM()}); !errors.Is(err, ocspfetch.ErrNoMatchingResponse) {
		t.Fatalf("import of another certificate's response: %v", err)
	}
	if _, err := rw.Import(ctx, ImportRequest{DER: []byte("junk"), Chain: leaf.CertPEM()}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("import without an issuer: %v, want ErrBadInput", err)
	}
	e, err := rw.Import(ctx, ImportRequest{DER: ca.Respond(t, leaf.Cert, testpki.ResponseOptions{}), Chain: leaf.CertPEM(), Issuer: ca.CertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != "good" || !e.MustStaple || len(e.Names) != 1 || e.Names[0] != "a.test" || !e.Watched {
		t.Errorf("imported entry %+v", e)
	}
	if _, err := rw.Import(ctx, ImportRequest{DER: ca.Respond(t, revoked.Cert, testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 1}), Chain: revoked.ChainPEM()}); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Refresh(ctx, nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Refresh without a fetcher: %v, want ErrReadOnly", err)
	}
	rwStore.Close()

	ro := &OfflineBackend{Store: openStore(t, path, true), Now: testpki.Epoch}
	es, err := ro.Entries(ctx)
	if err != nil || len(es) != 2 {
		t.Fatalf("Entries = %v, %v", es, err)
	}
	key := certs.NewKey(ca.Cert, revoked.Cert)
	ref, _ := certs.ParseKey(key.String())
	d, err := ro.Entry(ctx, ref)
	if err != nil || d.Status != "revoked" || d.Reason != "keyCompromise" || len(d.DER) == 0 || len(d.Leaf) == 0 {
		t.Errorf("Entry = %+v, %v", d.Entry, err)
	}
	if err := ro.Remove(ctx, ref); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Remove on a read-only store: %v", err)
	}
	if _, err := ro.Import(ctx, ImportRequest{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Import on a read-only store: %v", err)
	}
	later := &OfflineBackend{Store: ro.Store, Now: func() time.Time { return testpki.Epoch().Add(48 * time.Hour) }}
	if d, _ := later.Entry(ctx, ref); d.Status != "expired" {
		t.Errorf("status after nextUpdate = %q, want expired", d.Status)
	}
	missing, _ := certs.ParseKey(key.String()[:16] + ":FFFF")
	if _, err := ro.Entry(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	st, err := ro.Stats(ctx)
	if err != nil || st.Entries != 2 || !st.ReadOnly {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}
