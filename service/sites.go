package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/tlsserver"
)

// site is one [[site]] loaded: its chain, the secure context that serves it, and what its connections get.
type site struct {
	cfg     Site
	name    string // "site[N]", for errors and logs
	chain   *certs.Chain
	context *tlsserver.SecureContext
	// key is the cache key of the leaf; watched tells it was given to the stapler (the issuer is known).
	key     certs.Key
	watched bool
	// noStaple is why no staple can ever be served ("" when one can): NoStapleNoIssuer or NoStapleNoURL.
	noStaple string
	handler  http.Handler // nil for a raw TCP forward
}

// siteSet is the configuration in force, swapped whole on reload.
type siteSet struct {
	def       *site
	named     []tlsserver.HostContext
	all       []*site
	byLeaf    map[*x509.Certificate]*site
	byKey     map[certs.Key][]*site
	exporters []*exporter
	ids       *certIDIndex
}

// loadSites reads every site's files and builds the set; it watches nothing yet. Errors name the site.
func loadSites(cfg *Config, log zerolog.Logger) (*siteSet, error) {
	set := &siteSet{byLeaf: map[*x509.Certificate]*site{}, byKey: map[certs.Key][]*site{}}
	for i := range cfg.Sites {
		st, err := loadSite(cfg, i, log)
		if err != nil {
			return nil, err
		}
		set.all = append(set.all, st)
		set.byLeaf[st.chain.Leaf] = st
		if st.watched {
			set.byKey[st.key] = append(set.byKey[st.key], st)
		}
		if len(st.cfg.Names) == 0 {
			set.def = st
		}
	}
	if len(set.all) == 0 {
		return nil, fmt.Errorf("%w: no [[site]] to serve (give --cert and --key, or a configuration with a [[site]])", ErrConfig)
	}
	if set.def == nil {
		set.def = set.all[0] // Node needs a default context: the first site is served to clients without SNI
	}
	// The last context added wins: add the sites in reverse, so that the first site in the file that
	// matches a name serves it.
	for i := len(set.all) - 1; i >= 0; i-- {
		st := set.all[i]
		for _, n := range st.cfg.Names {
			set.named = append(set.named, tlsserver.HostContext{Hostname: n, Context: st.context})
		}
	}
	for _, e := range cfg.Exports {
		set.exporters = append(set.exporters, newExporter(e, log.With().Str("component", "export").Logger()))
	}
	set.ids = newCertIDIndex(set.all, cfg.Fetch.SHA256)
	return set, nil
}

func loadSite(cfg *Config, i int, log zerolog.Logger) (*site, error) {
	sc := cfg.Sites[i]
	name := fmt.Sprintf("site[%d]", i+1)
	chain, err := certs.LoadChain(sc.Cert, sc.Key, sc.Issuer)
	if err != nil {
		key := name + ".cert"
		if sc.Key != "" && (errors.Is(err, certs.ErrKeyMismatch) || errors.Is(err, certs.ErrBadPrivateKey) ||
			errors.Is(err, certs.ErrEncryptedKey) || errors.Is(err, certs.ErrUnsupportedKey)) {
			key = name + ".key"
		}
		return nil, cfg.Errorf(key, "%v", err)
	}
	if chain.Key == nil {
		return nil, cfg.Errorf(name+".key", "%s holds no private key for %s: give key = \"KEY.pem\"", sc.Cert, certs.Describe(chain.Leaf))
	}
	tc, err := chain.TLSCertificate()
	if err != nil {
		return nil, cfg.Errorf(name+".cert", "%v", err)
	}
	st := &site{cfg: sc, name: name, chain: chain}
	ctx := &tlsserver.SecureContext{
		Certificate:       &tc,
		ALPNProtocols:     sc.ALPN,
		RequestCert:       sc.RequestCert,
		AllowUnauthorized: !sc.RejectUnauthorized,
	}
	if sc.ClientCA != "" {
		b, err := certs.LoadFile(sc.ClientCA)
		if err != nil {
			return nil, cfg.Errorf(name+".client_ca", "%v", err)
		}
		if len(b.Certs) == 0 {
			return nil, cfg.Errorf(name+".client_ca", "%s holds no certificate", sc.ClientCA)
		}
		ctx.CA = b.Certs
	}
	switch {
	case sc.Forward != "":
	case sc.Upstream != "":
		u, err := url.Parse(sc.Upstream)
		if err != nil {
			return nil, cfg.Errorf(name+".upstream", "%v", err)
		}
		st.handler = newReverseProxy(u, log.With().Str("site", name).Str("component", "proxy").Logger())
	}
	if ctx.ALPNProtocols == nil && sc.Forward == "" {
		ctx.ALPNProtocols = []string{"h2", "http/1.1"}
	}
	st.context = ctx
	if key, ok := chain.CacheKey(); ok {
		st.key, st.watched = key, true
		if len(certs.OCSPURLs(chain.Leaf)) == 0 {
			st.noStaple = NoStapleNoURL
		}
	} else {
		st.noStaple = NoStapleNoIssuer
	}
	return st, nil
}

