package tlsserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"staple/certs"
)

// SecureContext is what Node calls a secure context: the certificate chain and key a handshake presents, the
// CA certificates it trusts, the ALPN protocols it offers and its client-certificate policy. The server has a
// default one (Server.SecureContext); AddContext adds more, chosen by the client's SNI name.
//
// Node keeps ALPNProtocols, requestCert and rejectUnauthorized server-wide; here each secure context has
// its own, so that one listener can serve, say, an mTLS name next to a public one.
//
// A SecureContext is copied when it is installed (Listen, Serve, AddContext): later changes to the value
// have no effect.
type SecureContext struct {
	// Certificate is the chain, leaf first, and its private key (Node's cert and key). It is required.
	// Leaf is parsed from Certificate[0] when nil. An OCSPStaple set here is served as is when the server
	// has no OCSPRequest hook, and ignored when it has one.
	Certificate *tls.Certificate

	// CA lists trusted CA certificates (Node's ca). They serve twice, as in Node: to find the leaf's
	// issuer for OCSPRequest when the chain does not hold it, and as the roots that verify client
	// certificates. nil means none: no issuer beyond the chain, and every client certificate is
	// unauthorized.
	CA []*x509.Certificate

	// ALPNProtocols lists the application protocols offered, most preferred first (Node's
	// ALPNProtocols). A client whose list shares none with it gets a no_application_protocol alert.
	// nil means no ALPN: Conn.ALPNProtocol reports "" (Node's false).
	ALPNProtocols []string

	// RequestCert asks the client for a certificate (Node's requestCert). Conn.Authorized and
	// Conn.AuthorizationError then tell whether it verified against CA. false means none is asked for,
	// and Authorized reports false as in Node.
	RequestCert bool

	// AllowUnauthorized, with RequestCert, lets a client whose certificate did not verify (or who sent
	// none) through to SecureConnection (Node's rejectUnauthorized: false). false, Node's default,
	// rejects it: no certificate fails the handshake; an unverified one is closed after the handshake
	// and reported to ClientError as an *UnauthorizedError.
	AllowUnauthorized bool
}

// secureContext is an installed SecureContext: validated, parsed, with its issuer chosen and its
// per-context base tls.Config built.
type secureContext struct {
	src     SecureContext  // the installed copy, to rebuild config from another base
	pattern string         // the AddContext host name; "" for the default context
	re      *regexp.Regexp // nil for the default context
	cert    *tls.Certificate
	leaf    *x509.Certificate
	issuer  *x509.Certificate // nil when unknown or self-signed
	request bool
	reject  bool
	config  *tls.Config // cloned per connection; no ticket keys, no hooks
}

// install validates sc and parses what every handshake needs; base is the server's TLSConfig (nil for
// crypto/tls's defaults).
func install(sc *SecureContext, base *tls.Config) (*secureContext, error) {
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
	return &secureContext{
		src:     src,
		cert:    &cert,
		leaf:    leaf,
		issuer:  certs.ChooseIssuer(leaf, chain, sc.CA),
		request: sc.RequestCert,
		reject:  sc.RequestCert && !sc.AllowUnauthorized,
		config:  contextConfig(base, sc),
	}, nil
}

// rebase returns a copy of x whose config is built on base.
func (x *secureContext) rebase(base *tls.Config) *secureContext {
	y := *x
	y.config = contextConfig(base, &x.src)
	return &y
}

// contextConfig builds the per-context base configuration from the server's TLSConfig (nil for defaults).
func contextConfig(base *tls.Config, sc *SecureContext) *tls.Config {
	var c *tls.Config
	if base != nil {
		c = base.Clone()
	} else {
		c = &tls.Config{}
	}
	c.Certificates = nil
	c.NameToCertificate = nil //nolint:staticcheck // cleared so that GetCertificate always runs (trap T1)
	c.GetCertificate = nil
	c.GetConfigForClient = nil
	c.WrapSession = nil
	c.UnwrapSession = nil
	c.NextProtos = slices.Clone(sc.ALPNProtocols)
	c.ClientAuth = tls.NoClientCert
	c.ClientCAs = nil
	if sc.RequestCert {
		// Verification is ours (Conn.Authorized), so that an unverified client still completes the
		// handshake as in Node; only a missing certificate fails it when unauthorized clients are rejected.
		c.ClientAuth = tls.RequestClientCert
		if !sc.AllowUnauthorized {
			c.ClientAuth = tls.RequireAnyClientCert
		}
		if len(sc.CA) > 0 {
			c.ClientCAs = x509.NewCertPool()
			for _, ca := range sc.CA {
				c.ClientCAs.AddCert(ca)
			}
		}
	}
	return c
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
