package tlsserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// TLS extension numbers read from ClientHelloInfo.Extensions.
const (
	extStatusRequest        = 5
	extExtendedMasterSecret = 23
)

// handshake is the per-connection state the crypto/tls hooks share. crypto/tls calls them one after the
// other on the connection's goroutine, so it needs no lock.
type handshake struct {
	srv  *Server
	raw  net.Conn
	ctx  context.Context // the handshake's: cancelled at its deadline
	sc   *secureContext
	keys *ticketKeySet

	tls12  bool     // crypto/tls will take its TLS 1.2 path (GetCertificate before UnwrapSession)
	ems    bool     // the client offered extended_master_secret
	suites []uint16 // the client's cipher suites

	// pending is this connection's copy of the certificate on a TLS 1.2 full-handshake candidate:
	// crypto/tls reads OCSPStaple only when it writes CertificateStatus, after UnwrapSession, so
	// OCSPRequest runs there, once resumption has been ruled out, as OpenSSL runs it only on full
	// handshakes.
	pending *tls.Certificate

	resumedID   []byte // TLS 1.2: the session ID the client resumed with, reissued as its ticket
	resumedMeta sessionMeta

	ocspRequested bool   // OCSPRequest ran
	ocspStaple    []byte // and returned this
}

// configForClient is the outer Config's GetConfigForClient: it picks the secure context (SNICallback, then
// the AddContext patterns, then the default) and returns a per-connection Config whose hooks are bound to
// this connection and its handshake context. The ticket keys in force now are the ones this handshake uses.
func (s *Server) configForClient(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	rc, ok := chi.Conn.(*rawConn)
	if !ok {
		return nil, errForeignConn
	}
	h := &rc.c.hs
	h.ctx = chi.Context()
	sc, err := s.contextFor(h.ctx, chi.ServerName)
	if err != nil {
		h.raw.Close() // Node destroys the socket: no alert (crypto/tls would send internal_error)
		return nil, err
	}
	h.sc = sc
	h.keys = s.keys.Load()
	h.ems = slices.Contains(chi.Extensions, extExtendedMasterSecret)
	h.suites = chi.CipherSuites
	pc := h.sc.config.Clone()
	maxVersion := pc.MaxVersion
	if maxVersion == 0 {
		maxVersion = tls.VersionTLS13
	}
	h.tls12 = maxVersion < tls.VersionTLS13 || !slices.Contains(chi.SupportedVersions, tls.VersionTLS13)
	pc.GetCertificate = h.getCertificate
	pc.WrapSession = h.wrapSession
	pc.UnwrapSession = h.unwrapSession
	return pc, nil
}

// contextFor returns the secure context for an SNI server name: SNICallback's, else the most recently added
// matching one, else the default. Without a name neither SNICallback nor the patterns are consulted.
func (s *Server) contextFor(ctx context.Context, serverName string) (*secureContext, error) {
	if s.SNICallback != nil && serverName != "" {
		sc, err := s.SNICallback(ctx, serverName)
		if err != nil {
			return nil, &HookError{Hook: "SNICallback", Err: err}
		}
		if sc != nil {
			x, err := s.install(sc)
			if err != nil {
				return nil, &HookError{Hook: "SNICallback", Err: err}
			}
			return x, nil
		}
	}
	var contexts []*secureContext
	if cs := s.contexts.Load(); cs != nil {
		contexts = *cs
	}
	return match(contexts, serverName, s.def.Load()), nil
}

