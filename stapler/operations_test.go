package stapler

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// storeWith writes, as a service would have, each chain's certificate and, when given, its response and
// history, then closes the file.
func storeWith(t *testing.T, path string, now time.Time, items ...storedItem) {
	t.Helper()
	st := openStore(t, path)
	for _, it := range items {
		key, _ := it.chain.CacheKey()
		c := cache.Cert{Leaf: it.chain.Leaf.Raw, Issuer: it.chain.Issuer.Raw, URLs: it.chain.Leaf.OCSPServer, Added: now}
		if err := st.PutCert(key, c); err != nil {
			t.Fatal(err)
		}
		if it.resp != nil {
			if err := st.PutResponse(key, *it.resp); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range it.history {
			if err := st.AddAttempt(key, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	st.Close()
}

type storedItem struct {
	chain   *certs.Chain
	resp    *cache.Response
	history []cache.Attempt
}

// TestManualFetchesOnlyWhenAsked: the command line's engine loads the store and fetches nothing of its own
// accord, not even a certificate without a response, until asked; then it fetches as a service does.
func TestManualFetchesOnlyWhenAsked(t *testing.T) {
	ca := testpki.NewRoot(t, "manual CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		chain := leafChain(t, ca, testpki.LeafOptions{DNSNames: []string{"manual.test"}, OCSPURLs: []string{"http://ocsp.test/"}})
		storeWith(t, path, time.Now(), storedItem{chain: chain})
		fake := newFakeResponder(t, ca, 4*day)
		s := mustNew(t, Config{Fetcher: fake, Storage: openStore(t, path), Manual: true, Rand: noJitter})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // the bubble's clock: an hour passes in no time
		synctest.Wait()
		if got := len(fake.log()); got != 0 {
			t.Fatalf("a manual engine fetched %d times of its own accord", got)
		}
		key, _ := chain.CacheKey()
		in, err := s.Refresh(context.Background(), key)
		if err != nil || !in.HasResponse || in.Status != ocspwire.Good || len(fake.log()) != 1 {
			t.Fatalf("Refresh: %+v, %v, %d fetches", in, err, len(fake.log()))
		}
		if !slices.Equal(in.Names, []string{"manual.test"}) {
			t.Errorf("names %q, want those of the stored leaf", in.Names)
		}
	})
}

// TestLookup finds a certificate by the key an operator types: a prefix of the issuer hash and a serial.
func TestLookup(t *testing.T) {
	a, b := testpki.NewRoot(t, "lookup A", testpki.ECDSAP256), testpki.NewRoot(t, "lookup B", testpki.ECDSAP256)
	s := mustNew(t, Config{Fetcher: newFakeResponder(t, a, day)})
	ka, _ := s.Watch(leafChain(t, a, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}))
	kb, _ := s.Watch(leafChain(t, b, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}}))
	if ka.Serial().Cmp(kb.Serial()) != 0 {
		t.Fatalf("the test needs one serial under two issuers: %s, %s", ka, kb)
	}
	tests := []struct {
		name string
		ref  certs.KeyRef
		want certs.Key
		err  error
	}{
		{"whole key", certs.KeyRef{IssuerPrefix: ka.IssuerHash[:], Serial: ka.Serial()}, ka, nil},
		{"short prefix", certs.KeyRef{IssuerPrefix: kb.IssuerHash[:2], Serial: kb.Serial()}, kb, nil},
		{"no prefix, two issuers", certs.KeyRef{Serial: ka.Serial()}, certs.Key{}, ErrAmbiguous},
		{"other serial", certs.KeyRef{IssuerPrefix: ka.IssuerHash[:], Serial: ka.Serial().Lsh(ka.Serial(), 8)}, certs.Key{}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Lookup(tt.ref)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Lookup = %s, %v; want %s, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestWarmStartRestoresFailures: the run of failures at the end of a stored history, and the last one, are
// what the engine reports after a restart (a listing says the same with or without a service), and the
// backoff goes on from there.
func TestWarmStartRestoresFailures(t *testing.T) {
	ca := testpki.NewRoot(t, "failures CA", testpki.ECDSAP256)
	path := tempStorePath(t)
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
		resp := storedResponse(t, ca, chain, now.Add(-time.Hour), 4*day)
		fail := cache.Attempt{Time: now.Add(-time.Minute), Reason: "http_503", Error: "ocspfetch: http://ocsp.test/ answered HTTP 503"}
		storeWith(t, path, now, storedItem{chain: chain, resp: &resp, history: []cache.Attempt{
			{Time: now.Add(-time.Hour), Reason: "ok"}, {Time: now.Add(-2 * time.Minute), Reason: "timeout", Error: "deadline"}, fail,
		}})
		s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, 4*day), Storage: openStore(t, path), Manual: true})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		es := s.Entries()
		if len(es) != 1 || es[0].Failures != 2 || es[0].LastReason != "http_503" || es[0].LastError != fail.Error ||
			!es[0].LastAttempt.Equal(fail.Time) || !es[0].Stapled {
			t.Errorf("after the warm start: %+v; want 2 failures, the last one's reason and text, and the staple", es)
		}
	})
}

