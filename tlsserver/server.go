package tlsserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHandshakeTimeout is Node's handshakeTimeout default.
const DefaultHandshakeTimeout = 120 * time.Second

// DefaultSessionTimeout is Node's sessionTimeout default.
const DefaultSessionTimeout = 300 * time.Second

// DefaultSessionStoreTimeout is how long a handshake waits for a NewSession or ResumeSession call by default.
const DefaultSessionStoreTimeout = time.Second

// Server is a TLS server with the API of Node's tls.Server. Its exported fields are its options and hooks:
// set them before Listen or Serve and do not change them afterwards. Its methods are safe for concurrent use.
//
// The zero value is usable once SecureContext is set: Listen or Serve, and every handshake gets the default
// secure context, a 120 s handshake timeout, Go's session tickets under random keys, no OCSP staple.
//
// Hooks run on the connection's goroutine, concurrently for different connections, so they must be safe
// for concurrent use. The hooks that Node gives a callback (OCSPRequest, NewSession, ResumeSession) get the
// handshake's context, which is cancelled at the handshake deadline; the handshake waits for them, and
// gives up at the deadline even if a hook does not return: the connection is then closed and reported to
// ClientError from the deadline's timer, and the hook's late result is discarded.
type Server struct {
	// SecureContext is the default secure context (the key, cert and ca options of Node's
	// tls.createServer): used when the client sent no SNI name, or neither SNICallback nor an AddContext
	// pattern gave one for it. Listen and Serve return ErrNoCertificate when it is nil.
	SecureContext *SecureContext

	// RequestCert asks every client for a certificate (Node's requestCert), whichever secure context its
	// handshake chose; the certificate is verified against that context's CA. A context's ClientAuth
	// overrides it (a Go extension). false asks for none.
	RequestCert bool

	// AllowUnauthorized, with RequestCert, lets a client whose certificate did not verify, or who sent
	// none, through to SecureConnection (Node's rejectUnauthorized: false), in every context without its
	// own ClientAuth. false, Node's default, rejects it: see ClientAuth.AllowUnauthorized.
	AllowUnauthorized bool

	// ALPNProtocols lists the application protocols offered in every context, most preferred first
	// (Node's ALPNProtocols). A client whose list shares none with it gets a no_application_protocol alert
	// and ClientError gets ErrNoApplicationProtocol (crypto/tls lets a client that offers only http/1.1
	// in without ALPN when "h2" is offered: trap T12). A context's ALPNProtocols overrides it. nil means no
	// ALPN: Conn.ALPNProtocol reports "" (Node's false).
	ALPNProtocols []string

	// SNICallback, if not nil, chooses the secure context for a client that sent an SNI server name
	// (Node's SNICallback option); it is not called without one. The context it returns is installed for
	// this handshake (it is parsed each time: return the same few values rather than new ones); nil means
	// it has none for the name, and the AddContext patterns then the default context are tried, so that
	// the two compose (in Node an SNICallback replaces the addContext lookup). Its OCSPRequest, client
	// certificate and ALPN are the returned context's. An error destroys the connection with no alert and
	// goes to ClientError as a *HookError. It runs on the connection's goroutine with the handshake's
	// context, like the other hooks.
	SNICallback func(ctx context.Context, serverName string) (*SecureContext, error)

	// TLSConfig, if not nil, supplies the rest of the TLS configuration (MinVersion, MaxVersion,
	// CipherSuites, CurvePreferences, KeyLogWriter, SessionTicketsDisabled, …); it is cloned when the
	// server starts and by AddContext. The fields the server owns are replaced on the clone: Certificates,
	// NameToCertificate, GetCertificate, GetConfigForClient, NextProtos, ClientAuth, ClientCAs, WrapSession,
	// UnwrapSession and the session ticket keys. Its Time, if set, is the clock for certificates, session
	// ages and client-certificate verification, and its Rand the source of session IDs and ticket keys.
	// nil means crypto/tls's defaults.
	TLSConfig *tls.Config

	// HandshakeTimeout bounds each handshake, hooks included (Node's handshakeTimeout). Zero means
	// DefaultHandshakeTimeout (120 s); a negative value means no limit. On expiry the connection is
	// closed and ClientError gets ErrHandshakeTimeout.
	HandshakeTimeout time.Duration

	// SessionTimeout is how long after its creation a session can be resumed (Node's sessionTimeout),
	// whether held in a ticket or in the NewSession/ResumeSession store. Zero means DefaultSessionTimeout
	// (300 s); a negative value means crypto/tls's own limit (7 days).
	SessionTimeout time.Duration

	// MaxConnections, if positive, caps the live connections, handshaking ones included: a connection
	// accepted above the cap is closed at once, with no TLS event, never queued (Node's maxConnections).
	// Zero means no cap.
	MaxConnections int

	// SecureConnection is called on the connection's goroutine after a successful handshake (Node's
	// 'secureConnection' event) and after any NewSession call. The connection is closed when it
	// returns. nil closes each connection right after its handshake.
	SecureConnection func(c *Conn)

	// ClientError is called with every error that ends a connection before SecureConnection (Node's
	// 'clientError', renamed 'tlsClientError' in Node 6): the peer closing (io.EOF), bytes that are not
	// TLS (tls.RecordHeaderError), a client alert (*PeerAlertError), the handshake timeout
	// (ErrHandshakeTimeout), no ALPN protocol in common (ErrNoApplicationProtocol), no client certificate
	// where one is required (ErrNoClientCertificate), an OCSPRequest or SNICallback error (*HookError), an
	// unverified client certificate (*UnauthorizedError), and crypto/tls's own handshake errors (no common
	// version, cipher suite or curve), which carry no type. c is closed; its RemoteAddr is still
	// valid. It runs on the connection's goroutine, except for ErrHandshakeTimeout, which comes from the
	// deadline's timer while a hook may still hold the connection's goroutine. nil ignores them.
	ClientError func(c *Conn, err error)

	// OCSPRequest is called during a full handshake (never a resumed one) whose ClientHello asked for
	// certificate status (Node's 'OCSPRequest'), after the secure context was chosen. cert is the leaf
	// the handshake presents and issuer its issuer as Node chooses it: the first chain certificate that
	// issued it, else the first of the context's CA that did, else nil. A response is stapled on this
	// connection only; nil means no staple; an error destroys the connection with no alert and goes to
	// ClientError as a *HookError. nil means never called (and a static SecureContext staple is served).
	OCSPRequest func(ctx context.Context, cert, issuer *x509.Certificate) ([]byte, error)

	// NewSession and ResumeSession keep TLS sessions in an external store (Node's 'newSession' and
	// 'resumeSession'). When either is set, tickets carry only a 32-byte session ID and the session itself
	// (crypto/tls's SessionState encoding, which holds the master secret) goes to NewSession; when both
	// are nil, tickets hold the session encrypted under the ticket keys. Either way a session resumes only
	// under the ticket keys it was issued under (or the previous ones, after RotateTicketKeys) and the same
	// SessionIDContext: SetTicketKeys ends every earlier session, as in Node.
	//
	// The store is never a hard dependency: each call waits at most SessionStoreTimeout; a call that fails
	// or runs out of time is reported once to SessionStoreError and the handshake goes on without it (a
	// full handshake for a lookup; for a session not stored, a ticket that holds the session itself). A
	// store error never reaches ClientError and never fails a handshake; Node destroys the socket on
	// cb(err) and waits for a hanging store until the handshake timeout.
	//
	// TLS 1.2 clients that refuse tickets (openssl s_client -no_ticket, some embedded stacks) never resume:
	// crypto/tls's TLS 1.2 server has no session-ID cache, so a session always travels in a ticket (with a
	// store, the ticket is the session ID), where Node, through OpenSSL, resumes such clients by session
	// ID. What to do: prefer TLS 1.3, whose every client resumes through tickets (PSK identities); or let
	// the client take tickets; where ID-only TLS 1.2 clients must resume, terminate them in front with
	// OpenSSL (nginx, HAProxy). See docs/node-tls-mapping.md, trap T4.
	//
	// NewSession is called when the handshake has a session to store; the handshake waits for it (no
	// data flows until it returns or SessionStoreTimeout passes). On TLS 1.2 resumption the client keeps
	// its ID and NewSession is not called; TLS 1.3 issues one new session per handshake, resumed or not,
	// before SecureConnection (Node: two, after).
	NewSession func(ctx context.Context, id, data []byte) error

	// ResumeSession looks up a session ID a client presented (see NewSession). It returns the data given
	// to NewSession, or nil when not found, and the handshake goes on in full. Data that no longer parses,
	// is older than SessionTimeout, or was issued under other ticket keys or another SessionIDContext
	// counts as not found.
	ResumeSession func(ctx context.Context, id []byte) ([]byte, error)

	// SessionStoreTimeout bounds each NewSession and ResumeSession call. Zero means
	// DefaultSessionStoreTimeout (1 s); a negative value means only the handshake timeout bounds them.
	// The hook's context ends at the bound; a hook that ignores it keeps running on its own goroutine and
	// its late result is discarded.
	SessionStoreTimeout time.Duration

	// SessionStoreError, if not nil, is told each NewSession or ResumeSession call that failed or ran out
	// of time, once, as a *HookError (wrapping ErrSessionStoreTimeout for the latter). It runs on the
	// connection's goroutine; the handshake carries on. nil ignores them. Session bytes are never part of
	// the error.
	SessionStoreError func(err error)

	// SessionIDContext binds sessions to a context (Node's sessionIdContext): a session issued under one
	// value never resumes under another, also between servers that share ticket keys or a store. "" is a
	// context of its own (Node's default is a hash of the process's arguments).
	SessionIDContext string

	// TicketKeyStore, if not nil, persists the session ticket keys: they are loaded the first time they
	// are needed (or made and saved when none are stored), and saved by SetTicketKeys and
	// RotateTicketKeys. nil keeps them in memory only, random at start as in Node.
	TicketKeyStore TicketKeyStore

	// AcceptError, if not nil, is called with each error from the listener's Accept other than the
	// server's own Close: temporary ones, after which accepting resumes with a backoff, and a permanent
	// one that ends the accept loop started by Listen (Node's 'error'). Serve also returns the latter.
	AcceptError func(err error)

	mu       sync.Mutex
	run      *run     // nil when not listening
	onDrain  []func() // run when the last connection ends after Close
	def      atomic.Pointer[secureContext]
	contexts atomic.Pointer[[]*secureContext] // in AddContext order; replaced whole

	conns  atomic.Int64
	keys   atomic.Pointer[ticketKeySet]
	keysMu sync.Mutex
}

