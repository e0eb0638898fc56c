package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/config"
	"staple/stapler"
	"staple/tlsserver"
)

// front is the service's TLS side: the tlsserver.Server with the sites it serves by SNI, the staple each
// full handshake gets from the engine's memory, and the hand-off of each connection to its site: the HTTP
// server (upstream proxy or status page), or a raw TCP relay.
type front struct {
	tls    *tlsserver.Server
	http   *http.Server
	httpLn *connListener
	sites  atomic.Pointer[siteSet]
	conns  sync.Map // *tls.Conn → *connRecord, for the HTTP side of a connection

	current func(certs.Key) *stapler.Staple
	metrics *Metrics
	log     zerolog.Logger

	// forwardCtx ends the raw TCP relays when the drain timeout has passed.
	forwardCtx    context.Context
	forwardCancel context.CancelFunc

	handshakes, stapled atomic.Int64
}

// newFront makes the TLS server for cfg with the sites of set, stapling from current. The caller gives it
// its ticket keys and session store before serving.
func newFront(cfg *config.Config, set *siteSet, current func(certs.Key) *stapler.Staple, m *Metrics, o Options) *front {
	f := &front{current: current, metrics: m, log: o.Log.With().Str("component", "service").Logger()}
	f.sites.Store(set)
	f.tls = &tlsserver.Server{
		SecureContext:    set.def.context,
		TLSConfig:        &tls.Config{MinVersion: tls.VersionTLS12, Time: o.Now},
		HandshakeTimeout: cfg.HandshakeTimeout.Duration,
		SessionTimeout:   cfg.SessionTTL.Duration,
		MaxConnections:   cfg.MaxConnections,
		OCSPRequest:      f.ocspRequest,
		SecureConnection: f.secureConnection,
		ClientError:      f.clientError,
		AcceptError:      func(err error) { f.log.Warn().Err(err).Msg("accept") },
	}
	f.forwardCtx, f.forwardCancel = context.WithCancel(context.Background())
	return f
}

