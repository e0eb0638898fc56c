//go:build interop

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"staple/internal/testpki"
)

// The side-by-side suite: every scenario (interop_nodeside_scenarios_test.go) runs once against Node 20's
// tls.Server (testdata/nodeside/server.js) and once against tlsserver (testdata/tlsnode), with the same
// clients (openssl s_client, Node's tls.connect, Go's crypto/tls, a raw TCP client), and what each shows is
// compared: the server's events in order with their fields (authorized, authorizationError, resumption,
// servername, ALPN, the certificate served, tlsClientError codes), the clients' view (handshake, protocol,
// ALPN, resumption, the staple's bytes, alerts, the greeting) and the connection counts. A difference
// documented in docs/node-tls-mapping.md ("Differences that remain", D1…) is named by the scenario and
// erased by its normalizer before the comparison; any other difference fails.

// TestInteropNodeSide runs the scenarios. It skips, with one line, where Node 20 is not installed.
func TestInteropNodeSide(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the side-by-side suite compares tlsserver with Node 20's tls.Server (.ci/run installs it)")
	}
	if v, err := exec.Command(node, "--version").Output(); err != nil || !strings.HasPrefix(string(v), "v20.") {
		t.Skipf("node %s: the side-by-side suite's reference is Node 20", strings.TrimSpace(string(v)))
	}
	needTools(t, "openssl")
	w := newSideWorld(t)
	documented := documentedDifferences(t)
	if len(sideScenarios) < 80 {
		t.Errorf("%d scenarios, want at least 80", len(sideScenarios))
	}
	seen := map[string]bool{}
	for _, sc := range sideScenarios {
		if seen[sc.name] {
			t.Fatalf("two scenarios named %q", sc.name)
		}
		seen[sc.name] = true
		t.Run(sc.name, func(t *testing.T) {
			row := outcome(t, "side by side: "+sc.name, "node "+w.nodeVersion+" tls.Server")
			var ids []string
			for _, d := range sc.diff {
				if !documented[d.id] {
					t.Fatalf("difference %s is not in docs/node-tls-mapping.md", d.id)
				}
				ids = append(ids, d.id)
			}
			nodeObs := w.run(t, sc, "node")
			goObs := w.run(t, sc, "go")
			for _, d := range sc.diff {
				var edited int
				nodeObs, edited = d.apply(t, d.node, nodeObs)
				var n int
				goObs, n = d.apply(t, d.gos, goObs)
				if edited+n == 0 {
					t.Errorf("difference %s does not show: tlsserver may now behave as Node (update the scenario and the document)", d.id)
				}
			}
			t.Logf("observations (Node's, normalized):\n%s", strings.Join(nodeObs, "\n"))
			if !slices.Equal(nodeObs, goObs) {
				t.Errorf("tlsserver differs from Node:\n%s", sideBySide(nodeObs, goObs))
			}
			for _, want := range sc.want {
				if !slices.ContainsFunc(nodeObs, func(o string) bool { return strings.Contains(o, want) }) {
					t.Errorf("no observation contains %q:\n%s", want, strings.Join(nodeObs, "\n"))
				}
			}
			if len(ids) > 0 {
				row.Note("differs: %s", strings.Join(slices.Compact(ids), " "))
			}
		})
	}
}

func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not installed", n)
		}
	}
}

