package tlsserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"staple/certs"
)

// Options are the options of Node's tls.createServer and tls.createSecureContext that come in Node's own
// formats (PEM text, PKCS#12, OpenSSL cipher and curve strings, protocol names, SSL_OP_ bits), for
// CreateServer and CreateSecureContext. Each is implemented with Node's meaning or refused with an
// *OptionError that names it and says why; none is ignored. The zero value of each field is Node's default.
// The other createServer options are Server fields, set on the Server CreateServer returns: requestCert
// (RequestCert), rejectUnauthorized (AllowUnauthorized), ALPNProtocols, SNICallback, handshakeTimeout
// (HandshakeTimeout) and sessionTimeout (SessionTimeout).
//
// Key, PFX and Passphrase are secrets: no error quotes them.
type Options struct {
	// Key is the private key in PEM (Node's key), encrypted under Passphrase or not; Cert is the
	// certificate chain in PEM, leaf first (Node's cert).
	Key, Cert []byte
	// PFX is a PKCS#12 file holding the key and its chain (Node's pfx), instead of Key and Cert; as in
	// Node its other certificates are also trusted as CA certificates. Only the legacy PKCS#12 algorithms
	// are read (see certs.ParsePKCS12).
	PFX []byte
	// Passphrase decrypts Key or PFX (Node's passphrase).
	Passphrase string
	// CA is PEM CA certificates (Node's ca): SecureContext.CA.
	CA []byte

	// The options below are the server's: CreateSecureContext refuses them.

	// Ciphers is an OpenSSL cipher string (Node's ciphers): the TLS 1.2 suites become TLSConfig.CipherSuites;
	// TLS 1.3 suites cannot be chosen in crypto/tls, so TLS_ names are accepted only all three together.
	// With TLS 1.3 names alone, TLS 1.3 is the minimum, as in Node. crypto/tls orders suites itself.
	Ciphers string
	// ECDHCurve is "auto" or a colon-separated list of curves (Node's ecdhCurve): P-256 (prime256v1),
	// P-384 (secp384r1), P-521 (secp521r1), X25519. "" and "auto" mean crypto/tls's default.
	ECDHCurve string
	// ClientCipherOrder is Node's honorCipherOrder: false (Node's server default is true). crypto/tls picks
	// the suite by its own preference, never the client's, so true is refused.
	ClientCipherOrder bool
	// DHParam is Node's dhparam: refused, crypto/tls has no finite-field Diffie-Hellman.
	DHParam []byte
	// SecureProtocol is an OpenSSL method name (Node's secureProtocol), e.g. "TLSv1_2_method" (only TLS
	// 1.2) or "TLS_method"; it becomes TLSConfig's version bounds.
	SecureProtocol string
	// MinVersion and MaxVersion are Node's minVersion and maxVersion: "TLSv1.3", "TLSv1.2", "TLSv1.1",
	// "TLSv1". "" means Node's default (TLS 1.2 to TLS 1.3).
	MinVersion, MaxVersion string
	// SecureOptions is a mask of OpenSSL's SSL_OP_ bits (Node's secureOptions, crypto.constants): the
	// SSL_OP_NO_TLSv1… bits bound the versions, SSL_OP_NO_TICKET turns session tickets off, and the bits
	// crypto/tls behaves as already (NO_SSLv2, NO_SSLv3, NO_COMPRESSION, NO_RENEGOTIATION,
	// NO_SESSION_RESUMPTION_ON_RENEGOTIATION, CIPHER_SERVER_PREFERENCE, PRIORITIZE_CHACHA) are accepted.
	// Any other bit is refused.
	SecureOptions uint64
	// TicketKeys are the 48 session ticket key bytes (Node's ticketKeys): Server.SetTicketKeys.
	TicketKeys []byte
	// SessionIDContext is Node's sessionIdContext, at most 32 bytes: Server.SessionIDContext.
	SessionIDContext string
	// NPNProtocols is refused: NPN is gone from crypto/tls (Go 1.14) and from Node (which ignores it).
	NPNProtocols []string
}

// ErrUnsupportedOption is wrapped by the *OptionError of an option crypto/tls cannot give Node's meaning.
var ErrUnsupportedOption = errors.New("tlsserver: unsupported option")

// OptionError is returned by CreateServer and CreateSecureContext for an option they cannot take.
type OptionError struct {
	// Option is Node's name of the option, e.g. "ciphers".
	Option string
	// Reason says why, e.g. "crypto/tls has no finite-field Diffie-Hellman".
	Reason string
	// Err is ErrUnsupportedOption when crypto/tls cannot do what the option asks; otherwise the error of
	// a value that does not parse (a certs sentinel for keys and certificates), or nil.
	Err error
}

