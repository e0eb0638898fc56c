package state

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"staple/cache"
	"staple/tlsserver"
)

// TestSessionStoreOverCache runs the TLS session store the service wires (sessions = "store") over a real
// cache file: a session flushed before a restart resumes from disk after it, what the file refuses is refused
// at once, and a flush that cannot write keeps its sessions in memory.
func TestSessionStoreOverCache(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "cache.db")
	open := func(o cache.Options) *cache.Store {
		t.Helper()
		o.Now = clock
		st, err := cache.Open(path, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	ctx := context.Background()
	id, data := []byte("0123456789abcdef0123456789abcdef"), []byte("master secret and more")

	st := open(cache.Options{})
	ss := &tlsserver.WriteBehindSessionStore{Backend: st, Now: clock}
	if err := ss.NewSession(ctx, nil, data); err == nil {
		t.Error("NewSession accepted an empty id")
	}
	if err := ss.NewSession(ctx, id, make([]byte, cache.MaxSessionSize+1)); !errors.Is(err, cache.ErrTooLarge) {
		t.Errorf("NewSession of a huge session: %v, want ErrTooLarge", err)
	}
	if err := ss.NewSession(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if got, err := st.LookupSession(id, now); got != nil || err != nil {
		t.Errorf("the session reached the file before Flush: %v", err)
	}
	if err := ss.Flush(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open(cache.Options{ReadOnly: true})
	ss = &tlsserver.WriteBehindSessionStore{Backend: st, Now: clock}
	if got, err := ss.ResumeSession(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ResumeSession after a restart = %q, %v", got, err)
	}
	if err := ss.NewSession(ctx, []byte("id"), []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := ss.Flush(); !errors.Is(err, cache.ErrReadOnly) {
		t.Errorf("Flush to a read-only store: %v, want ErrReadOnly", err)
	}
	if got, err := ss.ResumeSession(ctx, []byte("id")); err != nil || string(got) != "data" || ss.Pending() != 1 {
		t.Errorf("after a failed flush ResumeSession = %q, %v with %d pending; want it from memory", got, err, ss.Pending())
	}
	now = now.Add(tlsserver.DefaultSessionTimeout)
	if got, err := ss.ResumeSession(ctx, id); got != nil || err != nil {
		t.Errorf("ResumeSession at the TTL = %q, %v; want nil, nil", got, err)
	}
}
