package stapler

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// Fetcher gets a verified OCSP response for leaf as issued by issuer. ocspfetch.Client is the real one. It
// must honour ctx and be safe for concurrent use.
type Fetcher interface {
	Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error)
}

// Storage is where the stapler keeps its state at rest. *cache.Store (bbolt) is the embedded one. Every method
// is called outside the stapler's locks and never during network I/O.
type Storage interface {
	// Certs and Responses walk everything stored, for the warm start; a record that does not decode comes with
	// an error and is skipped.
	Certs(fn func(key certs.Key, c cache.Cert, err error) error) error
	Responses(fn func(key certs.Key, r cache.Response, err error) error) error
	// Cert returns one watched certificate (cache.ErrNotFound when absent).
	Cert(key certs.Key) (cache.Cert, error)
	PutCert(key certs.Key, c cache.Cert) error
	PutResponse(key certs.Key, r cache.Response) error
	AddAttempt(key certs.Key, a cache.Attempt) error
	History(key certs.Key) ([]cache.Attempt, error)
	// Remove forgets a certificate, its response and its history.
	Remove(key certs.Key) error
}

var _ Storage = (*cache.Store)(nil)

// Errors of the stapler.
var (
	// ErrNotWatched: the key names no certificate the stapler knows.
	ErrNotWatched = errors.New("stapler: certificate is not watched")
	// ErrNotFound and ErrAmbiguous: Lookup found no certificate, or several, for the key an operator gave.
	ErrNotFound  = errors.New("stapler: no certificate matches")
	ErrAmbiguous = errors.New("stapler: the key matches several certificates; give more of the issuer hash")
	// ErrOlderResponse: a response (fetched, offered or imported) is older, by ocspwire.Stamp, than the one
	// held, which is kept.
	ErrOlderResponse = errors.New("stapler: the response held is newer")
	// ErrNotStored: a response or certificate was taken, and is stapled, but its write to storage failed. A
	// running stapler writes it again at its next sweep; a command's engine loses it when it ends.
	ErrNotStored = errors.New("stapler: held, but not stored")
	// ErrClosed: the stapler was closed.
	ErrClosed = errors.New("stapler: closed")
	// ErrNoCertificate: an entry restored from storage whose certificate record is missing or unreadable, so
	// it cannot be fetched.
	ErrNoCertificate = errors.New("stapler: no certificate to fetch for")
)

// Defaults of Config.
const (
	DefaultSweep        = "@every 30s"
	DefaultMaxPerHost   = 4
	DefaultMaxInFlight  = 16
	DefaultFetchTimeout = 30 * time.Second
)

// Config configures a Stapler. Only Fetcher is required; every zero field has the default its comment gives.
type Config struct {
	// Fetcher gets verified responses.
	Fetcher Fetcher
	// Storage keeps responses, watched certificates and fetch history across restarts. Nil keeps everything
	// in memory only.
	Storage Storage
	// Policy decides when to refresh and how to back off (ocspfetch.Policy's defaults when zero).
	Policy ocspfetch.Policy
	// Sweep is the cron spec of the scheduler's sweep, which starts the fetches that have come due (an
	// optional seconds field is accepted, and descriptors like "@every 30s"). Empty means DefaultSweep.
	Sweep string
	// MaxPerHost bounds the requests in flight to one responder host; MaxInFlight bounds them overall. Zero
	// means DefaultMaxPerHost and DefaultMaxInFlight.
	MaxPerHost, MaxInFlight int
	// FetchTimeout bounds one fetch, on top of the fetcher's own deadlines. Zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Manual makes a stapler that fetches only when asked (Refresh, RefreshAll): Start loads the storage and
	// starts no sweep, and nothing is fetched of its own accord. The command line runs the engine so over a
	// store no service holds, for the same operations a service answers on its admin socket.
	Manual bool
	// StapleUnknown staples verified "unknown" responses. By default they are held (and shown) but not
	// stapled.
	StapleUnknown bool
	// Now returns the current time. Nil means time.Now, which Staple reads only within 50 ms of a staple's
	// expiry (see hotClock); set, it is called on every Staple. The sweep and retry timers run on the runtime's clock, so a fake Now must advance with
	// it (tests use testing/synctest).
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for the policy's jitter. Nil means math/rand/v2.Float64.
	Rand func() float64
	// Role, when set, puts the stapler in a fleet (fleet.go): it is asked, under the stapler's lock, before
	// the scheduler starts a fetch that has come due, and must answer at once (an atomic load). Solo and
	// Leader fetch as scheduled; Follower fetches nothing of its own accord; NoLeader fetches only responses
	// missing or within SelfFetchMargin of expiry. Refresh fetches whatever the role. Nil means Solo.
	Role func() Role
	// SelfFetchMargin is how long before its expiry a node with no leader in sight fetches a response for
	// itself. Zero means DefaultSelfFetchMargin; negative means never (the node waits for a leader).
	SelfFetchMargin time.Duration
	// Logger receives the stapler's structured log. The zero Logger logs nothing.
	Logger zerolog.Logger
	// OnEvent, when set, is called for every Event, synchronously and outside the stapler's locks. It must
	// not block for long: it holds up the fetch that raised the event.
	OnEvent func(Event)
}

