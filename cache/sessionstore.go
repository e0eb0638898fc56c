package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SessionStore keeps TLS sessions for tlsserver's NewSession and ResumeSession hooks (Node's 'newSession' and
// 'resumeSession' events with an external store) in a Store, so that resumption survives a restart.
//
// A handshake never waits on the disk: NewSession puts the session in memory and returns; Run writes the
// sessions received since its last pass in one transaction every FlushInterval, and purges expired ones from
// the file every PurgeInterval. ResumeSession looks in memory first, then in the file (a read, no fsync).
// A session not yet flushed when the process dies is lost; its client does a full handshake next time.
// Session bytes hold the master secret: the store never logs them and its errors never quote them.
//
// Set the fields before the first call; the zero TTL, FlushInterval and PurgeInterval take the defaults.
// SessionStore is safe for concurrent use.
type SessionStore struct {
	Store *Store
	// TTL is how long a session stays resumable; zero means DefaultSessionTTL (300 s, Node's sessionTimeout).
	TTL time.Duration
	// FlushInterval is how often Run writes new sessions; zero means one second.
	FlushInterval time.Duration
	// PurgeInterval is how often Run removes expired sessions from the file; zero means one minute.
	PurgeInterval time.Duration
	// MaxPending bounds the sessions held in memory between flushes; beyond it NewSession flushes at once
	// (the one case where a handshake waits on the disk). Zero means 65,536.
	MaxPending int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	pending map[string]pendingSession
}

type pendingSession struct {
	data    []byte
	expires time.Time
}

func (s *SessionStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *SessionStore) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultSessionTTL
}

func (s *SessionStore) maxPending() int {
	if s.MaxPending > 0 {
		return s.MaxPending
	}
	return 1 << 16
}

// NewSession stores data under id for TTL. It has tlsserver.Server.NewSession's signature.
func (s *SessionStore) NewSession(_ context.Context, id, data []byte) error {
	switch {
	case len(id) == 0:
		return errors.New("cache: empty session id")
	case len(id) > MaxSessionIDSize, len(data) > MaxSessionSize:
		return fmt.Errorf("%w: session of %d bytes with an id of %d bytes", ErrTooLarge, len(data), len(id))
	}
	s.mu.Lock()
	if s.pending == nil {
		s.pending = make(map[string]pendingSession)
	}
	s.pending[string(id)] = pendingSession{data: append([]byte(nil), data...), expires: s.now().Add(s.ttl())}
	full := len(s.pending) >= s.maxPending()
	s.mu.Unlock()
	if full {
		return s.Flush()
	}
	return nil
}

// ResumeSession returns the data stored under id, or nil when there is none or it has expired. It has
// tlsserver.Server.ResumeSession's signature. A file that cannot be read is an error, which drops the
// connection (Node: the callback's error).
func (s *SessionStore) ResumeSession(_ context.Context, id []byte) ([]byte, error) {
	now := s.now()
	s.mu.Lock()
	p, ok := s.pending[string(id)]
	s.mu.Unlock()
	if ok {
		if now.Before(p.expires) {
			return p.data, nil
		}
		return nil, nil
	}
	data, err := s.Store.GetSession(id, now)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return data, err
}

// Flush writes the sessions held in memory to the file in one transaction. On failure they stay in memory
// for the next attempt.
func (s *SessionStore) Flush() error {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.Store.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		for id, p := range batch {
			if err := b.Put([]byte(id), encodeSession(p.data, p.expires)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.mu.Lock()
		for id, p := range batch {
			if _, newer := s.pending[id]; !newer {
				if s.pending == nil {
					s.pending = make(map[string]pendingSession, len(batch))
				}
				s.pending[id] = p
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("cache: storing %d TLS sessions: %w", len(batch), err)
	}
	return nil
}

// Pending returns the number of sessions not yet written to the file.
func (s *SessionStore) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Run flushes and purges on its intervals until ctx ends, then flushes once more. Errors go to onError (nil
// ignores them); they never stop the loop.
func (s *SessionStore) Run(ctx context.Context, onError func(error)) {
	flush, purge := s.FlushInterval, s.PurgeInterval
	if flush <= 0 {
		flush = time.Second
	}
	if purge <= 0 {
		purge = time.Minute
	}
	report := func(err error) {
		if err != nil && onError != nil {
			onError(err)
		}
	}
	ft, pt := time.NewTicker(flush), time.NewTicker(purge)
	defer ft.Stop()
	defer pt.Stop()
	for {
		select {
		case <-ctx.Done():
			report(s.Flush())
			return
		case <-ft.C:
			report(s.Flush())
		case <-pt.C:
			s.dropExpired()
			_, err := s.Store.PurgeSessions(s.now())
			report(err)
		}
	}
}

// dropExpired removes expired sessions from memory.
func (s *SessionStore) dropExpired() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.pending {
		if !now.Before(p.expires) {
			delete(s.pending, id)
		}
	}
}
