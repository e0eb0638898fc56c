package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"staple/admin"
	"staple/certs"
	"staple/config"
	"staple/responder"
	"staple/service/state"
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
	Reload <-chan func() (*config.Config, error)
	// Started, if not nil, is called once everything listens, with the addresses bound.
	Started func(Addrs)
	// Lab, when set, is an OCSP responder served beside the TLS server: staple serve's embedded default
	// answers there for the certificates of its lab.
	Lab *LabResponder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for the jitter of refresh times; nil means math/rand.
	Rand func() float64
}

// LabResponder is the embedded default's OCSP responder (Options.Lab).
type LabResponder struct {
	// Addr is where it listens: the host and port of the responder URL its certificates name.
	Addr string
	// Source signs its answers (the lab's, from its index.txt).
	Source responder.Source
	// RootFile is the lab's root certificate, which a client trusts to see the staple (for the banner).
	RootFile string
}

// Addrs are the addresses the service listens on ("" for a listener that is off).
type Addrs struct {
	TLS, Metrics, Responder, LabResponder, AdminSocket string
}

// Service is a running staple serve: the engine and where it keeps its state, the TLS front that staples
// from it, and the parts around them (exports, metrics, the caching responder, the admin socket). It lives
// inside Run.
type Service struct {
	cfg     *config.Config
	opts    Options
	base    zerolog.Logger // the logger given, for the parts that name their own component
	log     zerolog.Logger
	started time.Time

	state   *state.State // the cache file, or the fleet's etcd
	stapler *stapler.Stapler
	admin   *admin.Engine
	metrics *Metrics
	front   *front
	exports *exports
	cached  *responder.Cache // the caching responder's answers; nil when it is off
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
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	s := &Service{cfg: cfg, opts: o, base: o.Log, log: o.Log.With().Str("component", "service").Logger()}
	s.started = s.now()
	var closing closers
	defer closing.run()
	ctx, stop := context.WithCancel(ctx)
	bg := &group{ctx: ctx, log: s.log}
	defer bg.wait()
	defer stop() // runs before bg.wait: the background loops end, then Run returns

	sites, err := s.open(&closing)
	if err != nil {
		return err
	}
	ln, err := listen(cfg, o.Lab, &closing)
	if err != nil {
		return err
	}
	if o.Lab != nil { // before the engine, whose first fetches ask it
		rs := &responder.Responder{Source: o.Lab.Source, Log: s.base.With().Str("component", "lab-responder").Logger()}
		bg.run("lab-responder", func() error { return rs.Serve(ctx, ln.lab) })
	}
	if err := s.startEngine(ctx, sites, bg, &closing); err != nil {
		return err
	}
	if err := s.install(sites); err != nil {
		return err
	}
	tlsDone, err := s.serve(ctx, ln, sites, bg, &closing)
	if err != nil {
		return err
	}
	s.announce(ctx, ln.addrs(), bg)
	for {
		select {
		case err := <-tlsDone:
			if errors.Is(err, tlsserver.ErrServerClosed) {
				err = nil
			}
			s.drain() // the connections left, the HTTP side and the exports end as on a stop
			return fmt.Errorf("service: the TLS listener failed: %w", err)
		case load := <-o.Reload:
			s.reload(ctx, load)
		case <-ctx.Done():
			s.drain()
			return nil
		}
	}
}

// open makes the data directory ready, loads the sites' certificates, and opens where the engine's state
// lives: the cache file, or the fleet's etcd.
func (s *Service) open(closing *closers) (*siteSet, error) {
	if err := EnsureDataDir(s.cfg.DataDir); err != nil {
		return nil, err
	}
	sites, err := loadSites(s.cfg, s.base)
	if err != nil {
		return nil, err
	}
	if s.state, err = state.Open(s.cfg, s.opts.ResetCache, s.opts.Now, s.base); err != nil {
		return nil, err
	}
	closing.add(s.state.Close)
	return sites, nil
}

