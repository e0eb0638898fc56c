package tlsserver

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// SessionBackend is where a WriteBehindSessionStore keeps sessions at rest (package cache's Store is one). A
// backend must never log session bytes nor quote them in its errors: they hold the master secret.
type SessionBackend interface {
	// CheckSession returns the error storing data under id would meet, for NewSession to return at once.
	CheckSession(id, data []byte) error
	// PutSessions stores every session that all yields, each until expires, in one write.
	PutSessions(all func(yield func(id, data []byte, expires time.Time) bool)) error
	// LookupSession returns the data stored under id, or nil when there is none or it has expired at now.
	LookupSession(id []byte, now time.Time) ([]byte, error)
	// PurgeSessions removes the sessions expired at now and returns how many it removed.
	PurgeSessions(now time.Time) (int, error)
}

// WriteBehindSessionStore keeps TLS sessions for Server.NewSession and Server.ResumeSession (Node's
// 'newSession' and 'resumeSession' events with an external store) in a SessionBackend, e.g. a file, so that
// resumption survives a restart. A handshake never waits on the backend: NewSession puts the session in
// memory and returns; Run, started beside the server, writes the sessions received since its last pass in
// one PutSessions every FlushInterval, and purges expired ones from the backend every PurgeInterval.
// ResumeSession looks in memory first, then in the backend. A session not yet flushed when the process dies
// is lost; its client does a full handshake next time. Session bytes hold the master secret: the store never
// logs them and its errors never quote them.
//
// Set the fields before the first call; Backend is required, and the zero TTL, FlushInterval,
// PurgeInterval and MaxPending take the defaults. WriteBehindSessionStore is safe for concurrent use.
type WriteBehindSessionStore struct {
	Backend SessionBackend
	// TTL is how long a session stays resumable; zero means DefaultSessionTimeout (Node's sessionTimeout).
	TTL time.Duration
	// FlushInterval is how often Run writes new sessions; zero means one second.
	FlushInterval time.Duration
	// PurgeInterval is how often Run removes expired sessions from the backend; zero means one minute.
	PurgeInterval time.Duration
	// MaxPending bounds the sessions held in memory between flushes; beyond it NewSession flushes at once
	// (the one case where a handshake waits on the backend). Zero means 65,536.
	MaxPending int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	pending map[string]memorySession
}

// NewSession stores data under id for TTL. It has Server.NewSession's signature.
func (s *WriteBehindSessionStore) NewSession(_ context.Context, id, data []byte) error {
	if err := s.Backend.CheckSession(id, data); err != nil {
		return fmt.Errorf("tlsserver: session not stored: %w", err)
	}
	p := memorySession{data: append([]byte(nil), data...), expires: nowOr(s.Now).Add(positiveOr(s.TTL, DefaultSessionTimeout))}
	s.mu.Lock()
	if s.pending == nil {
		s.pending = make(map[string]memorySession)
	}
	s.pending[string(id)] = p
	full := len(s.pending) >= positiveOr(s.MaxPending, 1<<16)
	s.mu.Unlock()
	if full {
		return s.Flush()
	}
	return nil
}

// ResumeSession returns the data stored under id, or nil when there is none or it has expired. It has
// Server.ResumeSession's signature. The backend's error (it cannot be read) is returned as it is: the server
// reports it to SessionStoreError and does a full handshake.
func (s *WriteBehindSessionStore) ResumeSession(_ context.Context, id []byte) ([]byte, error) {
	now := nowOr(s.Now)
	s.mu.Lock()
	p, ok := s.pending[string(id)]
	s.mu.Unlock()
	if ok {
		if now.Before(p.expires) {
			return p.data, nil
		}
		return nil, nil
	}
	return s.Backend.LookupSession(id, now)
}

// Flush writes the sessions held in memory to the backend in one PutSessions. On failure they stay in
// memory for the next attempt.
func (s *WriteBehindSessionStore) Flush() error {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.Backend.PutSessions(func(yield func(id, data []byte, expires time.Time) bool) {
		for id, p := range batch {
			if !yield([]byte(id), p.data, p.expires) {
				return
			}
		}
	})
	if err != nil {
		s.mu.Lock()
		for id, p := range s.pending { // stored since the batch was taken: newer
			batch[id] = p
		}
		s.pending = batch
		s.mu.Unlock()
		return fmt.Errorf("tlsserver: storing %d TLS sessions: %w", len(batch), err)
	}
	return nil
}

// Pending returns the number of sessions not yet written to the backend.
func (s *WriteBehindSessionStore) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Run flushes and purges on its intervals until ctx ends, then flushes once more. Errors go to onError (nil
// ignores them); they never stop the loop.
func (s *WriteBehindSessionStore) Run(ctx context.Context, onError func(error)) {
	report := func(err error) {
		if err != nil && onError != nil {
			onError(err)
		}
	}
	ft := time.NewTicker(positiveOr(s.FlushInterval, time.Second))
	pt := time.NewTicker(positiveOr(s.PurgeInterval, time.Minute))
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
			now := nowOr(s.Now)
			s.mu.Lock()
			purgeExpired(s.pending, now)
			s.mu.Unlock()
			if _, err := s.Backend.PurgeSessions(now); err != nil {
				report(fmt.Errorf("tlsserver: purging expired sessions: %w", err))
			}
		}
	}
}
