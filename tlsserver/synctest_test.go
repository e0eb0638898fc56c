package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"staple/internal/testpki"
)

// pipeListener is a net.Listener over net.Pipe: in a synctest bubble its connections block durably, so fake
// time advances exactly when every goroutine waits; in benchmarks it cuts the kernel out of the measure.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// Dial returns the client end of a new connection.
func (l *pipeListener) Dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// servePipe serves s on a pipe listener and returns it, with a stop function that closes the server and
// waits for Serve to return.
func servePipe(t *testing.T, s *Server) (*pipeListener, func()) {
	t.Helper()
	l := newPipeListener()
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	synctest.Wait()
	return l, func() {
		t.Helper()
		done := make(chan struct{})
		if err := s.Close(func() { close(done) }); err != nil {
			t.Errorf("Close: %v", err)
		}
		<-done
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	}
}

// clientHandshake starts a Go client handshake over l in the background.
func clientHandshake(t *testing.T, l *pipeListener, cfg *tls.Config) (done chan error, conn *tls.Conn) {
	t.Helper()
	raw, err := l.Dial()
	must(t, err)
	conn = tls.Client(raw, cfg)
	done = make(chan error, 1)
	go func() {
		err := conn.Handshake()
		if err == nil {
			_, err = io.ReadAll(conn) // until the server closes: TLS 1.3 tickets arrive on the way
		}
		conn.Close()
		done <- err
	}()
	return done, conn
}

// bubbleConfig is goConfig for a synctest bubble, whose clock starts in 2000: the client's clock is moved to
// the leaf's validity.
func (f *fixture) bubbleConfig(v uint16) *tls.Config {
	cfg := f.goConfig(v)
	offset := time.Until(f.leaf.Cert.NotBefore.Add(time.Hour))
	cfg.Time = func() time.Time { return time.Now().Add(offset) }
	return cfg
}

// serveWithSession hooks rec to srv, serves srv on a pipe and returns a client configuration with a session
// cache; primed, it first completes one handshake, so that the client holds a session to offer.
func serveWithSession(t *testing.T, f *fixture, srv *Server, rec *recorder, v uint16, primed bool) (*pipeListener, func(), *tls.Config) {
	t.Helper()
	rec.hook(srv)
	l, stop := servePipe(t, srv)
	cfg := f.bubbleConfig(v)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if primed {
		done, _ := clientHandshake(t, l, cfg)
		must(t, <-done)
		rec.nextSecure(t)
	}
	return l, stop, cfg
}

// TestHandshakeTimeoutDefault checks Node's default handshakeTimeout, 120 s, on a fake clock.
func TestHandshakeTimeoutDefault(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		srv := &Server{SecureContext: f.context(f.leaf)}
		rec.hook(srv)
		l, stop := servePipe(t, srv)
		defer stop()
		c, err := l.Dial()
		must(t, err)
		defer c.Close()
		start := time.Now()
		e := <-rec.errs // fake time runs to the deadline as soon as everything waits
		if !errors.Is(e.err, ErrHandshakeTimeout) {
			t.Errorf("ClientError got %v, want ErrHandshakeTimeout", e.err)
		}
		if d := time.Since(start); d != DefaultHandshakeTimeout {
			t.Errorf("timed out after %v, want %v", d, DefaultHandshakeTimeout)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("client read %v, want EOF", err)
		}
	})
}

