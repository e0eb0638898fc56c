package stapler

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// outcome is what one fetch changed, to be written to storage outside the lock.
type outcome struct {
	resp    *cache.Response // the response accepted, nil when the fetch failed
	attempt cache.Attempt
	events  []Event
}

// fetch runs one fetch of e in its own goroutine: network I/O with no lock held, then the index updated under
// the lock, then storage written with no lock held. The index never waits for the disk.
func (s *Stapler) fetch(e *entry, waiters []chan struct{}) {
	defer s.wg.Done()
	start := s.now()
	leaf, issuer, err := s.certificates(e)
	var resp *ocspfetch.Response
	if err == nil {
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		resp, err = s.cfg.Fetcher.Fetch(ctx, leaf, issuer)
		cancel()
		if err == nil && resp == nil {
			err = errors.New("stapler: fetcher returned neither a response nor an error")
		}
	}
	now := s.now()
	s.metrics.fetches.Add(1)

	s.mu.Lock()
	s.busy--
	if s.hostBusy[e.host]--; s.hostBusy[e.host] <= 0 {
		delete(s.hostBusy, e.host)
	}
	s.dispatchLocked()
	out := s.applyLocked(e, resp, err, start, now)
	e.state = persisting
	s.mu.Unlock()

	s.emit(out.events)
	serr := s.store(e.key, out)

	s.mu.Lock()
	e.state = idle
	if serr == nil && e.resp == out.resp {
		e.dirty = false
	}
	e.stored(serr)
	if s.cfg.Storage == nil {
		e.history = append(e.history, out.attempt)
		if len(e.history) > cache.MaxHistory {
			e.history = e.history[len(e.history)-cache.MaxHistory:]
		}
	}
	if e.again || len(e.waiters) > 0 {
		e.next = now
	}
	s.scheduleLocked(e, s.now())
	s.dispatchLocked()
	s.mu.Unlock()
	for _, w := range waiters {
		close(w)
	}
}

// certificates returns what a fetch of e needs: the certificates Watch gave, or those of its stored record.
func (s *Stapler) certificates(e *entry) (leaf, issuer *x509.Certificate, err error) {
	s.mu.Lock()
	leaf, issuer = e.leaf, e.issuer
	s.mu.Unlock()
	if leaf != nil && issuer != nil {
		return leaf, issuer, nil
	}
	if leaf, issuer, err = s.storedCertificates(e.key); err != nil {
		return nil, nil, err
	}
	// The parsed certificates are not kept: an entry nobody watches costs its response and its names.
	s.mu.Lock()
	if !e.namesKnown {
		e.setNames(leaf)
	}
	s.mu.Unlock()
	return leaf, issuer, nil
}

// storedCertificates reads and parses the leaf and issuer stored for key.
func (s *Stapler) storedCertificates(key certs.Key) (leaf, issuer *x509.Certificate, err error) {
	if s.cfg.Storage == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoCertificate, key)
	}
	c, err := s.cfg.Storage.Cert(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrNoCertificate, key, err)
	}
	if leaf, err = x509.ParseCertificate(c.Leaf); err == nil {
		issuer, err = x509.ParseCertificate(c.Issuer)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: stored certificate: %w", ErrNoCertificate, key, err)
	}
	return leaf, issuer, nil
}

// applyLocked decides what a fetch means: the new response replaces the one held (and the index entry) only if
// it is valid now and not older; a failure keeps the response held and schedules a retry with backoff.
func (s *Stapler) applyLocked(e *entry, resp *ocspfetch.Response, err error, start, now time.Time) outcome {
	var out outcome
	out.attempt = cache.Attempt{Time: now, Latency: now.Sub(start), URL: firstURL(e.urls)}
	e.lastTry, e.attempted = now, true
	if e.removed {
		out.attempt.Reason = "removed"
		return out
	}
	if err == nil {
		if resp.HTTP.URL != "" {
			out.attempt.URL = resp.HTTP.URL
		}
		if resp.HTTP.Latency > 0 {
			out.attempt.Latency = resp.HTTP.Latency
		}
		err = s.acceptable(e, resp, now)
	}
	if err != nil {
		s.failLocked(e, err, now, &out)
		return out
	}
	s.acceptLocked(e, resp, now, &out)
	return out
}

// acceptable says why resp may not replace what e holds: it has expired, or it is older than the response held.
func (s *Stapler) acceptable(e *entry, resp *ocspfetch.Response, now time.Time) error {
	switch expires := resp.Expiry(s.cfg.Policy.TTL()); {
	case !now.Before(expires):
		return fmt.Errorf("stapler: %s: %w (at %s)", e.key, ocspfetch.ErrExpired, expires.UTC().Format(time.RFC3339))
	case e.resp != nil && resp.Stamp().Before(e.resp.Stamp()):
		return errOlder(e.key, resp.Stamp(), resp.ProducedAt, e.resp.Stamp(), e.resp.ProducedAt)
	}
	return nil
}

