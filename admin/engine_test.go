package admin

import (
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
	"staple/stapler"
)

// noFetch is the fetcher of an engine whose test asks for no fetch.
type noFetch struct{}

func (noFetch) Fetch(context.Context, *x509.Certificate, *x509.Certificate) (*ocspfetch.Response, error) {
	return nil, errors.New("admin test: no fetch expected")
}

// engineOver opens the cache file at path and runs a manual engine over it, as the command line does when no
// service runs. closing it closes the engine and the file.
func engineOver(t *testing.T, path string, readOnly bool, now func() time.Time) (e *Engine, closing func()) {
	t.Helper()
	store, err := cache.Open(path, cache.Options{ReadOnly: readOnly, Now: testpki.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	st, err := stapler.New(stapler.Config{Fetcher: noFetch{}, Storage: store, Manual: true, Now: now})
	if err == nil {
		err = st.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	closing = func() {
		st.Close(context.Background())
		store.Close()
	}
	t.Cleanup(closing)
	return &Engine{Stapler: st, ReadOnly: readOnly, Database: store.Path(), Now: now}, closing
}

func TestEngineOverTheStore(t *testing.T) {
	ctx := context.Background()
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "CA", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, OCSPURLs: []string{"http://ocsp.test"}, MustStaple: true})
	revoked := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"r.test"}, OCSPURLs: []string{"http://ocsp.test"}})
	path := filepath.Join(t.TempDir(), "cache.db")

	rw, closeRW := engineOver(t, path, false, testpki.Epoch)
	// Import verifies: a response about another certificate is refused and nothing is stored.
	wrong := ca.Respond(t, revoked.Cert, testpki.ResponseOptions{})
	if _, err := rw.Import(ctx, ImportRequest{DER: wrong, Chain: leaf.ChainPEM()}); !errors.Is(err, ocspfetch.ErrNoMatchingResponse) || !errors.Is(err, ErrBadInput) {
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
	older := ca.Respond(t, leaf.Cert, testpki.ResponseOptions{ThisUpdate: testpki.Epoch().Add(-2 * time.Hour)})
	if _, err := rw.Import(ctx, ImportRequest{DER: older, Chain: leaf.ChainPEM()}); !errors.Is(err, stapler.ErrOlderResponse) || !errors.Is(err, ErrBadInput) {
		t.Errorf("import of an older response: %v, want ErrOlderResponse", err)
	}
	if _, err := rw.Import(ctx, ImportRequest{DER: ca.Respond(t, revoked.Cert, testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 1}), Chain: revoked.ChainPEM()}); err != nil {
		t.Fatal(err)
	}
	closeRW()

	ro, _ := engineOver(t, path, true, testpki.Epoch)
	if _, err := ro.Refresh(ctx, nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Refresh on a read-only store: %v, want ErrReadOnly", err)
	}
	es, err := ro.Entries(ctx)
	if err != nil || len(es) != 2 || es[0].Names == nil || es[1].Names == nil {
		t.Fatalf("Entries = %+v, %v", es, err)
	}
	key := certs.NewKey(ca.Cert, revoked.Cert)
	ref, _ := certs.ParseKey(key.String())
	d, err := ro.Entry(ctx, ref)
	if err != nil || d.Status != "revoked" || d.Reason != "keyCompromise" || len(d.DER) == 0 || len(d.Leaf) == 0 || len(d.Issuer) == 0 {
		t.Errorf("Entry = %+v, %v", d.Entry, err)
	}
	if _, err := ro.Remove(ctx, ref); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Remove on a read-only store: %v", err)
	}
	if _, err := ro.Import(ctx, ImportRequest{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Import on a read-only store: %v", err)
	}
	later := &Engine{Stapler: ro.Stapler, Now: func() time.Time { return testpki.Epoch().Add(48 * time.Hour) }}
	if d, _ := later.Entry(ctx, ref); d.Status != "expired" {
		t.Errorf("status after nextUpdate = %q, want expired", d.Status)
	}
	missing, _ := certs.ParseKey(key.String()[:16] + ":FFFF")
	if _, err := ro.Entry(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ro.Entry(ctx, certs.KeyRef{IssuerPrefix: key.IssuerHash[:1], Serial: key.Serial()}); err != nil {
		t.Errorf("a one-byte prefix that selects one certificate: %v", err)
	}
	st, err := ro.Stats(ctx)
	if err != nil || st.Entries != 2 || !st.ReadOnly || st.DatabasePath != path {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}

// TestEntryRedactsResponderURLs: a responder URL with user information and a token shows neither, in an
// entry's URLs, its responder and its history.
func TestEntryRedactsResponderURLs(t *testing.T) {
	const raw, shown = "http://alice:s3cret@ocsp.test/?token=t0ken", "http://REDACTED@ocsp.test/?token=REDACTED"
	in := stapler.Info{URLs: []string{raw}, Response: &cache.Response{URL: raw}, History: []cache.Attempt{{URL: raw}, {}}}
	d := DetailOf(in, time.Now())
	if len(d.URLs) != 1 || d.URLs[0] != shown || d.Responder != shown || d.History[0].URL != shown || d.History[1].URL != "" {
		t.Errorf("URLs %q, responder %q, history %q and %q: want %q, and nothing for no URL",
			d.URLs, d.Responder, d.History[0].URL, d.History[1].URL, shown)
	}
}
