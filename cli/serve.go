package cli

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"staple/config"
	"staple/lab"
	"staple/service"
)

const serveManual = `NAME
    staple serve - the stapling service: a TLS server that staples fresh, verified OCSP responses

SYNOPSIS
    staple serve [--config staple.toml] [--data-dir DIR] [--listen ADDR]
                 [--cert CHAIN.pem [--key KEY.pem] [--issuer CA.pem] [--upstream URL | --forward ADDR]]
                 [--metrics-listen ADDR] [--responder-listen ADDR] [--log-level L] [--reset-cache]

DESCRIPTION
    Serves TLS on --listen and staples, on every handshake whose client asks for certificate status, the
    newest verified OCSP response of the certificate the handshake presents. A handshake never waits on the
    network or the disk: responses come from memory, kept fresh in the background by a scheduler that asks
    each certificate's OCSP responders (its AIA URLs) at the midpoint of each response's validity, backs
    off on failure, and keeps serving the last valid response through a responder's outage until its
    nextUpdate, never after. A verified "revoked" replaces "good" at once; "unknown" is not stapled.

    Responses and the session ticket keys are kept in DIR/cache.db (bbolt, 0600), so that after a restart the
    first handshake is stapled from the cache, with no fetch, even while the responder is down. While the
    service runs, 'staple cache' commands reach it through DIR/admin.sock (0600).

    With no configuration and no --cert, serve runs the embedded lab for localhost: it makes (once) a lab CA,
    an OCSP signer and a localhost certificate under DIR/lab, runs the lab's responder in the same process
    (on lab_responder_url, default http://127.0.0.1:8889), and serves https://localhost:8443/ with a status
    page. It prints the openssl s_client command that shows the staple.

    --cert (with --key unless the chain file holds it, and --issuer when the chain lacks the issuing CA)
    serves one certificate; --upstream reverse-proxies HTTP to a URL (X-Forwarded-For and -Proto, streaming,
    WebSocket upgrades), --forward relays raw TCP, and with neither the status page is served. A TOML file
    (--config) describes several sites by SNI name, exports, the fetch policy and more; flags given on the
    command line win over it. Unknown keys and bad values are errors naming the file, line and key.

CONFIGURATION
    data_dir, listen, log_level, log_format, metrics_listen, responder_listen, max_connections,
    handshake_timeout (10s), drain_timeout, session_ttl, sessions ("tickets": sealed in the ticket under keys kept
    in the cache, the default; "store": Node's newSession/resumeSession, the session kept in the cache or,
    in a fleet, in etcd), lab_responder_url, and the tables:

        [fetch]     sweep ("@every 30s"), timeout, connect_timeout, max_response_bytes, per_host,
                    concurrency, sha256, nonce, overrides = {"http://old" = "http://new"}, staple_unknown,
                    margin, no_next_update_ttl
        [tickets]   rotate (a cron spec; the previous key still decrypts)
        [[site]]    names = ["example.com", "*.example.com"], cert, key, issuer, upstream | forward, alpn,
                    client_ca, reject_unauthorized
        [[export]]  cert, path ("{cert}.ocsp", HAProxy's layout; {key} is the cache key), format (der or
                    base64), reload = ["systemctl", "reload", "nginx"], reload_timeout
        [fleet]     endpoints = ["http://etcd1:2379"], prefix ("/staple/"), cert_file, key_file, ca_file,
                    username, password, lease_ttl (10s), node, self_fetch (true), self_fetch_margin (2h),
                    unserved_after (1h), remove_unserved (true)

    With [fleet], nodes share one etcd cluster: the elected leader alone asks the CAs, every node staples
    what lands in etcd, session tickets made on one node resume on all of them (the ticket keys are shared
    and rotated by the leader), and when etcd is away every node staples from memory and fetches for itself
    what nears expiry. Each node claims the certificates it serves; the leader removes from etcd those
    that no node has served for unserved_after (renewed while their node was stopped, or left with it).
    'staple cache --config FILE' reads the fleet's store when no service answers.

    The first site whose names match the client's SNI serves it; a site without names (else the first site)
    serves clients that match none or send no SNI.

SIGNALS
    SIGHUP reloads the configuration file and every certificate file without dropping a connection: a
    renewed certificate is watched and fetched at once, the entry of the one it replaces dropped. SIGINT and
    SIGTERM stop accepting, let connections finish for drain_timeout (30s), and exit.

    --metrics-listen serves Prometheus metrics at /metrics; --responder-listen an RFC 5019 OCSP responder
    answering for the watched certificates from the cache (point nginx's ssl_stapling_responder or Apache's
    SSLStaplingForceURL at it, so a fleet asks the CA once).

EXIT STATUS
    0 after a signal's orderly stop, 1 when the service cannot start (one line naming the file, key or
    address at fault) or fails, 2 bad usage.
`

func serveCommand() command {
	return command{name: "serve", summary: "the stapling TLS service (with no configuration: a localhost lab)", run: runServe}
}