// run is one listening period, from Listen or Serve to Close, Shutdown or a listener failure.
type run struct {
	l     net.Listener
	outer *tls.Config   // handed to tls.Server: only GetConfigForClient and what precedes it matter
	quit  chan struct{} // closed by Close to stop the accept loop
	done  chan struct{} // closed when the accept loop has exited
}

// AddressInfo is what Address returns (Node's server.address()).
type AddressInfo struct {
	// Address is the bound IP address, e.g. "::" or "127.0.0.1"; for a listener that is not TCP, its
	// address string.
	Address string
	// Family is "IPv4" or "IPv6"; "" for a listener that is not TCP.
	Family string
	// Port is the bound port; 0 for a listener that is not TCP.
	Port int
}

// Listen binds port on host and serves on it in the background (Node's server.listen(port, host, cb)).
// An empty host listens on every address, IPv6 and IPv4 (dual stack); an IPv4 literal such as "0.0.0.0"
// or "127.0.0.1" listens on IPv4 only, an IPv6 literal on IPv6 only, a name on its first address. Port 0
// picks a free port (see Address). cb, if not nil, is called once the server listens, before Listen
// returns. A listener failure after that goes to AcceptError.
func (s *Server) Listen(port int, host string, cb func()) error {
	network := "tcp"
	if ip, err := netip.ParseAddr(host); err == nil {
		network = "tcp6"
		if ip.Is4() {
			network = "tcp4"
		}
	}
	ln, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("tlsserver: listen: %w", err)
	}
	r, err := s.start(ln)
	if err != nil {
		ln.Close()
		return err
	}
	go func() {
		err := s.serve(r)
		if err != nil && !errors.Is(err, ErrServerClosed) && s.AcceptError != nil {
			s.AcceptError(err)
		}
	}()
	if cb != nil {
		cb()
	}
	return nil
}

