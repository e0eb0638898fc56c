//go:build interop

package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/e2e/harness"
)

// etcdServer is Debian's etcd on loopback with a data directory of the test's.
type etcdServer struct {
	dir              string
	client, peer     int
	proc             *harness.Process
	t                *testing.T
	clientURL, peerU string
}

func startEtcd(t *testing.T, dir string, client, peer int) *etcdServer {
	t.Helper()
	e := &etcdServer{t: t, dir: dir, client: client, peer: peer,
		clientURL: "http://127.0.0.1:" + strconv.Itoa(client), peerU: "http://127.0.0.1:" + strconv.Itoa(peer)}
	e.start()
	return e
}

func (e *etcdServer) start() {
	e.t.Helper()
	e.proc = harness.Start(e.t, "etcd", "--name", "default", "--data-dir", e.dir,
		"--listen-client-urls", e.clientURL, "--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", e.peerU, "--initial-advertise-peer-urls", e.peerU,
		"--initial-cluster", "default="+e.peerU)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: time.Second}).Get(e.clientURL + "/health")
		if err == nil {
			ok := resp.StatusCode == http.StatusOK
			resp.Body.Close()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd is not healthy after 30 s:\n%s", e.proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *etcdServer) kill() {
	syscall.Kill(-e.proc.Cmd.Process.Pid, syscall.SIGKILL)
	<-e.proc.Done()
}

// fleetNode is one staple serve of the fleet.
type fleetNodeProc struct {
	name, config, dataDir, addr string
	proc                        *harness.Process
	dead                        bool
}

// stapleWatch counts, from the clients' side, handshakes to the live nodes that got no valid staple.
type stapleWatch struct {
	mu                   sync.Mutex
	handshakes, violated int
	last                 string
}

func (sw *stapleWatch) record(ok bool, why string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.handshakes++
	if !ok {
		sw.violated++
		sw.last = why
	}
}

