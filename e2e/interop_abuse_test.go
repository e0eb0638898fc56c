//go:build interop

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/e2e/harness"
	"staple/internal/loadgen"
)

// TestInteropSlowlorisAndMalformed attacks staple serve's TLS port, its caching responder (responder_listen)
// and staple responder's port at once: many connections that send part of a ClientHello or of an HTTP
// request and stall, or dribble it a byte at a time; connections that finish the handshake and then dribble
// the HTTP request; malformed ClientHellos (random bytes, a truncated record, a record of 65535 bytes, a
// handshake message longer than its record, plain HTTP); OCSP POST bodies over the cap, a body streamed
// without end, GETs with paths of 15 KB, 1 MiB and thousands of '/'.
//
// Meanwhile a normal client does TLS handshakes (staple verified) and OCSP requests to both responders; each
// must complete within $STAPLE_ABUSE_BOUND (2 s). Every stalled connection must be cut by the server's
// deadline (handshake_timeout 3 s; the responder's 5 s to read headers and 10 s to read a request; the
// HTTP server's 30 s to read headers after a handshake) plus slack, and afterwards every process is alive,
// answers, and logged no panic.
func TestInteropSlowlorisAndMalformed(t *testing.T) {
	n := envInt(t, "STAPLE_ABUSE_CONNS", 200) // per kind of stalled connection and port
	bound := envDuration(t, "STAPLE_ABUSE_BOUND", 2*time.Second)
	row := outcome(t, "abuse: slowloris, malformed ClientHellos, oversized OCSP", "staple serve, staple responder")
	raiseNoFile(t, uint64(16*n+4096))

	f := newLabFixture(t, "@every 5s")
	labResp := labResponder(t, f, time.Hour)
	cachingAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	const handshakeTimeout = 3 * time.Second
	writeServeConfig(t, f, serveConfig{sweep: "@every 5s", top: []string{
		fmt.Sprintf("handshake_timeout = %q", handshakeTimeout.String()),
		fmt.Sprintf("responder_listen = %q", cachingAddr),
	}})
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	client := newStapleClient(t, f, "site.test")
	client.waitGoodStaple(t, f.TLSAddr, 20*time.Second)
	leaf := readCert(t, f.Cert)
	ocspReq, err := ocsp.CreateRequest(leaf, client.issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	labAddr := "127.0.0.1:" + strconv.Itoa(f.OCSPPort)
	probeOCSP := func(addr string) func(context.Context) error {
		return func(ctx context.Context) error { return ocspPOST(ctx, addr, ocspReq, leaf, client) }
	}
	for _, addr := range []string{labAddr, cachingAddr} {
		if err := probeOCSP(addr)(context.Background()); err != nil {
			t.Fatalf("before the attack, %s: %v", addr, err)
		}
	}
	hello := clientHello(t)

	// The stalled connections, all opened at once.
	const slack = 3 * time.Second
	responderCut := 5 * time.Second // DefaultReadHeaderTimeout of the responder
	bodyCut := 10 * time.Second     // its DefaultReadTimeout
	stalls := []*stallKind{
		{name: "TLS: connect, send nothing", addr: f.TLSAddr, cut: handshakeTimeout},
		{name: "TLS: part of a ClientHello", addr: f.TLSAddr, cut: handshakeTimeout, send: sendThenStall(hello[:len(hello)/2])},
		{name: "TLS: a ClientHello dribbled", addr: f.TLSAddr, cut: handshakeTimeout, send: dribble(hello, 300*time.Millisecond)},
		{name: "TLS: record header of 16 KiB, 10 bytes", addr: f.TLSAddr, cut: handshakeTimeout, send: sendThenStall(append([]byte{22, 3, 1, 0x40, 0}, hello[5:15]...))},
		{name: "TLS then HTTP headers dribbled", addr: f.TLSAddr, cut: 30 * time.Second, count: n / 4, tls: client.config(),
			send: dribble([]byte("GET / HTTP/1.1\r\nHost: site.test\r\nX-Slow: "+strings.Repeat("a", 200)+"\r\n\r\n"), 300*time.Millisecond)},
	}
	for _, rs := range []struct{ name, addr string }{{"responder", labAddr}, {"serve's responder", cachingAddr}} {
		stalls = append(stalls,
			&stallKind{name: rs.name + ": connect, send nothing", addr: rs.addr, cut: responderCut},
			&stallKind{name: rs.name + ": part of the headers", addr: rs.addr, cut: responderCut, send: sendThenStall([]byte("POST / HTTP/1.1\r\nHost: x\r\n"))},
			&stallKind{name: rs.name + ": headers dribbled", addr: rs.addr, cut: responderCut, send: dribble([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n\r\n"), 300*time.Millisecond)},
			&stallKind{name: rs.name + ": part of the body", addr: rs.addr, cut: bodyCut,
				send: sendThenStall(append([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"), ocspReq...))},
		)
	}
	attackCtx, stopAttack := context.WithCancel(context.Background())
	defer stopAttack()
	var stallWG sync.WaitGroup
	for _, k := range stalls {
		if k.count == 0 {
			k.count = n
		}
		for range k.count {
			stallWG.Add(1)
			go func() { defer stallWG.Done(); k.one(attackCtx, slack) }()
		}
	}

	// The floods of malformed and oversized input, until the stalled connections have been cut.
	floods := []*floodKind{
		// One in 256 starts like a handshake record and waits for the rest of it: handshake_timeout cuts it.
		{name: "TLS: random bytes", addr: f.TLSAddr, within: handshakeTimeout + slack, fn: func(c net.Conn) error {
			_, err := c.Write(randomBytes(1024))
			return err
		}},
		{name: "TLS: truncated record, then EOF", addr: f.TLSAddr, fn: func(c net.Conn) error {
			_, err := c.Write(hello[:len(hello)-20])
			c.(*net.TCPConn).CloseWrite()
			return err
		}},
		{name: "TLS: record length 65535", addr: f.TLSAddr, fn: func(c net.Conn) error {
			_, err := c.Write(append([]byte{22, 3, 1, 0xff, 0xff}, randomBytes(2048)...))
			return err
		}},
		{name: "TLS: handshake message longer than its record", addr: f.TLSAddr, fn: func(c net.Conn) error {
			bad := slices.Clone(hello)
			bad[6], bad[7], bad[8] = 0xff, 0xff, 0xff // ClientHello length 16 MiB
			_, err := c.Write(bad)
			return err
		}},
		{name: "TLS: plain HTTP", addr: f.TLSAddr, fn: func(c net.Conn) error {
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
			return err
		}},
	}
	for _, rs := range []struct{ name, addr string }{{"responder", labAddr}, {"serve's responder", cachingAddr}} {
		floods = append(floods,
			&floodKind{name: rs.name + ": POST body of 20 KB", addr: rs.addr, want: "413", fn: func(c net.Conn) error {
				return writeRequest(c, "POST", "/", 20000, bytes.Repeat([]byte{0x30}, 20000))
			}},
			&floodKind{name: rs.name + ": POST body without end", addr: rs.addr, want: "413", fn: endlessBody},
			&floodKind{name: rs.name + ": GET path of 15 KB", addr: rs.addr, want: "200", fn: func(c net.Conn) error {
				return writeRequest(c, "GET", "/"+strings.Repeat("MEow", 15000/4), -1, nil)
			}},
			&floodKind{name: rs.name + ": GET path of 1 MiB", addr: rs.addr, want: "431", fn: func(c net.Conn) error {
				return writeRequest(c, "GET", "/"+strings.Repeat("A", 1<<20), -1, nil)
			}},
			&floodKind{name: rs.name + ": GET path of 7,000 '/'", addr: rs.addr, want: "200", parallel: 4, fn: func(c net.Conn) error {
				return writeRequest(c, "GET", "/"+strings.Repeat("A/", 7000), -1, nil)
			}},
		)
	}
	var floodWG sync.WaitGroup
	for _, fk := range floods {
		for range max(fk.parallel, 1) {
			floodWG.Add(1)
			go func() { defer floodWG.Done(); fk.run(attackCtx) }()
		}
	}

	// The normal client, all along.
	probes := []*probe{
		{name: "TLS handshake with a verified staple", short: "handshake", fn: func(ctx context.Context) error {
			r, err := client.handshake(ctx, f.TLSAddr, nil)
			switch {
			case err != nil:
				return err
			case r.stapleErr != nil:
				return r.stapleErr
			case r.staple == nil:
				return errNoStaple
			}
			return nil
		}},
		{name: "OCSP POST to staple responder", short: "responder", fn: probeOCSP(labAddr)},
		{name: "OCSP POST to serve's responder", short: "serve's responder", fn: probeOCSP(cachingAddr)},
	}
	var probeWG sync.WaitGroup
	for _, p := range probes {
		probeWG.Add(1)
		go func() { defer probeWG.Done(); p.run(attackCtx, bound) }()
	}

	stallWG.Wait() // every stalled connection has been cut, or given up on
	stopAttack()
	floodWG.Wait()
	probeWG.Wait()

	var notes []string
	for _, k := range stalls {
		cut, maxCut, notCut, early := k.result()
		t.Logf("%-45s %d cut, the last after %v; %d not cut within %v; %d refused or ended before the stall",
			k.name, cut, maxCut.Round(10*time.Millisecond), notCut, k.cut+slack, early)
		if notCut > 0 {
			t.Errorf("%s: %d of %d connections not cut within %v (first: %v)", k.name, notCut, k.count, k.cut+slack, k.firstErr())
		}
		if cut == 0 {
			t.Errorf("%s: no connection was made and cut: the attack did not run", k.name)
		}
	}
	for _, fk := range floods {
		done, bad, maxTook := fk.result()
		t.Logf("%-45s %d sent, slowest answered/closed in %v, %d wrong (first: %v)", fk.name, done, maxTook.Round(time.Millisecond), bad, fk.firstErr())
		if bad > 0 {
			t.Errorf("%s: %d of %d not answered as expected (first: %v)", fk.name, bad, done+bad, fk.firstErr())
		}
		if done == 0 {
			t.Errorf("%s: never sent", fk.name)
		}
		within := fk.within
		if within == 0 {
			within = bound
		}
		if maxTook > within {
			t.Errorf("%s: the slowest took %v to be answered or closed, over %v", fk.name, maxTook, within)
		}
	}
	for _, p := range probes {
		count, slow, maxLat := p.result()
		t.Logf("%-45s %d during the attack, slowest %v, %d failed or over %v (first: %v)", p.name, count, maxLat.Round(time.Millisecond), slow, bound, p.firstErr())
		if slow > 0 || count == 0 {
			t.Errorf("%s: %d of %d over %v or failed (first: %v)", p.name, slow, count, bound, p.firstErr())
		}
		notes = append(notes, fmt.Sprintf("%s max %v", p.short, maxLat.Round(time.Millisecond)))
	}

	// Afterwards: alive, answering, no panic.
	alive(t, srv)
	alive(t, labResp)
	client.waitGoodStaple(t, f.TLSAddr, 5*time.Second)
	for _, addr := range []string{labAddr, cachingAddr} {
		if err := probeOCSP(addr)(context.Background()); err != nil {
			t.Errorf("after the attack, %s: %v", addr, err)
		}
	}

	// What one bad request costs the server, in CPU time: a request of a few KiB must not buy an attacker
	// more than a few milliseconds of it (a good OCSP request costs well under one).
	const maxCPU = 25 * time.Millisecond
	var cpuNotes []string
	for _, target := range []struct {
		name string
		p    *harness.Process
		addr string
	}{{"responder", labResp, labAddr}, {"serve's responder", srv, cachingAddr}} {
		for _, in := range []struct{ name, path string }{
			{"GET path of 7,000 '/'", "/" + strings.Repeat("A/", 7000)},
			{"GET path of 15 KB", "/" + strings.Repeat("MEow", 15000/4)},
		} {
			per := cpuPerRequest(t, target.p.Cmd.Process.Pid, target.addr, in.path, 40)
			t.Logf("%s, %s: %v of CPU per request", target.name, in.name, per)
			if per > maxCPU {
				t.Errorf("%s: a %s costs %v of CPU, over %v", target.name, in.name, per, maxCPU)
			}
			cpuNotes = append(cpuNotes, per.Round(100*time.Microsecond).String())
		}
	}
	noPanic(t, srv)
	noPanic(t, labResp)
	total := 0
	for _, k := range stalls {
		total += k.count
	}
	sent := 0
	for _, fk := range floods {
		d, b, _ := fk.result()
		sent += d + b
	}
	row.Note("%d stalled conns cut by deadlines, %d malformed/oversized sent; normal client: %s (bound %v); CPU per bad GET %s",
		total, sent, strings.Join(notes, ", "), bound, strings.Join(cpuNotes, "/"))
	srv.Stop()
}

// stallKind is a kind of connection that sends something (or nothing), then stalls until the server cuts it.
type stallKind struct {
	name  string
	addr  string
	cut   time.Duration // the server's deadline for it
	count int
	tls   *tls.Config // complete a handshake first
	send  func(ctx context.Context, c net.Conn)

	mu                  sync.Mutex
	cutN, notCut, early int
	maxCut              time.Duration
	err                 error
}

func (k *stallKind) one(ctx context.Context, slack time.Duration) {
	c, err := net.DialTimeout("tcp", k.addr, 10*time.Second)
	if err != nil {
		k.record(0, false, err)
		return
	}
	defer c.Close()
	began := time.Now()
	if k.tls != nil {
		tc := tls.Client(c, k.tls)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			k.record(0, false, err)
			return
		}
		tc.SetDeadline(time.Time{})
		began = time.Now() // the HTTP server's clock starts now
		c = tc
	}
	if k.send != nil {
		go k.send(ctx, c)
	}
	c.SetReadDeadline(began.Add(k.cut + slack))
	_, err = io.Copy(io.Discard, c) // whatever the server answers (a 408, an alert), until it closes
	took := time.Since(began)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		k.record(took, false, fmt.Errorf("still open after %v", took.Round(time.Millisecond)))
	case err == nil, errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		k.record(took, true, nil)
	default:
		k.record(took, false, err)
	}
}

func (k *stallKind) record(took time.Duration, cut bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case cut:
		k.cutN++
		k.maxCut = max(k.maxCut, took)
	case took == 0:
		k.early++
	default:
		k.notCut++
	}
	if err != nil && k.err == nil {
		k.err = err
	}
}

func (k *stallKind) result() (cut int, maxCut time.Duration, notCut, early int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cutN, k.maxCut, k.notCut + k.early, k.early
}

func (k *stallKind) firstErr() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// sendThenStall writes b and nothing more.
func sendThenStall(b []byte) func(context.Context, net.Conn) {
	return func(_ context.Context, c net.Conn) { c.Write(b) }
}

// dribble writes b a byte at a time, every. It stops when a write fails or ctx ends.
func dribble(b []byte, every time.Duration) func(context.Context, net.Conn) {
	return func(ctx context.Context, c net.Conn) {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}

// floodKind sends one kind of bad input over and over on fresh connections and checks what comes back.
type floodKind struct {
	name string
	addr string
	want string // the HTTP status expected; "" for TLS: the server must close the connection
	fn   func(c net.Conn) error
	// parallel is how many connections send it at a time (default 1)
	parallel int
	// within is how long the server may take to answer or close (default: the normal client's bound)
	within time.Duration

	mu        sync.Mutex
	done, bad int
	maxTook   time.Duration
	err       error
}

func (fk *floodKind) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := fk.once()
		fk.mu.Lock()
		if err != nil {
			fk.bad++
			if fk.err == nil {
				fk.err = err
			}
		} else {
			fk.done++
		}
		fk.mu.Unlock()
	}
}

// once sends the input and waits up to 10 s for the answer: the expected status line, or for TLS the server
// closing the connection (with or without an alert).
func (fk *floodKind) once() error {
	c, err := net.DialTimeout("tcp", fk.addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	began := time.Now()
	c.SetDeadline(began.Add(10 * time.Second))
	werr := make(chan error, 1)
	go func() { werr <- fk.fn(c) }()
	if fk.want == "" {
		_, err = io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("the server kept the connection open for 10 s")
		}
	} else {
		line, rerr := bufio.NewReader(c).ReadString('\n')
		if rerr != nil {
			return fmt.Errorf("no answer: %v (write: %v)", rerr, <-werr)
		}
		if f := strings.Fields(line); len(f) < 2 || f[1] != fk.want {
			return fmt.Errorf("answer %q, want %s", strings.TrimSpace(line), fk.want)
		}
	}
	took := time.Since(began)
	c.Close()
	<-werr
	fk.mu.Lock()
	fk.maxTook = max(fk.maxTook, took)
	fk.mu.Unlock()
	return nil
}

func (fk *floodKind) result() (done, bad int, maxTook time.Duration) {
	fk.mu.Lock()
	defer fk.mu.Unlock()
	return fk.done, fk.bad, fk.maxTook
}

func (fk *floodKind) firstErr() error {
	fk.mu.Lock()
	defer fk.mu.Unlock()
	return fk.err
}

// writeRequest writes an HTTP/1.1 request with a body of length bytes (-1: no body).
func writeRequest(c net.Conn, method, path string, length int, body []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method, path)
	if length >= 0 {
		fmt.Fprintf(&b, "Content-Type: application/ocsp-request\r\nContent-Length: %d\r\n", length)
	}
	b.WriteString("\r\n")
	b.Write(body)
	_, err := c.Write(b.Bytes())
	return err
}

// endlessBody announces a 1 GiB body and streams it until the server stops reading.
func endlessBody(c net.Conn) error {
	if err := writeRequest(c, "POST", "/", 1<<30, nil); err != nil {
		return err
	}
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < 1<<30; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return nil // cut: what the test wants
		}
	}
	return errors.New("the server read a 1 GiB body")
}

// probe is the normal client: one kind of request, over and over, each timed.
type probe struct {
	name, short string
	fn          func(ctx context.Context) error

	mu          sync.Mutex
	count, slow int
	maxLat      time.Duration
	err         error
}

func (p *probe) run(ctx context.Context, bound time.Duration) {
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(context.Background(), 3*bound)
		began := time.Now()
		err := p.fn(rctx)
		took := time.Since(began)
		cancel()
		if err == nil && took > bound {
			err = fmt.Errorf("took %v", took.Round(time.Millisecond))
		}
		p.mu.Lock()
		p.count++
		p.maxLat = max(p.maxLat, took)
		if err != nil {
			p.slow++
			if p.err == nil {
				p.err = err
			}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *probe) result() (count, slow int, maxLat time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count, p.slow, p.maxLat
}

func (p *probe) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// ocspPOST asks addr for leaf's status and checks the answer: good, signed for leaf's issuer.
func ocspPOST(ctx context.Context, addr string, req []byte, leaf *x509.Certificate, client *stapleClient) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/", bytes.NewReader(req))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := hc.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	_, err = verifyStaple(body, leaf, client.issuer, time.Now())
	return err
}

// cpuPerRequest sends n GETs of path to addr one after the other and returns the CPU time the process pid
// spent per request.
func cpuPerRequest(t *testing.T, pid int, addr, path string, n int) time.Duration {
	t.Helper()
	before, err := loadgen.ProcessCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := writeRequest(c, "GET", path, -1, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("GET of %d bytes: %v", len(path), err)
		}
		c.Close()
	}
	after, err := loadgen.ProcessCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return (after - before) / time.Duration(n)
}

// clientHello returns the first record a Go client sends: its ClientHello.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tls.Client(a, &tls.Config{ServerName: "site.test"}).Handshake()
		a.Close()
	}()
	defer b.Close()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
