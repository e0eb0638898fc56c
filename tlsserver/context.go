package tlsserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// SecureContext is what Node calls a secure context: the certificate chain and key a handshake presents and
// the CA certificates it trusts (Node's key, cert and ca). The server has a default one
// (Server.SecureContext); AddContext and SNICallback add more, chosen by the client's SNI name.
//
// As in Node, requestCert, rejectUnauthorized and ALPNProtocols are the server's (Server.RequestCert,
// Server.AllowUnauthorized, Server.ALPNProtocols) and apply to every context, while each context verifies
// client certificates against its own CA. ClientAuth and ALPNProtocols here are a Go extension: set, they
// override the server's for this context only, so that one listener can serve, say, an mTLS name next to a
// public one.
//
// A SecureContext is copied when it is installed (Listen, Serve, AddContext, SetContexts, or returned by
// SNICallback): later changes to the value have no effect.
type SecureContext struct {
	// Certificate is the chain, leaf first, and its private key (Node's cert and key). It is required.
	// Leaf is parsed from Certificate[0] when nil. An OCSPStaple set here is served as is when the server
	// has no OCSPRequest hook, and ignored when it has one.
	Certificate *tls.Certificate

	// CA lists trusted CA certificates (Node's ca). They serve twice, as in Node: to find the leaf's
	// issuer for OCSPRequest when the chain does not hold it, and as the roots that verify client
	// certificates on handshakes that chose this context. nil means none: no issuer beyond the chain, and
	// every client certificate is unauthorized (Node would verify against its bundled root CAs).
	CA []*x509.Certificate

	// ALPNProtocols, if not nil, replaces Server.ALPNProtocols for this context (a Go extension; Node's
	// ALPNProtocols is the server's). An empty, non-nil list offers no ALPN here. nil means the server's.
	ALPNProtocols []string

	// ClientAuth, if not nil, replaces the server's RequestCert and AllowUnauthorized for this context (a
	// Go extension; in Node they are the server's). nil means the server's.
	ClientAuth *ClientAuth
}

// ClientAuth is a client-certificate policy: Node's requestCert and rejectUnauthorized. The zero value asks
// for no certificate.
type ClientAuth struct {
	// RequestCert asks the client for a certificate (Node's requestCert). Conn.Authorized and
	// Conn.AuthorizationError then tell whether it verified against the context's CA. false means none is
	// asked for, and Authorized reports false as in Node.
	RequestCert bool

	// AllowUnauthorized, with RequestCert, lets a client whose certificate did not verify (or who sent
	// none) through to SecureConnection (Node's rejectUnauthorized: false). false, Node's default,
	// rejects it: no certificate fails the handshake (ErrNoClientCertificate); an unverified one is closed
	// after the handshake and reported to ClientError as an *UnauthorizedError.
	AllowUnauthorized bool
}

// secureContext is an installed SecureContext: validated, parsed, with its issuer chosen and, once built on
// the server's options, its client-certificate policy and per-context base tls.Config.
type secureContext struct {
	src     SecureContext  // the installed copy, to rebuild config from the server's options
	pattern string         // the AddContext host name; "" for the default context
	re      *regexp.Regexp // nil for the default context
	cert    *tls.Certificate
	leaf    *x509.Certificate
	issuer  *x509.Certificate // nil when unknown
	request bool
	reject  bool
	config  *tls.Config // cloned per connection; no ticket keys, no hooks
}

// install validates sc, parses what every handshake needs and builds it on the server's options.
func (s *Server) install(sc *SecureContext) (*secureContext, error) {
	if sc == nil || sc.Certificate == nil || len(sc.Certificate.Certificate) == 0 || sc.Certificate.PrivateKey == nil {
		return nil, ErrNoCertificate
	}
	cert := *sc.Certificate
	cert.Certificate = slices.Clone(cert.Certificate)
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsserver: secure context leaf: %w", err)
		}
		cert.Leaf = leaf
	}
	chain := make([]*x509.Certificate, 0, len(cert.Certificate)-1)
	for i, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("tlsserver: secure context chain certificate %d: %w", i+1, err)
		}
		chain = append(chain, c)
	}
	src := *sc
	src.CA = slices.Clone(sc.CA)
	src.ALPNProtocols = slices.Clone(sc.ALPNProtocols)
	if sc.ClientAuth != nil {
		ca := *sc.ClientAuth
		src.ClientAuth = &ca
	}
	x := &secureContext{src: src, cert: &cert, leaf: leaf, issuer: nodeIssuer(leaf, chain, sc.CA)}
	s.build(x)
	return x, nil
}

