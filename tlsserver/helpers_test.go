package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"staple/internal/testpki"
)

// fixture is the PKI of a test: a root, an intermediate, a server leaf valid now for localhost and
// 127.0.0.1 (real clients check real time), a good OCSP response for it, and a client certificate; all also
// written as PEM files for openssl and node.
type fixture struct {
	root, inter *testpki.CA
	leaf        *testpki.Leaf
	staple      []byte
	client      *testpki.Leaf
	dir         string
	rootFile    string
	clientCert  string
	clientKey   string
}

func newFixture(t testing.TB, kt testpki.KeyType) *fixture {
	t.Helper()
	now := time.Now()
	f := &fixture{dir: t.TempDir()}
	f.root = testpki.NewRoot(t, "tlsserver test root", kt)
	f.inter = f.root.NewIntermediate(t, "tlsserver test intermediate", kt)
	f.leaf = f.inter.Issue(t, testpki.LeafOptions{
		DNSNames:  []string{"localhost", "example.test"},
		IPs:       []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(24 * time.Hour),
		KeyType:   kt,
	})
	f.staple = f.inter.Respond(t, f.leaf.Cert, testpki.ResponseOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)})
	f.client = f.root.Issue(t, testpki.LeafOptions{
		DNSNames:   []string{"client.test"},
		NotBefore:  now.Add(-time.Hour),
		NotAfter:   now.Add(24 * time.Hour),
		ClientAuth: true,
	})
	f.rootFile = filepath.Join(f.dir, "root.pem")
	if err := os.WriteFile(f.rootFile, f.root.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	f.clientCert, f.clientKey = writeLeaf(t, f.dir, "client", f.client)
	return f
}

// issue returns a server leaf for names, valid now, under the intermediate.
func (f *fixture) issue(t testing.TB, names ...string) *testpki.Leaf {
	t.Helper()
	now := time.Now()
	return f.inter.Issue(t, testpki.LeafOptions{DNSNames: names, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
}

func writeLeaf(t testing.TB, dir, name string, l *testpki.Leaf) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, l.ChainPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func (f *fixture) context(l *testpki.Leaf) *SecureContext {
	c := l.TLSCertificate()
	return &SecureContext{Certificate: &c}
}

func (f *fixture) rootPool() *x509.CertPool { return f.root.Pool() }

// recorder collects what the server's hooks saw.
type recorder struct {
	mu      sync.Mutex
	secure  []seen
	errs    chan clientErr
	ocsp    []ocspCall
	secured chan seen
}

type seen struct {
	serverName, alpn, authErr string
	resumed, authorized       bool
	version                   uint16
}

type clientErr struct {
	remote string
	err    error
}

type ocspCall struct{ cert, issuer *x509.Certificate }

func newRecorder() *recorder {
	return &recorder{errs: make(chan clientErr, 64), secured: make(chan seen, 64)}
}

// hook installs the recorder's SecureConnection (which greets and closes) and ClientError on s.
func (r *recorder) hook(s *Server) {
	s.SecureConnection = func(c *Conn) {
		v := seen{
			serverName: c.ServerName(), alpn: c.ALPNProtocol(), authErr: c.AuthorizationError(),
			resumed: c.Resumed(), authorized: c.Authorized(), version: c.ConnectionState().Version,
		}
		r.mu.Lock()
		r.secure = append(r.secure, v)
		r.mu.Unlock()
		r.secured <- v
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "hello\n")
	}
	s.ClientError = func(c *Conn, err error) {
		r.errs <- clientErr{remote: c.RemoteAddr().String(), err: err}
	}
}

// stapleFrom returns an OCSPRequest hook that records its calls and returns resp, err.
func (r *recorder) stapleFrom(resp []byte, err error) func(context.Context, *x509.Certificate, *x509.Certificate) ([]byte, error) {
	return func(_ context.Context, cert, issuer *x509.Certificate) ([]byte, error) {
		r.mu.Lock()
		r.ocsp = append(r.ocsp, ocspCall{cert, issuer})
		r.mu.Unlock()
		return resp, err
	}
}

func (r *recorder) ocspCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ocsp)
}