// serveFlags are the command line of serve, applied over the configuration file.
type serveFlags struct {
	config, dataDir, listen, cert, key, issuer, upstream, forward string
	metricsListen, responderListen, logLevel, logFormat           string
	resetCache                                                    bool
	set                                                           map[string]bool
}

func runServe(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "serve", serveManual)
	var f serveFlags
	fs.StringVar(&f.config, "config", "", "the TOML configuration file")
	fs.StringVar(&f.dataDir, "data-dir", config.DefaultDataDir, "cache database, admin socket and embedded lab")
	fs.StringVar(&f.listen, "listen", config.DefaultListen, "TLS address")
	fs.StringVar(&f.cert, "cert", "", "certificate chain to serve (PEM, any order; may hold the key)")
	fs.StringVar(&f.key, "key", "", "private key of --cert, when its file lacks it")
	fs.StringVar(&f.issuer, "issuer", "", "issuer certificate or CA bundle, when the chain lacks the issuing CA")
	fs.StringVar(&f.upstream, "upstream", "", "reverse-proxy HTTP to this http:// or https:// URL")
	fs.StringVar(&f.forward, "forward", "", "relay raw TCP to this HOST:PORT")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics at /metrics on this address")
	fs.StringVar(&f.responderListen, "responder-listen", "", "serve the caching OCSP responder on this address")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "auto", "json, text, or auto (text on a terminal)")
	fs.BoolVar(&f.resetCache, "reset-cache", false, "move a corrupt cache file aside (it is kept) and start empty")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		return usageError("serve: unexpected argument %q (run 'staple serve -h')", ops[0])
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.cert == "" && (f.key != "" || f.issuer != "" || f.upstream != "" || f.forward != "") {
		return usageError("serve: --key, --issuer, --upstream and --forward go with --cert")
	}
	if f.upstream != "" && f.forward != "" {
		return usageError("serve: --upstream or --forward, not both")
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log := service.NewLogger(env.Stderr, cfg.LogLevel, cfg.LogFormat)
	opts := service.Options{Version: Version(env), Log: log, Banner: env.Stdout, ResetCache: f.resetCache, Now: env.Now,
		// Once it listens, a signal starts the drain, which the engine's close (up to 10 s) follows.
		Started: func(service.Addrs) { drains(ctx, cfg.DrainTimeout.Duration+10*time.Second) }}
	load := f.load
	if len(cfg.Sites) == 0 {
		if load, err = embeddedLab(cfg, env, log, &opts, f.load); err != nil {
			return err
		}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan func() (*config.Config, error))
	go func() {
		for {
			select {
			case <-hup:
				log.Info().Msg("SIGHUP: reloading the configuration and the certificates")
				select {
				case reload <- load:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	opts.Reload = reload
	return service.Run(ctx, cfg, opts)
}

// embeddedLab makes serve's default when no site is configured: the lab under the data directory (made
// once) serves a localhost certificate, and its responder runs in the service (opts.Lab). It returns the
// reload function, which keeps the lab's site when the configuration reloaded still has none.
func embeddedLab(cfg *config.Config, env Env, log zerolog.Logger, opts *service.Options, load func() (*config.Config, error)) (func() (*config.Config, error), error) {
	if err := service.EnsureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	h, err := lab.OpenLocalhost(filepath.Join(cfg.DataDir, config.LabDir), cfg.LabResponderURL, env.now(), log)
	if err != nil {
		return nil, err
	}
	src, err := h.Source(log.With().Str("component", "lab-responder").Logger())
	if err != nil {
		return nil, err
	}
	opts.Lab = &service.LabResponder{Addr: h.Addr, Source: src, RootFile: h.Lab.Path(lab.RootCertFile)}
	site := config.Site{Cert: h.CertFile, Key: h.KeyFile}
	cfg.Sites = []config.Site{site}
	return func() (*config.Config, error) {
		c, err := load()
		if err == nil && len(c.Sites) == 0 {
			c.Sites = []config.Site{site}
		}
		return c, err
	}, nil
}

// load reads the configuration file, when there is one, and applies the flags given over it.
func (f *serveFlags) load() (*config.Config, error) {
	cfg := &config.Config{}
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return nil, err
		}
	}
	for _, o := range []struct {
		flag string
		dst  *string
		v    string
	}{
		{"data-dir", &cfg.DataDir, f.dataDir}, {"listen", &cfg.Listen, f.listen},
		{"metrics-listen", &cfg.MetricsListen, f.metricsListen}, {"responder-listen", &cfg.ResponderListen, f.responderListen},
		{"log-level", &cfg.LogLevel, f.logLevel}, {"log-format", &cfg.LogFormat, f.logFormat},
	} {
		if f.set[o.flag] {
			*o.dst = o.v
		}
	}
	if f.cert != "" {
		site := config.Site{Cert: f.cert, Key: f.key, Issuer: f.issuer, Upstream: f.upstream, Forward: f.forward}
		replaced := false
		for i, s := range cfg.Sites {
			if len(s.Names) == 0 {
				cfg.Sites[i], replaced = site, true
			}
		}
		if !replaced {
			cfg.Sites = append(cfg.Sites, site)
		}
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return cfg, nil
}