func (e *OptionError) Error() string {
	s := "tlsserver: option " + e.Option + ": " + e.Reason
	if e.Err != nil && !errors.Is(e.Err, ErrUnsupportedOption) {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *OptionError) Unwrap() error { return e.Err }

// CreateSecureContext makes a secure context from Node's key, cert, pfx, passphrase and ca options (Node's
// tls.createSecureContext), for AddContext, SetContexts, SNICallback or Server.SecureContext. The server's
// options in o (Ciphers and those after it) are refused: give them to CreateServer.
func CreateSecureContext(o Options) (*SecureContext, error) {
	if name := o.serverOption(); name != "" {
		return nil, &OptionError{Option: name, Reason: "a server option: give it to CreateServer (an added context takes key, cert, pfx, passphrase and ca)", Err: ErrUnsupportedOption}
	}
	return o.secureContext()
}

// CreateServer makes a Server from Node's tls.createServer options, with secureConnection as its
// SecureConnection hook (Node's listener). Set the options that are Server fields, and the other hooks, on
// the Server it returns, before Listen.
func CreateServer(o Options, secureConnection func(*Conn)) (*Server, error) {
	sc, err := o.secureContext()
	if err != nil {
		return nil, err
	}
	cfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	if len(o.SessionIDContext) > 32 {
		return nil, &OptionError{Option: "sessionIdContext", Reason: fmt.Sprintf("%d bytes, at most 32 (OpenSSL's limit)", len(o.SessionIDContext))}
	}
	s := &Server{SecureContext: sc, TLSConfig: cfg, SessionIDContext: o.SessionIDContext, SecureConnection: secureConnection}
	if o.TicketKeys != nil {
		if err := s.SetTicketKeys(o.TicketKeys); err != nil {
			return nil, &OptionError{Option: "ticketKeys", Reason: "must be exactly 48 bytes", Err: err}
		}
	}
	return s, nil
}

// serverOption returns the Node name of the first server-only option set in o, or "".
func (o *Options) serverOption() string {
	for _, opt := range []struct {
		name string
		set  bool
	}{
		{"ciphers", o.Ciphers != ""}, {"ecdhCurve", o.ECDHCurve != ""}, {"honorCipherOrder", o.ClientCipherOrder},
		{"dhparam", o.DHParam != nil}, {"secureProtocol", o.SecureProtocol != ""}, {"minVersion", o.MinVersion != ""},
		{"maxVersion", o.MaxVersion != ""}, {"secureOptions", o.SecureOptions != 0}, {"ticketKeys", o.TicketKeys != nil},
		{"sessionIdContext", o.SessionIDContext != ""}, {"NPNProtocols", o.NPNProtocols != nil},
	} {
		if opt.set {
			return opt.name
		}
	}
	return ""
}

// secureContext reads key, cert, pfx, passphrase and ca.
func (o *Options) secureContext() (*SecureContext, error) {
	var ca []*x509.Certificate
	if o.CA != nil {
		b, err := certs.ParsePEM(o.CA, "ca")
		if err != nil {
			return nil, &OptionError{Option: "ca", Reason: "not PEM certificates", Err: err}
		}
		ca = b.Certs
	}
	var list []*x509.Certificate
	var bundle *certs.Bundle
	switch {
	case o.PFX != nil && (o.Key != nil || o.Cert != nil):
		return nil, &OptionError{Option: "pfx", Reason: "give either pfx or key and cert", Err: ErrUnsupportedOption}
	case o.PFX != nil:
		b, err := certs.ParsePKCS12(o.PFX, "pfx", o.Passphrase)
		if err != nil {
			return nil, &OptionError{Option: "pfx", Reason: "cannot be read", Err: err}
		}
		chain, err := certs.NewChain(b.Certs, b.Keys[0], nil)
		if err != nil {
			return nil, &OptionError{Option: "pfx", Reason: "no certificate for its key", Err: err}
		}
		list, bundle = append([]*x509.Certificate{chain.Leaf}, chain.Intermediates...), b
		ca = append(ca, slices.DeleteFunc(slices.Clone(b.Certs), func(c *x509.Certificate) bool { return c == chain.Leaf })...)
	default:
		cb, err := certs.ParsePEM(o.Cert, "cert")
		if err != nil || len(cb.Certs) == 0 {
			return nil, &OptionError{Option: "cert", Reason: "no PEM certificate", Err: err}
		}
		if bundle, err = certs.ParsePEMPassphrase(o.Key, "key", []byte(o.Passphrase)); err != nil || len(bundle.Keys) != 1 {
			return nil, &OptionError{Option: "key", Reason: "not one PEM private key (with passphrase, if encrypted)", Err: err}
		}
		list = cb.Certs
	}
	cert := tls.Certificate{PrivateKey: bundle.Keys[0], Leaf: list[0]}
	for _, c := range list {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	if _, err := certs.NewChain(list[:1], bundle.Keys[0], nil); err != nil {
		return nil, &OptionError{Option: "key", Reason: "does not match the certificate", Err: err}
	}
	return &SecureContext{Certificate: &cert, CA: ca}, nil
}
