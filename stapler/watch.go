package stapler

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
)

// Watch starts keeping a staple for the chain's leaf and returns its cache key. Watching a certificate that
// is already watched (or was restored from storage) adds a reference and fetches nothing more; a new one is
// fetched at once. The chain must know its issuer.
func (s *Stapler) Watch(chain *certs.Chain) (certs.Key, error) {
	if chain == nil || chain.Leaf == nil {
		return certs.Key{}, errors.New("stapler: Watch of an empty chain")
	}
	key, ok := chain.CacheKey()
	if !ok {
		return certs.Key{}, fmt.Errorf("stapler: %s: %w", certs.Describe(chain.Leaf), ocspfetch.ErrNoIssuer)
	}
	urls := certs.OCSPURLs(chain.Leaf)
	mustStaple := certs.MustStaple(chain.Leaf)
	now := s.now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return certs.Key{}, ErrClosed
	}
	e := s.entries[key]
	if e == nil {
		e = &entry{key: key}
		s.entries[key] = e
	}
	e.refs++
	newCert := !e.hasCert
	e.leaf, e.issuer, e.hasCert = chain.Leaf, chain.Issuer, true
	e.urls, e.mustStaple = urls, mustStaple
	if e.state == idle {
		e.host = responderHost(urls)
	}
	if newCert {
		e.next = time.Time{}
		if e.resp != nil && e.resp.ValidAt(now) && !e.resp.RefreshAt.IsZero() {
			e.next = e.resp.RefreshAt
		}
	}
	if newCert && s.cfg.Storage != nil {
		// The certificate goes to storage before the first fetch starts: a fleet's store takes no response
		// for a certificate it does not hold. The entry is not fetched meanwhile (not idle).
		hold := e.state == idle
		if hold {
			e.state = persisting
		}
		c := e.certRecord(now)
		s.mu.Unlock()
		err := s.cfg.Storage.PutCert(key, c)
		if err != nil {
			// The certificate is watched and fetched all the same; the sweep writes it again.
			s.metrics.persistFailures.Add(1)
			s.log.Error().Err(err).Str("key", key.String()).Msg("watched certificate not stored")
		}
		s.mu.Lock()
		if hold {
			s.releaseLocked(e, s.now())
		}
		e.certDirty = err != nil
	}
	if newCert {
		s.scheduleLocked(e, now)
		s.dispatchLocked()
	}
	s.mu.Unlock()

	if len(urls) == 0 {
		le := s.log.Debug()
		if mustStaple {
			le = s.log.Error()
		}
		le.Str("key", key.String()).Bool("must_staple", mustStaple).Msg("certificate has no OCSP responder URL")
	}
	return key, nil
}

// Import offers a response verified elsewhere (staple cache import) for leaf as issued by issuer. It is
// accepted under the same rules as a fetched one (valid now, not older than the response held), stapled at
// once and stored; the certificate becomes known and is kept fresh from then on, as one restored from
// storage. It returns the entry, or ErrOlderResponse or an error wrapping ocspfetch.ErrExpired.
func (s *Stapler) Import(leaf, issuer *x509.Certificate, r *ocspfetch.Response) (Info, error) {
	if leaf == nil || issuer == nil || r == nil || len(r.Raw) == 0 {
		return Info{}, errors.New("stapler: Import needs a leaf, its issuer and a response")
	}
	key := certs.NewKey(issuer, leaf)
	urls := certs.OCSPURLs(leaf)
	mustStaple := certs.MustStaple(leaf)
	now := s.now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Info{}, ErrClosed
	}
	e := s.entries[key]
	probe := e
	if probe == nil {
		probe = &entry{key: key}
	}
	if err := s.acceptable(probe, r, now); err != nil {
		s.mu.Unlock()
		return Info{}, err
	}
	if e == nil {
		e = probe
		s.entries[key] = e
	}
	newCert := !e.hasCert
	if newCert {
		e.leaf, e.issuer, e.hasCert, e.urls, e.mustStaple = leaf, issuer, true, urls, mustStaple
		if e.state == idle {
			e.host = responderHost(urls)
		}
	}
	var out outcome
	s.acceptLocked(e, r, now, &out)
	rec := out.resp
	s.scheduleLocked(e, now)
	s.dispatchLocked()
	s.mu.Unlock()

	s.emit(out.events)
	if newCert && s.cfg.Storage != nil {
		c := cache.Cert{Leaf: leaf.Raw, Issuer: issuer.Raw, URLs: urls, MustStaple: mustStaple, Added: now}
		if err := s.cfg.Storage.PutCert(key, c); err != nil {
			s.metrics.persistFailures.Add(1)
			s.log.Error().Err(err).Str("key", key.String()).Msg("imported certificate not stored")
			s.mu.Lock()
			e.certDirty = true // the sweep writes it again
			s.mu.Unlock()
		}
	}
	if s.cfg.Storage != nil && s.persist(key, *rec) {
		s.mu.Lock()
		if e.resp == rec {
			e.dirty = false
		}
		s.mu.Unlock()
	}
	info, _ := s.Entry(key)
	return info, nil
}