// TestInteropFleet runs three staple serve nodes on one etcd with 100 certificates behind one responder that
// counts requests: over refresh cycles the responder sees one fetch per certificate per cycle (the leader's);
// a ticket made on node A resumes on node B; the leader is killed and another takes over with no handshake
// losing its staple; etcd is stopped and every node keeps stapling (fetching for itself near expiry), and
// after etcd returns they agree again.
func TestInteropFleet(t *testing.T) {
	harness.RequireTool(t, "etcd")
	const certsN = 100
	validity := envDuration(t, "STAPLE_FLEET_VALIDITY", 20*time.Second)
	base := t.TempDir()
	etcd := startEtcd(t, filepath.Join(base, "etcd"), harness.FreePort(t), harness.FreePort(t))

	lab := newInteropLabN(t, base, "fleet", "--validity", validity.String(), "--log-level", "debug")
	var labs []*interopLab
	for i := range certsN {
		labs = append(labs, lab.leaf(t, i, fmt.Sprintf("f%03d.test", i)))
	}
	var sites strings.Builder
	for _, l := range labs {
		fmt.Fprintf(&sites, "[[site]]\nnames = [%q]\ncert = %q\nkey = %q\n\n", l.name, l.cert, l.key)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, lab.root))

	nodes := make([]*fleetNodeProc, 3)
	for i := range nodes {
		n := &fleetNodeProc{name: fmt.Sprintf("node%d", i), dataDir: filepath.Join(base, fmt.Sprintf("data%d", i)),
			addr: "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)), config: filepath.Join(base, fmt.Sprintf("node%d.toml", i))}
		conf := fmt.Sprintf(`data_dir = %q
listen = %q
log_format = "json"
drain_timeout = "5s"

[fetch]
sweep = "@every 1s"

[fleet]
endpoints = [%q]
lease_ttl = "2s"
node = %q
self_fetch_margin = "8s"

%s`, n.dataDir, n.addr, etcd.clientURL, n.name, sites.String())
		os.WriteFile(n.config, []byte(conf), 0o600)
		n.proc = harness.Start(t, binary, "serve", "--config", n.config)
		nodes[i] = n
	}
	for _, n := range nodes {
		n.proc.WaitLog("staple serving", harness.Timeout)
	}
	dial := func(n *fleetNodeProc, l *interopLab, cache tls.ClientSessionCache) (tls.ConnectionState, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.addr,
			&tls.Config{RootCAs: pool, ServerName: l.name, ClientSessionCache: cache})
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		if cache != nil {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			c.Read(make([]byte, 1)) // TLS 1.3 tickets arrive after the handshake
		}
		return c.ConnectionState(), nil
	}
	// stapleOK checks the staple of a handshake that began at began: it must be valid then (it may expire
	// while the handshake completes).
	stapleOK := func(st tls.ConnectionState, l *interopLab, began time.Time) (bool, string) {
		if st.OCSPResponse == nil {
			return false, "no staple from " + l.name
		}
		r, err := ocsp.ParseResponseForCert(st.OCSPResponse, l.leaf, l.issuer)
		if err != nil || r.Status != ocsp.Good || !began.Before(r.NextUpdate) {
			return false, fmt.Sprintf("bad staple for %s: %v", l.name, err)
		}
		return true, ""
	}
	// Every node staples every certificate.
	harness.WaitFor(t, 60*time.Second, func() bool {
		for _, n := range nodes {
			for _, l := range labs {
				began := time.Now()
				st, err := dial(n, l, nil)
				if ok, _ := stapleOK(st, l, began); err != nil || !ok {
					return false
				}
			}
		}
		return true
	}, "every node stapling every certificate")

	// Clients hammer the live nodes from now on.
	var sw stapleWatch
	var aliveMu sync.Mutex
	alive := func() []*fleetNodeProc {
		aliveMu.Lock()
		defer aliveMu.Unlock()
		var a []*fleetNodeProc
		for _, n := range nodes {
			if !n.dead {
				a = append(a, n)
			}
		}
		return a
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				a := alive()
				n, l := a[rand.IntN(len(a))], labs[rand.IntN(len(labs))]
				began := time.Now()
				st, err := dial(n, l, nil)
				if err != nil {
					aliveMu.Lock()
					killed := n.dead
					aliveMu.Unlock()
					if !killed { // a handshake in flight when its node was killed is cut; that is no staple's fault
						sw.record(false, n.name+": "+err.Error())
					}
					continue
				}
				ok, why := stapleOK(st, l, began)
				sw.record(ok, n.name+": "+why)
			}
		}()
	}

	// Phase 1: refresh cycles with a leader. One fetch per certificate per cycle.
	phase1 := time.Now()
	time.Sleep(3*validity/2 + 5*time.Second)
	phase1End := time.Now()
	perSerial := responderRequests(t, lab.responder.Output(), phase1, phase1End)
	row := outcome(t, "one CA fetch per certificate per refresh cycle, 3 nodes, 100 certificates", "etcd 3.4 + staple responder")
	minGap, total := time.Duration(1<<62), 0
	for _, l := range labs {
		times := perSerial[strings.ToUpper(l.leaf.SerialNumber.Text(16))]
		total += len(times)
		for i := 1; i < len(times); i++ {
			minGap = min(minGap, times[i].Sub(times[i-1]))
		}
	}
	// A refresh comes at the midpoint of the response's validity, ±10%: a second node fetching the same
	// certificate would show as two requests much closer together than that.
	if minGap < validity*3/10 {
		t.Errorf("two fetches of one certificate %v apart, within one refresh cycle of %v: more than one node fetched", minGap, validity/2)
	}
	// And none was left out: every certificate was fetched at least once per validity (else it would have
	// expired on every node).
	window := phase1End.Sub(phase1)
	for _, l := range labs {
		if n := len(perSerial[strings.ToUpper(l.leaf.SerialNumber.Text(16))]); n < int(window/validity) {
			t.Errorf("%s fetched %d times in %v, want at least one per %v", l.name, n, window.Round(time.Second), validity)
		}
	}
	row.Note("%d requests in %v for %d certificates (%.2f each); closest two for one certificate %v apart (validity %v)",
		total, window.Round(time.Second), certsN, float64(total)/certsN, minGap.Round(time.Second), validity)

	t.Run("ticket from A resumes on B", func(t *testing.T) {
		r := outcome(t, "a session ticket from node A resumes on node B", "staple serve ×2 (shared ticket keys)")
		cache := tls.NewLRUClientSessionCache(8)
		if _, err := dial(nodes[0], labs[0], cache); err != nil {
			t.Fatal(err)
		}
		st, err := dial(nodes[1], labs[0], cache)
		if err != nil || !st.DidResume {
			t.Fatalf("on node B: resumed=%v, err %v", st.DidResume, err)
		}
		r.Note("resumed")
	})

	// Phase 2: the leader dies. Another node takes over; no handshake loses its staple.
	leader := findLeader(t, nodes)
	row2 := outcome(t, "the leader killed: another takes over, every handshake stapled", "staple serve ×3")
	killed := time.Now()
	aliveMu.Lock()
	leader.dead = true
	aliveMu.Unlock()
	syscall.Kill(-leader.proc.Cmd.Process.Pid, syscall.SIGKILL)
	<-leader.proc.Done()
	var next *fleetNodeProc
	harness.WaitFor(t, 4*2*time.Second+2*time.Second, func() bool { next = findLeaderOrNil(nodes); return next != nil && next != leader }, "a new leader")
	takeover := time.Since(killed)
	time.Sleep(validity)
	after := responderRequests(t, lab.responder.Output(), killed.Add(takeover), time.Now())
	fetched := 0
	for _, times := range after {
		fetched += len(times)
	}
	if fetched == 0 {
		t.Error("no fetch after the leader died: the new leader does not refresh")
	}
	row2.Note("new leader %s after %v; %d fetches since", next.name, takeover.Round(100*time.Millisecond), fetched)

	// Phase 3: etcd stops. Every node keeps stapling, fetching for itself near expiry.
	row3 := outcome(t, "etcd stopped: every node keeps stapling, then catches up", "etcd 3.4 (stopped, restarted)")
	etcd.kill()
	time.Sleep(validity + 5*time.Second) // past the expiry of every response fetched before the stop
	etcd.start()
	harness.WaitFor(t, 30*time.Second, func() bool { return findLeaderOrNil(nodes) != nil }, "a leader after etcd returned")
	// Caught up: the live nodes staple the same response for a certificate.
	converged := 0
	harness.WaitFor(t, 30*time.Second, func() bool {
		converged = 0
		for _, l := range labs[:20] {
			var first []byte
			same := true
			for _, n := range alive() {
				st, err := dial(n, l, nil)
				if err != nil {
					return false
				}
				if first == nil {
					first = st.OCSPResponse
				} else if string(first) != string(st.OCSPResponse) {
					same = false
				}
			}
			if same {
				converged++
			}
		}
		return converged >= 18 // a refresh may land between two dials
	}, "the nodes agreeing on the newest responses")
	row3.Note("%d of 20 certificates stapled identically by both nodes after etcd returned", converged)

	t.Run("cache commands on the fleet's store", func(t *testing.T) {
		r := outcome(t, "staple cache ls with no service, from the fleet's etcd", "etcd 3.4")
		// The dead leader's data directory has no service: the command reads the fleet's store.
		out := mustStaple(t, "cache", "ls", "--config", leader.config)
		if n := strings.Count(out, " good "); n != certsN {
			t.Errorf("cache ls from the fleet's store lists %d good certificates, want %d:\n%s", n, certsN, out)
		}
		r.Note("%d certificates listed", certsN)

		// cache show names the nodes that serve a certificate: every live one (the dead leader's claims go
		// with its lease, a few seconds after the kill).
		var key string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, " good ") {
				key = strings.Fields(line)[0]
				break
			}
		}
		show := mustStaple(t, "cache", "show", key, "--config", leader.config)
		var served string
		for _, line := range strings.Split(show, "\n") {
			if strings.HasPrefix(line, "Served by:") {
				served = line
			}
		}
		for _, n := range nodes {
			if n != leader && !strings.Contains(served, n.name) {
				t.Errorf("cache show %s does not name %s among the nodes that serve it: %q", key, n.name, served)
			}
		}
		r.Note("served by: %s", strings.TrimSpace(strings.TrimPrefix(served, "Served by:")))
	})

	close(stop)
	wg.Wait()
	hammer := outcome(t, "handshakes to live nodes with no valid staple, whole test", "Go crypto/tls clients")
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.violated > 0 {
		t.Errorf("%d of %d handshakes got no valid staple (last: %s)", sw.violated, sw.handshakes, sw.last)
	}
	hammer.Note("%d handshakes, %d without a valid staple", sw.handshakes, sw.violated)
}

