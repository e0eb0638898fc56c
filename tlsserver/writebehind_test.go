package tlsserver

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var (
	errEmptyID    = errors.New("empty session id")
	errTooLarge   = errors.New("session too large")
	errBackendOff = errors.New("backend read-only")
)

// memBackend is a SessionBackend in memory, which refuses sessions over 16 bytes; with failPuts set its
// writes fail. Store one and start a new WriteBehindSessionStore over it for a restart. Safe for concurrent
// use.
type memBackend struct {
	mu       sync.Mutex
	sessions map[string]memorySession
	failPuts bool
}

func (b *memBackend) CheckSession(id, data []byte) error {
	switch {
	case len(id) == 0:
		return errEmptyID
	case len(data) > 16:
		return errTooLarge
	}
	return nil
}

func (b *memBackend) PutSessions(all func(yield func(id, data []byte, expires time.Time) bool)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failPuts {
		return errBackendOff
	}
	if b.sessions == nil {
		b.sessions = make(map[string]memorySession)
	}
	all(func(id, data []byte, expires time.Time) bool {
		b.sessions[string(id)] = memorySession{data: bytes.Clone(data), expires: expires}
		return true
	})
	return nil
}

func (b *memBackend) LookupSession(id []byte, now time.Time) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.sessions[string(id)]; ok && now.Before(s.expires) {
		return bytes.Clone(s.data), nil
	}
	return nil, nil
}

func (b *memBackend) PurgeSessions(now time.Time) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.sessions)
	purgeExpired(b.sessions, now)
	return n - len(b.sessions), nil
}

func (b *memBackend) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// TestWriteBehindSessionStoreSurvivesRestart stores sessions, flushes them, starts a new store over the
// backend and resumes them from it; a session not flushed is served from memory; an expired one is not
// resumed.
func TestWriteBehindSessionStoreSurvivesRestart(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	backend := &memBackend{}
	ss := &WriteBehindSessionStore{Backend: backend, Now: clock}
	ctx := context.Background()
	id, data := []byte("0123456789abcdef0123456789abcdef"), []byte("master secret")

	if got, err := ss.ResumeSession(ctx, id); got != nil || err != nil {
		t.Fatalf("ResumeSession of an unknown id = %q, %v; want nil, nil (a full handshake)", got, err)
	}
	must(t, ss.NewSession(ctx, id, data))
	if ss.Pending() != 1 {
		t.Errorf("Pending = %d before a flush, want 1", ss.Pending())
	}
	if got, err := ss.ResumeSession(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ResumeSession from memory = %q, %v", got, err)
	}
	if backend.len() != 0 {
		t.Error("the session reached the backend before Flush")
	}
	must(t, ss.Flush())
	if ss.Pending() != 0 {
		t.Errorf("Pending = %d after a flush", ss.Pending())
	}

	ss2 := &WriteBehindSessionStore{Backend: backend, Now: clock}
	if got, err := ss2.ResumeSession(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ResumeSession after a restart = %q, %v", got, err)
	}
	now = now.Add(DefaultSessionTimeout)
	if got, err := ss2.ResumeSession(ctx, id); got != nil || err != nil {
		t.Errorf("ResumeSession at the TTL = %q, %v; want nil, nil", got, err)
	}
	must(t, ss2.NewSession(ctx, []byte("x"), data))
	now = now.Add(DefaultSessionTimeout)
	if got, _ := ss2.ResumeSession(ctx, []byte("x")); got != nil {
		t.Error("an expired session in memory was resumed")
	}
}

// TestWriteBehindSessionStoreKeepsSessionsWhenTheWriteFails checks that a failed flush loses nothing: the
// sessions stay in memory, resumable, and go out with the next flush.
func TestWriteBehindSessionStoreKeepsSessionsWhenTheWriteFails(t *testing.T) {
	backend := &memBackend{failPuts: true}
	ss := &WriteBehindSessionStore{Backend: backend, Now: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	ctx := context.Background()
	must(t, ss.NewSession(ctx, []byte("id"), []byte("data")))
	if err := ss.Flush(); !errors.Is(err, errBackendOff) {
		t.Fatalf("Flush to a failing backend: %v, want its error", err)
	}
	if got, err := ss.ResumeSession(ctx, []byte("id")); err != nil || string(got) != "data" {
		t.Errorf("after a failed flush ResumeSession = %q, %v", got, err)
	}
	if ss.Pending() != 1 {
		t.Errorf("Pending = %d after a failed flush, want 1", ss.Pending())
	}
	backend.mu.Lock()
	backend.failPuts = false
	backend.mu.Unlock()
	must(t, ss.Flush())
	if ss.Pending() != 0 || backend.len() != 1 {
		t.Errorf("after the next flush: %d pending, %d in the backend; want 0 and 1", ss.Pending(), backend.len())
	}
}

// TestWriteBehindSessionStoreBounds checks that NewSession refuses what the backend would, and the flush at
// MaxPending.
func TestWriteBehindSessionStoreBounds(t *testing.T) {
	backend := &memBackend{}
	ss := &WriteBehindSessionStore{Backend: backend, MaxPending: 3, Now: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	ctx := context.Background()
	if err := ss.NewSession(ctx, nil, []byte("d")); !errors.Is(err, errEmptyID) {
		t.Errorf("NewSession of an empty id: %v, want the backend's refusal", err)
	}
	if err := ss.NewSession(ctx, []byte("id"), make([]byte, 17)); !errors.Is(err, errTooLarge) {
		t.Errorf("NewSession of a huge session: %v, want the backend's refusal", err)
	}
	for _, id := range []string{"a", "b", "c"} {
		must(t, ss.NewSession(ctx, []byte(id), []byte("d")))
	}
	if ss.Pending() != 0 {
		t.Errorf("Pending = %d after reaching MaxPending, want a flush", ss.Pending())
	}
	if got, err := backend.LookupSession([]byte("c"), time.Unix(1_800_000_000, 0)); got == nil || err != nil {
		t.Errorf("the session that filled memory is not in the backend: %q, %v", got, err)
	}
}

// TestWriteBehindSessionStoreRun checks, on synctest's clock, that Run flushes on its interval, purges
// expired sessions from the backend, and flushes once more when its context ends.
func TestWriteBehindSessionStoreRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		backend := &memBackend{}
		ss := &WriteBehindSessionStore{Backend: backend, TTL: 90 * time.Second, FlushInterval: time.Second, PurgeInterval: time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var errs []error
		go func() { ss.Run(ctx, func(err error) { errs = append(errs, err) }); close(done) }()

		must(t, ss.NewSession(ctx, []byte("old"), []byte("1")))
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got, _ := backend.LookupSession([]byte("old"), time.Now()); got == nil {
			t.Error("not flushed after the interval")
		}
		time.Sleep(2 * time.Minute) // "old" expired at 90 s; the purge at 120 s removes it from the backend
		synctest.Wait()
		if n := backend.len(); n != 0 {
			t.Errorf("%d sessions in the backend after the purge, want 0", n)
		}
		must(t, ss.NewSession(ctx, []byte("last"), []byte("2")))
		cancel()
		<-done
		if got, _ := backend.LookupSession([]byte("last"), time.Now()); got == nil {
			t.Error("not flushed when Run ended")
		}
		if len(errs) > 0 {
			t.Errorf("Run reported %v", errs)
		}
	})
}
