package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"staple/admin"
	"staple/cache"
	"staple/fleet"
	"staple/responder"
	"staple/stapler"
	"staple/tlsserver"
)

// Options is what Run needs besides the configuration.
type Options struct {
	// Version is staple's version, for the User-Agent, the status page and the admin API.
	Version string
	// Log receives the service's structured log; the zero Logger logs nothing.
	Log zerolog.Logger
	// Banner receives the few lines a person at a terminal reads once the service is up (where it listens,
	// and for the embedded default the openssl command that shows the staple). nil prints none.
	Banner io.Writer
	// ResetCache moves a corrupt cache file aside (never deleting it) and starts with an empty cache.
	ResetCache bool
	// Reload delivers reload requests (SIGHUP): the configuration file, when there is one, and every
	// certificate file are read again. Reload returns the configuration to apply; nil means none arrive.
	Reload <-chan func() (*Config, error)
	// Started, if not nil, is called once everything listens, with the addresses bound.
	Started func(Addrs)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for the jitter of refresh times; nil means math/rand.
	Rand func() float64
}

// Addrs are the addresses the service listens on ("" for a listener that is off).
type Addrs struct {
	TLS, Metrics, Responder, LabResponder, AdminSocket string
}

// Service is a running staple serve: the stapler with its cache, the TLS server, and the listeners around
// them. It lives inside Run.
type Service struct {
	cfg     *Config
	opts    Options
	base    zerolog.Logger // the logger given, for the parts that name their own component
	log     zerolog.Logger
	store   *cache.Store // the local cache file; nil in a fleet
	storage stapler.Storage
	// storagePath says where the responses live, for the admin API.
	storagePath string
	fleet       *fleetNode // nil when the node stands alone
	stapler     *stapler.Stapler
	admin       *admin.Engine
	metrics     *Metrics
	tls         *tlsserver.Server
	http        *http.Server
	httpLn      *connListener
	conns       sync.Map // *tls.Conn → *connRecord, for the HTTP side of a connection
	sites       atomic.Pointer[siteSet]
	export      *exportQueue
	lab         *embeddedLab
	started     time.Time

	handshakes, stapled atomic.Int64

	// forwardCtx ends the raw TCP relays when the drain timeout has passed.
	forwardCtx    context.Context
	forwardCancel context.CancelFunc
}

