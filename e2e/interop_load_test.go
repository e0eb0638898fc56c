//go:build interop

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"staple/e2e/harness"
)

// TestInteropLoadMaxConnections opens $STAPLE_LOAD_CONNS (10,000) TCP connections at once to staple serve
// with max_connections = $STAPLE_LOAD_MAX_CONNECTIONS (2,000), all held open by the client. The server must
// hold exactly max_connections of them and close every other one at once (the client reads EOF within a
// second or so, never a connection left waiting for a free slot); each one it held must then complete a
// handshake with a verified staple and get the status page. Once the clients have gone, the server's file
// descriptors, goroutines (go_goroutines) and RSS must come back to what they were before the load, within a
// tolerance, in $STAPLE_LOAD_SETTLE (60 s).
func TestInteropLoadMaxConnections(t *testing.T) {
	total := envInt(t, "STAPLE_LOAD_CONNS", 10000)
	limit := envInt(t, "STAPLE_LOAD_MAX_CONNECTIONS", 2000)
	settle := envDuration(t, "STAPLE_LOAD_SETTLE", 60*time.Second)
	if limit >= total {
		t.Fatalf("max_connections %d must be below the %d connections", limit, total)
	}
	row := outcome(t, fmt.Sprintf("load: %d connections, max_connections %d", total, limit), "Go net and crypto/tls clients")
	raiseNoFile(t, uint64(total+2048))

	f := newLabFixture(t, "@every 30s")
	labResponder(t, f, time.Hour)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	writeServeConfig(t, f, serveConfig{sweep: "@every 30s", top: []string{
		fmt.Sprintf("max_connections = %d", limit),
		`handshake_timeout = "90s"`, // longer than the whole load, so that no held connection is cut by it
		fmt.Sprintf("metrics_listen = %q", metricsAddr),
	}})
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	pid := srv.Cmd.Process.Pid
	client := newStapleClient(t, f, "site.test")
	client.waitGoodStaple(t, f.TLSAddr, 20*time.Second)
	for range 20 { // warm up: the first handshakes and pages allocate what every later one reuses
		servedOnce(t, client, f.TLSAddr)
	}
	base := settled(t, pid, metricsAddr)
	t.Logf("baseline: %v", base)

	peak := &peakSampler{pid: pid, metrics: metricsAddr, peak: base}
	stopSampling := peak.run()

	// Every connection at once, none closed by the client until all have been classified.
	const window = 5 * time.Second // a connection not closed by the server within this is held
	conns := make([]*loadConn, total)
	var wg sync.WaitGroup
	dialing := make(chan struct{}, 256)
	began := time.Now()
	for i := range conns {
		dialing <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", f.TLSAddr, 30*time.Second)
			<-dialing
			lc := &loadConn{c: c, dialed: time.Now(), err: err}
			conns[i] = lc
			if err == nil {
				lc.classify(window)
			}
		}()
	}
	wg.Wait()
	dialTook := time.Since(began)

	var held []*loadConn
	var closedAtOnce []time.Duration
	var dialErrs, otherErrs int
	var firstErr error
	for _, lc := range conns {
		switch {
		case lc.err != nil:
			dialErrs++
			firstErr = firstErrOf(firstErr, lc.err)
		case lc.held:
			held = append(held, lc)
		case lc.readErr != nil:
			otherErrs++
			firstErr = firstErrOf(firstErr, lc.readErr)
		default:
			closedAtOnce = append(closedAtOnce, lc.closedAfter)
			lc.c.Close()
		}
	}
	slices.Sort(closedAtOnce)
	pct := func(p float64) time.Duration {
		if len(closedAtOnce) == 0 {
			return 0
		}
		return closedAtOnce[min(len(closedAtOnce)-1, int(p*float64(len(closedAtOnce))))]
	}
	t.Logf("%d connections in %v: %d held, %d closed at once (p50 %v, p99 %v, max %v), %d dial errors, %d other errors (first: %v)",
		total, dialTook.Round(time.Millisecond), len(held), len(closedAtOnce), pct(.5), pct(.99), pct(1), dialErrs, otherErrs, firstErr)
	if dialErrs > 0 || otherErrs > 0 {
		t.Errorf("%d connections could not be made and %d ended with an error (first: %v)", dialErrs, otherErrs, firstErr)
	}
	if len(held) != limit {
		t.Errorf("the server held %d connections, want exactly max_connections = %d", len(held), limit)
	}
	if slow := pct(1); slow > 2*time.Second {
		t.Errorf("the slowest of the connections over the limit was closed %v after it was made: queued, not closed at once", slow)
	}
	if len(closedAtOnce) != total-limit-dialErrs-otherErrs {
		t.Errorf("%d connections closed at once, want the %d over the limit", len(closedAtOnce), total-limit)
	}

	// The held connections are served: a handshake with a verified staple, then the status page.
	var served, unstapled atomic.Int64
	var serveErr atomic.Pointer[error]
	work := make(chan *loadConn)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lc := range work {
				if err := lc.serve(client); err != nil {
					if errors.Is(err, errNoStaple) {
						unstapled.Add(1)
					}
					serveErr.CompareAndSwap(nil, &err)
					continue
				}
				served.Add(1)
			}
		}()
	}
	for _, lc := range held {
		work <- lc
	}
	close(work)
	wg.Wait()
	if p := serveErr.Load(); p != nil {
		t.Errorf("%d of %d held connections were not served (%d without a staple); first: %v", len(held)-int(served.Load()), len(held), unstapled.Load(), *p)
	}
	for _, lc := range conns {
		if lc.c != nil {
			lc.c.Close()
		}
	}
	stopSampling()
	top := peak.max()
	t.Logf("peak: %v", top)

	// Back to the baseline: each figure within its tolerance, measured, not assumed.
	// The tolerances leave room for what the Go runtime keeps (heap spans, grown stacks) and for a scrape's
	// connection; 2,000 leaked connections would be 2,000 descriptors and goroutines and tens of MiB.
	tolFDs, tolG, tolRSS := 8, 16, int64(16<<20)
	var after procFigures
	deadline := time.Now().Add(settle)
	for {
		var err error
		if after, err = measure(pid, metricsAddr); err != nil {
			t.Fatal(err)
		}
		if after.fds <= base.fds+tolFDs && after.goroutines <= base.goroutines+tolG && after.rss <= base.rss+tolRSS {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v the server has %v; baseline %v, tolerance +%d fds, +%d goroutines, +%s", settle, after, base, tolFDs, tolG, mib(tolRSS))
			break
		}
		time.Sleep(time.Second)
	}
	settledIn := settle - time.Until(deadline)
	t.Logf("after (%v): %v", settledIn.Round(time.Second), after)
	servedOnce(t, client, f.TLSAddr) // and it still serves
	alive(t, srv)
	noPanic(t, srv)
	row.Note("%d conns: %d held+served, %d closed at once (max %v); fds %d/%d/%d, goroutines %d/%d/%d, RSS %s/%s/%s (before/peak/after)",
		total, served.Load(), len(closedAtOnce), pct(1).Round(time.Millisecond), base.fds, top.fds, after.fds,
		base.goroutines, top.goroutines, after.goroutines, mib(base.rss), mib(top.rss), mib(after.rss))
	srv.Stop()
}

