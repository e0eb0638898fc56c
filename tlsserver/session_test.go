package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"staple/internal/testpki"
)

// countingStore wraps a MemorySessionStore and records the hook calls.
type countingStore struct {
	MemorySessionStore
	mu              sync.Mutex
	news, resumes   int
	resumeErr       error
	forget          bool // ResumeSession finds nothing
	lastID, lastNew []byte
}

func (c *countingStore) NewSession(ctx context.Context, id, data []byte) error {
	c.mu.Lock()
	c.news++
	c.lastNew = bytes.Clone(id)
	c.mu.Unlock()
	return c.MemorySessionStore.NewSession(ctx, id, data)
}

func (c *countingStore) ResumeSession(ctx context.Context, id []byte) ([]byte, error) {
	c.mu.Lock()
	c.resumes++
	c.lastID = bytes.Clone(id)
	forget, err := c.forget, c.resumeErr
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if forget {
		return nil, nil
	}
	return c.MemorySessionStore.ResumeSession(ctx, id)
}

func (c *countingStore) counts() (news, resumes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.news, c.resumes
}

// TestSessionResumption resumes sessions with each client and version, with Go's tickets and with an
// external store, and checks that OCSPRequest runs on the full handshake only, as in Node.
func TestSessionResumption(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	for _, mode := range []string{"tickets", "store"} {
		t.Run(mode, func(t *testing.T) {
			rec := newRecorder()
			store := &countingStore{}
			srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(f.staple, nil)}
			if mode == "store" {
				srv.NewSession, srv.ResumeSession = store.NewSession, store.ResumeSession
			}
			rec.hook(srv)
			addr, port := start(t, srv)
			for _, v := range versions {
				// Each client: a full handshake, then a resumed one.
				check := func(t *testing.T, client string, reused bool, ocspBefore int) {
					t.Helper()
					first, second := rec.nextSecure(t), rec.nextSecure(t)
					if first.resumed || !second.resumed || !reused {
						t.Errorf("%s: server saw resumed=%v then %v; client saw reuse=%v", client, first.resumed, second.resumed, reused)
					}
					if got := rec.ocspCalls() - ocspBefore; got != 1 {
						t.Errorf("%s: OCSPRequest called %d times for a full and a resumed handshake, want 1", client, got)
					}
				}
				t.Run(versionName(v)+"/openssl", func(t *testing.T) {
					sess := filepath.Join(t.TempDir(), "sess.pem")
					before := rec.ocspCalls()
					news, resumes := store.counts()
					a := sClient(t, addr, f, sslFlag(v), "-status", "-servername", "localhost", "-sess_out", sess)
					b := sClient(t, addr, f, sslFlag(v), "-status", "-servername", "localhost", "-sess_in", sess)
					if !a.staple || a.reused || !b.hello {
						t.Fatalf("first connection: staple=%v reused=%v\n%s\nsecond:\n%s", a.staple, a.reused, a.out, b.out)
					}
					check(t, "openssl", b.reused, before)
					if mode == "store" {
						n, r := store.counts()
						wantNew := 1 // TLS 1.2: the resumed session keeps its ID
						if v == tls.VersionTLS13 {
							wantNew = 2 // TLS 1.3: a new session on every handshake
						}
						if n-news != wantNew || r-resumes != 1 {
							t.Errorf("store: NewSession %d, ResumeSession %d calls; want %d and 1", n-news, r-resumes, wantNew)
						}
					}
				})
				t.Run(versionName(v)+"/go", func(t *testing.T) {
					cfg := f.goConfig(v)
					cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
					before := rec.ocspCalls()
					a := goDial(t, addr, cfg)
					b := goDial(t, addr, cfg)
					must(t, a.err)
					must(t, b.err)
					if !bytes.Equal(a.state.OCSPResponse, f.staple) {
						t.Errorf("full handshake stapled %d bytes", len(a.state.OCSPResponse))
					}
					check(t, "go", b.state.DidResume && !a.state.DidResume, before)
				})
				t.Run(versionName(v)+"/node", func(t *testing.T) {
					before := rec.ocspCalls()
					c := nodeConn{Version: versionName(v), RequestOCSP: true, ServerName: str("localhost")}
					resumed := c
					resumed.Reuse = idx(0)
					r := nodeClient(t, port, f, c, resumed)
					if resp, _ := r[0].staple(t); !bytes.Equal(resp, f.staple) {
						t.Errorf("node: full handshake stapled %d bytes", len(resp))
					}
					check(t, "node", r[1].Reused && !r[0].Reused && r[1].Data == "hello\n", before)
				})
			}
			rec.noError(t)
		})
	}
}

