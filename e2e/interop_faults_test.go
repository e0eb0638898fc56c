//go:build interop

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/e2e/harness"
)

// faultCase is one way a CA's responder misbehaves, applied to one certificate of the fault test.
type faultCase struct {
	name  string // the certificate's name and the table's case
	fault string // the responder's fault (staple responder --fault syntax), "" for the process-level ones
}

// Per-serial faults of staple responder's fault injection; "refused" (the responder process gone) and
// "down" (the responder stopped: connections accepted by the kernel, never answered) are done to whole
// responder processes of labs of their own.
var faultCases = []faultCase{
	{"slow", "delay=20s"}, // longer than the fetch timeout
	{"http500", "http500"},
	{"http503", "http503=20s"},
	{"garbage", "garbage"},
	{"trylater", "try-later"},
	{"expired", "expired"},
	{"wrongsigner", "wrong-signer"},
	{"wrongserial", "wrong-serial"},
	{"oversize", "oversize"},
	{"redirectloop", "redirect-loop"},
}

// watcher hammers one site with handshakes that ask for status and checks every staple from the client's
// side: it must verify, be for the certificate, be current, and say good; and whenever the last valid staple
// seen is still valid, the handshake must carry one.
type watcher struct {
	name                    string
	leaf, issuer            *x509.Certificate
	pool                    *x509.CertPool
	mu                      sync.Mutex
	handshakes, stapled     int
	invalid, missing        int
	lastNext                time.Time // nextUpdate of the newest valid staple seen
	firstMissing, lastError string
}

func (wt *watcher) handshake(addr string) {
	// The server staples at some instant between the start and the end of the handshake: the staple must
	// be valid at the start (it may expire while the handshake completes), and one must come whenever the
	// last valid staple seen was still valid at the end.
	began := time.Now()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: wt.pool, ServerName: wt.name})
	if err != nil {
		wt.mu.Lock()
		wt.lastError = err.Error()
		wt.mu.Unlock()
		return
	}
	der := c.ConnectionState().OCSPResponse
	c.Close()
	now := time.Now()
	wt.mu.Lock()
	defer wt.mu.Unlock()
	wt.handshakes++
	if der == nil {
		// A response seen valid until lastNext must be stapled until then (a second of slack for the
		// instant of expiry: the client's clock reads after the server's).
		if now.Before(wt.lastNext.Add(-time.Second)) {
			wt.missing++
			if wt.firstMissing == "" {
				wt.firstMissing = fmt.Sprintf("at %s, with a staple valid until %s", now.Format(time.RFC3339Nano), wt.lastNext.Format(time.RFC3339))
			}
		}
		return
	}
	wt.stapled++
	r, err := ocsp.ParseResponseForCert(der, wt.leaf, wt.issuer)
	switch {
	case err != nil:
		wt.invalid++
		wt.lastError = "staple does not verify: " + err.Error()
	case r.Status != ocsp.Good || !began.Before(r.NextUpdate) || r.ThisUpdate.After(now.Add(5*time.Minute)):
		wt.invalid++
		wt.lastError = fmt.Sprintf("staple status %d, thisUpdate %v, nextUpdate %v, handshake %v to %v", r.Status, r.ThisUpdate, r.NextUpdate, began, now)
	case r.NextUpdate.After(wt.lastNext):
		wt.lastNext = r.NextUpdate
	}
}

// TestInteropResponderFaults runs staple serve against responders that misbehave in every way the issue
// lists, over several refresh cycles of 60-second responses: no handshake gets an invalid or expired staple,
// every handshake gets the last valid one while it lasts, and each certificate is stapled again at the first
// good answer once its responder behaves.
func TestInteropResponderFaults(t *testing.T) {
	harness.RequireTool(t, "openssl")
	validity := envDuration(t, "STAPLE_FAULT_VALIDITY", 60*time.Second)
	base := t.TempDir()
	faulty := newInteropLabN(t, base, "faulty", "--validity", validity.String(), "--fault-api")
	refused := newInteropLab(t, base, "ecdsa", "refused.test", "--validity", validity.String())
	down := newInteropLab(t, base, "ecdsa", "down.test", "--validity", validity.String())

	var labs []*interopLab
	for i, fc := range faultCases {
		labs = append(labs, faulty.leaf(t, i, fc.name+".test"))
	}
	labs = append(labs, refused, down)
	w := newServedWorld(t, "[fetch]\nsweep = \"@every 1s\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\n", labs...)

	watchers := make([]*watcher, len(labs))
	for i, l := range labs {
		pool := x509.NewCertPool()
		pool.AddCert(readCert(t, l.root))
		watchers[i] = &watcher{name: l.name, leaf: l.leaf, issuer: l.issuer, pool: pool}
		watchers[i].handshake(w.tlsAddr) // the good staple fetched at start
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, wt := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
					wt.handshake(w.tlsAddr)
				}
			}
		}()
	}

	// Break everything: the faults per serial, one responder killed, one stopped.
	for i, fc := range faultCases {
		faulty.setFault(t, labs[i].leaf.SerialNumber.Text(16), fc.fault)
	}
	refused.responder.Kill()
	syscall.Kill(down.responder.Cmd.Process.Pid, syscall.SIGSTOP)
	broken := time.Now()

	// Over the life of the responses held and past it: they are served while they last, then nothing.
	time.Sleep(validity + 15*time.Second)
	// By now every response fetched before the faults has expired and no good answer came: nothing may be
	// stapled. (A staple here would mean the fault never took effect, or a bad answer was accepted.)
	unstapledAtEnd := make([]bool, len(labs))
	for i, l := range labs {
		unstapledAtEnd[i] = w.goStaple(t, l, tls.VersionTLS13) == nil
	}
	// Repair, and the first good answer restores the staple.
	faulty.clearFaults(t)
	refused.startResponder(t)
	syscall.Kill(down.responder.Cmd.Process.Pid, syscall.SIGCONT)
	repaired := time.Now()
	mustStaple(t, "cache", "refresh", "--data-dir", w.dataDir)
	for _, l := range labs {
		w.waitStaple(t, l, ocsp.Good)
	}
	recovery := time.Since(repaired)
	close(stop)
	wg.Wait()

	names := append(faultNames(), "refused", "down")
	for i, wt := range watchers {
		t.Run(names[i], func(t *testing.T) {
			row := outcome(t, "survives a responder fault: "+names[i], "staple responder / process")
			wt.mu.Lock()
			defer wt.mu.Unlock()
			if wt.invalid > 0 {
				t.Errorf("%s: %d handshakes got an invalid staple (%s)", wt.name, wt.invalid, wt.lastError)
			}
			if wt.missing > 0 {
				t.Errorf("%s: %d handshakes got no staple while one was valid (first %s)", wt.name, wt.missing, wt.firstMissing)
			}
			if wt.handshakes < 10 || wt.stapled == 0 {
				t.Errorf("%s: only %d handshakes, %d stapled", wt.name, wt.handshakes, wt.stapled)
			}
			if !wt.lastNext.After(broken) {
				t.Errorf("%s: no valid staple was seen after the fault began", wt.name)
			}
			if !unstapledAtEnd[i] {
				t.Errorf("%s: still stapled after the last good response expired: the fault did not take effect", wt.name)
			}
			row.Note("%d handshakes, %d stapled, 0 invalid, recovered %.1fs after the repair", wt.handshakes, wt.stapled, recovery.Seconds())
		})
	}
	// A fault that lets no good answer through must not leave a staple past the last valid response: that
	// was checked per handshake (invalid counts an expired staple).
}