// startEngine builds the stapler over the state, and the parts its events reach (metrics, exports, the TLS
// front with the sites), then starts it (a warm start from what is stored), and the fleet's loops when there
// is a fleet.
func (s *Service) startEngine(ctx context.Context, sites *siteSet, bg *group, closing *closers) error {
	s.metrics = NewMetrics(s.entries, func() bool { return s.stapler.Ready() }, s.now)
	s.exports = newExports(s.base.With().Str("component", "export").Logger())
	var err error
	if s.stapler, err = stapler.New(s.staplerConfig()); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	s.front = newFront(s.cfg, sites, s.stapler.Current, s.metrics, s.opts)
	closing.add(s.front.forwardCancel)
	s.exports.staple, s.exports.sites = s.stapler.Staple, s.front.sites.Load
	s.admin = &admin.Engine{Stapler: s.stapler, Database: s.state.Path, ServedBy: s.state.ServedBy(), Now: s.opts.Now, AddStats: s.addStats}
	closing.add(func() { // registered before Start: a failed start ends the stapler too
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.stapler.Close(cctx)
	})
	s.state.Elect(ctx, bg.run, s.stapler, s.log)
	if err := s.stapler.Start(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	s.state.Follow(ctx, bg.run, s.stapler)
	return nil
}

// serve makes the TLS front over the sites and starts serving: TLS with its HTTP side, the admin socket, the
// metrics and the caching responder when they listen, and the rotation of ticket keys.
func (s *Service) serve(ctx context.Context, ln *listeners, sites *siteSet, bg *group, closing *closers) (<-chan error, error) {
	s.state.KeepSessions(ctx, s.cfg, s.front.tls, s.opts.Now, bg.run, s.log)
	tlsDone, err := s.front.serve(ln.tls, bg, s.base)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s.exportAll(sites)
	if !s.state.Fleet() { // in a fleet, the others serve certificates this node does not
		// Housekeeping, after serving has begun: a large stale cache must not delay the first handshake.
		bg.run("forget", func() error { s.forgetUnserved(); return nil })
	}
	adminLog := s.base.With().Str("component", "admin").Logger()
	bg.run("admin", func() error { return admin.Serve(ctx, ln.admin, s.admin, adminLog) })
	if ln.metrics != nil {
		bg.run("metrics", func() error { return serveHTTP(ctx, ln.metrics, s.metrics.mux()) })
	}
	if ln.responder != nil {
		s.cached = &responder.Cache{Lookup: s.lookup, Hash: s.cfg.Fetch.CertIDHash()}
		s.cached.Serve(sites.certificates())
		rs := &responder.Responder{Source: s.cached, Now: s.opts.Now, Log: s.base.With().Str("component", "responder").Logger()}
		bg.run("responder", func() error { return rs.Serve(ctx, ln.responder) })
	}
	return tlsDone, s.rotateTickets(ctx, closing)
}

// staplerConfig returns the stapler's configuration: the [fetch] table's, with what the service adds.
func (s *Service) staplerConfig() stapler.Config {
	c := s.cfg.StaplerConfig(s.opts.Version, s.opts.Now)
	c.Storage, c.Rand, c.Role = s.state.Storage, s.opts.Rand, s.state.Role()
	c.Logger = s.base // the stapler names itself
	c.OnEvent = s.onEvent
	return c
}

// onEvent feeds the metrics and the exports from the stapler's events.
func (s *Service) onEvent(ev stapler.Event) {
	switch ev.Kind {
	case stapler.Updated:
		if ev.Latency > 0 {
			s.metrics.Fetched("ok", ev.Latency)
		}
		s.exports.changed(ev.Key)
	case stapler.FetchFailed:
		s.metrics.Fetched(ev.Reason, ev.Latency)
	case stapler.StatusChanged:
		s.metrics.StatusChanged(ev.Status.String())
	case stapler.PersistFailed:
		s.metrics.PersistFailed()
	}
}

// lookup is the caching responder's view of the engine: the staple of key, if any may be served now.
func (s *Service) lookup(key certs.Key) (raw []byte, thisUpdate, expires time.Time) {
	if st := s.stapler.Current(key); st != nil {
		return st.Raw, st.ThisUpdate, st.Expires
	}
	return nil, time.Time{}, time.Time{}
}

// entries lists every certificate the stapler knows, as the status page and the metrics show them.
func (s *Service) entries() []admin.Entry {
	es, _ := s.admin.Entries(context.Background())
	return es
}

// served is what the status page shows: the certificates this node's sites serve. Not everything stored: the
// page is public, and a fleet's store holds the other nodes' sites too.
func (s *Service) served() []admin.Entry {
	now := s.now()
	var out []admin.Entry
	for _, in := range s.stapler.Entries() {
		if in.Watched {
			out = append(out, admin.EntryOf(in, now))
		}
	}
	return out
}

// addStats adds to the engine's figures what the service counts.
func (s *Service) addStats(st *admin.Stats) {
	st.Started, st.ServiceVersion = s.started, s.opts.Version
	st.Handshakes, st.Stapled = s.front.handshakes.Load(), s.front.stapled.Load()
}

// drain stops accepting, lets connections finish for DrainTimeout, then cuts what is left.
func (s *Service) drain() {
	timeout := s.cfg.DrainTimeout.Duration
	s.log.Info().Int("connections", s.front.tls.Connections()).Stringer("timeout", timeout).Msg("shutting down: draining connections")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !s.front.drain(ctx) {
		s.log.Warn().Int("connections", s.front.tls.Connections()).Msg("drain timeout: closing the connections left")
	}
	s.exports.close(ctx)
}

// closers are what Run releases when it returns, the last added first.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }

func (c *closers) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}

// group runs the service's background loops and waits for them; a loop that fails while the service runs is
// logged.
type group struct {
	ctx context.Context
	log zerolog.Logger
	wg  sync.WaitGroup
}

func (g *group) run(name string, fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil && g.ctx.Err() == nil {
			g.log.Error().Err(err).Str("part", name).Msg("stopped")
		}
	}()
}

func (g *group) wait() { g.wg.Wait() }
