package stapler

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
)

// A fleet is several staple nodes sharing one store (package fleet keeps it in etcd). One node, the leader,
// fetches for everyone; the others take its responses as they land (Offer) and fetch nothing of their own
// accord, except, when no leader is in sight, what is about to expire (Config.SelfFetchMargin). Config.Role
// tells the scheduler which of these the node is; everything else works as on one machine.

// Role is a node's part in a fleet at a given moment, as its election says.
type Role int

const (
	// Solo is one machine, not in a fleet: it fetches as scheduled. It is what a nil Config.Role means.
	Solo Role = iota
	// Leader fetches for the fleet, as scheduled.
	Leader
	// Follower sees another node leading: it fetches nothing of its own accord (Refresh still fetches).
	Follower
	// NoLeader sees no leader (the fleet's store is unreachable, or an election is under way): it fetches for
	// itself the responses that are missing or within Config.SelfFetchMargin of expiry.
	NoLeader
)

func (r Role) String() string {
	switch r {
	case Solo:
		return "solo"
	case Leader:
		return "leader"
	case Follower:
		return "follower"
	case NoLeader:
		return "no_leader"
	}
	return "invalid"
}

// DefaultSelfFetchMargin is Config.SelfFetchMargin's default: twice the refresh policy's default margin, so a
// node that lost sight of its leader fetches for itself with time left for retries.
const DefaultSelfFetchMargin = 2 * time.Hour

// mayFetchLocked says whether the node's role lets the scheduler start a fetch of e that has come due.
func (s *Stapler) mayFetchLocked(e *entry, now time.Time) bool {
	if s.cfg.Manual {
		return len(e.waiters) > 0
	}
	if s.cfg.Role == nil || len(e.waiters) > 0 {
		return true // one machine, or a Refresh: fetch
	}
	switch s.cfg.Role() {
	case Solo, Leader:
		return true
	case NoLeader:
		m := s.cfg.SelfFetchMargin
		switch {
		case m < 0:
			return false
		case m == 0:
			m = DefaultSelfFetchMargin
		}
		return e.resp == nil || !now.Before(e.resp.Expires.Add(-m))
	}
	return false
}

// RoleChanged tells the stapler that the node's role may have changed (the election's observer calls it):
// fetches that have come due and that the new role allows start at once rather than at the next sweep.
func (s *Stapler) RoleChanged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		return
	}
	now := s.now()
	for _, e := range s.entries {
		s.scheduleLocked(e, now)
	}
	s.dispatchLocked()
}

// Offer takes a response that is already at rest (another node stored it, and it arrived by the fleet's
// watch) into the index, without storing it again. It is accepted under the rules of a fetched one: valid
// now (else an error wrapping ocspfetch.ErrExpired) and not older by thisUpdate than the response held
// (else ErrOlderResponse). The response held already (this node's own write coming back) is a no-op. The
// next fetch is planned at r.RefreshAt, the time the node that fetched it planned, or at once when that is
// zero; whether this node makes it depends on its Role. An unknown key gets an entry that is stapled, and
// fetched once its certificate is known (Adopt, or storage).
func (s *Stapler) Offer(key certs.Key, r cache.Response) error {
	if len(r.Raw) == 0 {
		return errors.New("stapler: Offer of an empty response")
	}
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if !r.ValidAt(now) {
		s.mu.Unlock()
		return fmt.Errorf("stapler: %s: %w (at %s)", key, ocspfetch.ErrExpired, r.Expires.UTC().Format(time.RFC3339))
	}
	e := s.entries[key]
	if e != nil && e.resp != nil {
		held := e.resp
		switch {
		case r.Stamp().Before(held.Stamp()):
			s.mu.Unlock()
			return errOlder(key, r.Stamp(), r.ProducedAt, held.Stamp(), held.ProducedAt)
		case r.ThisUpdate.Equal(held.ThisUpdate) && bytes.Equal(r.Raw, held.Raw):
			e.dirty = false // it is at rest: it came back from the store
			s.mu.Unlock()
			return nil
		}
	}
	if e == nil {
		e = &entry{key: key}
		s.entries[key] = e
	}
	rec := r
	prev := e.resp
	e.resp, e.lastErr, e.expiredSeen, e.failures, e.retries, e.dirty = &rec, nil, false, 0, 0, false
	if e.state == idle {
		e.next = rec.RefreshAt
		if e.next.IsZero() {
			e.next = now
		}
	}
	if s.stapleable(rec.Status) {
		s.index.Put(key, &Staple{Raw: rec.Raw, Expires: rec.Expires, Status: rec.Status, ThisUpdate: rec.ThisUpdate})
	} else {
		s.index.Delete(key)
	}
	s.metrics.offered.Add(1)
	events := s.updatedLocked(e, prev, rec.URL, now)
	e.stopTimer()
	s.scheduleLocked(e, now)
	s.dispatchLocked()
	s.mu.Unlock()
	s.emit(events)
	return nil
}