// Serve accepts connections on l and serves each on its own goroutine until Close or Shutdown, then
// returns ErrServerClosed; or until l fails, and returns that error (l is then closed). The server counts
// and caps connections (MaxConnections) as they are accepted from l.
func (s *Server) Serve(l net.Listener) error {
	r, err := s.start(l)
	if err != nil {
		return err
	}
	return s.serve(r)
}

// start installs l as the listener, with the default context, the added contexts rebuilt on TLSConfig,
// and the ticket keys.
func (s *Server) start(l net.Listener) (*run, error) {
	if _, err := s.ticketKeySet(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil {
		return nil, ErrAlreadyListening
	}
	def, err := s.install(s.SecureContext)
	if err != nil {
		return nil, err
	}
	s.def.Store(def)
	if cs := s.contexts.Load(); cs != nil { // added before the server's options were final
		rebuilt := make([]*secureContext, len(*cs))
		for i, x := range *cs {
			rebuilt[i] = s.rebuilt(x)
		}
		s.contexts.Store(&rebuilt)
	}
	outer := &tls.Config{}
	if s.TLSConfig != nil {
		outer = s.TLSConfig.Clone()
	}
	outer.Certificates = nil
	outer.GetCertificate = nil
	outer.GetConfigForClient = s.configForClient
	s.run = &run{l: l, outer: outer, quit: make(chan struct{}), done: make(chan struct{})}
	return s.run, nil
}

// serve is the accept loop: it counts and caps connections and starts one goroutine per connection.
func (s *Server) serve(r *run) error {
	defer close(r.done)
	var delay time.Duration
	for {
		raw, err := r.l.Accept()
		if err != nil {
			select {
			case <-r.quit:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			//lint:ignore SA1019 net/http's test for EMFILE and friends
			if errors.As(err, &ne) && ne.Temporary() {
				if s.AcceptError != nil {
					s.AcceptError(err)
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-r.quit:
					t.Stop()
					return ErrServerClosed
				}
				continue
			}
			s.mu.Lock()
			if s.run == r {
				s.run = nil
			}
			s.mu.Unlock()
			r.l.Close()
			return fmt.Errorf("tlsserver: accept: %w", err)
		}
		delay = 0
		if m := s.MaxConnections; m > 0 && s.conns.Load() >= int64(m) {
			raw.Close()
			continue
		}
		s.conns.Add(1)
		go s.serveConn(raw, r.outer)
	}
}

// Connections returns the number of live connections, handshaking ones included (Node's
// server.connections, later getConnections). A connection counts until it is closed and its
// SecureConnection hook has returned.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// Address returns the address the server listens on (Node's server.address()), or ErrNotListening.
func (s *Server) Address() (AddressInfo, error) {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	if r == nil {
		return AddressInfo{}, ErrNotListening
	}
	a, ok := r.l.Addr().(*net.TCPAddr)
	if !ok {
		return AddressInfo{Address: r.l.Addr().String()}, nil
	}
	family := "IPv6"
	if a.IP.To4() != nil {
		family = "IPv4"
	}
	return AddressInfo{Address: a.IP.String(), Family: family, Port: a.Port}, nil
}

// Close stops accepting connections and leaves the live ones alone (Node's server.close(cb)). cb, if not
// nil, is called once the last connection has ended: at once, before Close returns, if there is none,
// otherwise on the goroutine of the connection that ends last. Closing a server that is not listening
// returns ErrNotListening and does not call cb. The server may Listen or Serve again afterwards.
func (s *Server) Close(cb func()) error {
	s.mu.Lock()
	r := s.run
	if r == nil {
		s.mu.Unlock()
		return ErrNotListening
	}
	s.run = nil
	close(r.quit)
	s.mu.Unlock()
	err := r.l.Close()
	<-r.done // the accept loop has exited: the count only goes down from here
	s.whenDrained(cb)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("tlsserver: close: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits until the live ones have ended or ctx is done, in the
// manner of net/http's Server.Shutdown; it returns ctx's error if ctx ended first, with the connections
// left open. Handshaking connections end within HandshakeTimeout; established ones end when their
// SecureConnection hook returns. Shutdown returns ErrNotListening if the server is not listening.
func (s *Server) Shutdown(ctx context.Context) error {
	drained := make(chan struct{})
	if err := s.Close(func() { close(drained) }); err != nil {
		return err
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) whenDrained(fn func()) {
	if fn == nil {
		return
	}
	s.mu.Lock()
	if s.conns.Load() > 0 {
		s.onDrain = append(s.onDrain, fn)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	fn()
}

func (s *Server) connEnded() {
	if s.conns.Add(-1) != 0 {
		return
	}
	s.mu.Lock()
	if s.conns.Load() != 0 {
		s.mu.Unlock()
		return
	}
	fns := s.onDrain
	s.onDrain = nil
	s.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// AddContext adds a secure context for clients whose SNI server name matches hostname (Node's
// server.addContext). In hostname, '*' stands for any run of characters other than '.', possibly empty;
// matching is case-sensitive; the most recently added matching context wins; a name that matches none,
// and a client that sent none, get the default SecureContext. It may be called while serving: handshakes
// that start afterwards see the context.
func (s *Server) AddContext(hostname string, sc *SecureContext) error {
	re, err := compilePattern(hostname)
	if err != nil {
		return err
	}
	x, err := s.install(sc)
	if err != nil {
		return fmt.Errorf("tlsserver: context %q: %w", hostname, err)
	}
	x.pattern, x.re = hostname, re
	s.mu.Lock()
	defer s.mu.Unlock()
	var next []*secureContext
	if cs := s.contexts.Load(); cs != nil {
		next = append(next, *cs...)
	}
	next = append(next, x)
	s.contexts.Store(&next)
	return nil
}

// HostContext is a secure context for the clients whose SNI server name matches Hostname (a pattern as
// AddContext takes it).
type HostContext struct {
	Hostname string
	Context  *SecureContext
}

// SetContexts replaces the default secure context and every added one at once. Node can only add contexts;
// a configuration reload that renews a certificate or drops a name needs to replace them. Handshakes that
// start afterwards see the new contexts, ones under way keep theirs, no connection is dropped. The named
// contexts are added in order, so the last one that matches wins, as with AddContext. Nothing changes when
// one of them is invalid. It also sets the SecureContext field, so that a later Listen serves def.
func (s *Server) SetContexts(def *SecureContext, named []HostContext) error {
	d, err := s.install(def)
	if err != nil {
		return err
	}
	next := make([]*secureContext, 0, len(named))
	for _, hc := range named {
		re, err := compilePattern(hc.Hostname)
		if err != nil {
			return err
		}
		x, err := s.install(hc.Context)
		if err != nil {
			return fmt.Errorf("tlsserver: context %q: %w", hc.Hostname, err)
		}
		x.pattern, x.re = hc.Hostname, re
		next = append(next, x)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.SecureContext = def
	s.def.Store(d)
	s.contexts.Store(&next)
	return nil
}

func (s *Server) handshakeTimeout() time.Duration {
	return durationOr(s.HandshakeTimeout, DefaultHandshakeTimeout)
}

func (s *Server) sessionStoreTimeout() time.Duration {
	return durationOr(s.SessionStoreTimeout, DefaultSessionStoreTimeout)
}

func (s *Server) sessionTimeout() time.Duration {
	return durationOr(s.SessionTimeout, DefaultSessionTimeout)
}

// durationOr is a duration setting as the Server's fields read: zero means def, negative means none (0).
func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}
