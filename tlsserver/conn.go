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
// The methods below report the handshake and are safe for concurrent use once SecureConnection has been
// called; before that (in ClientError) they report the zero values.
type Conn struct {
	*tls.Conn

	raw                *rawConn
	hs                 handshake // the handshake's state, used on the connection's goroutine only
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
func (c *Conn) ALPNProtocol() string { return c.ConnectionState().NegotiatedProtocol }

// ServerName returns the SNI server name the client sent, "" when it sent none (Node's servername false).
// Unlike Node it is also reported on resumed TLS 1.2 sessions.
func (c *Conn) ServerName() string { return c.ConnectionState().ServerName }

// Resumed reports whether the handshake resumed a session (Node's tlsSocket.isSessionReused()).
func (c *Conn) Resumed() bool { return c.ConnectionState().DidResume }

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
	defer s.connEnded()
	c := &Conn{}
	c.raw = &rawConn{Conn: raw, c: c}
	c.hs.srv = s
	c.hs.raw = raw
	c.Conn = tls.Server(c.raw, outer)
	defer c.Close()

	ctx := context.Background()
	timeout := s.handshakeTimeout()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := c.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v): %w", ErrHandshakeTimeout, timeout, err)
		} else if a, ok := peerAlert(err); ok {
			err = a
		}
		s.clientError(c, err)
		return
	}
	sc := c.hs.sc
	c.ocspRequested, c.ocspStaple, c.leaf = c.hs.ocspRequested, c.hs.ocspStaple, sc.leaf
	c.hs = handshake{}
	if sc.request {
		var err error
		c.authorized, c.authorizationError, err = sc.authorize(c.ConnectionState(), s.now())
		if sc.reject && !c.authorized {
			s.clientError(c, &UnauthorizedError{Code: c.authorizationError, Err: err})
			return
		}
	}
	if s.SecureConnection != nil {
		s.SecureConnection(c)
	}
}

func (s *Server) clientError(c *Conn, err error) {
	c.raw.Close()
	if s.ClientError != nil {
		s.ClientError(c, err)
	}
}

// await runs a hook on its own goroutine and waits for it or for ctx, whichever comes first, so that a
// hook that never returns cannot hold the handshake past its deadline. A hook's late result is dropped.
func await[T any](ctx context.Context, hook func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := hook(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

var errForeignConn = errors.New("tlsserver: internal error: handshake on a connection the server did not accept")
