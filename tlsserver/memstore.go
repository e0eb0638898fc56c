package tlsserver

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// MemorySessionStore is an in-memory session store for Server.NewSession and Server.ResumeSession, for
// tests, examples and single-process servers (WriteBehindSessionStore keeps them in a SessionBackend too):
//
//	store := &tlsserver.MemorySessionStore{}
//	srv.NewSession, srv.ResumeSession = store.NewSession, store.ResumeSession
//
// Sessions expire TTL after they are stored; expired ones are purged as new ones arrive. Session data holds
// the session's master secret: the store never logs it. Its zero value is ready to use; it is safe for
// concurrent use.
type MemorySessionStore struct {
	// TTL is how long a session stays resumable. Zero means DefaultSessionTimeout (300 s, Node's
	// sessionTimeout).
	TTL time.Duration
	// Now is the clock. nil means time.Now.
	Now func() time.Time

	mu        sync.Mutex
	sessions  map[string]memorySession
	nextPurge time.Time
}

type memorySession struct {
	data    []byte
	expires time.Time
}

// NewSession stores data under id. It has Server.NewSession's signature.
func (m *MemorySessionStore) NewSession(_ context.Context, id, data []byte) error {
	now := nowOr(m.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions == nil {
		m.sessions = make(map[string]memorySession)
	}
	ttl := positiveOr(m.TTL, DefaultSessionTimeout)
	if !now.Before(m.nextPurge) {
		purgeExpired(m.sessions, now)
		m.nextPurge = now.Add(ttl)
	}
	m.sessions[string(id)] = memorySession{data: bytes.Clone(data), expires: now.Add(ttl)}
	return nil
}

// ResumeSession returns the data stored under id, or nil when there is none or it has expired. It has
// Server.ResumeSession's signature.
func (m *MemorySessionStore) ResumeSession(_ context.Context, id []byte) ([]byte, error) {
	now := nowOr(m.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[string(id)]
	if !ok || !now.Before(s.expires) {
		return nil, nil
	}
	return bytes.Clone(s.data), nil
}

// Len returns the number of sessions held, expired ones not yet purged included.
func (m *MemorySessionStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// purgeExpired removes from sessions those expired at now.
func purgeExpired(sessions map[string]memorySession, now time.Time) {
	for id, s := range sessions {
		if !now.Before(s.expires) {
			delete(sessions, id)
		}
	}
}

// positiveOr returns v when it is positive, def otherwise: the default of a zero (or negative) setting.
func positiveOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// nowOr returns now(), or time.Now() when now is nil.
func nowOr(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}