// nodeIssuer chooses the issuer Node gives OCSPRequest: the first chain certificate that issued leaf, else
// the first of ca that did, else nil. Like OpenSSL's X509_check_issued it compares names and the signature
// only, so a self-signed leaf is its own issuer when the chain or ca holds it.
func nodeIssuer(leaf *x509.Certificate, chain, ca []*x509.Certificate) *x509.Certificate {
	for _, list := range [][]*x509.Certificate{chain, ca} {
		if i := slices.IndexFunc(list, func(c *x509.Certificate) bool { return signedBy(leaf, c) }); i >= 0 {
			return list[i]
		}
	}
	return nil
}

// build sets x's client-certificate policy and base configuration from its own overrides and the server's
// options: TLSConfig (nil for crypto/tls's defaults), RequestCert, AllowUnauthorized and ALPNProtocols.
func (s *Server) build(x *secureContext) {
	auth := ClientAuth{RequestCert: s.RequestCert, AllowUnauthorized: s.AllowUnauthorized}
	if x.src.ClientAuth != nil {
		auth = *x.src.ClientAuth
	}
	alpn := s.ALPNProtocols
	if x.src.ALPNProtocols != nil {
		alpn = x.src.ALPNProtocols
	}
	x.request, x.reject = auth.RequestCert, auth.RequestCert && !auth.AllowUnauthorized
	c := &tls.Config{}
	if s.TLSConfig != nil {
		c = s.TLSConfig.Clone()
	}
	c.Certificates = nil
	//lint:ignore SA1019 cleared so that GetCertificate always runs (trap T1)
	c.NameToCertificate = nil
	c.GetCertificate = nil
	c.GetConfigForClient = nil
	c.WrapSession = nil
	c.UnwrapSession = nil
	c.NextProtos = slices.Clone(alpn)
	c.ClientAuth = tls.NoClientCert
	c.ClientCAs = nil
	if x.request {
		// Verification is ours (Conn.Authorized), so that an unverified client still completes the
		// handshake as in Node; only a missing certificate fails it when unauthorized clients are rejected.
		c.ClientAuth = tls.RequestClientCert
		if x.reject {
			c.ClientAuth = tls.RequireAnyClientCert
		}
		if len(x.src.CA) > 0 {
			c.ClientCAs = x509.NewCertPool()
			for _, ca := range x.src.CA {
				c.ClientCAs.AddCert(ca)
			}
		}
	}
	x.config = c
}

// rebuilt returns a copy of x built on the server's options as they are now.
func (s *Server) rebuilt(x *secureContext) *secureContext {
	y := *x
	s.build(&y)
	return &y
}

// compilePattern turns an AddContext host name into the regular expression Node builds for it:
//
//	new RegExp('^' + hostname.replace(/([.^$+?\-\\[\]{}])/g, '\\$1').replaceAll('*', '[^.]*') + '$')
//
// so '*' matches any run of characters other than '.', possibly empty, matching is case-sensitive, and the
// characters Node leaves unescaped ('(', ')', '|') keep their regular-expression meaning. Go's RE2 gives the
// same matches as JavaScript for every pattern this can produce (no back-references or look-arounds can
// arise); patterns JavaScript rejects (an unbalanced parenthesis) are rejected here too.
func compilePattern(hostname string) (*regexp.Regexp, error) {
	if hostname == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadPattern)
	}
	var b strings.Builder
	b.WriteByte('^')
	for _, r := range hostname {
		switch r {
		case '.', '^', '$', '+', '?', '-', '\\', '[', ']', '{', '}':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '*':
			b.WriteString("[^.]*")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('$')
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadPattern, hostname, err)
	}
	return re, nil
}

// match returns the context for an SNI server name: the most recently added one whose pattern matches,
// else def. An empty name (no SNI) always gets def, as Node runs no SNICallback then.
func match(contexts []*secureContext, serverName string, def *secureContext) *secureContext {
	if serverName == "" {
		return def
	}
	for i := len(contexts) - 1; i >= 0; i-- {
		if contexts[i].re.MatchString(serverName) {
			return contexts[i]
		}
	}
	return def
}
