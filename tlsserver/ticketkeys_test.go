package tlsserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"staple/internal/testpki"
)

func TestTicketKeysLength(t *testing.T) {
	var s Server
	for _, n := range []int{0, 32, 47, 49, 64} {
		if err := s.SetTicketKeys(make([]byte, n)); !errors.Is(err, ErrTicketKeysLength) {
			t.Errorf("SetTicketKeys(%d bytes): %v, want ErrTicketKeysLength", n, err)
		}
	}
}

func TestTicketKeysDefault(t *testing.T) {
	var a, b Server
	ka, kb := a.GetTicketKeys(), b.GetTicketKeys()
	if len(ka) != TicketKeyLen || bytes.Equal(ka, kb) || bytes.Equal(ka, make([]byte, TicketKeyLen)) {
		t.Errorf("default keys %x and %x: want 48 random bytes per server", ka, kb)
	}
	if !bytes.Equal(a.GetTicketKeys(), ka) {
		t.Error("the default keys changed between calls")
	}
	k := bytes.Repeat([]byte{7}, 48)
	must(t, a.SetTicketKeys(k))
	got := a.GetTicketKeys()
	got[0] = 0
	if !bytes.Equal(a.GetTicketKeys(), k) {
		t.Error("GetTicketKeys does not return a copy of the keys set")
	}
}

// TestTicketKeysAcrossServers checks, with each client, Node's setTicketKeys semantics (same keys on two
// servers: a session from one resumes on the other; new keys: earlier tickets no longer resume; back to the
// old keys: they do again) and RotateTicketKeys, which keeps the previous key for decryption only.
func TestTicketKeysAcrossServers(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	k1, k2 := bytes.Repeat([]byte{1}, 48), bytes.Repeat([]byte{2}, 48)
	serve := func() (*Server, string, int) {
		s := &Server{SecureContext: f.context(f.leaf)}
		must(t, s.SetTicketKeys(k1))
		addr, port := start(t, s)
		return s, addr, port
	}
	a, addrA, portA := serve()
	b, addrB, portB := serve()

	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			// Sessions from A, one per client.
			sess := filepath.Join(t.TempDir(), "sess.pem")
			sClient(t, addrA, f, sslFlag(v), "-servername", "localhost", "-sess_out", sess)
			cfg := f.goConfig(v)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			must(t, goDial(t, addrA, cfg).err)
			first := nodeConn{Version: versionName(v), Port: portA}

			resumesOnB := func(t *testing.T) (openssl, goClient, node bool) {
				t.Helper()
				openssl = sClient(t, addrB, f, sslFlag(v), "-servername", "localhost", "-sess_in", sess).reused
				// Go's client keys its cache by server name, so the session of A is offered to B too.
				goClient = goDial(t, addrB, cfg).state.DidResume
				again := nodeConn{Version: versionName(v), Port: portB, Reuse: idx(0)}
				r := nodeClient(t, portA, f, first, again)
				return openssl, goClient, r[1].Reused
			}
			if o, g, n := resumesOnB(t); !o || !g || !n {
				t.Errorf("same keys: resumed on the other server: openssl %v, go %v, node %v", o, g, n)
			}
			// The Go client now holds a ticket from B; refresh its session from A under k1 each time.
			must(t, b.SetTicketKeys(k2))
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			must(t, goDial(t, addrA, cfg).err)
			if o, g, n := resumesOnB(t); o || g || n {
				t.Errorf("after SetTicketKeys(k2): resumed a k1 session: openssl %v, go %v, node %v", o, g, n)
			}
			must(t, b.SetTicketKeys(k1))
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			must(t, goDial(t, addrA, cfg).err)
			if o, g, n := resumesOnB(t); !o || !g || !n {
				t.Errorf("back to k1: resumed: openssl %v, go %v, node %v", o, g, n)
			}
			// Rotation: k1 stays for decryption, so k1 sessions resume; a second rotation drops it.
			must(t, b.RotateTicketKeys())
			if k := b.GetTicketKeys(); bytes.Equal(k, k1) || len(k) != 48 {
				t.Errorf("RotateTicketKeys left the current key %x", k)
			}
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			must(t, goDial(t, addrA, cfg).err)
			if o, g, n := resumesOnB(t); !o || !g || !n {
				t.Errorf("after one rotation: resumed a k1 session: openssl %v, go %v, node %v", o, g, n)
			}
			must(t, b.RotateTicketKeys())
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			must(t, goDial(t, addrA, cfg).err)
			if o, g, n := resumesOnB(t); o || g || n {
				t.Errorf("after two rotations: resumed a k1 session: openssl %v, go %v, node %v", o, g, n)
			}
			must(t, b.SetTicketKeys(k1))
		})
	}
	_ = a
}

// memKeyStore is a TicketKeyStore in memory, failing on demand.
type memKeyStore struct {
	mu               sync.Mutex
	keys             TicketKeys
	saves            int
	loadErr, saveErr error
}

func (m *memKeyStore) LoadTicketKeys() (TicketKeys, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys, m.loadErr
}

func (m *memKeyStore) SaveTicketKeys(k TicketKeys) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saveErr != nil {
		return m.saveErr
	}
	m.keys = k
	m.saves++
	return nil
}

var _ TicketKeyStore = (*memKeyStore)(nil)