// install makes next the sites in force: it watches next's certificates (a new one is fetched at once),
// swaps the set, then drops the references of prev (a certificate no longer served is forgotten). It does
// not touch the TLS server's contexts: the caller does, between the watch and the drop.
func (s *Service) install(next, prev *siteSet) error {
	for _, st := range next.all {
		if st.handler == nil && st.cfg.Forward == "" {
			st.handler = &StatusPage{Entries: s.entries, Ready: s.stapler.Ready, Now: s.opts.Now, Version: s.opts.Version}
		}
	}
	var watched []certs.Key
	for _, st := range next.all {
		if !st.watched {
			s.logUnstapled(st)
			continue
		}
		if _, err := s.stapler.Watch(st.chain); err != nil {
			for _, k := range watched {
				s.stapler.Unwatch(k)
			}
			return fmt.Errorf("service: %s: %w", st.name, err)
		}
		watched = append(watched, st.key)
	}
	s.sites.Store(next)
	if prev != nil {
		for _, st := range prev.all {
			if st.watched {
				s.stapler.Unwatch(st.key)
			}
		}
	}
	for key := range next.byKey {
		if s.stapler.Staple(key) != nil {
			s.exportKey(key) // files for nginx and HAProxy from the first moment, from the warm cache
		}
	}
	return nil
}

func (s *Service) logUnstapled(st *site) {
	switch st.noStaple {
	case NoStapleNoIssuer:
		s.log.Warn().Str("site", st.name).Str("cert", st.cfg.Cert).Str("certificate", certs.Describe(st.chain.Leaf)).
			Msg("the certificate's issuer is not in its file: nothing can be fetched or stapled (add the issuing CA to the chain, or issuer = \"CA.pem\")")
	}
}