// serve serves TLS on ln and the HTTP side of its connections; the TLS server's end is sent on the result.
func (f *front) serve(ln net.Listener, bg *group, log zerolog.Logger) (<-chan error, error) {
	set := f.sites.Load()
	if err := f.tls.SetContexts(set.def.context, set.named); err != nil {
		return nil, err
	}
	f.httpLn = newConnListener(ln.Addr())
	f.http = &http.Server{
		Handler:           http.HandlerFunc(f.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext:       f.connContext,
		ConnState:         f.connState,
		ErrorLog:          newStdLogger(log.With().Str("component", "http").Logger()),
	}
	bg.run("http", func() error {
		if err := f.http.Serve(f.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- f.tls.Serve(ln) }()
	return done, nil
}

// use makes next the sites in force, for the handshakes to come.
func (f *front) use(next *siteSet) error {
	if err := f.tls.SetContexts(next.def.context, next.named); err != nil {
		return err
	}
	f.sites.Store(next)
	return nil
}

// drain stops accepting and lets connections finish until ctx ends, then cuts what is left. It reports
// whether every connection ended in time. Both servers are waited for: a connection handed to the HTTP side
// has left the TLS server's count, but its request may still be in flight.
func (f *front) drain(ctx context.Context) bool {
	httpDone := make(chan error, 1)
	go func() { httpDone <- f.http.Shutdown(ctx) }() // closes idle keep-alive connections, waits for requests in flight
	tlsErr := f.tls.Shutdown(ctx)                    // stops accepting, waits for handshakes and TCP relays
	httpErr := <-httpDone
	f.forwardCancel()
	f.http.Close()
	f.httpLn.Close()
	return (tlsErr == nil || errors.Is(tlsErr, tlsserver.ErrNotListening)) && httpErr == nil
}

// ocspRequest is the TLS server's OCSPRequest hook: the staple from memory, no I/O. The site is found by the
// leaf's bytes, so a handshake that began before a reload replaced its certificate gets no staple rather
// than another certificate's.
func (f *front) ocspRequest(_ context.Context, leaf, _ *x509.Certificate) ([]byte, error) {
	st := f.sites.Load().byLeaf[string(leaf.Raw)]
	switch {
	case st == nil:
		f.metrics.Handshake(true, NoStapleNoResponse)
		return nil, nil
	case !st.watched:
		f.metrics.Handshake(true, st.noStaple)
		return nil, nil
	}
	var der []byte
	if cur := f.current(st.key); cur != nil {
		der = cur.Raw
	}
	switch {
	case der != nil:
		f.metrics.Handshake(true, "")
	case st.noStaple != "":
		f.metrics.Handshake(true, st.noStaple)
	default:
		f.metrics.Handshake(true, NoStapleNoResponse)
	}
	return der, nil
}

// clientError logs, at debug level, a connection that ended before its handshake completed: on the
// internet most are scanners and clients that gave up, not the operator's concern.
func (f *front) clientError(c *tlsserver.Conn, err error) {
	f.log.Debug().Err(err).Str("remote", c.RemoteAddr().String()).Msg("TLS handshake did not complete")
}

// connRecord follows a connection from the TLS server to the HTTP server and back.
type connRecord struct {
	site *site
	info ConnInfo
	tls  *tlsserver.Conn
	done chan struct{}
	once sync.Once
	// hijacked is set when an HTTP handler took the connection over (a WebSocket upgrade).
	hijacked bool
	mu       sync.Mutex
}

func (r *connRecord) finish() { r.once.Do(func() { close(r.done) }) }

type connRecordKey struct{}

// secureConnection is the TLS server's SecureConnection hook: it relays the connection to its site's
// upstream, or hands it to the HTTP server, and returns when the connection is over.
func (f *front) secureConnection(c *tlsserver.Conn) {
	f.handshakes.Add(1)
	if c.OCSPStaple() != nil {
		f.stapled.Add(1)
	}
	if !c.Resumed() && !c.OCSPRequested() {
		f.metrics.Handshake(false, "")
	}
	set := f.sites.Load()
	st := set.def
	if leaf := c.Leaf(); leaf != nil && set.byLeaf[string(leaf.Raw)] != nil {
		st = set.byLeaf[string(leaf.Raw)]
	}
	if st.cfg.Forward != "" {
		if err := forwardTCP(f.forwardCtx, c, st.cfg.Forward, 10*time.Second); err != nil {
			f.log.Debug().Err(err).Str("site", st.name).Str("forward", st.cfg.Forward).Str("remote", c.RemoteAddr().String()).Msg("forward ended")
		}
		return
	}
	cs := c.ConnectionState()
	rec := &connRecord{site: st, tls: c, done: make(chan struct{}), info: ConnInfo{
		Version:     tls.VersionName(cs.Version),
		CipherSuite: tls.CipherSuiteName(cs.CipherSuite),
		ServerName:  cs.ServerName,
		ALPN:        cs.NegotiatedProtocol,
		Resumed:     cs.DidResume,
		AskedStatus: c.OCSPRequested(),
		Stapled:     c.OCSPStaple() != nil,
	}}
	f.conns.Store(c.Conn, rec)
	defer f.conns.Delete(c.Conn)
	if f.httpLn.hand(c.Conn) {
		<-rec.done // the HTTP server is done with it
	}
}

// connContext gives each HTTP connection its record (site and TLS facts) and the status page its ConnInfo.
func (f *front) connContext(ctx context.Context, c net.Conn) context.Context {
	v, ok := f.conns.Load(c)
	if !ok {
		return ctx
	}
	rec := v.(*connRecord)
	if _, ok := rec.site.handler.(*StatusPage); ok && rec.info.Stapled {
		// Only the status page shows it, so only its connections pay for the lookup (no parsing: the index
		// holds the status of the staple it handed out).
		if cur := f.current(rec.site.key); cur != nil && bytes.Equal(cur.Raw, rec.tls.OCSPStaple()) {
			rec.info.StapleStatus = cur.Status.String()
		}
	}
	return WithConnInfo(context.WithValue(ctx, connRecordKey{}, rec), &rec.info)
}

// connState ends the TLS side of a connection when the HTTP server is done with it.
func (f *front) connState(c net.Conn, state http.ConnState) {
	v, ok := f.conns.Load(c)
	if !ok {
		return
	}
	rec := v.(*connRecord)
	switch state {
	case http.StateClosed:
		rec.finish()
	case http.StateHijacked:
		rec.mu.Lock()
		rec.hijacked = true
		rec.mu.Unlock()
	}
}

// serveHTTP sends a request to its connection's site.
func (f *front) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec, _ := r.Context().Value(connRecordKey{}).(*connRecord)
	if rec == nil {
		http.Error(w, "no site for this connection", http.StatusMisdirectedRequest)
		return
	}
	rec.site.handler.ServeHTTP(w, r)
	rec.mu.Lock()
	hijacked := rec.hijacked
	rec.mu.Unlock()
	if hijacked { // the handler owned the connection and has closed it
		rec.finish()
	}
}