// Unwatch drops one reference taken by Watch. When none is left the certificate is forgotten: no longer
// fetched, no longer stapled, removed from storage.
func (s *Stapler) Unwatch(key certs.Key) error {
	s.mu.Lock()
	e := s.entries[key]
	if e == nil || e.refs == 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotWatched, key)
	}
	e.refs--
	drop := e.refs == 0
	if drop {
		s.dropLocked(e)
	}
	s.mu.Unlock()
	if drop {
		return s.removeStored(key)
	}
	return nil
}

// Remove forgets key whatever its references: it is no longer fetched or stapled, and its certificate,
// response and history are removed from storage.
func (s *Stapler) Remove(key certs.Key) error {
	s.mu.Lock()
	e := s.entries[key]
	if e != nil {
		s.dropLocked(e)
	}
	s.index.Delete(key)
	s.mu.Unlock()
	if e == nil && s.cfg.Storage == nil {
		return fmt.Errorf("%w: %s", ErrNotWatched, key)
	}
	return s.removeStored(key)
}

// RemoveAll is Remove for many keys at once: one pass over the index, and one storage transaction per few
// thousand keys when the storage can remove many at once (cache.Store can), rather than one per key.
func (s *Stapler) RemoveAll(keys []certs.Key) error {
	s.mu.Lock()
	s.dropAllLocked(keys)
	s.mu.Unlock()
	return s.removeStoredAll(keys)
}

// ForgetUnwatched removes, as RemoveAll does, every certificate that no Watch references (restored from
// storage and not watched again since, or imported) and returns their keys. The choice and the removal from
// memory are one step, so a certificate watched meanwhile is never dropped.
func (s *Stapler) ForgetUnwatched() ([]certs.Key, error) {
	s.mu.Lock()
	var keys []certs.Key
	for key, e := range s.entries {
		if e.refs == 0 {
			keys = append(keys, key)
		}
	}
	s.dropAllLocked(keys)
	s.mu.Unlock()
	return keys, s.removeStoredAll(keys)
}

// dropAllLocked forgets keys in memory: entries, timers, waiters, and the index in one pass.
func (s *Stapler) dropAllLocked(keys []certs.Key) {
	for _, key := range keys {
		if e := s.entries[key]; e != nil {
			s.forgetLocked(e)
		}
	}
	s.index.PutAll(func(yield func(certs.Key, *cache.Staple) bool) {
		for _, key := range keys {
			if !yield(key, nil) {
				return
			}
		}
	})
}

// removeStoredAll removes keys from storage, in bulk when the storage can.
func (s *Stapler) removeStoredAll(keys []certs.Key) error {
	if s.cfg.Storage == nil || len(keys) == 0 {
		return nil
	}
	if bulk, ok := s.cfg.Storage.(interface{ RemoveAll([]certs.Key) error }); ok {
		if err := bulk.RemoveAll(keys); err != nil {
			return fmt.Errorf("stapler: removing %d certificates from storage: %w", len(keys), err)
		}
		return nil
	}
	for _, key := range keys {
		if err := s.removeStored(key); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stapler) removeStored(key certs.Key) error {
	if s.cfg.Storage == nil {
		return nil
	}
	if err := s.cfg.Storage.Remove(key); err != nil {
		return fmt.Errorf("stapler: removing %s from storage: %w", key, err)
	}
	return nil
}

func (s *Stapler) dropLocked(e *entry) {
	s.forgetLocked(e)
	s.index.Delete(e.key)
}

// forgetLocked forgets e in memory, but for the index: no more fetches, timers or waiters.
func (s *Stapler) forgetLocked(e *entry) {
	e.removed = true
	e.stopTimer()
	delete(s.entries, e.key)
	for _, w := range e.waiters {
		close(w)
	}
	e.waiters = nil
}

// Refresh fetches key now, whatever its schedule, and waits for the outcome (or ctx). A fetch already in
// flight is followed by a new one. It returns the entry after the fetch and the fetch's error, if it failed.
func (s *Stapler) Refresh(ctx context.Context, key certs.Key) (Info, error) {
	s.mu.Lock()
	e := s.entries[key]
	switch {
	case s.closed:
		s.mu.Unlock()
		return Info{}, ErrClosed
	case e == nil:
		s.mu.Unlock()
		return Info{}, fmt.Errorf("%w: %s", ErrNotWatched, key)
	case !e.fetchable():
		s.mu.Unlock()
		return Info{}, fmt.Errorf("%w: %s", ErrNoCertificate, key)
	}
	w := s.askLocked(e, s.now())
	s.dispatchLocked()
	s.mu.Unlock()

	select {
	case <-w:
	case <-ctx.Done():
		return Info{}, fmt.Errorf("stapler: refresh %s: %w", key, ctx.Err())
	case <-s.ctx.Done():
		return Info{}, ErrClosed
	}
	info, ok := s.Entry(key)
	if !ok {
		return Info{}, fmt.Errorf("%w: %s (removed during the refresh)", ErrNotWatched, key)
	}
	if info.lastErr != nil {
		return info, info.lastErr
	}
	return info, nil
}

// RefreshAll is Refresh for every certificate that can be fetched, made as one sweep that finds them all due:
// the fetches go through the scheduler's queue and its limits (per responder host, overall), and this one
// call waits for all of them (or ctx). It returns the entries after their fetches, in key order, each with
// its fetch's error in LastError (Entries' form, without history).
func (s *Stapler) RefreshAll(ctx context.Context) ([]Info, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	now := s.now()
	var waits []chan struct{}
	var keys []certs.Key
	for _, e := range s.entries {
		if !e.fetchable() {
			continue
		}
		waits, keys = append(waits, s.askLocked(e, now)), append(keys, e.key)
	}
	s.dispatchLocked()
	s.mu.Unlock()

	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return nil, fmt.Errorf("stapler: refresh: %w", ctx.Err())
		case <-s.ctx.Done():
			return nil, ErrClosed
		}
	}
	s.mu.Lock()
	now = s.now()
	out := make([]Info, 0, len(keys))
	for _, k := range keys {
		if e := s.entries[k]; e != nil { // else removed during the refresh
			out = append(out, s.infoLocked(e, now))
		}
	}
	s.mu.Unlock()
	sortByKey(out)
	return out, nil
}

