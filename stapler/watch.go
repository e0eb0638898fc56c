package stapler

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	e.know(chain)
	urls, mustStaple := e.urls, e.mustStaple
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
		// A fetch in flight (the entry was not idle) may have stored its response before the removal: it is
		// held, so it is written again.
		e.dirty = e.resp != nil
		e.stored(err)
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

// Remove forgets key: it is no longer fetched or stapled, and its certificate, response and history are
// removed from storage; the Info returned has only its Key. A certificate that a Watch references (a site
// of a running service serves it) is not forgotten, since the site goes on serving it: its response and
// history go, from memory and storage, and a fresh response is fetched at once, even by a fleet's follower.
// Remove waits for that fetch (or ctx) and returns the entry after it, Watched, with the fetch's error.
func (s *Stapler) Remove(ctx context.Context, key certs.Key) (Info, error) {
	s.mu.Lock()
	e := s.entries[key]
	if e == nil || e.refs == 0 {
		if e != nil {
			s.dropLocked(e)
		}
		s.index.Delete(key)
		s.mu.Unlock()
		if e == nil && s.cfg.Storage == nil {
			return Info{}, fmt.Errorf("%w: %s", ErrNotWatched, key)
		}
		return Info{Key: key}, s.removeStored(key)
	}
	e.resp, e.dirty, e.expiredSeen = nil, false, false
	e.history, e.failures, e.retries, e.lastErr, e.lastTry, e.attempted = nil, 0, 0, nil, time.Time{}, false
	s.index.Delete(key)
	var err error
	if s.cfg.Storage != nil {
		// Storage is cleared before the fetch starts, so that the removal cannot delete its response. The
		// certificate goes back at once: a fleet's store takes no response without it.
		hold := e.state == idle
		if hold {
			e.state = persisting
		}
		c := e.certRecord(s.now())
		s.mu.Unlock()
		err = s.removeStored(key)
		if perr := s.cfg.Storage.PutCert(key, c); perr != nil {
			err = errors.Join(err, fmt.Errorf("stapler: %s: certificate not stored again: %w", key, perr))
		}
		s.mu.Lock()
		if hold {
			s.releaseLocked(e, s.now())
		}
		e.certDirty = err != nil
		// A fetch in flight (the entry was not idle) may have stored its response before the removal: it is
		// held, so it is written again.
		e.dirty = e.resp != nil
		e.stored(err)
	}
	s.mu.Unlock()
	info, ferr := s.Refresh(ctx, key)
	if err != nil {
		return info, err
	}
	return info, ferr
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
	s.index.PutAll(func(yield func(certs.Key, *Staple) bool) {
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