// getCertificate returns the secure context's certificate; when the client asked for status and the
// server has an OCSPRequest hook, a per-connection copy with the hook's staple.
//
// TLS 1.3 calls it only on full handshakes (after PSK resumption was ruled out), so OCSPRequest runs here.
// TLS 1.2 calls it before looking at the client's ticket, so OCSPRequest is deferred to unwrapSession.
func (h *handshake) getCertificate(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert := h.sc.cert
	if h.srv.OCSPRequest == nil || !slices.Contains(chi.Extensions, extStatusRequest) {
		return cert, nil
	}
	c := *cert
	c.OCSPStaple = nil
	if h.tls12 && !h.sc.config.SessionTicketsDisabled {
		h.pending = &c
		return &c, nil
	}
	staple, err := h.requestOCSP()
	if err != nil {
		// crypto/tls would send internal_error; Node destroys the socket without an alert.
		h.raw.Close()
		return nil, err
	}
	c.OCSPStaple = staple
	return &c, nil
}

// contextTag names the server's SessionIDContext in its sessions.
func (s *Server) contextTag() tag { return tagOf("session id context", []byte(s.SessionIDContext)) }

func (h *handshake) requestOCSP() ([]byte, error) {
	staple, err := h.srv.OCSPRequest(h.ctx, h.sc.leaf, h.sc.issuer)
	if err != nil {
		return nil, &HookError{Hook: "OCSPRequest", Err: err}
	}
	h.ocspRequested, h.ocspStaple = true, staple
	return staple, nil
}

// storeMode reports whether sessions go to NewSession/ResumeSession rather than into tickets.
func (h *handshake) storeMode() bool { return h.srv.NewSession != nil || h.srv.ResumeSession != nil }

// wrapSession is crypto/tls's WrapSession: it returns the ticket for a session, either the session
// encrypted under the ticket keys or, in store mode, a fresh session ID once NewSession has stored it. A
// session the store did not take travels in the ticket itself, so that it still resumes.
func (h *handshake) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	if h.tls12 && cs.DidResume && h.resumedID != nil && h.storeMode() {
		return h.resumedID, nil // the session and its secret are unchanged: Node emits no newSession
	}
	meta := sessionMeta{
		version:   cs.Version,
		suite:     cs.CipherSuite,
		created:   h.srv.now().Unix(),
		ems:       h.ems,
		peerCerts: len(cs.PeerCertificates) > 0,
		key:       h.keys.current,
		context:   h.srv.contextTag(),
	}
	if h.tls12 && cs.DidResume {
		meta.created = h.resumedMeta.created // crypto/tls keeps a TLS 1.2 session's creation time too
	}
	ss.Extra = append(ss.Extra, meta.marshal())
	if !h.storeMode() {
		return h.keys.cfg.EncryptTicket(cs, ss)
	}
	data, err := ss.Bytes()
	if err != nil {
		return nil, err
	}
	id := make([]byte, sessionIDLen)
	if _, err := io.ReadFull(h.srv.rand(), id); err != nil {
		return nil, err
	}
	if hook := h.srv.NewSession; hook != nil {
		if _, ok := h.callStore("NewSession", func(ctx context.Context) ([]byte, error) { return nil, hook(ctx, id, data) }); !ok {
			return h.keys.cfg.EncryptTicket(cs, ss)
		}
	}
	return id, nil
}

// sessionIDLen is the length of the session IDs given to NewSession, as OpenSSL's. crypto/tls's own tickets
// are longer, so a presented ticket of this length is looked up in the store and any other is decrypted.
const sessionIDLen = 32

// callStore runs a session store hook within SessionStoreTimeout and reports whether it succeeded; a failure
// or a timeout goes to SessionStoreError, once, and the handshake goes on without the store.
func (h *handshake) callStore(hook string, call func(ctx context.Context) ([]byte, error)) ([]byte, bool) {
	var data []byte
	var err error
	if d := h.srv.sessionStoreTimeout(); d <= 0 {
		data, err = call(h.ctx)
	} else {
		ctx, cancel := context.WithTimeout(h.ctx, d)
		defer cancel()
		type result struct {
			data []byte
			err  error
		}
		done := make(chan result, 1)
		go func() {
			data, err := call(ctx)
			done <- result{data, err}
		}()
		select {
		case r := <-done:
			data, err = r.data, r.err
		case <-ctx.Done():
			if h.ctx.Err() != nil {
				return nil, false // the handshake itself ended: its deadline reports it
			}
			err = fmt.Errorf("%w (%v)", ErrSessionStoreTimeout, d)
		}
	}
	if err != nil {
		if report := h.srv.SessionStoreError; report != nil {
			report(&HookError{Hook: hook, Err: err})
		}
		return nil, false
	}
	return data, true
}