// documentedDifferences reads the IDs of the differences docs/node-tls-mapping.md lists ("**D1.**").
func documentedDifferences(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "node-tls-mapping.md"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\*\*(D\d+)\.`).FindAllSubmatch(b, -1) {
		ids[string(m[1])] = true
	}
	return ids
}

func sideBySide(node, gos []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-60s | %s\n", "NODE", "TLSSERVER")
	for i := 0; i < max(len(node), len(gos)); i++ {
		n, g := "", ""
		if i < len(node) {
			n = node[i]
		}
		if i < len(gos) {
			g = gos[i]
		}
		mark := " "
		if n != g {
			mark = "≠"
		}
		fmt.Fprintf(&b, "%s %-60s | %s\n", mark, n, g)
	}
	return b.String()
}

// sideScenario is one configuration of the server and what the clients do against it.
type sideScenario struct {
	name  string
	spec  map[string]any // the server's spec (server.js); "@name" strings are files of the world's PKI
	steps []sideStep
	want  []string   // substrings some observation must hold (on both sides, after normalizing)
	diff  []sideDiff // documented differences (docs/node-tls-mapping.md) this scenario shows
}

// sideDiff is a documented difference as a scenario shows it: edits of each side's observations that erase
// it. An edit replaces each line its pattern matches by repl (expanded as regexp.ReplaceAllString does), or
// drops the line when repl is "-". The edits must change some line, or the difference no longer shows.
type sideDiff struct {
	id        string // D1…, as docs/node-tls-mapping.md numbers it
	node, gos []edit
}

type edit struct{ re, repl string }

func (d sideDiff) apply(t *testing.T, edits []edit, obs []string) ([]string, int) {
	t.Helper()
	n := 0
	for _, e := range edits {
		re, err := regexp.Compile(e.re)
		if err != nil {
			t.Fatalf("%s: %v", d.id, err)
		}
		var out []string
		for _, o := range obs {
			if !re.MatchString(o) {
				out = append(out, o)
				continue
			}
			n++
			if e.repl != "-" {
				out = append(out, re.ReplaceAllString(o, e.repl))
			}
		}
		obs = out
	}
	return obs, n
}

// sideStep is one client connection or one command to the server. Exactly one field is set.
type sideStep struct {
	openssl []string       // s_client arguments after -connect and -CAfile; "@name" are files; sess:NAME a session file
	node    map[string]any // client.js's connection; sessIn/sessOut are session names
	goc     *goStep
	raw     string         // "close", "http", "idle": a TCP client that is not TLS
	cmd     string         // a command to the server: "setTicketKeys HEX", "close", "release"
	restart map[string]any // a new server on the same port, the spec changed by these keys (nil values delete)
	sleep   time.Duration  // a pause (sessionTimeout)
}

// goStep is a connection of Go's client.
type goStep struct {
	version    uint16
	serverName string
	alpn       []string
	cert       string // "@name" of a key pair: sent whatever CA names the server asked for
	session    string // the name of a session cache shared by the steps that give it; "" for none
	hold       bool   // keep the connection open until the server's "release"
	curves     []tls.CurveID
	suites     []uint16
}

// sideWorld holds what every scenario shares: the PKI files and the built Go server.
type sideWorld struct {
	dir, goServer, nodeVersion string
	files                      map[string]string
}

func newSideWorld(t *testing.T) *sideWorld {
	t.Helper()
	w := &sideWorld{dir: t.TempDir(), files: map[string]string{}}
	v, _ := exec.Command("node", "--version").Output()
	w.nodeVersion = strings.TrimSpace(string(v))
	w.goServer = filepath.Join(w.dir, "tlsnode")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", w.goServer, "./testdata/tlsnode").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/tlsnode: %v\n%s", err, out)
	}
	w.writePKI(t)
	return w
}

// writePKI writes the certificates and keys the scenarios name: a root and intermediate (A) issuing the
// server leaves, an unrelated root (B), client certificates from each, self-signed ones, an OCSP response for
// the localhost leaf, an encrypted key and PKCS#12 files.
func (w *sideWorld) writePKI(t *testing.T) {
	t.Helper()
	now := time.Now()
	valid := func(o testpki.LeafOptions) testpki.LeafOptions {
		o.NotBefore, o.NotAfter = now.Add(-time.Hour), now.Add(48*time.Hour)
		return o
	}
	root := testpki.NewRoot(t, "root A", testpki.ECDSAP256)
	inter := root.NewIntermediate(t, "intermediate A", testpki.ECDSAP256)
	rootB := root.NewUnrelatedRoot(t, "root B", testpki.ECDSAP256)
	w.put(t, "root", root.CertPEM())
	w.put(t, "inter", inter.CertPEM())
	w.put(t, "rootB", rootB.CertPEM())
	leaf := inter.Issue(t, valid(testpki.LeafOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}))
	w.pair(t, "localhost", leaf)
	w.put(t, "localhost-leaf.crt", leaf.CertPEM())
	w.put(t, "staple.der", inter.Respond(t, leaf.Cert, testpki.ResponseOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)}))
	for _, name := range []string{"b.test", "c.test", "*.w.test", "a.w.test"} {
		w.pair(t, strings.ReplaceAll(name, "*", "star"), inter.Issue(t, valid(testpki.LeafOptions{DNSNames: []string{name}})))
	}
	w.pair(t, "rsa", inter.Issue(t, valid(testpki.LeafOptions{DNSNames: []string{"localhost"}, KeyType: testpki.RSA2048})))
	w.pair(t, "clientA", root.Issue(t, valid(testpki.LeafOptions{DNSNames: []string{"client A"}, ClientAuth: true})))
	w.pair(t, "clientB", rootB.Issue(t, valid(testpki.LeafOptions{DNSNames: []string{"client B"}, ClientAuth: true})))
	expired := testpki.LeafOptions{DNSNames: []string{"expired client"}, ClientAuth: true, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}
	w.pair(t, "expiredA", root.Issue(t, expired))
	self := testpki.NewRoot(t, "localhost", testpki.ECDSAP256) // a self-signed server certificate, as openssl req -x509 makes
	w.put(t, "self.crt", self.CertPEM())
	w.put(t, "self.key", testpki.KeyPEM(self.Key))
	w.put(t, "self2.crt", append(self.CertPEM(), self.CertPEM()...))
	selfClient := testpki.NewRoot(t, "self-signed client", testpki.ECDSAP256)
	w.put(t, "selfclient.crt", selfClient.CertPEM())
	w.put(t, "selfclient.key", testpki.KeyPEM(selfClient.Key))
	openssl := func(args ...string) {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = w.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %q: %v\n%s", args, err, out)
		}
	}
	openssl("pkey", "-in", "localhost.key", "-aes256", "-passout", "pass:s3cret", "-out", "localhost-enc.key")
	openssl("pkcs12", "-export", "-in", "localhost.crt", "-inkey", "localhost.key", "-passout", "pass:s3cret", "-out", "localhost.pfx",
		"-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1")
	openssl("pkcs12", "-export", "-in", "localhost.crt", "-inkey", "localhost.key", "-passout", "pass:s3cret", "-out", "localhost-modern.pfx")
	for _, n := range []string{"localhost-enc.key", "localhost.pfx", "localhost-modern.pfx"} {
		w.files[n] = filepath.Join(w.dir, n)
	}
}

func (w *sideWorld) put(t *testing.T, name string, data []byte) {
	t.Helper()
	file := filepath.Join(w.dir, name)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	w.files[name] = file
}

func (w *sideWorld) pair(t *testing.T, name string, l *testpki.Leaf) {
	t.Helper()
	w.put(t, name+".crt", l.ChainPEM())
	w.put(t, name+".key", l.KeyPEM())
}

// resolve replaces "@name" strings in v, recursively, by the paths of the PKI's files.
func (w *sideWorld) resolve(t *testing.T, v any) any {
	switch x := v.(type) {
	case string:
		if name, ok := strings.CutPrefix(x, "@"); ok {
			f, ok := w.files[name]
			if !ok {
				t.Fatalf("no PKI file %q", name)
			}
			return f
		}
		return x
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = w.resolve(t, s)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = w.resolve(t, e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = w.resolve(t, e)
		}
		return out
	}
	return v
}

// sideServer is one running server, Node's or tlsserver, with its event lines.
type sideServer struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan map[string]any
	port   int
}

// start runs the server of kind ("node" or "go") with spec; port 0 picks one. It returns nil and the
// createError observation when the server refuses its options.
func (w *sideWorld) start(t *testing.T, kind string, spec map[string]any, port int) (*sideServer, string) {
	t.Helper()
	spec = w.resolve(t, spec).(map[string]any)
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	name, args := w.goServer, []string{string(b)}
	if kind == "node" {
		name, args = "node", []string{"testdata/nodeside/server.js", string(b)}
	}
	s := &sideServer{cmd: exec.Command(name, args...), events: make(chan map[string]any, 256)}
	// The port goes in the environment: Node's default sessionIdContext is a hash of its arguments, which a
	// restart on the same port must keep.
	s.cmd.Env = append(os.Environ(), "SIDE_PORT="+strconv.Itoa(port))
	s.cmd.Stderr = os.Stderr
	s.cmd.WaitDelay = 2 * time.Second
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				s.events <- ev
			}
		}
	}()
	ev := s.next(t)
	switch ev["ev"] {
	case "listening":
		s.port = int(ev["port"].(float64))
		return s, ""
	case "createError":
		s.stop()
		return nil, "S createError"
	}
	t.Fatalf("%s server: %v", kind, ev)
	return nil, ""
}

func (s *sideServer) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the server exited")
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no event from the server within 15 s")
	}
	return nil
}

func (s *sideServer) stop() {
	if s.cmd.ProcessState == nil {
		s.stdin.Close()
		time.AfterFunc(2*time.Second, func() { s.cmd.Process.Kill() })
		s.cmd.Wait()
	}
}

// command sends a command and returns the events up to its answer ("ok" or "sync").
func (s *sideServer) command(t *testing.T, line string) []string {
	t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
	var obs []string
	for {
		ev := s.next(t)
		switch ev["ev"] {
		case "ok":
			return obs
		case "sync":
			return append(obs, fmt.Sprintf("S connections=%v", ev["connections"]))
		}
		obs = append(obs, formatEvent(ev))
	}
}

// formatEvent writes an event as "S name key=value …", keys sorted.
func formatEvent(ev map[string]any) string {
	var keys []string
	for k := range ev {
		if k != "ev" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "S %v", ev["ev"])
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, ev[k])
	}
	return b.String()
}

// sideRun is one scenario against one server: its state across steps.
type sideRun struct {
	w       *sideWorld
	kind    string
	spec    map[string]any
	srv     *sideServer
	dir     string // session files
	caches  map[string]tls.ClientSessionCache
	held    []chan string
	obs     []string
	stopped bool // the server refused its options
}

// run plays sc against the server of kind and returns the observations.
func (w *sideWorld) run(t *testing.T, sc sideScenario, kind string) []string {
	t.Helper()
	r := &sideRun{w: w, kind: kind, spec: sc.spec, dir: t.TempDir(), caches: map[string]tls.ClientSessionCache{}}
	var refused string
	if r.srv, refused = w.start(t, kind, sc.spec, 0); r.srv == nil {
		return []string{refused}
	}
	for _, st := range sc.steps {
		r.step(t, st)
		if r.stopped {
			break
		}
	}
	return r.obs
}

func (r *sideRun) step(t *testing.T, st sideStep) {
	t.Helper()
	switch {
	case st.sleep > 0:
		time.Sleep(st.sleep)
		return
	case st.cmd == "release":
		r.obs = append(r.obs, r.srv.command(t, "release")...)
		for _, h := range r.held {
			r.obs = append(r.obs, <-h)
		}
		r.held = nil
	case st.cmd != "":
		r.obs = append(r.obs, r.srv.command(t, st.cmd)...)
		return
	case st.restart != nil:
		port := r.srv.port
		r.srv.stop()
		spec := map[string]any{}
		for k, v := range r.spec {
			spec[k] = v
		}
		for k, v := range st.restart {
			if v == nil {
				delete(spec, k)
			} else {
				spec[k] = v
			}
		}
		var refused string
		if r.srv, refused = r.w.start(t, r.kind, spec, port); r.srv == nil {
			r.obs, r.stopped = append(r.obs, refused), true
		}
		return
	case st.openssl != nil:
		r.obs = append(r.obs, r.openssl(t, st.openssl))
	case st.node != nil:
		r.obs = append(r.obs, r.node(t, st.node))
	case st.goc != nil && st.goc.hold:
		r.held = append(r.held, r.goHold(t, st.goc))
		// The client's handshake may end before the server's: wait for its secureConnection.
		for ev := r.srv.next(t); ; ev = r.srv.next(t) {
			r.obs = append(r.obs, formatEvent(ev))
			if ev["ev"] == "secureConnection" {
				break
			}
		}
	case st.goc != nil:
		r.obs = append(r.obs, r.goDial(t, st.goc, nil))
	case st.raw != "":
		r.obs = append(r.obs, r.raw(t, st.raw))
	}
	r.obs = append(r.obs, r.srv.command(t, fmt.Sprintf("sync %d", len(r.held)))...)
}

var (
	sslAlert    = regexp.MustCompile(`SSL alert number (\d+)`)
	sslHandshak = regexp.MustCompile(`\n(New|Reused), (TLSv1\.[23]|\(NONE\)), Cipher is (\S+)`)
	sslSubject  = regexp.MustCompile(`subject=CN = ([^\n,]+)`)
)

// openssl runs s_client and reports: the handshake (New, Reused or none), the protocol, ALPN, the staple,
// an alert received, the certificate's CN and whether the greeting arrived.
func (r *sideRun) openssl(t *testing.T, args []string) string {
	t.Helper()
	all := []string{"s_client", "-connect", "127.0.0.1:" + strconv.Itoa(r.srv.port), "-CAfile", r.w.files["root"], "-ign_eof"}
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "sess:"); ok {
			a = filepath.Join(r.dir, name+".sess")
			if all[len(all)-1] == "-sess_in" {
				if _, err := os.Stat(a); err != nil { // no session was saved: the client offers none
					all = all[:len(all)-1]
					continue
				}
			}
		}
		all = append(all, r.w.resolve(t, a).(string))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", all...)
	if _, err := exec.LookPath("stdbuf"); err == nil { // unbuffered: the greeting stays apart from s_client's reports
		cmd = exec.CommandContext(ctx, "stdbuf", append([]string{"-o0", "openssl"}, all...)...)
	}
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	out := stdout.String() + stderr.String()
	hs, proto := "none", "-"
	if m := sslHandshak.FindStringSubmatch(out); m != nil && m[3] != "(NONE)" {
		hs, proto = m[1], m[2]
	}
	alpn := "-"
	if i := strings.Index(out, "ALPN protocol: "); i >= 0 {
		alpn, _, _ = strings.Cut(out[i+len("ALPN protocol: "):], "\n")
	}
	staple := "-"
	switch {
	case strings.Contains(out, "OCSP response: no response sent"):
		staple = "none"
	case strings.Contains(out, "OCSP Response Status: successful"):
		staple = "successful"
	}
	alert := "-"
	if m := sslAlert.FindStringSubmatch(out); m != nil {
		alert = m[1]
	}
	cn := "-"
	if m := sslSubject.FindStringSubmatch(out); m != nil {
		cn = m[1]
	}
	return fmt.Sprintf("C openssl handshake=%s protocol=%s alpn=%s staple=%s alert=%s cn=%s greeting=%v",
		hs, proto, alpn, staple, alert, cn, strings.Contains(stdout.String(), "hello\n"))
}

// node runs client.js and reports what it printed.
func (r *sideRun) node(t *testing.T, conn map[string]any) string {
	t.Helper()
	c := r.w.resolve(t, conn).(map[string]any)
	c["port"], c["ca"] = r.srv.port, r.w.files["root"]
	for _, k := range []string{"sessIn", "sessOut"} {
		if name, ok := c[k].(string); ok {
			c[k] = filepath.Join(r.dir, name+".nodesess")
		}
	}
	b, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", "testdata/nodeside/client.js", string(b)).Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node client printed %q", out)
	}
	res["ev"] = "node"
	return "C" + strings.TrimPrefix(formatEvent(res), "S")
}

// goConfig is the Go client's configuration for a step.
func (r *sideRun) goConfig(t *testing.T, g *goStep) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(r.w.files["root"])
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: g.serverName, NextProtos: g.alpn, MinVersion: g.version, MaxVersion: g.version,
		CurvePreferences: g.curves, CipherSuites: g.suites, InsecureSkipVerify: true}
	if g.version == 0 {
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS13
	}
	if g.cert != "" {
		name := strings.TrimPrefix(g.cert, "@")
		c, err := tls.LoadX509KeyPair(r.w.files[name+".crt"], r.w.files[name+".key"])
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	if g.session != "" {
		if r.caches[g.session] == nil {
			r.caches[g.session] = tls.NewLRUClientSessionCache(4)
		}
		cfg.ClientSessionCache = r.caches[g.session]
	}
	return cfg
}

// goDial connects with Go's client and reports the handshake, the protocol, ALPN, resumption, the staple's
// SHA-256 and the certificate's CN, or the error (an alert by its name), and the greeting.
func (r *sideRun) goDial(t *testing.T, g *goStep, ready chan<- struct{}) string {
	t.Helper()
	cfg := r.goConfig(t, g)
	raw, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.srv.port), 5*time.Second)
	if err != nil {
		return "C go dial error"
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cfg)
	err = c.Handshake()
	if ready != nil {
		close(ready)
	}
	if err != nil {
		return "C go error=" + goClientError(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	data, _ := io.ReadAll(c)
	cs := c.ConnectionState()
	staple := "none"
	if cs.OCSPResponse != nil {
		sum := sha256.Sum256(cs.OCSPResponse)
		staple = hex.EncodeToString(sum[:8])
	}
	return fmt.Sprintf("C go protocol=%s alpn=%q resumed=%v staple=%s cn=%s greeting=%v",
		strings.Replace(tls.VersionName(cs.Version), "TLS 1", "TLSv1", 1), cs.NegotiatedProtocol, cs.DidResume, staple,
		cs.PeerCertificates[0].Subject.CommonName, string(data) == "hello\n")
}

// goHold connects in the background and keeps the connection until the server ends it.
func (r *sideRun) goHold(t *testing.T, g *goStep) chan string {
	t.Helper()
	done, ready := make(chan string, 1), make(chan struct{})
	go func() { done <- strings.Replace(r.goDial(t, g, ready), "C go", "C go (held)", 1) }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the held connection did not complete its handshake")
	}
	return done
}

// goClientError names what Go's client met: an alert the server sent, the end of the connection, or another
// error.
func goClientError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "remote error: tls: "):
		_, alert, _ := strings.Cut(msg, "remote error: tls: ")
		return "alert(" + alert + ")"
	case strings.Contains(msg, "EOF"), strings.Contains(msg, "connection reset"):
		return "closed"
	}
	return "other"
}

// raw is a client that is not TLS: "close" connects and closes, "http" sends an HTTP request, "idle"
// connects and waits for the server to close (the handshake timeout). It reports how the connection ended.
func (r *sideRun) raw(t *testing.T, kind string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.srv.port), 5*time.Second)
	if err != nil {
		return "C raw dial error"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	switch kind {
	case "close":
		return "C raw " + kind
	case "http":
		io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	}
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "C raw " + kind + " not closed by the server"
	}
	return fmt.Sprintf("C raw %s closed by the server after %d bytes", kind, len(b))
}
