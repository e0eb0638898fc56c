//go:build interop

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/e2e/harness"
)

// Helpers shared by the load, abuse, disk and secrets tests of the interop suite (interop_*_test.go).

// envDuration reads a duration from the environment ("90s"), so that a longer campaign is one variable away.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("$%s = %q is not a positive duration", name, v)
	}
	return d
}

// envInt reads a positive integer from the environment.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("$%s = %q is not a positive integer", name, v)
	}
	return n
}

// raiseNoFile raises this process's RLIMIT_NOFILE soft limit so that it can hold need descriptors; the
// processes it starts afterwards inherit it. It skips the test when the hard limit is too low and cannot be
// raised.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("RLIMIT_NOFILE cannot be read: %v", err)
	}
	if lim.Max < need {
		want := syscall.Rlimit{Cur: need, Max: need}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			t.Skipf("RLIMIT_NOFILE hard limit is %d, below the %d this test needs, and cannot be raised: %v", lim.Max, need, err)
		}
		return
	}
	// Set even when the soft limit already suffices: Go restores the limit it found at start for the
	// processes it starts unless the program sets it itself.
	want := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Skipf("RLIMIT_NOFILE soft limit cannot be raised to %d: %v", lim.Max, err)
	}
}

// procFDs counts the open file descriptors of a process.
func procFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// procRSS returns a process's resident set size in bytes (VmRSS of /proc/PID/status).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %v", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// procFigures are the resources of a server process at one moment.
type procFigures struct {
	fds, goroutines int
	rss             int64
}

func (p procFigures) String() string {
	return fmt.Sprintf("%d fds, %d goroutines, RSS %s", p.fds, p.goroutines, mib(p.rss))
}

// measure reads a process's descriptors and RSS from /proc and its goroutines from the go_goroutines metric
// on metricsAddr.
func measure(pid int, metricsAddr string) (procFigures, error) {
	var p procFigures
	var err error
	if p.fds, err = procFDs(pid); err != nil {
		return p, err
	}
	if p.rss, err = procRSS(pid); err != nil {
		return p, err
	}
	g, err := scrapeMetric(metricsAddr, "go_goroutines")
	p.goroutines = int(g)
	return p, err
}