// TestResumeSessionNotFound checks that a session the store does not find means a full handshake, with
// its OCSPRequest and a new session.
func TestResumeSessionNotFound(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			rec := newRecorder()
			store := &countingStore{}
			srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(f.staple, nil),
				NewSession: store.NewSession, ResumeSession: store.ResumeSession}
			rec.hook(srv)
			addr, port := start(t, srv)
			sess := filepath.Join(t.TempDir(), "sess.pem")
			sClient(t, addr, f, sslFlag(v), "-status", "-servername", "localhost", "-sess_out", sess)
			store.mu.Lock()
			store.forget = true
			first := bytes.Clone(store.lastNew)
			store.mu.Unlock()
			b := sClient(t, addr, f, sslFlag(v), "-status", "-servername", "localhost", "-sess_in", sess)
			if b.reused || !b.staple || !b.hello {
				t.Errorf("openssl: reused=%v staple=%v greeting=%v, want a full handshake with a staple:\n%s", b.reused, b.staple, b.hello, b.out)
			}
			if !bytes.Equal(store.lastID, first) {
				t.Errorf("ResumeSession got ID %x, want the one NewSession stored, %x", store.lastID, first)
			}
			cfg := f.goConfig(v)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			goDial(t, addr, cfg)
			g := goDial(t, addr, cfg)
			if g.err != nil || g.state.DidResume || !bytes.Equal(g.state.OCSPResponse, f.staple) {
				t.Errorf("go: err %v resumed=%v staple %d bytes", g.err, g.state.DidResume, len(g.state.OCSPResponse))
			}
			c := nodeConn{Version: versionName(v), RequestOCSP: true}
			again := c
			again.Reuse = idx(0)
			r := nodeClient(t, port, f, c, again)
			if resp, _ := r[1].staple(t); r[1].Reused || !bytes.Equal(resp, f.staple) {
				t.Errorf("node: reused=%v staple %d bytes", r[1].Reused, len(resp))
			}
			if n := rec.ocspCalls(); n != 6 {
				t.Errorf("OCSPRequest called %d times for 6 full handshakes", n)
			}
			rec.noError(t)
		})
	}
}

// TestSessionStoreFailure checks that a failing store never fails a handshake: a ResumeSession error means a
// full handshake (with its staple), a NewSession error a session that travels in its ticket and still
// resumes; each failure reaches SessionStoreError once, as a *HookError around the store's error, and never
// ClientError.
func TestSessionStoreFailure(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	errStore := errors.New("store unreachable")
	tests := []struct {
		name       string
		hook       string
		store      *countingStore
		newSession func(*countingStore) func(context.Context, []byte, []byte) error
		resumed    bool // the second handshake resumes
	}{
		{"lookup fails", "ResumeSession", &countingStore{resumeErr: errStore}, nil, false},
		{"store fails", "NewSession", &countingStore{}, func(*countingStore) func(context.Context, []byte, []byte) error {
			return func(context.Context, []byte, []byte) error { return errStore }
		}, true},
	}
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(tt.name+"/"+versionName(v), func(t *testing.T) {
				rec := newRecorder()
				reports := make(chan error, 16)
				srv := &Server{SecureContext: f.context(f.leaf), OCSPRequest: rec.stapleFrom(f.staple, nil),
					NewSession: tt.store.NewSession, ResumeSession: tt.store.ResumeSession,
					SessionStoreError: func(err error) { reports <- err }}
				if tt.newSession != nil {
					srv.NewSession = tt.newSession(tt.store)
				}
				rec.hook(srv)
				addr, port := start(t, srv)
				check := func(client string, resumed bool) {
					t.Helper()
					rec.nextSecure(t)
					if second := rec.nextSecure(t); second.resumed != tt.resumed || resumed != tt.resumed {
						t.Errorf("%s: resumed %v (server %v), want %v", client, resumed, second.resumed, tt.resumed)
					}
					for {
						select {
						case err := <-reports:
							var he *HookError
							if !errors.As(err, &he) || he.Hook != tt.hook || !errors.Is(err, errStore) {
								t.Errorf("%s: SessionStoreError got %v, want the store's error in a %s *HookError", client, err, tt.hook)
							}
							continue
						default:
						}
						break
					}
					rec.noError(t)
				}

				cfg := f.goConfig(v)
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				must(t, goDial(t, addr, cfg).err)
				g := goDial(t, addr, cfg)
				must(t, g.err)
				if !g.state.DidResume && !bytes.Equal(g.state.OCSPResponse, f.staple) {
					t.Errorf("go: a full handshake without its staple")
				}
				check("go", g.state.DidResume)

				sess := filepath.Join(t.TempDir(), "sess.pem")
				sClient(t, addr, f, sslFlag(v), "-servername", "localhost", "-sess_out", sess)
				b := sClient(t, addr, f, sslFlag(v), "-servername", "localhost", "-sess_in", sess)
				if !b.hello {
					t.Errorf("openssl: no greeting:\n%s", b.out)
				}
				check("openssl", b.reused)

				c := nodeConn{Version: versionName(v)}
				again := c
				again.Reuse = idx(0)
				r := nodeClient(t, port, f, c, again)
				if !r[0].Connected || !r[1].Connected {
					t.Errorf("node: connected %v, %v: %s", r[0].Connected, r[1].Connected, r[1].Error)
				}
				check("node", r[1].Reused)
			})
		}
	}
}