var errNoStaple = errors.New("no staple")

func firstErrOf(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// loadConn is one connection of the load.
type loadConn struct {
	c           net.Conn
	dialed      time.Time
	err         error         // the dial's
	held        bool          // the server kept it open for the whole window
	closedAfter time.Duration // when not held: how long after the dial the server closed it
	readErr     error         // neither EOF, a reset nor the window's timeout
}

// classify waits up to window for the server to close the connection (EOF or a reset).
func (lc *loadConn) classify(window time.Duration) {
	lc.c.SetReadDeadline(lc.dialed.Add(window))
	var b [1]byte
	_, err := lc.c.Read(b[:])
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		lc.held = true
		lc.c.SetReadDeadline(time.Time{})
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		lc.closedAfter = time.Since(lc.dialed)
	case err == nil:
		lc.readErr = fmt.Errorf("the server sent a byte before the ClientHello")
	default:
		lc.readErr = err
	}
}

// serve completes a handshake on a held connection, verifies its staple, and gets the status page.
func (lc *loadConn) serve(client *stapleClient) error {
	lc.c.SetDeadline(time.Now().Add(20 * time.Second))
	tc := tls.Client(lc.c, client.config())
	r := handshakeResult{start: time.Now()}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	r.state = tc.ConnectionState()
	client.judge(&r)
	switch {
	case r.stapleErr != nil:
		return r.stapleErr
	case r.staple == nil:
		return errNoStaple
	}
	return statusPage(tc)
}

// statusPage gets / on an established connection and checks for 200.
func statusPage(c net.Conn) error {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	if len(line) < 12 || line[9:12] != "200" {
		return fmt.Errorf("status page: %q", line)
	}
	return nil
}

// servedOnce is one handshake with a verified staple and the status page.
func servedOnce(t *testing.T, client *stapleClient, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lc := &loadConn{c: c}
	err = lc.serve(client)
	c.Close()
	if err != nil {
		t.Fatalf("a handshake and the status page: %v", err)
	}
}

