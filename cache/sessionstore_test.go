package cache

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestSessionStoreSurvivesRestart stores sessions, flushes them, reopens the file and resumes them from disk;
// a session not flushed is served from memory; an expired one is not resumed.
func TestSessionStoreSurvivesRestart(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "cache.db")
	st := openTest(t, path, Options{Now: clock})
	ss := &SessionStore{Store: st, Now: clock}
	ctx := context.Background()
	id, data := []byte("0123456789abcdef0123456789abcdef"), []byte("master secret and more")

	if got, err := ss.ResumeSession(ctx, id); got != nil || err != nil {
		t.Fatalf("ResumeSession of an unknown id = %q, %v; want nil, nil (a full handshake)", got, err)
	}
	if err := ss.NewSession(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if ss.Pending() != 1 {
		t.Errorf("Pending = %d before a flush, want 1", ss.Pending())
	}
	if got, err := ss.ResumeSession(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ResumeSession from memory = %q, %v", got, err)
	}
	if _, err := st.GetSession(id, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("the session reached the file before Flush: %v", err)
	}
	if err := ss.Flush(); err != nil {
		t.Fatal(err)
	}
	if ss.Pending() != 0 {
		t.Errorf("Pending = %d after a flush", ss.Pending())
	}
	st.Close()

	st2 := openTest(t, path, Options{Now: clock})
	ss2 := &SessionStore{Store: st2, Now: clock}
	if got, err := ss2.ResumeSession(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ResumeSession after a restart = %q, %v", got, err)
	}
	now = now.Add(DefaultSessionTTL)
	if got, err := ss2.ResumeSession(ctx, id); got != nil || err != nil {
		t.Errorf("ResumeSession at the TTL = %q, %v; want nil, nil", got, err)
	}
	if err := ss2.NewSession(ctx, []byte("x"), data); err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultSessionTTL)
	if got, _ := ss2.ResumeSession(ctx, []byte("x")); got != nil {
		t.Error("an expired session in memory was resumed")
	}
}

// TestSessionStoreKeepsSessionsWhenTheWriteFails checks that a failed flush loses nothing: the sessions stay
// in memory, resumable, and go out with the next flush.
func TestSessionStoreKeepsSessionsWhenTheWriteFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	ro := openTest(t, path, Options{})
	ro.Close()
	st := openTest(t, path, Options{ReadOnly: true})
	ss := &SessionStore{Store: st, Now: func() time.Time { return t0 }}
	ctx := context.Background()
	if err := ss.NewSession(ctx, []byte("id"), []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := ss.Flush(); err == nil {
		t.Fatal("Flush to a read-only store succeeded")
	}
	if got, err := ss.ResumeSession(ctx, []byte("id")); err != nil || string(got) != "data" {
		t.Errorf("after a failed flush ResumeSession = %q, %v", got, err)
	}
	if ss.Pending() != 1 {
		t.Errorf("Pending = %d after a failed flush, want 1", ss.Pending())
	}
}

// TestSessionStoreBounds checks the input limits and the flush at MaxPending.
func TestSessionStoreBounds(t *testing.T) {
	st := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	ss := &SessionStore{Store: st, MaxPending: 3, Now: func() time.Time { return t0 }}
	ctx := context.Background()
	if err := ss.NewSession(ctx, nil, []byte("d")); err == nil {
		t.Error("NewSession accepted an empty id")
	}
	if err := ss.NewSession(ctx, []byte("id"), make([]byte, MaxSessionSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("NewSession of a huge session: %v, want ErrTooLarge", err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := ss.NewSession(ctx, []byte(id), []byte("d")); err != nil {
			t.Fatal(err)
		}
	}
	if ss.Pending() != 0 {
		t.Errorf("Pending = %d after reaching MaxPending, want a flush", ss.Pending())
	}
	if _, err := st.GetSession([]byte("c"), t0); err != nil {
		t.Errorf("the session that filled memory is not on disk: %v", err)
	}
}

// TestSessionStoreRun checks, on synctest's clock, that Run flushes on its interval, purges expired sessions
// from the file, and flushes once more when its context ends.
func TestSessionStoreRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{Now: time.Now})
		ss := &SessionStore{Store: st, TTL: 90 * time.Second, FlushInterval: time.Second, PurgeInterval: time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var errs []error
		go func() { ss.Run(ctx, func(err error) { errs = append(errs, err) }); close(done) }()

		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(ss.NewSession(ctx, []byte("old"), []byte("1")))
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if _, err := st.GetSession([]byte("old"), time.Now()); err != nil {
			t.Errorf("not flushed after the interval: %v", err)
		}
		time.Sleep(2 * time.Minute) // "old" expired at 90 s; the purge at 120 s removes it from the file
		synctest.Wait()
		n := 0
		st.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketSessions).Stats().KeyN; return nil })
		if n != 0 {
			t.Errorf("%d sessions in the file after the purge, want 0", n)
		}
		must(ss.NewSession(ctx, []byte("last"), []byte("2")))
		cancel()
		<-done
		if _, err := st.GetSession([]byte("last"), time.Now()); err != nil {
			t.Errorf("not flushed when Run ended: %v", err)
		}
		if len(errs) > 0 {
			t.Errorf("Run reported %v", errs)
		}
	})
}
