package admin

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
)

// fakeBackend is a Backend over a fixed list, recording what it was asked.
type fakeBackend struct {
	mu       sync.Mutex
	entries  map[certs.Key]Detail
	removed  []string
	imported []ImportRequest
	stats    Stats
}

func (f *fakeBackend) find(ref certs.KeyRef) (Detail, error) {
	var found []Detail
	for k, d := range f.entries {
		if ref.Matches(k) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return Detail{}, fmt.Errorf("%w: %x", ErrNotFound, ref.IssuerPrefix)
	case 1:
		return found[0], nil
	}
	return Detail{}, ErrAmbiguous
}

func (f *fakeBackend) Entries(context.Context) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var es []Entry
	for _, d := range f.entries {
		es = append(es, d.Entry)
	}
	return es, nil
}

func (f *fakeBackend) Entry(_ context.Context, ref certs.KeyRef) (Detail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.find(ref)
}

func (f *fakeBackend) Refresh(_ context.Context, ref *certs.KeyRef) ([]Entry, error) {
	if ref == nil {
		return f.Entries(context.Background())
	}
	d, err := f.Entry(context.Background(), *ref)
	return []Entry{d.Entry}, err
}

func (f *fakeBackend) Remove(_ context.Context, ref certs.KeyRef) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.find(ref)
	if err == nil {
		f.removed = append(f.removed, d.Key)
	}
	return nil, err
}

func (f *fakeBackend) Import(_ context.Context, req ImportRequest) (Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(req.DER) == 0 {
		return Entry{}, fmt.Errorf("%w: empty response", ErrBadInput)
	}
	f.imported = append(f.imported, req)
	return Entry{Key: "imported", Status: "good"}, nil
}

func (f *fakeBackend) Stats(context.Context) (Stats, error) { return f.stats, nil }

func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "adm") // short: unix socket paths are limited to ~107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startServer(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	path := filepath.Join(socketDir(t), SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, b, zerolog.Nop()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return NewClient(path), path
}

func TestClientServerRoundTrip(t *testing.T) {
	k1 := certs.KeyFor([]byte("issuer"), big.NewInt(0x1000))
	k2 := certs.KeyFor([]byte("issuer"), big.NewInt(0x1001))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &fakeBackend{
		entries: map[certs.Key]Detail{
			k1: {Entry: Entry{Key: k1.String(), Status: "good", NextUpdate: now}, DER: []byte{1, 2, 3}, History: []Attempt{{Time: now, Result: "ok"}}},
			k2: {Entry: Entry{Key: k2.String(), Status: "none"}},
		},
		stats: Stats{Entries: 2, Ready: true, Healthy: true},
	}
	c, path := startServer(t, b)
	ctx := context.Background()

	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v; want 0600", st.Mode(), err)
	}
	es, err := c.Entries(ctx)
	if err != nil || len(es) != 2 {
		t.Fatalf("Entries = %v, %v", es, err)
	}
	ref, _ := certs.ParseKey(k1.String())
	d, err := c.Entry(ctx, ref)
	if err != nil || d.Key != k1.String() || string(d.DER) != "\x01\x02\x03" || len(d.History) != 1 || !d.NextUpdate.Equal(now) {
		t.Errorf("Entry = %+v, %v", d, err)
	}
	missing, _ := certs.ParseKey(k1.String()[:16] + ":9999")
	if _, err := c.Entry(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing entry: %v, want ErrNotFound", err)
	}
	short, _ := certs.ParseKey(k1.String()[:2] + ":1000")
	if _, err := c.Refresh(ctx, &short); err != nil {
		t.Errorf("Refresh one: %v", err)
	}
	if es, err := c.Refresh(ctx, nil); err != nil || len(es) != 2 {
		t.Errorf("Refresh all = %v, %v", es, err)
	}
	if es, err := c.Remove(ctx, ref); err != nil || len(es) != 0 || len(b.removed) != 1 {
		t.Errorf("Remove: %v, removed %v", err, b.removed)
	}
	if _, err := c.Import(ctx, ImportRequest{}); !errors.Is(err, ErrBadInput) {
		t.Errorf("empty import: %v, want ErrBadInput", err)
	}
	if e, err := c.Import(ctx, ImportRequest{DER: []byte{9}, Chain: []byte("pem")}); err != nil || e.Key != "imported" || string(b.imported[0].DER) != "\x09" {
		t.Errorf("Import = %v, %v", e, err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestClientNoService(t *testing.T) {
	c := NewClient(filepath.Join(socketDir(t), SocketName))
	if _, err := c.Entries(context.Background()); !errors.Is(err, ErrNoService) {
		t.Errorf("no socket: %v, want ErrNoService", err)
	}
}

func TestListenRefusesSecondServiceAndReplacesStaleSocket(t *testing.T) {
	_, path := startServer(t, &fakeBackend{})
	if _, err := Listen(path); err == nil {
		t.Error("a second Listen on a live socket succeeded")
	}
	stale := filepath.Join(socketDir(t), SocketName)
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the file, as a killed process does
	ln2, err := Listen(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
}

func TestHealthAndReadiness(t *testing.T) {
	b := &fakeBackend{stats: Stats{Healthy: false, Problem: "cache writes fail: disk full", Ready: false}}
	c, _ := startServer(t, b)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := c.http.Get("http://staple" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s = %d, want 503", path, resp.StatusCode)
		}
	}
	b.stats = Stats{Healthy: true, Ready: true}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := c.http.Get("http://staple" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d, want 200", path, resp.StatusCode)
		}
	}
}