// responderRequests returns, per serial (upper-case hex), the times staple responder logged a request for it
// between from and to.
func responderRequests(t *testing.T, log string, from, to time.Time) map[string][]time.Time {
	t.Helper()
	out := map[string][]time.Time{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Message string   `json:"message"`
			Serials []string `json:"serials"`
			Time    string   `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Message != "ocsp" {
			continue
		}
		at, err := time.Parse(time.RFC3339, line.Time)
		if err != nil || at.Before(from.Truncate(time.Second)) || at.After(to) {
			continue
		}
		for _, s := range line.Serials {
			out[s] = append(out[s], at)
		}
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out
}

// findLeader returns the node whose last "fleet role" line says leader.
func findLeader(t *testing.T, nodes []*fleetNodeProc) *fleetNodeProc {
	t.Helper()
	var n *fleetNodeProc
	harness.WaitFor(t, 10*time.Second, func() bool { n = findLeaderOrNil(nodes); return n != nil }, "a leader")
	return n
}

func findLeaderOrNil(nodes []*fleetNodeProc) *fleetNodeProc {
	for _, n := range nodes {
		if n.dead {
			continue
		}
		role := ""
		sc := bufio.NewScanner(strings.NewReader(n.proc.Output()))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Message, Role string
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "fleet role" {
				role = line.Role
			}
		}
		if role == "leader" {
			return n
		}
	}
	return nil
}