// scrapeMetric reads one sample of a metric without labels (or the sum over its label sets) from a
// Prometheus text endpoint. Each scrape uses a fresh connection, closed afterwards, so that the scrape
// itself leaves no descriptor or goroutine behind in the server it measures.
func scrapeMetric(addr, name string) (float64, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric whose name starts with this one
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// serveConfig is a staple serve configuration for a lab fixture, with the settings these tests vary.
type serveConfig struct {
	top    []string // extra top-level lines, e.g. `max_connections = 2000`
	fetch  []string // extra [fetch] lines
	tables []string // extra tables, e.g. "[tickets]\nrotate = \"@every 2s\""
	sweep  string
}

// writeServeConfig rewrites the fixture's configuration file with the extra settings.
func writeServeConfig(t *testing.T, f *labFixture, c serveConfig) {
	t.Helper()
	if c.sweep == "" {
		c.sweep = "@every 1s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir = %q\nlisten = %q\nlog_format = \"json\"\ndrain_timeout = \"5s\"\n", f.DataDir, f.TLSAddr)
	for _, l := range c.top {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "\n[fetch]\nsweep = %q\n", c.sweep)
	for _, l := range c.fetch {
		b.WriteString(l + "\n")
	}
	for _, l := range c.tables {
		b.WriteString("\n" + l + "\n")
	}
	fmt.Fprintf(&b, "\n[[site]]\ncert = %q\nkey = %q\n", f.Cert, f.Key)
	if err := os.WriteFile(f.Config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// labResponder runs staple responder over the fixture's lab on its OCSP port, with the fault API on.
func labResponder(t *testing.T, f *labFixture, validity time.Duration, extra ...string) *harness.Process {
	t.Helper()
	args := append([]string{"responder", "--lab", f.Dir, "--listen", "127.0.0.1:" + strconv.Itoa(f.OCSPPort),
		"--validity", validity.String(), "--log-format", "json"}, extra...)
	p := harness.Start(t, binary, args...)
	p.WaitLog("listening", harness.Timeout)
	return p
}

// stapleClient is a Go crypto/tls client that asks for status on every handshake (crypto/tls always sends
// status_request) and verifies the staple with golang.org/x/crypto/ocsp against the lab's issuing CA.
type stapleClient struct {
	roots      *x509.CertPool
	issuer     *x509.Certificate
	serverName string
}

func newStapleClient(t *testing.T, f *labFixture, serverName string) *stapleClient {
	t.Helper()
	return &stapleClient{roots: certPool(t, f.Root), issuer: readCert(t, filepath.Join(f.Dir, "ca.pem")), serverName: serverName}
}

func certPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", file)
	}
	return pool
}

// config returns a fresh client configuration: no session cache, so every handshake is full and asks for
// status.
func (c *stapleClient) config() *tls.Config {
	return &tls.Config{RootCAs: c.roots, ServerName: c.serverName}
}

// handshakeResult is one client handshake as the client saw it.
type handshakeResult struct {
	start, end time.Time
	state      tls.ConnectionState
	staple     *ocsp.Response // the verified staple; nil when none was sent
	stapleErr  error          // a staple was sent and did not verify
}

// handshake connects to addr, completes a TLS handshake with cfg (c.config() when nil), verifies the staple
// and closes the connection.
func (c *stapleClient) handshake(ctx context.Context, addr string, cfg *tls.Config) (handshakeResult, error) {
	if cfg == nil {
		cfg = c.config()
	}
	r := handshakeResult{start: time.Now()}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	r.end = time.Now()
	if err != nil {
		return r, err
	}
	defer conn.Close()
	tc := conn.(*tls.Conn)
	r.state = tc.ConnectionState()
	c.judge(&r)
	return r, nil
}

// judge verifies the staple of a completed handshake, if any.
func (c *stapleClient) judge(r *handshakeResult) {
	if len(r.state.OCSPResponse) == 0 {
		return
	}
	r.staple, r.stapleErr = verifyStaple(r.state.OCSPResponse, r.state.PeerCertificates[0], c.issuer, r.start)
}

// verifyStaple checks a stapled response with x/crypto/ocsp: signed by issuer or a responder it delegated
// to, for leaf's serial, good, thisUpdate not in the future (5 min skew) and nextUpdate after at (the start of
// the handshake that carried it: the server decided during the handshake).
func verifyStaple(der []byte, leaf, issuer *x509.Certificate, at time.Time) (*ocsp.Response, error) {
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	switch {
	case err != nil:
		return nil, fmt.Errorf("the staple does not verify: %w", err)
	case resp.SerialNumber.Cmp(leaf.SerialNumber) != 0:
		return resp, fmt.Errorf("the staple is for serial %x, not %x", resp.SerialNumber, leaf.SerialNumber)
	case resp.Status != ocsp.Good:
		return resp, fmt.Errorf("the staple's status is %d, not good", resp.Status)
	case resp.NextUpdate.IsZero():
		return resp, fmt.Errorf("the staple has no nextUpdate")
	case !resp.NextUpdate.After(at):
		return resp, fmt.Errorf("the staple expired: nextUpdate %v, handshake at %v", resp.NextUpdate, at)
	case resp.ThisUpdate.After(at.Add(5 * time.Minute)):
		return resp, fmt.Errorf("the staple's thisUpdate %v is in the future", resp.ThisUpdate)
	}
	return resp, nil
}

// waitGoodStaple does handshakes until one carries a verified staple.
func (c *stapleClient) waitGoodStaple(t *testing.T, addr string, within time.Duration) *ocsp.Response {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := c.handshake(ctx, addr, nil)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case r.stapleErr != nil:
			t.Fatalf("a bad staple: %v", r.stapleErr)
		case r.staple != nil:
			return r.staple
		default:
			last = "no staple"
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no verified staple on %s within %v (last: %s)", addr, within, last)
	return nil
}

// adminGet does one GET on the admin socket and returns the status and body.
func adminGet(t *testing.T, socket, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}}
	resp, err := client.Get("http://staple" + path)
	if err != nil {
		t.Fatalf("GET %s on the admin socket: %v", path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// noPanic fails the test when a process's output shows a panic or a Go runtime crash.
func noPanic(t *testing.T, p *harness.Process) {
	t.Helper()
	out := p.Output()
	for _, s := range []string{"panic:", "goroutine ", "fatal error:", "SIGSEGV"} {
		if strings.Contains(out, s) {
			t.Errorf("%s printed %q:\n%s", p.Name, s, out)
			return
		}
	}
}

// alive fails the test when the process has exited.
func alive(t *testing.T, p *harness.Process) {
	t.Helper()
	select {
	case <-p.Done():
		t.Fatalf("%s exited (%v):\n%s", p.Name, p.Err(), p.Output())
	default:
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// outcome records that tb checks check against peer; its result (pass, FAIL, skip) is read when the test
// ends. Note sets a figure worth reading in the table (connections held, faults survived).
func outcome(tb testing.TB, check, peer string) *outcomeRow {
	r := &outcomeRow{test: tb.Name(), check: check, peer: peer, t: tb}
	outcomes.mu.Lock()
	outcomes.rows = append(outcomes.rows, r)
	outcomes.mu.Unlock()
	return r
}