func (r *recorder) lastOCSP(t *testing.T) ocspCall {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ocsp) == 0 {
		t.Fatal("OCSPRequest was never called")
	}
	return r.ocsp[len(r.ocsp)-1]
}

// nextSecure waits for the next SecureConnection.
func (r *recorder) nextSecure(t *testing.T) seen {
	t.Helper()
	select {
	case v := <-r.secured:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no secureConnection within 10 s")
	}
	return seen{}
}

// nextError waits for the next ClientError.
func (r *recorder) nextError(t *testing.T) clientErr {
	t.Helper()
	select {
	case e := <-r.errs:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no clientError within 10 s")
	}
	return clientErr{}
}

// noError fails if a ClientError is pending.
func (r *recorder) noError(t *testing.T) {
	t.Helper()
	select {
	case e := <-r.errs:
		t.Fatalf("unexpected clientError from %s: %v", e.remote, e.err)
	default:
	}
}

// start listens on 127.0.0.1 and a free port, and closes the server at cleanup, waiting for its connections
// and checking that none of its goroutines is left.
func start(t *testing.T, s *Server) (addr string, port int) {
	t.Helper()
	if err := s.Listen(0, "127.0.0.1", nil); err != nil {
		t.Fatal(err)
	}
	n, _ := running.LoadOrStore(t, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
	t.Cleanup(func() {
		shutdown(t, s)
		if n.(*atomic.Int32).Add(-1) == 0 { // the test's last server: none of their goroutines may be left
			running.Delete(t)
			waitNoServerGoroutines(t)
		}
	})
	a, err := s.Address()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(a.Address, strconv.Itoa(a.Port)), a.Port
}

// running counts, per test, the servers start has started and not yet stopped.
var running sync.Map // *testing.T → *atomic.Int32

func shutdown(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, ErrNotListening) {
		t.Errorf("Shutdown: %v", err)
	}
}

// stop shuts s down and checks that no server goroutine is left.
func stop(t *testing.T, s *Server) {
	t.Helper()
	shutdown(t, s)
	waitNoServerGoroutines(t)
}

// serverFrames are the functions of the server's own goroutines.
var serverFrames = []string{"tlsserver.(*Server).serve", "tlsserver.(*Server).serveConn", "tlsserver.(*Server).handshakeDeadline.func1"}

// waitNoServerGoroutines polls, with a deadline, until no goroutine runs the server's code.
func waitNoServerGoroutines(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		stacks := allStacks()
		left := ""
		for _, g := range strings.Split(stacks, "\n\n") {
			for _, f := range serverFrames {
				if strings.Contains(g, f+"(") || strings.Contains(g, f+"[") {
					left = g
				}
			}
		}
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server goroutine left after Close:\n%s", left)
		}
		<-tick.C
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goResult is what Go's crypto/tls client saw.
type goResult struct {
	state tls.ConnectionState
	data  string
	err   error
}

// goDial connects with Go's client, completes the handshake, and reads until the server closes.
func goDial(t testing.TB, addr string, cfg *tls.Config) goResult {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return goResult{err: err}
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return goResult{err: err}
	}
	data, err := io.ReadAll(c)
	return goResult{state: c.ConnectionState(), data: string(data), err: err}
}

func (f *fixture) goConfig(version uint16) *tls.Config {
	return &tls.Config{RootCAs: f.rootPool(), ServerName: "localhost", MinVersion: version, MaxVersion: version}
}

// sslResult is what openssl s_client printed.
type sslResult struct {
	out      string
	reused   bool
	staple   bool // a successful OCSP response was stapled
	noStaple bool // "OCSP response: no response sent"
	alpn     string
	hello    bool // the server's greeting arrived
}

func needBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed: %v", name, err)
	}
}