// TestHooksGiveUpAtDeadline checks that a hook that never returns (it ignores its context) cannot hold the
// handshake past HandshakeTimeout: the connection is closed without an alert and ClientError gets
// ErrHandshakeTimeout.
func TestHooksGiveUpAtDeadline(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	for _, hook := range []string{"OCSPRequest", "NewSession", "ResumeSession"} {
		for _, v := range versions {
			t.Run(hook+"/"+versionName(v), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					stuck := make(chan struct{}) // released at the end: the hook ignores ctx until then
					defer close(stuck)
					block := func() { <-stuck }
					rec := newRecorder()
					store := &MemorySessionStore{}
					srv := &Server{SecureContext: f.context(f.leaf), HandshakeTimeout: 5 * time.Second,
						NewSession: store.NewSession, ResumeSession: store.ResumeSession,
						SessionStoreTimeout: -1} // the store's own bound is TestSessionStoreBoundedWait's
					switch hook {
					case "OCSPRequest":
						srv.OCSPRequest = func(context.Context, *x509.Certificate, *x509.Certificate) ([]byte, error) {
							block()
							return nil, nil
						}
					case "NewSession":
						srv.NewSession = func(context.Context, []byte, []byte) error { block(); return nil }
					}
					l, stop, cfg := serveWithSession(t, f, srv, rec, v, hook == "ResumeSession")
					defer stop()
					if hook == "ResumeSession" {
						srv.ResumeSession = func(context.Context, []byte) ([]byte, error) { block(); return nil, nil }
					}
					start := time.Now()
					done, _ := clientHandshake(t, l, cfg)
					e := <-rec.errs
					if !errors.Is(e.err, ErrHandshakeTimeout) {
						t.Errorf("ClientError got %v, want ErrHandshakeTimeout", e.err)
					}
					if d := time.Since(start); d != 5*time.Second {
						t.Errorf("gave up after %v, want 5s", d)
					}
					err := <-done
					if err == nil {
						t.Error("the client's handshake succeeded")
					} else if _, alert := peerAlert(err); alert {
						t.Errorf("the client got an alert: %v", err)
					}
				})
			})
		}
	}
}

// TestSessionStoreBoundedWait checks that a store that does not answer holds a handshake for
// SessionStoreTimeout and no longer: the handshake then goes on without it (in full, for a lookup; with the
// session in its ticket, which resumes, for a store), and SessionStoreError hears of it once.
func TestSessionStoreBoundedWait(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	for _, hook := range []string{"NewSession", "ResumeSession"} {
		for _, v := range versions {
			t.Run(hook+"/"+versionName(v), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					stuck := make(chan struct{}) // the store ignores ctx until the end
					defer close(stuck)
					reports := make(chan error, 8)
					rec := newRecorder()
					store := &MemorySessionStore{}
					srv := &Server{SecureContext: f.context(f.leaf), NewSession: store.NewSession, ResumeSession: store.ResumeSession,
						SessionStoreTimeout: 2 * time.Second, SessionStoreError: func(err error) { reports <- err }}
					l, stop, cfg := serveWithSession(t, f, srv, rec, v, hook == "ResumeSession")
					defer stop()
					if hook == "ResumeSession" {
						srv.ResumeSession = func(context.Context, []byte) ([]byte, error) { <-stuck; return nil, nil }
					} else {
						srv.NewSession = func(context.Context, []byte, []byte) error { <-stuck; return nil }
					}
					start := time.Now()
					done, _ := clientHandshake(t, l, cfg)
					must(t, <-done)
					if s := rec.nextSecure(t); s.resumed || time.Since(start) != 2*time.Second {
						t.Errorf("resumed %v after %v, want a full handshake after 2s", s.resumed, time.Since(start))
					}
					if err := <-reports; !errors.Is(err, ErrSessionStoreTimeout) {
						t.Errorf("SessionStoreError got %v, want ErrSessionStoreTimeout", err)
					}
					if hook == "NewSession" {
						done, conn := clientHandshake(t, l, cfg)
						must(t, <-done)
						rec.nextSecure(t)
						if !conn.ConnectionState().DidResume {
							t.Error("the session the store did not take does not resume from its ticket")
						}
						if v == tls.VersionTLS13 {
							<-reports // the resumption's new session, not stored either (TLS 1.2 keeps its ticket)
						}
					}
					rec.noError(t)
				})
			})
		}
	}
}

