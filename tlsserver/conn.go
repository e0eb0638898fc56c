package tlsserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// Conn is a server-side TLS connection, Node's tls.TLSSocket as 'secureConnection' and 'clientError' give
// it. It embeds the *tls.Conn: Read, Write, Close, RemoteAddr, ConnectionState and the rest are crypto/tls's.
//
// Node's npnProtocol has no counterpart: NPN was removed from Go (1.14) and Node (10), so no protocol is
// ever negotiated that way; ALPNProtocol is the only one.
//
// The methods below report the handshake from a record taken when it succeeded: they are safe for
// concurrent use, and report the zero values in ClientError, where there was no secure connection.
type Conn struct {
	*tls.Conn

	raw                *rawConn
	hs                 handshake           // the handshake's state, used on the connection's goroutine only
	state              tls.ConnectionState // set once the handshake has succeeded
	authorized         bool
	authorizationError string
	ocspRequested      bool   // OCSPRequest ran for this handshake
	ocspStaple         []byte // what it returned, stapled on this connection
	leaf               *x509.Certificate
}

// rawConn is the net.Conn handed to tls.Server: ClientHelloInfo.Conn is this value, which leads the
// handshake hooks back to their Conn.
type rawConn struct {
	net.Conn
	c *Conn
}

// Authorized reports whether the client presented a certificate that verified against the secure
// context's CA (Node's tlsSocket.authorized). It is false when the context does not RequestCert.
func (c *Conn) Authorized() bool { return c.authorized }

// AuthorizationError is OpenSSL's code for why the client certificate did not verify, as Node gives it in
// tlsSocket.authorizationError: "UNABLE_TO_GET_ISSUER_CERT" when there is none, then
// "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
// "SELF_SIGNED_CERT_IN_CHAIN", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "INVALID_PURPOSE", "INVALID_CA",
// "PATH_LENGTH_EXCEEDED" or "CERT_REJECTED". It is "" when authorized or when no certificate was requested
// (Node: undefined).
func (c *Conn) AuthorizationError() string { return c.authorizationError }

// ALPNProtocol returns the protocol negotiated by ALPN, "" when none was (Node's alpnProtocol false).
func (c *Conn) ALPNProtocol() string { return c.state.NegotiatedProtocol }

// ServerName returns the SNI server name the client sent, "" when it sent none (Node's servername false).
// Unlike Node it is also reported on resumed TLS 1.2 sessions.
func (c *Conn) ServerName() string { return c.state.ServerName }

// Resumed reports whether the handshake resumed a session (Node's tlsSocket.isSessionReused()).
func (c *Conn) Resumed() bool { return c.state.DidResume }

// OCSPRequested reports whether the OCSPRequest hook ran for this handshake: a full handshake whose client
// asked for certificate status. Node's socket has no counterpart; a status page and metrics want it.
func (c *Conn) OCSPRequested() bool { return c.ocspRequested }

// Leaf returns the leaf certificate of the secure context the handshake chose (by SNI): the same pointer as
// that context's Certificate.Leaf, so that a server with several contexts can tell which one a connection
// got. It is nil before the handshake.
func (c *Conn) Leaf() *x509.Certificate { return c.leaf }

// OCSPStaple returns the OCSP response stapled on this connection (what OCSPRequest returned), nil when
// none was. The caller must not modify it.
func (c *Conn) OCSPStaple() []byte { return c.ocspStaple }

// serveConn runs one connection: handshake, authorization, SecureConnection, close.
func (s *Server) serveConn(raw net.Conn, outer *tls.Config) {
	c := &Conn{}
	c.raw = &rawConn{Conn: raw, c: c}
	c.hs.srv = s
	c.hs.raw = raw
	c.Conn = tls.Server(c.raw, outer)

	ctx, expired := s.handshakeDeadline(c)
	err := c.HandshakeContext(ctx)
	if expired() {
		return // ended at the deadline, by the timer's goroutine
	}
	defer s.connEnded()
	defer c.Close()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The deadline came, and the handshake returned before the timer's goroutine could run.
			err = s.timeoutError()
		} else {
			err = classify(err)
		}
		s.clientError(c, err)
		return
	}
	sc := c.hs.sc
	c.ocspRequested, c.ocspStaple, c.leaf = c.hs.ocspRequested, c.hs.ocspStaple, sc.leaf
	c.hs = handshake{}
	c.state = c.ConnectionState()
	if sc.request {
		var err error
		c.authorized, c.authorizationError, err = sc.authorize(c.state, s.now())
		if sc.reject && !c.authorized {
			s.clientError(c, &UnauthorizedError{Code: c.authorizationError, Err: err})
			return
		}
	}
	if s.SecureConnection != nil {
		s.SecureConnection(c)
	}
}

// handshakeDeadline returns the context of c's handshake, cancelled at HandshakeTimeout, and the function
// to call once the handshake has returned, which reports whether the timer's goroutine has ended the
// connection. (The handshake can also see the deadline and return before that goroutine runs, which then
// never does: serveConn reports the timeout itself.)
//
// Hooks run on the handshake's goroutine, and one may ignore its context. So when the deadline comes, the
// connection is ended from the timer's goroutine (closed, reported to ClientError, no longer counted)
// whatever the handshake's goroutine is doing; that goroutine, once a late hook returns, only exits. A
// handshake that ends in time costs a timer and no goroutine.
func (s *Server) handshakeDeadline(c *Conn) (context.Context, func() bool) {
	timeout := s.handshakeTimeout()
	if timeout <= 0 {
		return context.Background(), func() bool { return false }
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	stop := context.AfterFunc(ctx, func() {
		s.clientError(c, s.timeoutError())
		s.connEnded()
	})
	return ctx, func() bool {
		expired := !stop()
		cancel()
		return expired
	}
}

// timeoutError is what ClientError gets for a handshake whose deadline has passed.
func (s *Server) timeoutError() error {
	return fmt.Errorf("%w (%v): %w", ErrHandshakeTimeout, s.handshakeTimeout(), context.DeadlineExceeded)
}

func (s *Server) clientError(c *Conn, err error) {
	c.raw.Close()
	if s.ClientError != nil {
		s.ClientError(c, err)
	}
}

var errForeignConn = errors.New("tlsserver: internal error: handshake on a connection the server did not accept")