// TestTicketKeyStore checks that keys are made and saved when none are stored, loaded when they are (so a
// restarted server resumes the sessions of the one before), saved on Set and Rotate, and that store
// failures are reported.
func TestTicketKeyStore(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	clock := time.Now().Add(-time.Minute).Truncate(time.Second)
	store := &memKeyStore{}
	first := &Server{SecureContext: f.context(f.leaf), TicketKeyStore: store, TLSConfig: &tls.Config{Time: func() time.Time { return clock }}}
	addr, _ := start(t, first)
	if store.saves != 1 || !bytes.Equal(store.keys.Current, first.GetTicketKeys()) || !store.keys.Created.Equal(clock) {
		t.Fatalf("first start: %d saves, stored %x created %v; serving %x", store.saves, store.keys.Current, store.keys.Created, first.GetTicketKeys())
	}
	cfg := f.goConfig(tls.VersionTLS13)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	must(t, goDial(t, addr, cfg).err)
	stop(t, first)

	second := &Server{SecureContext: f.context(f.leaf), TicketKeyStore: store, TLSConfig: first.TLSConfig}
	addr2, _ := start(t, second)
	if g := goDial(t, addr2, cfg); g.err != nil || !g.state.DidResume {
		t.Errorf("after a restart on the stored keys: err %v, resumed %v", g.err, g.state.DidResume)
	}
	old := second.GetTicketKeys()
	must(t, second.RotateTicketKeys())
	if !bytes.Equal(store.keys.Previous, old) || !bytes.Equal(store.keys.Current, second.GetTicketKeys()) {
		t.Error("RotateTicketKeys did not save the new current and the old as previous")
	}
	k := bytes.Repeat([]byte{9}, 48)
	must(t, second.SetTicketKeys(k))
	if !bytes.Equal(store.keys.Current, k) || store.keys.Previous != nil {
		t.Error("SetTicketKeys did not save the keys alone")
	}

	errDisk := errors.New("disk full")
	store.saveErr = errDisk
	if err := second.RotateTicketKeys(); !errors.Is(err, ErrTicketKeyStore) || !errors.Is(err, errDisk) {
		t.Errorf("RotateTicketKeys with a failing store: %v", err)
	}
	if bytes.Equal(second.GetTicketKeys(), k) {
		t.Error("a failed save left the old keys in use")
	}

	broken := &Server{SecureContext: f.context(f.leaf), TicketKeyStore: &memKeyStore{loadErr: errDisk}}
	if err := broken.Listen(0, "127.0.0.1", nil); !errors.Is(err, ErrTicketKeyStore) || !errors.Is(err, errDisk) {
		t.Errorf("Listen with a store that fails to load: %v", err)
	}
	short := &Server{SecureContext: f.context(f.leaf), TicketKeyStore: &memKeyStore{keys: TicketKeys{Current: []byte("short")}}}
	if err := short.Listen(0, "127.0.0.1", nil); !errors.Is(err, ErrTicketKeysLength) {
		t.Errorf("Listen with stored keys of the wrong length: %v", err)
	}
}

// TestUseTicketKeys: keys put into use from the store's side are not saved again, and a ticket sealed under
// the previous key still resumes.
func TestUseTicketKeys(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	k1, k2 := bytes.Repeat([]byte{1}, 48), bytes.Repeat([]byte{2}, 48)
	store := &memKeyStore{keys: TicketKeys{Current: k1}}
	srv := &Server{SecureContext: f.context(f.leaf), TicketKeyStore: store}
	addr, _ := start(t, srv)
	cfg := f.goConfig(tls.VersionTLS13)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	must(t, goDial(t, addr, cfg).err)

	must(t, srv.UseTicketKeys(TicketKeys{Current: k2, Previous: k1}))
	if store.saves != 0 {
		t.Errorf("UseTicketKeys saved %d times, want 0", store.saves)
	}
	if !bytes.Equal(srv.GetTicketKeys(), k2) {
		t.Error("UseTicketKeys did not make its current key current")
	}
	if g := goDial(t, addr, cfg); g.err != nil || !g.state.DidResume {
		t.Errorf("a ticket under the previous key: err %v, resumed %v", g.err, g.state.DidResume)
	}
	for _, bad := range []TicketKeys{{}, {Current: k1[:47]}, {Current: k1, Previous: []byte("short")}} {
		if err := srv.UseTicketKeys(bad); !errors.Is(err, ErrTicketKeysLength) {
			t.Errorf("UseTicketKeys(%d, %d bytes): %v, want ErrTicketKeysLength", len(bad.Current), len(bad.Previous), err)
		}
	}
}

// TestSessionTimeout checks Node's sessionTimeout (300 s by default) on the server's clock, for tickets and
// for the session store.
func TestSessionTimeout(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	for _, mode := range []string{"tickets", "store"} {
		for _, v := range versions {
			t.Run(mode+"/"+versionName(v), func(t *testing.T) {
				var now atomic.Int64
				now.Store(time.Now().Unix())
				clock := func() time.Time { return time.Unix(now.Load(), 0) }
				srv := &Server{SecureContext: f.context(f.leaf), TLSConfig: &tls.Config{Time: clock}}
				if mode == "store" {
					store := &MemorySessionStore{TTL: time.Hour, Now: clock}
					srv.NewSession, srv.ResumeSession = store.NewSession, store.ResumeSession
				}
				addr, _ := start(t, srv)
				cfg := f.goConfig(v)
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				must(t, goDial(t, addr, cfg).err)
				now.Add(299)
				if g := goDial(t, addr, cfg); !g.state.DidResume {
					t.Errorf("not resumed after 299 s: %v", g.err)
				}
				if v == tls.VersionTLS12 {
					now.Add(2) // a TLS 1.2 session keeps its age across resumptions
				} else {
					now.Add(301) // a TLS 1.3 resumption issues a new session
				}
				if g := goDial(t, addr, cfg); g.err != nil || g.state.DidResume {
					t.Errorf("after SessionTimeout: err %v, resumed %v", g.err, g.state.DidResume)
				}
			})
		}
	}
}