// askLocked asks for a fetch of e as soon as the scheduler allows (the caller dispatches): at once when e is
// idle, after the one in flight otherwise. The channel is closed when that fetch has finished.
func (s *Stapler) askLocked(e *entry, now time.Time) chan struct{} {
	w := make(chan struct{})
	e.waiters = append(e.waiters, w)
	switch e.state {
	case idle:
		e.next = now
		s.scheduleLocked(e, now)
	case fetching, persisting:
		e.again = true
	}
	return w
}

// warmStart loads the storage: watched certificates become entries, and every stored response that may be
// stapled now goes into the index in one pass.
func (s *Stapler) warmStart() error {
	st := s.cfg.Storage
	if st == nil {
		return nil
	}
	now := s.now()
	loaded := map[certs.Key]*entry{}
	bad := 0
	err := st.Certs(func(key certs.Key, c cache.Cert, err error) error {
		if err != nil {
			bad++
			s.log.Error().Err(err).Msg("stored certificate skipped")
			return nil
		}
		loaded[key] = &entry{key: key, urls: c.URLs, host: responderHost(c.URLs), mustStaple: c.MustStaple, hasCert: true}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stapler: loading certificates: %w", err)
	}
	err = st.Responses(func(key certs.Key, r cache.Response, err error) error {
		if err != nil {
			bad++
			s.log.Error().Err(err).Msg("stored response skipped")
			return nil
		}
		e := loaded[key]
		if e == nil {
			// A response without a certificate (an import): served until it expires, never fetched.
			e = &entry{key: key}
			loaded[key] = e
		}
		e.resp = &r
		return nil
	})
	if err != nil {
		return fmt.Errorf("stapler: loading responses: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range loaded {
		if e.resp != nil && e.resp.ValidAt(now) && !e.resp.RefreshAt.IsZero() {
			e.next = e.resp.RefreshAt
		}
		if e.resp != nil && !e.resp.ValidAt(now) {
			e.expiredSeen = true
		}
		if w := s.entries[key]; w != nil {
			// Watched before Start: keep its certificates, take the stored response.
			if w.resp == nil && e.resp != nil {
				w.resp, w.expiredSeen = e.resp, e.expiredSeen
				if w.next.IsZero() {
					w.next = e.next
				}
			}
			loaded[key] = w
		}
	}
	if len(s.entries) == 0 {
		s.entries = loaded
	} else {
		maps.Copy(s.entries, loaded)
	}
	s.index.PutAll(func(yield func(certs.Key, *cache.Staple) bool) {
		for key, e := range loaded {
			r := e.resp
			if r == nil || !r.ValidAt(now) || !s.stapleable(r.Status) {
				continue
			}
			if !yield(key, &cache.Staple{Raw: r.Raw, Expires: r.Expires, Status: r.Status, ThisUpdate: r.ThisUpdate}) {
				return
			}
		}
	})
	s.log.Info().Int("entries", len(loaded)).Int("stapled", s.index.Len()).Int("skipped", bad).Msg("warm start")
	return nil
}