// settled measures a process once its descriptors and goroutines have stopped moving (three equal samples
// half a second apart, within 15 s).
func settled(t *testing.T, pid int, metrics string) procFigures {
	t.Helper()
	var prev []procFigures
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, err := measure(pid, metrics)
		if err != nil {
			t.Fatal(err)
		}
		prev = append(prev, p)
		if n := len(prev); n >= 3 && prev[n-1].fds == prev[n-2].fds && prev[n-2].fds == prev[n-3].fds &&
			prev[n-1].goroutines == prev[n-2].goroutines && prev[n-2].goroutines == prev[n-3].goroutines {
			return p
		}
		if time.Now().After(deadline) {
			return p
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// peakSampler samples a process's figures until stopped and keeps the maximum of each.
type peakSampler struct {
	pid     int
	metrics string
	mu      sync.Mutex
	peak    procFigures
}

func (s *peakSampler) run() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if p, err := measure(s.pid, s.metrics); err == nil {
				s.mu.Lock()
				s.peak.fds = max(s.peak.fds, p.fds)
				s.peak.goroutines = max(s.peak.goroutines, p.goroutines)
				s.peak.rss = max(s.peak.rss, p.rss)
				s.mu.Unlock()
			} else {
				fmt.Fprintln(os.Stderr, "sampling:", err)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *peakSampler) max() procFigures {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// TestInteropFlappingResponder runs full-speed full handshakes (several Go clients, TLS 1.2 and 1.3, no
// session cache, so every one asks for status) for $STAPLE_FLAP_DURATION (60 s) while the lab's responder
// (responses valid $STAPLE_FLAP_VALIDITY, 20 s) flaps: $STAPLE_FLAP_BAD (4 s) of HTTP 500, then of connections
// dropped unanswered, then of the process killed (then started again), each after $STAPLE_FLAP_GOOD (2 s) of
// good answers.
//
// Counted from the clients' side, a violation is a handshake that got a staple that does not verify (or has
// expired, or is older than one already seen), or got no staple although a staple seen by a handshake that
// had ended before this one began was still valid when this one ended. There must be none, the flapping must
// have made some of staple's fetches fail, and no handshake may fail.
func TestInteropFlappingResponder(t *testing.T) {
	duration := envDuration(t, "STAPLE_FLAP_DURATION", 60*time.Second)
	validity := envDuration(t, "STAPLE_FLAP_VALIDITY", 20*time.Second)
	good := envDuration(t, "STAPLE_FLAP_GOOD", 2*time.Second)
	bad := envDuration(t, "STAPLE_FLAP_BAD", 4*time.Second)
	workers := envInt(t, "STAPLE_FLAP_CLIENTS", 4)
	row := outcome(t, fmt.Sprintf("load: %v of handshakes, responder flapping", duration), "staple responder (faults, kill)")

	f := newLabFixture(t, "@every 1s")
	resp := labResponder(t, f, validity)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	writeServeConfig(t, f, serveConfig{sweep: "@every 1s", top: []string{fmt.Sprintf("metrics_listen = %q", metricsAddr)},
		fetch: []string{`timeout = "2s"`, `connect_timeout = "1s"`}})
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	client := newStapleClient(t, f, "site.test")
	client.waitGoodStaple(t, f.TLSAddr, 20*time.Second)

	var (
		known knownStaples
		tally flapTally
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				cfg := client.config()
				cfg.MaxVersion = tls.VersionTLS13
				if (w+i)%2 == 0 {
					cfg.MaxVersion = tls.VersionTLS12
				}
				hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r, err := client.handshake(hctx, f.TLSAddr, cfg)
				cancel()
				tally.add(&known, r, err)
			}
		}()
	}

	// The responder flaps, driven from the test's goroutine (it may start processes).
	faultURL := "http://127.0.0.1:" + strconv.Itoa(f.OCSPPort) + "/-/faults"
	setFault := func(body string) {
		method, url := http.MethodDelete, faultURL
		if body != "" {
			method, url = http.MethodPut, faultURL+"/all"
		}
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("fault API %s %s: %v", method, body, err)
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Fatalf("fault API %s %s: HTTP %d", method, body, res.StatusCode)
		}
	}
	phases := []struct {
		name    string
		on, off func()
	}{
		{"http500", func() { setFault("http500") }, func() { setFault("") }},
		{"drop", func() { setFault("drop") }, func() { setFault("") }},
		{"killed", func() { resp.Kill() }, func() { resp = labResponder(t, f, validity) }},
	}
	flaps := map[string]int{}
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	for i := 0; ctx.Err() == nil; i++ {
		sleep(good)
		if ctx.Err() != nil {
			break
		}
		ph := phases[i%len(phases)]
		ph.on()
		flaps[ph.name]++
		sleep(bad)
		ph.off()
	}
	wg.Wait()
	failures, err := scrapeMetric(metricsAddr, "staple_fetch_failures_total")
	if err != nil {
		failures = 0 // no failure has been counted: the counter has no sample yet
	}

	s := tally.snapshot()
	t.Logf("%d handshakes: %d stapled, %d unstapled with no valid staple known (expired), %d violations, %d errors; flaps %v; %v fetch failures",
		s.handshakes, s.stapled, s.expiredGap, len(s.violations), s.errors, flaps, failures)
	for i, v := range s.violations {
		if i == 10 {
			t.Errorf("... and %d more violations", len(s.violations)-10)
			break
		}
		t.Errorf("violation: %s", v)
	}
	if s.errors > 0 {
		t.Errorf("%d handshakes failed; first: %v", s.errors, s.firstErr)
	}
	if s.handshakes == 0 || s.stapled == 0 {
		t.Errorf("%d handshakes, %d stapled: nothing was measured", s.handshakes, s.stapled)
	}
	if failures == 0 {
		t.Errorf("the flapping made no fetch of staple's fail: the test did not test what it says")
	}
	alive(t, srv)
	noPanic(t, srv)
	row.Note("%d handshakes, %d stapled, %d violations, %d errors; %d unstapled after the last staple expired; %d flaps (%v), %v fetch failures",
		s.handshakes, s.stapled, len(s.violations), s.errors, s.expiredGap, flaps["http500"]+flaps["drop"]+flaps["killed"], flaps, failures)
	srv.Stop()
}

