//go:build interop

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
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

// countingProxy stands in front of an OCSP responder and records, per serial (upper-case hex), when it was
// asked: what the CA sees of the whole fleet.
type countingProxy struct {
	mu  sync.Mutex
	per map[string][]time.Time
}

func (p *countingProxy) start(t *testing.T, upstream string) string {
	t.Helper()
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	p.per = map[string][]time.Time{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var der []byte
		if r.Method == http.MethodPost {
			der, _ = io.ReadAll(io.LimitReader(r.Body, 64<<10))
			r.Body = io.NopCloser(bytes.NewReader(der))
		} else if p, err := url.PathUnescape(r.URL.EscapedPath()[strings.LastIndex(r.URL.EscapedPath(), "/")+1:]); err == nil {
			der, _ = base64.StdEncoding.DecodeString(p)
		}
		if req, err := ocsp.ParseRequest(der); err == nil {
			p.mu.Lock()
			s := strings.ToUpper(req.SerialNumber.Text(16))
			p.per[s] = append(p.per[s], time.Now())
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// asked returns, per serial, when the CA was asked between from and to.
func (p *countingProxy) asked(from, to time.Time) map[string][]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]time.Time{}
	for s, ts := range p.per {
		for _, at := range ts {
			if !at.Before(from) && at.Before(to) {
				out[s] = append(out[s], at)
			}
		}
	}
	return out
}

// TestInteropFleetOutage plays a fleet through an etcd outage with a revocation in between: three staple
// serve nodes on a real etcd, a counting proxy in front of openssl ocsp. A node is killed (kill -9); a
// certificate is revoked and `staple cache refresh` runs on a survivor; etcd is frozen (SIGSTOP) for longer
// than the lease and a node restarts during the freeze: it staples at once, from its near cache. When etcd
// is back every node, the killed one restarted too, staples the revoked status, and the CA sees one fetch
// per certificate per refresh for the whole fleet.
func TestInteropFleetOutage(t *testing.T) {
	harness.RequireTool(t, "etcd")
	harness.RequireTool(t, "openssl")
	base := t.TempDir()
	etcd := startEtcd(t, filepath.Join(base, "etcd"), harness.FreePort(t), harness.FreePort(t))
	ocspPort := harness.FreePort(t)
	var proxy countingProxy
	proxyURL := proxy.start(t, "http://127.0.0.1:"+strconv.Itoa(ocspPort))
	labDir := filepath.Join(base, "lab")
	mustStaple(t, "lab", "init", labDir, "--responder-url", proxyURL)
	names := []string{"o0.test", "o1.test", "o2.test"}
	for _, n := range names {
		mustStaple(t, "lab", "issue", labDir, n)
	}
	const validity = time.Minute // openssl ocsp -nmin 1: refreshed every 30 s or so
	responder := harness.Start(t, "openssl", "ocsp", "-index", filepath.Join(labDir, "index.txt"), "-port", strconv.Itoa(ocspPort),
		"-rsigner", filepath.Join(labDir, "ocsp.pem"), "-rkey", filepath.Join(labDir, "ocsp.key"),
		"-CA", filepath.Join(labDir, "ca.pem"), "-nmin", "1", "-ignore_err")
	responder.WaitLine("ACCEPT ", 10*time.Second)

	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, filepath.Join(labDir, "root.pem")))
	issuer := readCert(t, filepath.Join(labDir, "ca.pem"))
	leaves := map[string]*x509.Certificate{}
	var sites strings.Builder
	for _, n := range names {
		cert, key := filepath.Join(labDir, "certs", n+".pem"), filepath.Join(labDir, "certs", n+".key")
		leaves[n] = readCert(t, cert)
		fmt.Fprintf(&sites, "[[site]]\nnames = [%q]\ncert = %q\nkey = %q\n\n", n, cert, key)
	}
	nodes := make([]*fleetNodeProc, 3)
	for i := range nodes {
		n := &fleetNodeProc{name: fmt.Sprintf("node%d", i), dataDir: filepath.Join(base, fmt.Sprintf("data%d", i)),
			addr: "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), config: filepath.Join(base, fmt.Sprintf("node%d.toml", i))}
		conf := fmt.Sprintf("data_dir = %q\nlisten = %q\nlog_format = \"json\"\ndrain_timeout = \"2s\"\n\n[fetch]\nsweep = \"@every 1s\"\n\n"+
			"[fleet]\nendpoints = [%q]\nlease_ttl = \"2s\"\nnode = %q\nself_fetch_margin = \"8s\"\n\n%s",
			n.dataDir, n.addr, etcd.clientURL, n.name, sites.String())
		os.WriteFile(n.config, []byte(conf), 0o600)
		nodes[i] = n
	}
	start := func(n *fleetNodeProc) {
		n.proc = harness.Start(t, binary, "serve", "--config", n.config)
		n.dead = false
	}
	// status returns what n staples for name now: good, revoked, or why there is no valid staple.
	status := func(n *fleetNodeProc, name string) string {
		began := time.Now()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", n.addr, &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			return "dial: " + err.Error()
		}
		defer c.Close()
		der := c.ConnectionState().OCSPResponse
		if der == nil {
			return "no staple"
		}
		r, err := ocsp.ParseResponseForCert(der, leaves[name], issuer)
		switch {
		case err != nil:
			return "bad staple: " + err.Error()
		case !began.Before(r.NextUpdate):
			return "expired staple"
		case r.Status == ocsp.Revoked:
			return "revoked"
		case r.Status == ocsp.Good:
			return "good"
		}
		return "unknown"
	}
	waitAll := func(ns []*fleetNodeProc, want map[string]string, within time.Duration, what string) {
		t.Helper()
		var last string
		deadline := time.Now().Add(within)
		for {
			last = ""
			for _, n := range ns {
				for name, w := range want {
					if got := status(n, name); got != w {
						last += fmt.Sprintf(" %s %s: %s (want %s);", n.name, name, got, w)
					}
				}
			}
			if last == "" {
				return
			}
			if time.Now().After(deadline) {
				for _, n := range ns {
					lines := strings.Split(strings.TrimSpace(n.proc.Output()), "\n")
					t.Logf("%s, its last log lines:\n%s", n.name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
				}
				t.Fatalf("no %s within %v:%s", what, within, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	allGood := map[string]string{"o0.test": "good", "o1.test": "good", "o2.test": "good"}
	revoked := map[string]string{"o0.test": "revoked", "o1.test": "good", "o2.test": "good"}

	for _, n := range nodes {
		start(n)
	}
	for _, n := range nodes {
		n.proc.WaitLog("staple serving", harness.Timeout)
	}
	waitAll(nodes, allGood, 60*time.Second, "every node stapling every certificate")

	row := outcome(t, "a node killed, a revocation refreshed on a survivor, reaches every live node", "etcd 3.4 + openssl ocsp")
	syscall.Kill(-nodes[2].proc.Cmd.Process.Pid, syscall.SIGKILL)
	<-nodes[2].proc.Done()
	nodes[2].dead = true
	mustStaple(t, "lab", "revoke", labDir, filepath.Join(labDir, "certs", "o0.test.pem"), "--reason", "keyCompromise")
	harness.WaitFor(t, 30*time.Second, func() bool {
		// openssl ocsp answers from the index it read before a change once more after it
		out, _, _ := staple(t, "cache", "refresh", "--data-dir", nodes[0].dataDir)
		return strings.Contains(out, " revoked ")
	}, "cache refresh on a survivor reporting revoked")
	waitAll(nodes[:2], revoked, 20*time.Second, "both live nodes stapling the revocation")
	row.Note("revoked stapled by node0 and node1")

	row = outcome(t, "etcd frozen past the lease: a node restarted during the freeze staples at once from its near cache", "etcd 3.4 (SIGSTOP)")
	syscall.Kill(etcd.proc.Cmd.Process.Pid, syscall.SIGSTOP)
	frozen := true
	defer func() {
		if frozen {
			syscall.Kill(etcd.proc.Cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	time.Sleep(5 * time.Second) // past the lease (2 s): no node sees a leader any more
	nodes[1].proc.Stop()
	restarted := time.Now()
	start(nodes[1])
	nodes[1].proc.WaitLog("staple serving", harness.Timeout)
	waitAll(nodes[:2], revoked, 3*time.Second, "both nodes stapling during the freeze, the restarted one from its near cache")
	row.Note("the restarted node stapled %v after its exec, with etcd frozen", time.Since(restarted).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second)
	waitAll(nodes[:2], revoked, time.Second, "both nodes still stapling during the freeze")

	row = outcome(t, "etcd back: every node converges, the CA asked once per certificate per refresh", "etcd 3.4 (SIGCONT)")
	syscall.Kill(etcd.proc.Cmd.Process.Pid, syscall.SIGCONT)
	frozen = false
	start(nodes[2])
	nodes[2].proc.WaitLog("staple serving", harness.Timeout)
	waitAll(nodes, revoked, 30*time.Second, "every node, the killed one restarted, stapling the revocation")
	from := time.Now()
	time.Sleep(3 * validity / 2)
	asked := proxy.asked(from, time.Now())
	total, minGap := 0, time.Duration(1<<62)
	for _, n := range names {
		ts := asked[strings.ToUpper(leaves[n].SerialNumber.Text(16))]
		total += len(ts)
		if len(ts) == 0 {
			t.Errorf("%s not fetched in %v: nobody refreshes it", n, 3*validity/2)
		}
		for i := 1; i < len(ts); i++ {
			minGap = min(minGap, ts[i].Sub(ts[i-1]))
		}
	}
	// A refresh comes at the midpoint ±10%: two nodes fetching one certificate would show as two requests
	// much closer together.
	if minGap < validity*3/10 {
		t.Errorf("two fetches of one certificate %v apart, within one refresh cycle: more than one node fetched", minGap)
	}
	waitAll(nodes, revoked, 10*time.Second, "every node still stapling the newest responses")
	row.Note("%d fetches of %d certificates in %v; closest two for one certificate %v apart (validity %v)",
		total, len(names), (3 * validity / 2).Round(time.Second), minGap.Round(time.Second), validity)
}