// Adopt makes known a certificate that another node of the fleet watches (it arrived by the fleet's watch),
// so that this node keeps it fresh when its role is to fetch. Its certificates are read from storage when a
// fetch needs them. A certificate already known is left as it is.
func (s *Stapler) Adopt(key certs.Key, c cache.Cert) error {
	if len(c.Leaf) == 0 || len(c.Issuer) == 0 {
		return errors.New("stapler: Adopt of a certificate record without leaf or issuer")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	e := s.entries[key]
	if e != nil && e.hasCert {
		return nil
	}
	if e == nil {
		e = &entry{key: key}
		s.entries[key] = e
	}
	e.hasCert, e.urls, e.mustStaple = true, c.URLs, c.MustStaple
	if e.state == idle {
		e.host = responderHost(c.URLs)
		e.next = time.Time{}
		if e.resp != nil && e.resp.ValidAt(now) && !e.resp.RefreshAt.IsZero() {
			e.next = e.resp.RefreshAt
		}
	}
	s.scheduleLocked(e, now)
	s.dispatchLocked()
	return nil
}

// Flush writes again, at once, every certificate and response whose write failed (the sweep does it too):
// for a node whose store has just come back.
func (s *Stapler) Flush() { s.persistBacklog() }

// Withdraw tells the stapler that key's certificate was removed from the fleet's store (another node stopped
// serving it, or an operator removed it). A certificate no Watch of this node references is forgotten in
// memory, as Remove does, but storage is left alone (the record is gone from it already). One this node
// watches is kept and its certificate and valid response written back to storage, so that the fleet's leader
// keeps fetching it for the nodes that serve it and they staple it meanwhile; kept says which. An unknown key
// is ErrNotWatched (as a node's own removal comes back by the watch).
func (s *Stapler) Withdraw(key certs.Key) (kept bool, err error) {
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	e := s.entries[key]
	if e == nil {
		s.mu.Unlock()
		return false, fmt.Errorf("%w: %s", ErrNotWatched, key)
	}
	if e.refs == 0 {
		s.dropLocked(e)
		s.mu.Unlock()
		return false, nil
	}
	c := e.certRecord(now)
	resp := e.resp
	s.mu.Unlock()
	if s.cfg.Storage == nil {
		return true, nil
	}
	if err := s.cfg.Storage.PutCert(key, c); err != nil {
		s.metrics.persistFailures.Add(1)
		s.mu.Lock()
		e.certDirty = true // the sweep writes it again, and the response after it
		e.dirty = e.dirty || (e.resp != nil && e.resp.ValidAt(now))
		s.mu.Unlock()
		return true, fmt.Errorf("stapler: %s: writing the watched certificate back: %w", key, err)
	}
	// The response went with the certificate: put it back too, so that the nodes that forgot it staple again
	// at once rather than at the leader's next fetch (which, when this node leads, may be hours away).
	if resp != nil && resp.ValidAt(now) && s.persist(key, *resp) != nil {
		s.mu.Lock()
		if e.resp == resp {
			e.dirty = true
		}
		s.mu.Unlock()
	}
	return true, nil
}