// knownStaples records, for the flapping test, each newer staple the clients saw and when the handshake that
// saw it ended: whatever a handshake saw, the server held from then on (it never goes back to an older
// response and never drops a valid one).
type knownStaples struct {
	mu   sync.Mutex
	seen []seenStaple
}

type seenStaple struct {
	at                     time.Time // the end of the handshake that carried it
	thisUpdate, nextUpdate time.Time
}

func (k *knownStaples) observe(at, thisUpdate, nextUpdate time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.seen); n > 0 && !thisUpdate.After(k.seen[n-1].thisUpdate) {
		return
	}
	k.seen = append(k.seen, seenStaple{at, thisUpdate, nextUpdate})
}

// before returns the newest staple seen by a handshake that ended before t.
func (k *knownStaples) before(t time.Time) (seenStaple, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var best seenStaple
	ok := false
	for _, s := range k.seen {
		if s.at.Before(t) && (!ok || s.thisUpdate.After(best.thisUpdate)) {
			best, ok = s, true
		}
	}
	return best, ok
}

// flapTally counts the handshakes of the flapping test.
type flapTally struct {
	mu                                      sync.Mutex
	handshakes, stapled, expiredGap, errors int
	violations                              []string
	firstErr                                error
}

func (ft *flapTally) add(k *knownStaples, r handshakeResult, err error) {
	var violation string
	prior, hadPrior := k.before(r.start)
	switch {
	case err != nil:
	case r.stapleErr != nil:
		violation = fmt.Sprintf("handshake at %v: %v", r.start.Format(time.StampMilli), r.stapleErr)
	case r.staple != nil:
		if hadPrior && r.staple.ThisUpdate.Before(prior.thisUpdate) {
			violation = fmt.Sprintf("handshake at %v: a staple of thisUpdate %v after one of %v had been seen",
				r.start.Format(time.StampMilli), r.staple.ThisUpdate, prior.thisUpdate)
		}
		k.observe(r.end, r.staple.ThisUpdate, r.staple.NextUpdate)
	case hadPrior && prior.nextUpdate.After(r.end):
		violation = fmt.Sprintf("handshake %v–%v: no staple, while the one of thisUpdate %v was valid until %v",
			r.start.Format(time.StampMilli), r.end.Format(time.StampMilli), prior.thisUpdate, prior.nextUpdate)
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	switch {
	case err != nil:
		ft.errors++
		ft.firstErr = firstErrOf(ft.firstErr, err)
		return
	case r.staple != nil && r.stapleErr == nil:
		ft.stapled++
	case r.staple == nil && r.stapleErr == nil && violation == "":
		ft.expiredGap++
	}
	ft.handshakes++
	if violation != "" {
		ft.violations = append(ft.violations, violation)
	}
}

type flapSnapshot struct {
	handshakes, stapled, expiredGap, errors int
	violations                              []string
	firstErr                                error
}

func (ft *flapTally) snapshot() flapSnapshot {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return flapSnapshot{ft.handshakes, ft.stapled, ft.expiredGap, ft.errors, slices.Clone(ft.violations), ft.firstErr}
}