// Stapler keeps a fresh, verified OCSP response for every watched certificate and hands the right bytes to the
// TLS hot path. It is safe for concurrent use. Create it with New, then Start it.
type Stapler struct {
	cfg        Config
	now        func() time.Time
	rnd        func() float64
	log        zerolog.Logger
	index      *index
	schedule   cron.Schedule
	maxPerHost int
	maxTotal   int
	timeout    time.Duration
	metrics    counters

	ctx    context.Context // cancelled by Close: aborts fetches in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetch and persist goroutines

	mu       sync.Mutex
	entries  map[certs.Key]*entry
	queues   map[string][]*entry // per responder host, FIFO
	hostBusy map[string]int
	busy     int
	started  bool
	closed   bool
	cron     *cron.Cron

	hot *hotClock // the hot path's clock; nil when Config.Now is set
}

// New returns a stapler configured by cfg. It does no I/O: Start loads the storage and starts the scheduler.
func New(cfg Config) (*Stapler, error) {
	if cfg.Fetcher == nil {
		return nil, errors.New("stapler: Config.Fetcher is nil")
	}
	spec := cfg.Sweep
	if spec == "" {
		spec = DefaultSweep
	}
	sched, err := ParseSchedule(spec)
	if err != nil {
		return nil, fmt.Errorf("stapler: the sweep: %w", err)
	}
	s := &Stapler{
		cfg:        cfg,
		now:        cfg.Now,
		rnd:        cfg.Rand,
		log:        cfg.Logger.With().Str("component", "stapler").Logger(),
		index:      newIndex(),
		schedule:   sched,
		maxPerHost: orDefault(cfg.MaxPerHost, DefaultMaxPerHost),
		maxTotal:   orDefault(cfg.MaxInFlight, DefaultMaxInFlight),
		timeout:    cfg.FetchTimeout,
		entries:    map[certs.Key]*entry{},
		queues:     map[string][]*entry{},
		hostBusy:   map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
		s.hot = &hotClock{}
	}
	if s.rnd == nil {
		s.rnd = rand.Float64
	}
	if s.timeout <= 0 {
		s.timeout = DefaultFetchTimeout
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Staple returns the DER OCSP response to staple for key, or nil when there is none that may be stapled now.
// It is the TLS hot path: one lock-free map lookup and an expiry check, no I/O, no allocation. The caller must
// not modify the bytes.
func (s *Stapler) Staple(key certs.Key) []byte {
	if st := s.Current(key); st != nil {
		return st.Raw
	}
	return nil
}

// Current returns the staple record Staple hands out for key (its DER, expiry, status and thisUpdate), or
// nil when there is none that may be stapled now. Like Staple it does no I/O and no allocation; the record is
// immutable and replaced, never changed, by a newer response, so a caller may cache what it derives from it
// against the pointer.
func (s *Stapler) Current(key certs.Key) *Staple {
	st := s.index.Get(key)
	if st == nil {
		return nil
	}
	var now time.Time
	if s.hot != nil {
		// The cheap clock is never behind: when it says the staple is still valid, it is. Within a tick of
		// the expiry it cannot tell, and the exact clock decides.
		if now = s.hot.now(); !now.Before(st.Expires) {
			now = time.Now()
		}
	} else {
		now = s.now()
	}
	if !now.Before(st.Expires) {
		return nil
	}
	return st
}

// Start loads the storage into the index, so that every stored response that is still valid is served at
// once, schedules the watched certificates (those without a valid response are fetched right away), and
// starts the sweep. It fails only when the storage cannot be read at all; records that do not decode are
// logged and skipped.
func (s *Stapler) Start() error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return errors.New("stapler: Start called twice or after Close")
	}
	s.mu.Unlock()
	if err := s.warmStart(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.started = true
	if s.cfg.Manual {
		return nil
	}
	if s.hot != nil {
		s.hot.start()
	}
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	s.cron.Schedule(s.schedule, cron.FuncJob(s.sweep))
	s.cron.Start()
	now := s.now()
	for _, e := range s.entries {
		s.scheduleLocked(e, now)
	}
	s.dispatchLocked()
	return nil
}

// Close stops the sweep, cancels the fetches in flight and waits for them (or for ctx), then makes a last
// attempt to persist responses whose writes failed. Staple keeps answering from memory after Close.
func (s *Stapler) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	c := s.cron
	for _, e := range s.entries {
		e.stopTimer()
	}
	s.mu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
	if s.hot != nil && c != nil {
		s.hot.halt()
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stapler: close: %w", ctx.Err())
	}
	s.persistBacklog()
	return nil
}

// Ready reports whether the stapler has done what start-up asks: every Must-Staple certificate has a response
// that may be stapled now, and every other certificate has one or has had a fetch attempt since Start.
func (s *Stapler) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return false
	}
	now := s.now()
	for _, e := range s.entries {
		if !e.fetchable() {
			continue
		}
		valid := e.resp != nil && e.resp.ValidAt(now) && s.stapleable(e.resp.Status)
		if e.mustStaple && !valid {
			return false
		}
		if !e.mustStaple && !valid && !e.attempted {
			return false
		}
	}
	return true
}

func (s *Stapler) stapleable(st ocspwire.Status) bool {
	return st == ocspwire.Good || st == ocspwire.Revoked || (st == ocspwire.Unknown && s.cfg.StapleUnknown)
}
