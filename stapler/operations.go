package stapler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
)

// What an operator asks of the engine, from the command line or the admin API, whether a service runs or
// not: find a certificate by the key an operator types, import a response obtained elsewhere, refresh now.

// Lookup returns the key of the one certificate ref selects (an issuer hash prefix and a serial, as an
// operator types it): ErrNotFound when none does, ErrAmbiguous when several do.
func (s *Stapler) Lookup(ref certs.KeyRef) (certs.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []certs.Key
	for k := range s.entries {
		if ref.Matches(k) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return certs.Key{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
	case 1:
		return found[0], nil
	}
	return certs.Key{}, fmt.Errorf("%w: %s matches %d", ErrAmbiguous, ref, len(found))
}

// Import verifies der, a DER OCSP response obtained elsewhere (staple cache import, staple fetch), as the
// answer about chain's leaf now, and takes it under the rules of a fetched one (valid now, not older than the
// response held): stapled at once and stored, with the certificate, which is kept fresh from then on as one
// restored from storage. It returns the entry; ocspfetch's verification errors, ErrOlderResponse, or an
// error wrapping ocspfetch.ErrExpired or ocspfetch.ErrNoIssuer; or, with the entry, ErrNotStored when the
// response is stapled but its write failed.
func (s *Stapler) Import(chain *certs.Chain, der []byte) (Info, error) {
	if chain == nil || chain.Leaf == nil {
		return Info{}, errors.New("stapler: Import of an empty chain")
	}
	leaf, issuer := chain.Leaf, chain.Issuer
	if issuer == nil {
		return Info{}, fmt.Errorf("stapler: %s: %w", certs.Describe(leaf), ocspfetch.ErrNoIssuer)
	}
	r, err := ocspfetch.Verify(der, leaf, issuer, s.now(), ocspfetch.VerifyOptions{NoNextUpdateTTL: s.cfg.Policy.TTL()})
	if err != nil {
		return Info{}, err
	}
	key := certs.NewKey(issuer, leaf)
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
		e.know(chain) // a certificate restored from storage keeps no parsed leaf: only its names
	} else {
		e.setNames(leaf)
	}
	var certRec cache.Cert
	if newCert {
		certRec = e.certRecord(now)
	}
	var out outcome
	s.acceptLocked(e, r, now, &out)
	rec := out.resp
	s.scheduleLocked(e, now)
	s.dispatchLocked()
	s.mu.Unlock()

	s.emit(out.events)
	var certErr, respErr error
	if newCert && s.cfg.Storage != nil {
		if certErr = s.cfg.Storage.PutCert(key, certRec); certErr != nil {
			s.metrics.persistFailures.Add(1)
			s.log.Error().Err(certErr).Str("key", key.String()).Msg("imported certificate not stored")
		}
	}
	if s.cfg.Storage != nil {
		respErr = s.persist(key, *rec)
	}
	s.mu.Lock()
	e.certDirty = e.certDirty || certErr != nil // the sweep writes it again
	if respErr == nil && e.resp == rec {
		e.dirty = false
	}
	serr := errors.Join(certErr, respErr)
	e.stored(serr)
	s.mu.Unlock()
	info, _ := s.Entry(key)
	if serr != nil {
		return info, fmt.Errorf("%w: %s: %w", ErrNotStored, key, serr)
	}
	return info, nil
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
// its fetch's error in LastError (Entries' form, without history), and an error that joins the failed
// fetches, each named by its key. A certificate with no responder URL has nothing to ask: its entry says
// so, and it is not counted as a failure.
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
	var failed []error
	for _, in := range out {
		if in.lastErr != nil && !quiet(in.lastErr) {
			failed = append(failed, fmt.Errorf("%s: %w", in.Key, in.lastErr))
		}
	}
	return out, errors.Join(failed...)
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