// sClient runs openssl s_client against addr with args; it reads until the server closes.
func sClient(t testing.TB, addr string, f *fixture, args ...string) sslResult {
	t.Helper()
	needBinary(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	all := append([]string{"openssl", "s_client", "-connect", addr, "-CAfile", f.rootFile, "-ign_eof"}, args...)
	// s_client writes application data straight to fd 1 but its reports through buffered stdio, so the
	// greeting can land inside a report; unbuffered stdio (stdbuf -o0) keeps them in order.
	if _, err := exec.LookPath("stdbuf"); err == nil {
		all = append([]string{"stdbuf", "-o0"}, all...)
	}
	cmd := exec.CommandContext(ctx, all[0], all[1:]...)
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	s := stdout.String() + stderr.String()
	r := sslResult{
		out:      s,
		reused:   strings.Contains(s, "\nReused, "),
		staple:   strings.Contains(s, "OCSP Response Status: successful"),
		noStaple: strings.Contains(s, "OCSP response: no response sent"),
		hello:    strings.Contains(stdout.String(), "\nhello\n"),
	}
	if i := strings.Index(s, "ALPN protocol: "); i >= 0 {
		r.alpn, _, _ = strings.Cut(s[i+len("ALPN protocol: "):], "\n")
	}
	return r
}

// nodeConn is one connection of the Node client (testdata/client.js).
type nodeConn struct {
	Host        string   `json:"host,omitempty"`
	Port        int      `json:"port,omitempty"`
	Version     string   `json:"version,omitempty"`
	ServerName  *string  `json:"servername,omitempty"`
	RequestOCSP bool     `json:"requestOCSP,omitempty"`
	ALPN        []string `json:"alpn,omitempty"`
	Cert        string   `json:"cert,omitempty"`
	Key         string   `json:"key,omitempty"`
	Reuse       *int     `json:"reuse,omitempty"`
}

// nodeResult is what the Node client saw on one connection.
type nodeResult struct {
	Connected  bool            `json:"connected"`
	Protocol   string          `json:"protocol"`
	ALPN       json.RawMessage `json:"alpn"` // a string, or false
	Reused     bool            `json:"reused"`
	Authorized bool            `json:"authorized"`
	Subject    string          `json:"subject"` // the server certificate's CN
	OCSP       json.RawMessage `json:"ocsp"`    // "none" (no event), null, or base64
	Data       string          `json:"data"`
	Error      string          `json:"error"`
}

// staple returns the stapled response; ok is false when the 'OCSPResponse' event did not fire.
func (r nodeResult) staple(t testing.TB) (resp []byte, ok bool) {
	t.Helper()
	if string(r.OCSP) == `"none"` || len(r.OCSP) == 0 {
		return nil, false
	}
	if string(r.OCSP) == "null" {
		return nil, true
	}
	var s string
	if err := json.Unmarshal(r.OCSP, &s); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// nodeClient runs testdata/client.js with conns against port.
func nodeClient(t testing.TB, port int, f *fixture, conns ...nodeConn) []nodeResult {
	t.Helper()
	needBinary(t, "node")
	plan, err := json.Marshal(map[string]any{"port": port, "ca": f.rootFile, "conns": conns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/client.js", string(plan))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr.String())
	}
	var res []nodeResult
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var r nodeResult
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("node client output: %v\n%s", err, out)
		}
		res = append(res, r)
	}
	if len(res) != len(conns) {
		t.Fatalf("node client printed %d results for %d connections:\n%s\n%s", len(res), len(conns), out, stderr.String())
	}
	return res
}

func str(s string) *string { return &s }
func idx(i int) *int       { return &i }

func versionName(v uint16) string {
	if v == tls.VersionTLS12 {
		return "TLSv1.2"
	}
	return "TLSv1.3"
}

func sslFlag(v uint16) string {
	if v == tls.VersionTLS12 {
		return "-tls1_2"
	}
	return "-tls1_3"
}

var versions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
