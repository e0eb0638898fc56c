package service

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/config"
	"staple/responder"
	"staple/tlsserver"
)

// site is one [[site]] loaded: its chain, the secure context that serves it, and what its connections get.
type site struct {
	cfg     config.Site
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
	def    *site
	named  []tlsserver.HostContext
	all    []*site
	byLeaf map[string]*site // by the leaf's DER: what a handshake presents

	byKey     map[certs.Key][]*site
	exporters []*exporter
}

// loadSites reads every site's files and builds the set; it watches nothing yet. Errors name the site.
func loadSites(cfg *config.Config, log zerolog.Logger) (*siteSet, error) {
	set := &siteSet{byLeaf: map[string]*site{}, byKey: map[certs.Key][]*site{}}
	for i := range cfg.Sites {
		st, err := loadSite(cfg, i, log)
		if err != nil {
			return nil, err
		}
		set.all = append(set.all, st)
		set.byLeaf[string(st.chain.Leaf.Raw)] = st
		if st.watched {
			set.byKey[st.key] = append(set.byKey[st.key], st)
		}
		if len(st.cfg.Names) == 0 {
			set.def = st
		}
	}
	if len(set.all) == 0 {
		return nil, fmt.Errorf("%w: no [[site]] to serve (give --cert and --key, or a configuration with a [[site]])", config.ErrConfig)
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
	return set, nil
}

func loadSite(cfg *config.Config, i int, log zerolog.Logger) (*site, error) {
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
	// Each site has its own client-certificate policy: tlsserver's per-context override (in Node, and in
	// tlsserver without it, requestCert and rejectUnauthorized are the server's, for every name).
	ctx := &tlsserver.SecureContext{
		Certificate:   &tc,
		ALPNProtocols: sc.ALPN,
		ClientAuth:    &tlsserver.ClientAuth{RequestCert: sc.RequestCert, AllowUnauthorized: !sc.RejectUnauthorized},
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

// certificates are the watched certificates of the set, for the caching responder.
func (set *siteSet) certificates() []responder.Certificate {
	var out []responder.Certificate
	for _, st := range set.all {
		if st.watched {
			out = append(out, responder.Certificate{Key: st.key, Leaf: st.chain.Leaf, Issuer: st.chain.Issuer})
		}
	}
	return out
}