func faultNames() []string {
	var n []string
	for _, fc := range faultCases {
		n = append(n, fc.name)
	}
	return n
}

// labN is one lab with several leaves, behind one staple responder with its fault API.
type labN struct {
	*interopLab
}

func newInteropLabN(t *testing.T, base, name string, responderFlags ...string) *labN {
	t.Helper()
	l := &labN{newInteropLab(t, base, "ecdsa", name+"-0.test", responderFlags...)}
	return l
}

// leaf returns a lab for the i-th certificate of the lab: the first one made by newInteropLabN, the next
// ones issued now (the responder sees them at once: it watches index.txt).
func (l *labN) leaf(t *testing.T, i int, name string) *interopLab {
	t.Helper()
	mustStaple(t, "lab", "issue", l.dir, name, "--ip", "127.0.0.1")
	c := *l.interopLab
	c.name = name
	c.cert, c.key = filepath.Join(l.dir, "certs", name+".pem"), filepath.Join(l.dir, "certs", name+".key")
	c.leaf = readCert(t, c.cert)
	return &c
}

func (l *labN) faultURL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(l.responderPort) + "/-/faults" + path
}

func (l *labN) setFault(t *testing.T, serial, fault string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, l.faultURL("/"+serial), strings.NewReader(fault))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("setting fault %s on %s: %v %v", fault, serial, err, resp)
	}
	resp.Body.Close()
}

func (l *labN) clearFaults(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, l.faultURL(""), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("clearing faults: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestInteropKill9 kills staple serve with SIGKILL at random moments while it refreshes and writes, 20 times:
// every restart opens the cache, and its first handshake is stapled from it.
func TestInteropKill9(t *testing.T) {
	harness.RequireTool(t, "openssl")
	const certsN = 24
	base := t.TempDir()
	lab := newInteropLabN(t, base, "kill", "--validity", "20s")
	var labs []*interopLab
	for i := 1; i < certsN; i++ {
		labs = append(labs, lab.leaf(t, i, fmt.Sprintf("k%02d.test", i)))
	}
	// Sweep every second and refresh at the midpoint of 20-second responses: some certificate is being
	// fetched and written at almost any moment.
	w := newServedWorld(t, "[fetch]\nsweep = \"@every 1s\"\n", labs...)
	w.srv.Stop()

	kills := envInt(t, "STAPLE_KILLS", 20)
	for i := range kills {
		srv := harness.Start(t, binary, "serve", "--config", w.config)
		srv.WaitLog("staple serving", harness.Timeout)
		l := labs[rand.IntN(len(labs))]
		if der := w.goStaple(t, l, tls.VersionTLS13); der == nil {
			t.Fatalf("restart %d: the first handshake (%s) was not stapled:\n%s", i, l.name, srv.Output())
		} else {
			l.verifyStaple(t, der, ocsp.Good)
		}
		time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Millisecond)
		syscall.Kill(-srv.Cmd.Process.Pid, syscall.SIGKILL)
		<-srv.Done()
	}
	srv := harness.Start(t, binary, "serve", "--config", w.config)
	srv.WaitLog("staple serving", harness.Timeout)
	row := outcome(t, "kill -9 during refreshes, then the first handshake", "staple serve (SIGKILL)")
	for _, l := range labs {
		w.waitStaple(t, l, ocsp.Good)
	}
	srv.Stop()
	if out, errOut, code := staple(t, "cache", "ls", "--data-dir", w.dataDir); code != 0 || strings.Count(out, "good") != len(labs) {
		t.Errorf("cache ls after the kills: exit %d\n%s%s", code, out, errOut)
	}
	row.Note("%d kills, every restart stapled its first handshake", kills)
}