// errOlder is ErrOlderResponse for key, saying what both responses are: the one held is newer.
func errOlder(key certs.Key, got ocspwire.Stamp, gotProduced time.Time, held ocspwire.Stamp, heldProduced time.Time) error {
	return fmt.Errorf("%w: %s: the one held was produced at %s (thisUpdate %s), this one at %s (thisUpdate %s)",
		ErrOlderResponse, key, heldProduced.UTC().Format(time.RFC3339), held, gotProduced.UTC().Format(time.RFC3339), got)
}

func (s *Stapler) failLocked(e *entry, err error, now time.Time, out *outcome) {
	e.failures++
	e.retries++
	e.lastErr = err
	reason := reasonOf(err)
	out.attempt.Reason, out.attempt.Error = reason, err.Error()
	var he *ocspfetch.HTTPError
	if errors.As(err, &he) && he.URL != "" {
		out.attempt.URL = he.URL
	}
	var validUntil time.Time
	if e.resp != nil && e.resp.ValidAt(now) {
		validUntil = e.resp.Expires
	}
	var retryAfter time.Duration
	if he != nil {
		retryAfter = he.RetryAfter
	}
	if quiet(err) {
		e.next = s.cfg.Policy.Idle(now, s.rnd) // nothing to ask: look again at the slow end of the backoff
	} else {
		e.next = s.cfg.Policy.Backoff(e.retries, now, validUntil, retryAfter, s.rnd)
	}
	s.metrics.failed(reason)
	if !quiet(err) {
		ev := s.event(FetchFailed, e, now)
		ev.Err, ev.Reason, ev.URL, ev.Latency = err, reason, out.attempt.URL, out.attempt.Latency
		out.events = append(out.events, ev)
	} else {
		s.log.Debug().Str("key", e.key.String()).Str("reason", reason).Msg("nothing to fetch")
	}
}

func (s *Stapler) acceptLocked(e *entry, resp *ocspfetch.Response, now time.Time, out *outcome) {
	expires := resp.Expiry(s.cfg.Policy.TTL())
	next := s.cfg.Policy.RefreshAt(resp, now, s.rnd)
	switch {
	case resp.Status == ocspwire.Unknown && !s.cfg.StapleUnknown:
		// Nothing to staple: ask again with backoff rather than at the midpoint. A responder answers unknown
		// for a certificate issued moments ago (the Baseline Requirements give CAs 15 minutes), or from an
		// index it has not reloaded yet (openssl ocsp).
		e.retries++
		next = s.cfg.Policy.Backoff(e.retries, now, time.Time{}, 0, s.rnd)
	case next.After(now):
		e.retries = 0
	default:
		// The response is already past its refresh point (a stale cache in front of the responder): keep it,
		// but ask again with backoff rather than at once.
		e.retries++
		next = s.cfg.Policy.Backoff(e.retries, now, expires, 0, s.rnd)
	}
	e.failures = 0 // the fetch succeeded, as its history records
	rec := ResponseRecord(resp, expires, next)
	if rec.Fetched.IsZero() {
		rec.Fetched = now
	}
	prev := e.resp
	e.resp, e.next, e.lastErr, e.expiredSeen = &rec, next, nil, false
	e.dirty = s.cfg.Storage != nil
	if s.stapleable(rec.Status) {
		s.index.Put(e.key, &Staple{Raw: rec.Raw, Expires: expires, Status: rec.Status, ThisUpdate: rec.ThisUpdate})
	} else {
		s.index.Delete(e.key)
	}
	out.resp = &rec
	out.attempt.Reason, out.attempt.Status = "ok", rec.Status
	s.metrics.accepted(rec.Status)
	events := s.updatedLocked(e, prev, out.attempt.URL, now)
	events[0].Latency = out.attempt.Latency
	out.events = append(out.events, events...)
}

// updatedLocked returns the events of e's new response replacing prev: Updated, and StatusChanged when the
// status is new.
func (s *Stapler) updatedLocked(e *entry, prev *cache.Response, url string, now time.Time) []Event {
	updated := s.event(Updated, e, now)
	updated.URL = url
	events := []Event{updated}
	if prev == nil || prev.Status != e.resp.Status {
		ev := s.event(StatusChanged, e, now)
		if prev != nil {
			ev.Previous, ev.HadPrevious = prev.Status, true
		}
		ev.URL = url
		events = append(events, ev)
		if e.resp.Status == ocspwire.Revoked {
			s.metrics.revocations.Add(1)
		}
	}
	return events
}

// store writes a fetch's outcome: the response (whose failure is logged, counted, reported, and retried by the
// sweep) and the attempt (whose failure is logged and counted). It returns nil when the response, if any,
// is now at rest, else why not.
func (s *Stapler) store(key certs.Key, out outcome) error {
	st := s.cfg.Storage
	if st == nil {
		return nil
	}
	var err error
	record := out.attempt.Reason != "" && out.attempt.Reason != "removed"
	if both, can := st.(fetchedWriter); can && out.resp != nil && record {
		// One transaction for the response and its attempt (cache.Store: one fsync instead of two).
		err := both.PutFetched(key, *out.resp, out.attempt)
		if err != nil && !errors.Is(err, cache.ErrOlder) {
			s.metrics.historyFailures.Add(1)
		}
		return s.persisted(key, *out.resp, err)
	}
	if out.resp != nil {
		err = s.persist(key, *out.resp)
	}
	if record {
		if err := st.AddAttempt(key, out.attempt); err != nil {
			s.metrics.historyFailures.Add(1)
			s.log.Warn().Err(err).Str("key", key.String()).Msg("fetch history not stored")
		}
	}
	return err
}