// unwrapSession is crypto/tls's UnwrapSession: it finds the session for a ticket (decrypting it, or in store
// mode asking ResumeSession), keeps it only if it can resume here, and on a TLS 1.2 full handshake then
// runs the deferred OCSPRequest. An error ends the handshake without an alert.
func (h *handshake) unwrapSession(id []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, meta := h.lookup(id, cs)
	if ss != nil && !h.resumable(meta, cs) {
		ss = nil
	}
	if ss != nil && h.tls12 {
		h.resumedID, h.resumedMeta = slices.Clone(id), meta
	}
	if ss == nil && h.pending != nil {
		c := h.pending
		h.pending = nil
		var err error
		if c.OCSPStaple, err = h.requestOCSP(); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

// lookup finds the session a ticket names: in the store for a session ID, else in the ticket itself. nil
// when there is none the server issued.
func (h *handshake) lookup(id []byte, cs tls.ConnectionState) (*tls.SessionState, sessionMeta) {
	if len(id) == 0 { // TLS 1.2 asks even when the client sent no ticket
		return nil, sessionMeta{}
	}
	var ss *tls.SessionState
	if h.storeMode() && len(id) == sessionIDLen {
		hook := h.srv.ResumeSession
		if hook == nil {
			return nil, sessionMeta{}
		}
		data, ok := h.callStore("ResumeSession", func(ctx context.Context) ([]byte, error) { return hook(ctx, id) })
		if !ok || data == nil {
			return nil, sessionMeta{}
		}
		var err error
		if ss, err = tls.ParseSessionState(data); err != nil {
			return nil, sessionMeta{} // from another Go version, or not a session: a miss
		}
	} else {
		var err error
		if ss, err = h.keys.cfg.DecryptTicket(id, cs); err != nil || ss == nil {
			return nil, sessionMeta{}
		}
	}
	meta, ok := findSessionMeta(ss)
	if !ok {
		return nil, sessionMeta{}
	}
	return ss, meta
}

// resumable reports whether a session found for this handshake will be resumed: it is younger than
// SessionTimeout, was issued under the ticket keys and SessionIDContext in force, and, for TLS 1.2, crypto/tls's own checks will accept it (same version, a cipher suite
// the client still offers, extended master secret and client certificates as the session had them). The
// TLS 1.2 checks matter because OCSPRequest runs only when the handshake will be full.
func (h *handshake) resumable(m sessionMeta, cs tls.ConnectionState) bool {
	if t := h.srv.sessionTimeout(); t > 0 && h.srv.now().Sub(time.Unix(m.created, 0)) > t {
		return false
	}
	if m.version != cs.Version || !h.keys.issued(m.key) || m.context != h.srv.contextTag() {
		return false
	}
	if !h.tls12 {
		return true // crypto/tls decides, before OCSPRequest could run
	}
	switch {
	case !slices.Contains(h.suites, m.suite):
		return false
	case !m.ems && h.ems:
		return false
	case m.peerCerts && !h.sc.request:
		return false
	case !m.peerCerts && h.sc.reject:
		return false
	}
	return true
}

// authorize verifies the client's certificate against the context's CA and reports it as Node does.
func (x *secureContext) authorize(cs tls.ConnectionState, now time.Time) (bool, string, error) {
	if len(cs.PeerCertificates) == 0 {
		return false, "UNABLE_TO_GET_ISSUER_CERT", nil
	}
	return verifyClient(cs.PeerCertificates, x.src.CA, now)
}
