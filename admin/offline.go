package admin

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
)

// Fetcher fetches and verifies a response; ocspfetch.Client implements it.
type Fetcher interface {
	Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error)
}

// Store is what OfflineBackend reads and writes: *cache.Store (the bbolt file) or *fleet.Store (a fleet's
// etcd, which every node of the fleet reads, running or not).
type Store interface {
	Certs(fn func(key certs.Key, c cache.Cert, err error) error) error
	Responses(fn func(key certs.Key, r cache.Response, err error) error) error
	History(key certs.Key) ([]cache.Attempt, error)
	PutCert(key certs.Key, c cache.Cert) error
	// PutResponse refuses a response older than the stored one with an error wrapping cache.ErrOlder.
	PutResponse(key certs.Key, r cache.Response) error
	AddAttempt(key certs.Key, a cache.Attempt) error
	Remove(key certs.Key) error
	ReadOnly() bool
	// Path names the store for humans (a file path, or etcd endpoints and prefix).
	Path() string
}

var _ Store = (*cache.Store)(nil)

// Claims is a Store that knows which nodes serve each certificate (*fleet.Store).
type Claims interface {
	ServedBy(key certs.Key) ([]string, error)
}

// OfflineBackend serves the admin operations straight from the store, for the CLI when no service runs (or,
// on a fleet's store, whether or not one runs). Opened read-only it lists and shows; opened for writing it
// also removes, imports and, with a Fetcher, refreshes.
type OfflineBackend struct {
	Store Store
	// Fetcher fetches for Refresh; nil makes Refresh fail with ErrReadOnly.
	Fetcher Fetcher
	// Policy decides RefreshAt and the TTL of responses without nextUpdate for what Refresh and Import store.
	Policy ocspfetch.Policy
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

var _ Backend = (*OfflineBackend)(nil)

func (b *OfflineBackend) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// record is everything the cache holds about one key.
type record struct {
	key  certs.Key
	cert *cache.Cert
	resp *cache.Response
}

// records returns the union of watched certificates and cached responses, in key order. Records that do not
// decode are skipped: one bad record must not hide the rest (`cache show` of that key reports it).
func (b *OfflineBackend) records() ([]record, error) {
	byKey := map[certs.Key]*record{}
	var order []certs.Key
	get := func(k certs.Key) *record {
		r, ok := byKey[k]
		if !ok {
			r = &record{key: k}
			byKey[k] = r
			order = append(order, k)
		}
		return r
	}
	err := b.Store.Certs(func(k certs.Key, c cache.Cert, err error) error {
		if err == nil {
			get(k).cert = &c
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = b.Store.Responses(func(k certs.Key, r cache.Response, err error) error {
		if err == nil {
			get(k).resp = &r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]record, 0, len(order))
	for _, k := range sortKeys(order) {
		out = append(out, *byKey[k])
	}
	return out, nil
}

func (b *OfflineBackend) Entries(ctx context.Context) ([]Entry, error) {
	recs, err := b.records()
	if err != nil {
		return nil, err
	}
	now := b.now()
	es := make([]Entry, 0, len(recs))
	for _, r := range recs {
		hist, _ := b.Store.History(r.key)
		es = append(es, EntryFrom(r.key, r.cert, r.resp, hist, now))
	}
	return es, nil
}

// find returns the one record ref selects.
func (b *OfflineBackend) find(ref certs.KeyRef) (record, error) {
	recs, err := b.records()
	if err != nil {
		return record{}, err
	}
	var found []record
	for _, r := range recs {
		if ref.Matches(r.key) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return record{}, fmt.Errorf("%w: %x:%X", ErrNotFound, ref.IssuerPrefix, ref.Serial)
	case 1:
		return found[0], nil
	}
	return record{}, fmt.Errorf("%w (%d match)", ErrAmbiguous, len(found))
}

func (b *OfflineBackend) Entry(ctx context.Context, ref certs.KeyRef) (Detail, error) {
	r, err := b.find(ref)
	if err != nil {
		return Detail{}, err
	}
	hist, _ := b.Store.History(r.key)
	d := Detail{Entry: EntryFrom(r.key, r.cert, r.resp, hist, b.now())}
	for _, a := range hist {
		d.History = append(d.History, AttemptFrom(a))
	}
	if r.resp != nil {
		d.DER = r.resp.Raw
	}
	if r.cert != nil {
		d.Leaf, d.Issuer = r.cert.Leaf, r.cert.Issuer
	}
	if cl, ok := b.Store.(Claims); ok {
		d.SetServedBy(cl.ServedBy(r.key))
	}
	return d, nil
}

func (b *OfflineBackend) Remove(ctx context.Context, ref certs.KeyRef) error {
	if b.Store.ReadOnly() {
		return ErrReadOnly
	}
	r, err := b.find(ref)
	if err != nil {
		return err
	}
	return b.Store.Remove(r.key)
}

// Refresh fetches now for the selected watched entries (every one when ref is nil), stores what verifies,
// and records each attempt in the history.
func (b *OfflineBackend) Refresh(ctx context.Context, ref *certs.KeyRef) ([]Entry, error) {
	if b.Store.ReadOnly() || b.Fetcher == nil {
		return nil, ErrReadOnly
	}
	recs, err := b.records()
	if err != nil {
		return nil, err
	}
	var out []Entry
	var errs []error
	for _, r := range recs {
		if r.cert == nil || (ref != nil && !ref.Matches(r.key)) {
			continue
		}
		if err := b.refreshOne(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.key, err))
		}
		d, _ := b.Entry(ctx, certs.KeyRef{IssuerPrefix: r.key.IssuerHash[:], Serial: r.key.Serial()})
		out = append(out, d.Entry)
	}
	if ref != nil && len(out) == 0 {
		return nil, fmt.Errorf("%w: %x:%X is not a watched certificate", ErrNotFound, ref.IssuerPrefix, ref.Serial)
	}
	return out, errors.Join(errs...)
}

func (b *OfflineBackend) refreshOne(ctx context.Context, r record) error {
	leaf, err1 := x509.ParseCertificate(r.cert.Leaf)
	issuer, err2 := x509.ParseCertificate(r.cert.Issuer)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("admin: cached certificate does not parse: %w", err)
	}
	start := b.now()
	resp, err := b.Fetcher.Fetch(ctx, leaf, issuer)
	a := cache.Attempt{Time: start, Reason: ocspfetch.Reason(err), Latency: b.now().Sub(start)}
	if err != nil {
		a.Error = err.Error()
		b.Store.AddAttempt(r.key, a)
		return err
	}
	a.Status, a.URL = resp.Status, resp.HTTP.URL
	b.Store.AddAttempt(r.key, a)
	return b.store(r.key, resp)
}

func (b *OfflineBackend) store(key certs.Key, resp *ocspfetch.Response) error {
	now := b.now()
	rec := cache.ResponseFrom(resp, resp.Expiry(b.Policy.TTL()), b.Policy.RefreshAt(resp, now, nil))
	if err := b.Store.PutResponse(key, rec); err != nil && !errors.Is(err, cache.ErrOlder) {
		return err
	}
	return nil
}

// Import verifies a response against the given certificate (at now) and stores it, with the certificate
// as a watched one so that a later service refreshes it.
func (b *OfflineBackend) Import(ctx context.Context, req ImportRequest) (Entry, error) {
	if b.Store.ReadOnly() {
		return Entry{}, ErrReadOnly
	}
	key, leaf, issuer, resp, err := VerifyImport(req, b.now())
	if err != nil {
		return Entry{}, err
	}
	if err := b.Store.PutCert(key, cache.Cert{Leaf: leaf.Raw, Issuer: issuer.Raw, URLs: certs.OCSPURLs(leaf), MustStaple: certs.MustStaple(leaf), Added: b.now()}); err != nil {
		return Entry{}, err
	}
	if err := b.store(key, resp); err != nil {
		return Entry{}, err
	}
	d, err := b.Entry(ctx, certs.KeyRef{IssuerPrefix: key.IssuerHash[:], Serial: key.Serial()})
	return d.Entry, err
}

// VerifyImport parses an import request and verifies its response: the key, the certificates and the
// verified response, or an error wrapping ErrBadInput (unparseable input, no issuer) or ocspfetch's reason.
func VerifyImport(req ImportRequest, now time.Time) (certs.Key, *x509.Certificate, *x509.Certificate, *ocspfetch.Response, error) {
	bundle, err := certs.ParsePEM(req.Chain, "certificate")
	if err != nil {
		return certs.Key{}, nil, nil, nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	var extra []*x509.Certificate
	if len(req.Issuer) > 0 {
		ib, err := certs.ParsePEM(req.Issuer, "issuer")
		if err != nil {
			return certs.Key{}, nil, nil, nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		extra = ib.Certs
	}
	if len(bundle.Certs) == 0 {
		return certs.Key{}, nil, nil, nil, fmt.Errorf("%w: no certificate given", ErrBadInput)
	}
	chain, err := certs.NewChain(bundle.Certs, nil, extra)
	if err != nil {
		return certs.Key{}, nil, nil, nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	key, ok := chain.CacheKey()
	if !ok {
		return certs.Key{}, nil, nil, nil, fmt.Errorf("%w: the issuer of %s is unknown: give it with --issuer", ErrBadInput, certs.Describe(chain.Leaf))
	}
	resp, err := ocspfetch.Verify(req.DER, chain.Leaf, chain.Issuer, now, ocspfetch.VerifyOptions{})
	if err != nil {
		return certs.Key{}, nil, nil, nil, err
	}
	return key, chain.Leaf, chain.Issuer, resp, nil
}

func (b *OfflineBackend) Stats(ctx context.Context) (Stats, error) {
	recs, err := b.records()
	if err != nil {
		return Stats{}, err
	}
	return Stats{Entries: len(recs), Healthy: true, ReadOnly: b.Store.ReadOnly(), DatabasePath: b.Store.Path()}, nil
}

// sortKeys sorts keys in disk order (issuer hash, then serial), for a stable listing.
func sortKeys(keys []certs.Key) []certs.Key {
	slices.SortFunc(keys, func(a, b certs.Key) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return keys
}