// fetchedWriter is a Storage that stores a fetch's response and attempt in one write.
type fetchedWriter interface {
	PutFetched(key certs.Key, r cache.Response, a cache.Attempt) error
}

// persist writes one response and raises Persisted or PersistFailed.
func (s *Stapler) persist(key certs.Key, r cache.Response) error {
	return s.persisted(key, r, s.cfg.Storage.PutResponse(key, r))
}

// persisted accounts for the write of r that returned err: it raises Persisted or PersistFailed and returns
// nil when r is at rest (a newer response kept in its place counts as at rest), else err. A storage that refuses the
// response because it does not hold the certificate (a fleet's store, after another node or an operator
// removed it) gets the certificate again from the next backlog pass when a Watch of this node references it.
func (s *Stapler) persisted(key certs.Key, r cache.Response, err error) error {
	if errors.Is(err, cache.ErrOlder) {
		s.log.Warn().Err(err).Str("key", key.String()).Msg("storage holds a newer response; kept")
		err = nil
	}
	if errors.Is(err, cache.ErrNotFound) {
		s.mu.Lock()
		if e := s.entries[key]; e != nil && e.refs > 0 && !e.removed && e.leaf != nil {
			e.certDirty = true
		}
		s.mu.Unlock()
	}
	ev := Event{Kind: Persisted, Key: key, Time: s.now(), Status: r.Status, ThisUpdate: r.ThisUpdate, NextUpdate: r.NextUpdate}
	if err != nil {
		s.metrics.persistFailures.Add(1)
		ev.Kind, ev.Err = PersistFailed, err
	} else {
		s.metrics.persisted.Add(1)
	}
	s.emit([]Event{ev})
	return err
}

// persistBacklog writes again every certificate and response whose write failed: the certificate first, as a
// fleet's store takes no response without it.
func (s *Stapler) persistBacklog() {
	if s.cfg.Storage == nil {
		return
	}
	type item struct {
		e    *entry
		cert *cache.Cert
		rec  *cache.Response
	}
	var todo []item
	s.mu.Lock()
	now := s.now()
	for _, e := range s.entries {
		if e.state != idle || e.removed {
			continue
		}
		it := item{e: e}
		if e.certDirty && e.leaf != nil && e.issuer != nil {
			c := e.certRecord(now)
			it.cert = &c
		}
		if e.dirty {
			it.rec = e.resp
		}
		if it.cert != nil || it.rec != nil {
			e.state = persisting
			todo = append(todo, it)
		}
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	certErr := make([]error, len(todo))
	respErr := make([]error, len(todo))
	for i, it := range todo {
		if it.cert != nil {
			if certErr[i] = s.cfg.Storage.PutCert(it.e.key, *it.cert); certErr[i] != nil {
				s.metrics.persistFailures.Add(1)
				s.log.Warn().Err(certErr[i]).Str("key", it.e.key.String()).Msg("watched certificate not stored")
				continue // its response would be refused, or stored without it
			}
		}
		if it.rec != nil {
			respErr[i] = s.persist(it.e.key, *it.rec)
		}
	}
	s.mu.Lock()
	now = s.now()
	for i, it := range todo {
		s.releaseLocked(it.e, now)
		if it.cert != nil && certErr[i] == nil {
			it.e.certDirty = false
		}
		if it.rec != nil && certErr[i] == nil && respErr[i] == nil && it.e.resp == it.rec {
			it.e.dirty = false
		}
		it.e.stored(errors.Join(certErr[i], respErr[i]))
		s.scheduleLocked(it.e, now)
	}
	s.dispatchLocked()
	s.mu.Unlock()
}

// releaseLocked ends a write that held e (state persisting) outside a fetch: e is idle again, and due at once
// if a Refresh came meanwhile (it set again, or waits), as after a fetch.
func (s *Stapler) releaseLocked(e *entry, now time.Time) {
	e.state = idle
	if e.again || len(e.waiters) > 0 {
		e.next = now
	}
}

// reasonOf is ocspfetch.Reason with the stapler's own failures named.
func reasonOf(err error) string {
	var stored *StoredFailure
	switch {
	case errors.As(err, &stored):
		return stored.Reason
	case errors.Is(err, ErrOlderResponse):
		return "older_response"
	case errors.Is(err, ErrNoCertificate):
		return "no_certificate"
	}
	return ocspfetch.Reason(err)
}

// quiet reports failures that are a normal state rather than trouble: a certificate without a responder URL
// (Let's Encrypt's since 2025) has nothing to staple.
func quiet(err error) bool { return errors.Is(err, ocspfetch.ErrNoResponderURL) }

func firstURL(urls []string) string {
	if len(urls) == 0 {
		return ""
	}
	return urls[0]
}