func (s *Service) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Run starts the service described by cfg and serves until ctx ends, then drains connections for the
// configured DrainTimeout and stops. Everything that can be wrong at start (a bad certificate, a key that
// does not match, an occupied port, a cache held by another process) is an error before anything listens.
func Run(ctx context.Context, cfg *Config, o Options) (err error) {
	if err := cfg.Check(); err != nil {
		return err
	}
	s := &Service{cfg: cfg, opts: o, base: o.Log, log: o.Log.With().Str("component", "service").Logger()}
	s.started = s.now()
	if err := ensureDataDir(cfg.DataDir); err != nil {
		return err
	}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop() // runs before wg.Wait: the background loops end, then Run returns
	background := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && ctx.Err() == nil {
				s.log.Error().Err(err).Str("part", name).Msg("stopped")
			}
		}()
	}

	if len(cfg.Sites) == 0 {
		if s.lab, err = prepareEmbeddedLab(cfg, s.log); err != nil {
			return err
		}
	}
	sites, err := loadSites(cfg, s.base)
	if err != nil {
		return err
	}
	if cfg.Fleet.Enabled() {
		if s.fleet, err = s.joinFleet(ctx); err != nil {
			return err
		}
		closers = append(closers, s.fleet.close)
		s.storage, s.storagePath = s.fleet.store, s.fleet.describe()
	} else {
		if s.store, err = openCache(filepath.Join(cfg.DataDir, DatabaseName), o.ResetCache, s.now, s.log); err != nil {
			return err
		}
		closers = append(closers, func() { s.store.Close() })
		s.storage, s.storagePath = s.store, s.store.Path()
	}

	// Everything that binds a port does so before anything starts, so that a port in use is one clear error.
	tlsLn, err := listenTCP("listen", cfg.Listen)
	if err != nil {
		return err
	}
	closers = append(closers, func() { tlsLn.Close() })
	var metricsLn, responderLn, labLn net.Listener
	if cfg.MetricsListen != "" {
		if metricsLn, err = listenTCP("metrics_listen", cfg.MetricsListen); err != nil {
			return err
		}
		closers = append(closers, func() { metricsLn.Close() })
	}
	if cfg.ResponderListen != "" {
		if responderLn, err = listenTCP("responder_listen", cfg.ResponderListen); err != nil {
			return err
		}
		closers = append(closers, func() { responderLn.Close() })
	}
	if s.lab != nil {
		if labLn, err = listenTCP("the embedded lab's responder ("+s.lab.lab.ResponderURL+")", s.lab.addr); err != nil {
			return err
		}
		closers = append(closers, func() { labLn.Close() })
	}
	adminPath := filepath.Join(cfg.DataDir, admin.SocketName)
	adminLn, err := admin.Listen(adminPath)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	closers = append(closers, func() { adminLn.Close(); os.Remove(adminPath) })

	if s.lab != nil {
		src, err := s.lab.source(s.base)
		if err != nil {
			return err
		}
		rs := &responder.Responder{Source: src, Log: s.base.With().Str("component", "lab-responder").Logger()}
		background("lab-responder", func() error { return rs.Serve(ctx, labLn) })
	}

	s.metrics = NewMetrics(s.entries, func() bool { return s.stapler.Ready() }, s.now)
	s.export = newExportQueue(s.base.With().Str("component", "export").Logger())
	if s.stapler, err = stapler.New(s.staplerConfig()); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	s.admin = &admin.Engine{Stapler: s.stapler, Database: s.storagePath, Now: o.Now, AddStats: s.addStats}
	if s.fleet != nil {
		s.admin.ServedBy = s.fleet.store.ServedBy
	}
	if s.fleet != nil {
		background("fleet-election", func() error { return s.fleet.elector.Run(ctx) })
		s.fleet.settle(ctx)
	}
	if err := s.stapler.Start(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if s.fleet != nil {
		watcher := fleet.NewWatcher(s.fleet.cli, s.fleet.cfg, s.stapler)
		background("fleet-watch", func() error { return watcher.Run(ctx) })
		claims := fleet.NewClaims(s.fleet.cli, s.fleet.cfg, s.fleet.name, s.stapler.Watched,
			func() bool { return s.fleet.elector.Role() == stapler.Leader })
		background("fleet-claims", func() error { return claims.Run(ctx) })
	}
	closers = append(closers, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.stapler.Close(cctx)
	})
	if err := s.install(sites, nil); err != nil {
		return err
	}

	s.tls = &tlsserver.Server{
		SecureContext:    sites.def.context,
		TLSConfig:        &tls.Config{MinVersion: tls.VersionTLS12, Time: o.Now},
		HandshakeTimeout: cfg.HandshakeTimeout.Duration,
		SessionTimeout:   cfg.SessionTTL.Duration,
		MaxConnections:   cfg.MaxConnections,
		OCSPRequest:      s.ocspRequest,
		SecureConnection: s.secureConnection,
		ClientError:      s.clientError,
		AcceptError:      func(err error) { s.log.Warn().Err(err).Msg("accept") },
	}
	switch {
	case s.fleet == nil:
		// One node: ticket keys in the cache file, so that resumption survives a restart; with
		// sessions = "store", the sessions too (written behind the handshake).
		s.tls.TicketKeyStore = ticketKeyStore{s.store}
		if cfg.Sessions == "store" {
			sessions := &tlsserver.WriteBehindSessionStore{Backend: s.store, TTL: cfg.SessionTTL.Duration, Now: s.opts.Now}
			background("sessions", func() error {
				sessions.Run(ctx, func(err error) { s.log.Warn().Err(err).Msg("TLS sessions not stored") })
				return nil
			})
			s.tls.NewSession, s.tls.ResumeSession = sessions.NewSession, sessions.ResumeSession
		}
	default:
		// A fleet: ticket keys shared through etcd, so a ticket from any node resumes on every node; with
		// sessions = "store", the sessions in etcd.
		s.tls.TicketKeyStore = s.fleet.tickets
		if n := s.fleet.sessions; n != nil {
			s.tls.NewSession, s.tls.ResumeSession = n.NewSession, n.ResumeSession
		}
		background("fleet-tickets", func() error { return s.fleet.tickets.Watch(ctx, s.tls.UseTicketKeys) })
	}
	if err := s.tls.SetContexts(sites.def.context, sites.named); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	s.httpLn = newConnListener(tlsLn.Addr())
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext:       s.connContext,
		ConnState:         s.connState,
		ErrorLog:          newStdLogger(s.base.With().Str("component", "http").Logger()),
	}
	s.forwardCtx, s.forwardCancel = context.WithCancel(context.Background())
	defer s.forwardCancel()
	background("http", func() error {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	tlsDone := make(chan error, 1)
	go func() { tlsDone <- s.tls.Serve(tlsLn) }()
	if s.fleet == nil { // in a fleet, the others serve certificates this node does not
		// Housekeeping, after serving has begun: a large stale cache must not delay the first handshake.
		background("forget", func() error { s.forgetUnserved(); return nil })
	}

	background("admin", func() error {
		return admin.Serve(ctx, adminLn, s.admin, s.base.With().Str("component", "admin").Logger())
	})
	if metricsLn != nil {
		background("metrics", func() error { return serveHTTP(ctx, metricsLn, s.metricsHandler()) })
	}
	if responderLn != nil {
		rs := &responder.Responder{Source: &cachingSource{svc: s}, Now: s.opts.Now, Log: s.base.With().Str("component", "responder").Logger()}
		background("responder", func() error { return rs.Serve(ctx, responderLn) })
	}
	if spec := cfg.Tickets.Rotate; spec != "" {
		sched, err := stapler.ParseSchedule(spec)
		if err != nil {
			return cfg.Errorf("tickets.rotate", "%v", err)
		}
		rotate := s.rotateTicketKeys
		if s.fleet != nil {
			rotate = func() { s.rotateFleetTicketKeys(ctx) }
		}
		c := cron.New()
		c.Schedule(sched, cron.FuncJob(rotate))
		c.Start()
		closers = append(closers, func() { <-c.Stop().Done() })
	}

	addrs := Addrs{TLS: tlsLn.Addr().String(), AdminSocket: adminPath}
	if metricsLn != nil {
		addrs.Metrics = metricsLn.Addr().String()
	}
	if responderLn != nil {
		addrs.Responder = responderLn.Addr().String()
	}
	if labLn != nil {
		addrs.LabResponder = labLn.Addr().String()
	}
	s.logStarted(addrs)
	if o.Started != nil {
		o.Started(addrs)
	}
	if o.Banner != nil {
		background("banner", func() error { s.printBanner(ctx, addrs); return nil })
	}

	for {
		select {
		case err := <-tlsDone:
			if errors.Is(err, tlsserver.ErrServerClosed) {
				err = nil
			}
			return fmt.Errorf("service: the TLS listener failed: %w", err)
		case load := <-o.Reload:
			s.reload(load)
		case <-ctx.Done():
			s.drain()
			return nil
		}
	}
}

// staplerConfig returns the stapler's configuration: the [fetch] table's, with what the service adds.
func (s *Service) staplerConfig() stapler.Config {
	c := s.cfg.StaplerConfig(s.opts.Version, s.opts.Now)
	c.Storage, c.Rand = s.storage, s.opts.Rand
	c.Role = s.role()
	c.SelfFetchMargin = s.cfg.Fleet.selfFetchMargin()
	c.Logger = s.base // the stapler names itself
	c.OnEvent = s.onEvent
	return c
}

// entries lists every certificate the stapler knows, as the status page and the metrics show them.
func (s *Service) entries() []admin.Entry {
	es, _ := s.admin.Entries(context.Background())
	return es
}

// addStats adds to the engine's figures what the service counts.
func (s *Service) addStats(st *admin.Stats) {
	st.Started, st.ServiceVersion = s.started, s.opts.Version
	st.Handshakes, st.Stapled = s.handshakes.Load(), s.stapled.Load()
}

// role is the stapler's Role: the election's in a fleet, nil (Solo) otherwise.
func (s *Service) role() func() stapler.Role {
	if s.fleet == nil {
		return nil
	}
	return s.fleet.elector.Role
}

// onEvent feeds the metrics and the exports from the stapler's events.
func (s *Service) onEvent(ev stapler.Event) {
	switch ev.Kind {
	case stapler.Updated:
		if ev.Latency > 0 {
			s.metrics.Fetched("ok", ev.Latency)
		}
		s.exportKey(ev.Key)
	case stapler.FetchFailed:
		s.metrics.Fetched(ev.Reason, ev.Latency)
	case stapler.StatusChanged:
		s.metrics.StatusChanged(ev.Status.String())
	case stapler.PersistFailed:
		s.metrics.PersistFailed()
	}
}

// forgetUnserved drops the cached certificates no site serves any more (renewed or removed while the service
// was stopped), as a reload does, so that their responders are not asked for them again.
func (s *Service) forgetUnserved() {
	gone, err := s.stapler.ForgetUnwatched()
	if err != nil {
		s.log.Warn().Err(err).Int("certificates", len(gone)).Msg("cached certificates no site serves could not all be removed from the cache file")
		return
	}
	if len(gone) == 0 {
		return
	}
	ev := s.log.Info().Int("certificates", len(gone))
	if len(gone) <= 10 {
		keys := make([]string, len(gone))
		for i, k := range gone {
			keys[i] = k.String()
		}
		ev = ev.Strs("keys", keys)
	}
	ev.Msg("dropped cached certificates that no site serves any more")
}

// drain stops accepting, lets connections finish for DrainTimeout, then cuts what is left.
func (s *Service) drain() {
	timeout := s.cfg.DrainTimeout.Duration
	s.log.Info().Int("connections", s.tls.Connections()).Stringer("timeout", timeout).Msg("shutting down: draining connections")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.tls.Close(nil)
	go s.http.Shutdown(ctx) // closes idle keep-alive connections, waits for requests in flight
	if err := s.tls.Shutdown(ctx); err != nil && !errors.Is(err, tlsserver.ErrNotListening) {
		s.log.Warn().Int("connections", s.tls.Connections()).Msg("drain timeout: closing the connections left")
	}
	s.forwardCancel()
	s.http.Close()
	s.httpLn.Close()
	s.export.close(ctx)
}

// clientError logs, at debug level, a connection that ended before its handshake completed: on the
// internet most are scanners and clients that gave up, not the operator's concern.
func (s *Service) clientError(c *tlsserver.Conn, err error) {
	s.log.Debug().Err(err).Str("remote", c.RemoteAddr().String()).Msg("TLS handshake did not complete")
}

func (s *Service) rotateTicketKeys() {
	if err := s.tls.RotateTicketKeys(); err != nil {
		s.log.Error().Err(err).Msg("session ticket keys rotated but not stored: a restart will not resume earlier sessions")
		return
	}
	s.log.Info().Msg("session ticket keys rotated (the previous key still decrypts)")
}

func (s *Service) logStarted(a Addrs) {
	ev := s.log.Info().Str("listen", a.TLS).Str("data_dir", s.cfg.DataDir).Str("admin_socket", a.AdminSocket).
		Int("certificates", len(s.sites.Load().all)).Bool("ready", s.stapler.Ready())
	if a.Metrics != "" {
		ev = ev.Str("metrics", "http://"+a.Metrics+"/metrics")
	}
	if a.Responder != "" {
		ev = ev.Str("responder", "http://"+a.Responder)
	}
	if a.LabResponder != "" {
		ev = ev.Str("lab_responder", "http://"+a.LabResponder)
	}
	ev.Str("version", s.opts.Version).Msg("staple serving")
}

// ensureDataDir creates the data directory (0700) and checks that it can be written.
func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("service: data directory %s: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("service: data directory %s is not writable: %w", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// openCache opens the cache file; a corrupt one is moved aside when reset is set.
func openCache(path string, reset bool, now func() time.Time, log zerolog.Logger) (*cache.Store, error) {
	st, err := cache.Open(path, cache.Options{Now: now})
	if errors.Is(err, cache.ErrCorrupt) && reset {
		t := time.Now()
		if now != nil {
			t = now()
		}
		moved, rerr := cache.Reset(path, t)
		if rerr != nil {
			return nil, fmt.Errorf("service: --reset-cache: %w", rerr)
		}
		log.Warn().Str("moved_to", moved).Msg("the corrupt cache file was moved aside; starting with an empty cache")
		st, err = cache.Open(path, cache.Options{Now: now})
	}
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	return st, nil
}

// listenTCP binds addr, with an error that names the setting and says what to do when the port is taken.
func listenTCP(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("service: %s %s: the address is in use (another server listens there; choose another or stop it)", what, addr)
		}
		return nil, fmt.Errorf("service: %s %s: %w", what, addr, err)
	}
	return ln, nil
}

// serveHTTP serves h on ln until ctx ends.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Service) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	return mux
}