// TestNewSessionHoldsHandshake checks that no handshake completes while NewSession runs ("the handshake
// waits for newSession"), and that SecureConnection comes after it.
func TestNewSessionHoldsHandshake(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var mu sync.Mutex
				var order []string
				note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
				store := &MemorySessionStore{}
				srv := &Server{SecureContext: f.context(f.leaf),
					NewSession: func(ctx context.Context, id, data []byte) error {
						note("newSession")
						<-release
						note("newSession done")
						return store.NewSession(ctx, id, data)
					},
					ResumeSession:    store.ResumeSession,
					SecureConnection: func(*Conn) { note("secureConnection") },
				}
				l, stop := servePipe(t, srv)
				defer stop()
				cfg := f.bubbleConfig(v)
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4) // or it asks for no ticket
				raw, err := l.Dial()
				must(t, err)
				conn := tls.Client(raw, cfg)
				handshaken := make(chan error, 1)
				go func() { handshaken <- conn.Handshake() }()
				synctest.Wait() // everything now waits: the server on NewSession, the client on the server
				select {
				case err := <-handshaken:
					t.Fatalf("the client's handshake finished (%v) while NewSession ran", err)
				default:
				}
				close(release)
				must(t, <-handshaken)
				io.ReadAll(conn)
				conn.Close()
				synctest.Wait()
				mu.Lock()
				defer mu.Unlock()
				if want := []string{"newSession", "newSession done", "secureConnection"}; !equalStrings(order, want) {
					t.Errorf("order %q, want %q", order, want)
				}
			})
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTicketKeysForLaterConnections checks that SetTicketKeys does not touch a handshake already under way:
// its ticket is under the keys in force when it started.
func TestTicketKeysForLaterConnections(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	k1, k2 := bytes.Repeat([]byte{1}, 48), bytes.Repeat([]byte{2}, 48)
	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inHook, release := make(chan struct{}), make(chan struct{})
				rec := newRecorder()
				srv := &Server{SecureContext: f.context(f.leaf)}
				srv.OCSPRequest = func(context.Context, *x509.Certificate, *x509.Certificate) ([]byte, error) {
					select {
					case inHook <- struct{}{}:
						<-release
					default: // later connections do not stop
					}
					return nil, nil
				}
				rec.hook(srv)
				must(t, srv.SetTicketKeys(k1))
				l, stop := servePipe(t, srv)
				defer stop()
				cfg := f.bubbleConfig(v)
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				done, _ := clientHandshake(t, l, cfg)
				<-inHook
				must(t, srv.SetTicketKeys(k2)) // while the first handshake is under way
				close(release)
				must(t, <-done)
				rec.nextSecure(t)

				resumes := func() bool {
					done, conn := clientHandshake(t, l, cfg)
					must(t, <-done)
					rec.nextSecure(t)
					return conn.ConnectionState().DidResume
				}
				must(t, srv.SetTicketKeys(k1))
				if !resumes() {
					t.Error("the ticket of a handshake that began under k1 does not resume under k1")
				}
			})
		})
	}
}

// TestHookContext checks the context the hooks get: its deadline is the handshake's, a hook that waits on
// it is released at the deadline with DeadlineExceeded, and once a handshake has returned the context a
// hook kept is done with Canceled.
func TestHookContext(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	synctest.Test(t, func(t *testing.T) {
		type seen struct {
			deadline time.Time
			ok       bool
			err      error
			ctx      context.Context
		}
		hooks := make(chan seen, 2)
		wait := true
		rec := newRecorder()
		srv := &Server{SecureContext: f.context(f.leaf), HandshakeTimeout: 5 * time.Second}
		srv.OCSPRequest = func(ctx context.Context, _, _ *x509.Certificate) ([]byte, error) {
			d, ok := ctx.Deadline()
			if ctx.Err() != nil {
				t.Errorf("the hook's context is done on entry: %v", ctx.Err())
			}
			if wait {
				<-ctx.Done()
			}
			hooks <- seen{d, ok, ctx.Err(), ctx}
			return nil, nil
		}
		rec.hook(srv)
		l, stop := servePipe(t, srv)
		defer stop()

		start := time.Now()
		done, _ := clientHandshake(t, l, f.bubbleConfig(tls.VersionTLS13))
		h := <-hooks
		if !h.ok || !h.deadline.Equal(start.Add(5*time.Second)) {
			t.Errorf("Deadline() = %v, %v; want %v", h.deadline, h.ok, start.Add(5*time.Second))
		}
		if !errors.Is(h.err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Errorf("a waiting hook was released after %v with %v, want 5s and DeadlineExceeded", time.Since(start), h.err)
		}
		if e := <-rec.errs; !errors.Is(e.err, ErrHandshakeTimeout) {
			t.Errorf("ClientError got %v, want ErrHandshakeTimeout", e.err)
		}
		<-done

		wait = false
		done, _ = clientHandshake(t, l, f.bubbleConfig(tls.VersionTLS13))
		h = <-hooks
		must(t, <-done)
		rec.nextSecure(t)
		if h.err != nil {
			t.Errorf("the hook's context was done during the handshake: %v", h.err)
		}
		if err := h.ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("the hook's context after the handshake: %v, want Canceled", err)
		}
		select {
		case <-h.ctx.Done():
		default:
			t.Error("the hook's context is not done after the handshake")
		}
	})
}
