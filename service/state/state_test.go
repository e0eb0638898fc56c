package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/cache"
	"staple/config"
	"staple/tlsserver"
)

// TestOpenCacheFile: alone, the state is the cache file of the data directory; a corrupt one is refused
// unless reset is asked for, which moves it aside (kept) and starts afresh.
func TestOpenCacheFile(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir()}
	path := filepath.Join(cfg.DataDir, config.DatabaseName)
	if err := os.WriteFile(path, bytes.Repeat([]byte("not bbolt "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, false, nil, zerolog.Nop()); !errors.Is(err, cache.ErrCorrupt) {
		t.Fatalf("a corrupt file without reset: %v, want ErrCorrupt", err)
	}
	s, err := Open(cfg, true, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Fleet() || s.Role() != nil || s.ServedBy() != nil || s.Path != path {
		t.Errorf("alone: fleet %v, path %s", s.Fleet(), s.Path)
	}
	moved, _ := filepath.Glob(path + ".reset-*")
	if len(moved) != 1 {
		t.Errorf("the corrupt file was not kept aside: %v", moved)
	}
}

// TestTicketKeysAtRest: the TLS server's ticket keys are kept in the cache file, so that a restart resumes
// the tickets issued before it; a rotation keeps the previous key and is stored too.
func TestTicketKeysAtRest(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir()}
	cfg.SetDefaults()
	run := func(string, func() error) { t.Error("nothing runs in the background alone with tickets") }
	s, err := Open(cfg, false, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := &tlsserver.Server{}
	s.KeepSessions(context.Background(), cfg, srv, nil, run, zerolog.Nop())
	first := srv.GetTicketKeys()
	if rotated, err := s.RotateTicketKeys(context.Background(), srv, time.Hour); !rotated || err != nil {
		t.Fatalf("rotation: %v, %v", rotated, err)
	}
	current := srv.GetTicketKeys()
	s.Close()

	s, err = Open(cfg, false, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	restarted := &tlsserver.Server{}
	s.KeepSessions(context.Background(), cfg, restarted, nil, run, zerolog.Nop())
	if got := restarted.GetTicketKeys(); !bytes.Equal(got, current) || bytes.Equal(got, first) {
		t.Error("the rotated ticket keys did not survive the restart")
	}
	stored, err := s.store.TicketKeys()
	if err != nil || !bytes.Equal(stored.Previous, first) {
		t.Errorf("the previous key is not kept for decryption: %v", err)
	}
}