// ocspRequest is the TLS server's OCSPRequest hook: the staple from memory, no I/O.
func (s *Service) ocspRequest(_ context.Context, leaf, _ *x509.Certificate) ([]byte, error) {
	st := s.sites.Load().byLeaf[leaf]
	switch {
	case st == nil: // a handshake that began before a reload replaced its certificate
		s.metrics.Handshake(true, NoStapleNoResponse)
		return nil, nil
	case !st.watched:
		s.metrics.Handshake(true, st.noStaple)
		return nil, nil
	}
	staple := s.stapler.Staple(st.key)
	switch {
	case staple != nil:
		s.metrics.Handshake(true, "")
	case st.noStaple != "":
		s.metrics.Handshake(true, st.noStaple)
	default:
		s.metrics.Handshake(true, NoStapleNoResponse)
	}
	return staple, nil
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
func (s *Service) secureConnection(c *tlsserver.Conn) {
	s.handshakes.Add(1)
	if c.OCSPStaple() != nil {
		s.stapled.Add(1)
	}
	if !c.Resumed() && !c.OCSPRequested() {
		s.metrics.Handshake(false, "")
	}
	set := s.sites.Load()
	st := set.byLeaf[c.Leaf()]
	if st == nil {
		st = set.def
	}
	if st.cfg.Forward != "" {
		if err := forwardTCP(s.forwardCtx, c, st.cfg.Forward, 10*time.Second); err != nil {
			s.log.Debug().Err(err).Str("site", st.name).Str("forward", st.cfg.Forward).Str("remote", c.RemoteAddr().String()).Msg("forward ended")
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
	s.conns.Store(c.Conn, rec)
	defer s.conns.Delete(c.Conn)
	if s.httpLn.hand(c.Conn) {
		<-rec.done // the HTTP server is done with it
	}
}

// connContext gives each HTTP connection its record (site and TLS facts) and the status page its ConnInfo.
func (s *Service) connContext(ctx context.Context, c net.Conn) context.Context {
	v, ok := s.conns.Load(c)
	if !ok {
		return ctx
	}
	rec := v.(*connRecord)
	if _, ok := rec.site.handler.(*StatusPage); ok && rec.info.Stapled {
		// Only the status page shows it, so only its connections pay for the lookup (no parsing: the index
		// holds the status of the staple it handed out).
		if cur := s.stapler.Current(rec.site.key); cur != nil && bytes.Equal(cur.Raw, rec.tls.OCSPStaple()) {
			rec.info.StapleStatus = cur.Status.String()
		}
	}
	return WithConnInfo(context.WithValue(ctx, connRecordKey{}, rec), &rec.info)
}

// connState ends the TLS side of a connection when the HTTP server is done with it.
func (s *Service) connState(c net.Conn, state http.ConnState) {
	v, ok := s.conns.Load(c)
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
func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
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

// reload applies a new configuration: new certificates are watched (and fetched at once), the TLS server
// switches to the new contexts for the next handshakes, certificates no longer served are dropped. On any
// error nothing changes and the error is logged.
func (s *Service) reload(load func() (*Config, error)) {
	cfg, err := load()
	if err == nil {
		err = cfg.Check()
	}
	var next *siteSet
	if err == nil {
		if len(cfg.Sites) == 0 && s.lab != nil {
			cfg.Sites = s.cfg.Sites
		}
		next, err = loadSites(cfg, s.base)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("reload failed: the configuration in force is kept")
		return
	}
	for key, old := range map[string][2]string{
		"listen": {s.cfg.Listen, cfg.Listen}, "data_dir": {s.cfg.DataDir, cfg.DataDir},
		"metrics_listen": {s.cfg.MetricsListen, cfg.MetricsListen}, "responder_listen": {s.cfg.ResponderListen, cfg.ResponderListen},
	} {
		if old[0] != old[1] {
			s.log.Warn().Str("key", key).Str("in_force", old[0]).Str("new", old[1]).Msg("this setting changes only with a restart")
		}
	}
	prev := s.sites.Load()
	if err := s.install(next, nil); err != nil {
		s.log.Error().Err(err).Msg("reload failed: the configuration in force is kept")
		return
	}
	if err := s.tls.SetContexts(next.def.context, next.named); err != nil {
		s.sites.Store(prev)
		for _, st := range next.all {
			if st.watched {
				s.stapler.Unwatch(st.key)
			}
		}
		s.log.Error().Err(err).Msg("reload failed: the configuration in force is kept")
		return
	}
	for _, st := range prev.all {
		if st.watched {
			s.stapler.Unwatch(st.key)
		}
	}
	var renewed []string
	for _, st := range next.all {
		if !slices.ContainsFunc(prev.all, func(p *site) bool { return p.key == st.key }) {
			renewed = append(renewed, st.key.String())
		}
	}
	s.log.Info().Int("sites", len(next.all)).Strs("new_certificates", renewed).Msg("configuration reloaded")
}
