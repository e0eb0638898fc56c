package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options says what load to apply. The zero value of each field has the default given.
type Options struct {
	Addr       string // host:port; required
	ServerName string // SNI; "" sends none
	// Version pins the TLS version (tls.VersionTLS12 or tls.VersionTLS13); 0 lets them negotiate.
	Version uint16
	// Workers is the number of concurrent clients. Default 1.
	Workers int
	// Duration bounds the run; Count bounds the number of handshakes (0 = no bound). One must be set.
	Duration time.Duration
	Count    int64
	// Resume makes each worker resume the session of its previous handshake (tickets), after a first
	// full handshake per worker. With TLS 1.3 the ticket arrives after the handshake: the worker reads
	// until the first ticket has been stored (at most TicketWait), then closes.
	Resume bool
	// TicketWait bounds the wait for a TLS 1.3 ticket after a handshake when Resume is set. Default 1 s.
	TicketWait time.Duration
	// CurvePreferences, if set, is the client's key exchange list (tls.Config.CurvePreferences). Go's
	// default offers the post-quantum hybrid X25519MLKEM768 first, which a Go server takes and OpenSSL 3.0
	// does not know: pinning X25519 makes every server do the same key exchange.
	CurvePreferences []tls.CurveID
	// RootCAs verifies the server; nil skips verification (a benchmark of the server, not of the client).
	RootCAs *x509.CertPool
	// Staple, when set, is called with each handshake's stapled response (nil when none) and may judge it:
	// an error counts the handshake as a bad staple.
	Staple func(der []byte, cs tls.ConnectionState) error
	// DialTimeout bounds connecting and handshaking. Default 10 s.
	DialTimeout time.Duration
}

// Result is what a run measured.
type Result struct {
	Handshakes int64 // completed handshakes
	Resumed    int64 // of which resumed
	Stapled    int64 // of which carried a staple
	BadStaples int64 // staples Options.Staple rejected
	Errors     int64 // failed dials or handshakes
	FirstError error
	Elapsed    time.Duration
	P50, P99   time.Duration // handshake latency
}

// Rate returns handshakes per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Handshakes) / r.Elapsed.Seconds()
}

// Run applies the load and returns what it measured. It returns an error only for bad options; failures of
// the server are counted in Result.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Addr == "" || (o.Duration <= 0 && o.Count <= 0) {
		return Result{}, errors.New("loadgen: Addr and Duration or Count are required")
	}
	workers := max(o.Workers, 1)
	dialTimeout := o.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 10 * time.Second
	}
	ticketWait := o.TicketWait
	if ticketWait <= 0 {
		ticketWait = time.Second
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	// over reports the end of the run. The deadline is read off the clock too: the context learns of it
	// from a timer goroutine that a busy worker can hold off for a scheduler slice (10 ms and more with
	// GOMAXPROCS=1), during which every dial fails at once and would be counted as the server's error.
	deadline, hasDeadline := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || (hasDeadline && !time.Now().Before(deadline)) }
	var (
		res      Result
		issued   atomic.Int64
		errOnce  sync.Once
		mu       sync.Mutex
		lat      []time.Duration
		wg       sync.WaitGroup
		counters [5]atomic.Int64 // handshakes, resumed, stapled, bad, errors
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := &tls.Config{
				ServerName:         o.ServerName,
				RootCAs:            o.RootCAs,
				InsecureSkipVerify: o.RootCAs == nil,
				MinVersion:         o.Version,
				MaxVersion:         o.Version,
				CurvePreferences:   o.CurvePreferences,
			}
			var tickets *ticketCache
			if o.Resume {
				tickets = &ticketCache{ClientSessionCache: tls.NewLRUClientSessionCache(1)}
				cfg.ClientSessionCache = tickets
			}
			local := make([]time.Duration, 0, 1024)
			for !over() {
				if o.Count > 0 && issued.Add(1) > o.Count {
					break
				}
				t0 := time.Now()
				cs, err := handshake(ctx, o.Addr, cfg, tickets, dialTimeout, ticketWait)
				if err != nil {
					if over() {
						break
					}
					counters[4].Add(1)
					errOnce.Do(func() { res.FirstError = err })
					continue
				}
				local = append(local, time.Since(t0))
				counters[0].Add(1)
				if cs.DidResume {
					counters[1].Add(1)
				}
				if len(cs.OCSPResponse) > 0 {
					counters[2].Add(1)
				}
				if o.Staple != nil && o.Staple(cs.OCSPResponse, cs) != nil {
					counters[3].Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Handshakes, res.Resumed, res.Stapled, res.BadStaples, res.Errors =
		counters[0].Load(), counters[1].Load(), counters[2].Load(), counters[3].Load(), counters[4].Load()
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res, nil
}

// handshake dials, completes one TLS handshake (asking for status: Go's client always does) and closes.
// With tickets (Resume), a TLS 1.3 connection is read until the server's first ticket has been stored.
func handshake(ctx context.Context, addr string, cfg *tls.Config, tickets *ticketCache, timeout, ticketWait time.Duration) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	if tc.ConnectionState().Version == tls.VersionTLS13 && tickets != nil {
		// TLS 1.3 tickets arrive after the handshake, and Read goes on waiting for application data
		// after storing one: the cache ends the Read by moving the deadline to now once a ticket is in.
		tickets.arm(tc)
		tc.SetReadDeadline(time.Now().Add(ticketWait))
		var b [1]byte
		tc.Read(b[:])
		tickets.arm(nil)
	}
	return tc.ConnectionState(), nil
}

// ticketCache is a worker's session cache: while armed with a connection, storing a ticket ends that
// connection's pending Read. A worker uses it from its own goroutine only.
type ticketCache struct {
	tls.ClientSessionCache
	conn *tls.Conn
}

func (t *ticketCache) arm(c *tls.Conn) { t.conn = c }

func (t *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	t.ClientSessionCache.Put(key, cs)
	if t.conn != nil && cs != nil {
		t.conn.SetReadDeadline(time.Now())
	}
}