// TestImportVerifies: Import takes a response obtained elsewhere only once it verifies against the chain,
// and only when it is not older than the one held.
func TestImportVerifies(t *testing.T) {
	ca := testpki.NewRoot(t, "import CA", testpki.ECDSAP256)
	now := testpki.Epoch()
	chain := leafChain(t, ca, testpki.LeafOptions{DNSNames: []string{"import.test"}, OCSPURLs: []string{"http://ocsp.test/"}})
	other := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/"}})
	s := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, day), Storage: openStore(t, tempStorePath(t)),
		Manual: true, Now: func() time.Time { return now }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	good := ca.Respond(t, chain.Leaf, testpki.ResponseOptions{})
	noIssuer := &certs.Chain{Leaf: chain.Leaf}
	tests := []struct {
		name  string
		chain *certs.Chain
		der   []byte
		err   error
	}{
		{"another certificate's response", chain, ca.Respond(t, other.Leaf, testpki.ResponseOptions{}), ocspfetch.ErrNoMatchingResponse},
		{"not a response", chain, []byte("junk"), ocspfetch.ErrMalformed},
		{"no issuer", noIssuer, good, ocspfetch.ErrNoIssuer},
		{"good", chain, good, nil},
		{"older than the one held", chain, ca.Respond(t, chain.Leaf, testpki.ResponseOptions{ThisUpdate: now.Add(-3 * time.Hour)}), ErrOlderResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := s.Import(tt.chain, tt.der)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Import: %v, want %v", err, tt.err)
			}
			if err == nil && (!in.Stapled || !in.Fetchable || !slices.Equal(in.Names, []string{"import.test"})) {
				t.Errorf("imported entry %+v", in)
			}
		})
	}
	key, _ := chain.CacheKey()
	if got := s.Staple(key); string(got) != string(good) {
		t.Error("the imported response is not stapled")
	}

	// Over the same store, the certificate is restored without its parsed leaf; a newer response imports.
	store := s.cfg.Storage
	s.Close(context.Background())
	restored := mustNew(t, Config{Fetcher: newFakeResponder(t, ca, day), Storage: store, Manual: true, Now: func() time.Time { return now }})
	if err := restored.Start(); err != nil {
		t.Fatal(err)
	}
	newer := ca.Respond(t, chain.Leaf, testpki.ResponseOptions{ThisUpdate: now.Add(-time.Minute)})
	if in, err := restored.Import(chain, newer); err != nil || !in.Stapled || string(restored.Staple(key)) != string(newer) {
		t.Errorf("import over a restored certificate: %+v, %v", in, err)
	}
}
