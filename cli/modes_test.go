package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ocsp"

	"staple/cache"
	"staple/certs"
	"staple/config"
	"staple/internal/testpki"
	"staple/service"
)

// TestCacheCommandsBothModes runs every cache command, with good, failing and refused inputs, twice: once with
// no service (the command runs the engine over the cache file) and once through a running service's admin
// socket. Both must print the same, exit the same, and leave the same state in the cache file.
func TestCacheCommandsBothModes(t *testing.T) {
	p := newModesPKI(t)
	cases := []struct {
		name  string
		args  []string
		fault testpki.Fault // how the responder answers during the command
		setup []string      // a command run first, in the same mode
	}{
		{"ls", []string{"cache", "ls"}, 0, nil},
		{"ls json", []string{"cache", "ls", "--json"}, 0, nil},
		{"show by key", []string{"cache", "show", "{keyA}"}, 0, nil},
		{"show by certificate file", []string{"cache", "show", "{certB}", "--json"}, 0, nil},
		{"show by a short key", []string{"cache", "show", "{shortB}"}, 0, nil},
		{"show, no such key", []string{"cache", "show", "00:1"}, 0, nil},
		{"show, not a key", []string{"cache", "show", "nonsense"}, 0, nil},
		{"export base64", []string{"cache", "export", "{keyA}", "--format", "base64"}, 0, nil},
		{"export to a file", []string{"cache", "export", "{certA}", "--out", "{dir}/a.ocsp"}, 0, nil},
		{"export, no such key", []string{"cache", "export", "00:1", "--format", "base64"}, 0, nil},
		{"import", []string{"cache", "import", "{respC}", "--cert", "{certC}"}, 0, nil},
		{"import, older than held", []string{"cache", "import", "{olderA}", "--cert", "{certA}"}, 0, nil},
		{"import, another certificate's", []string{"cache", "import", "{respC}", "--cert", "{certA}"}, 0, nil},
		{"import, not a response", []string{"cache", "import", "{certA}", "--cert", "{certA}"}, 0, nil},
		{"import, no --cert", []string{"cache", "import", "{respC}"}, 0, nil},
		// A running service serves every certificate it holds but those imported since it started
		// (TestCacheRmServed covers rm of a served one).
		{"rm", []string{"cache", "rm", "{keyC}"}, 0, []string{"cache", "import", "{respC}", "--cert", "{certC}"}},
		{"rm, no such key", []string{"cache", "rm", "00:1"}, 0, nil},
		{"refresh one", []string{"cache", "refresh", "{keyA}"}, 0, nil},
		{"refresh all", []string{"cache", "refresh", "--json"}, 0, nil},
		{"refresh, responder fails", []string{"cache", "refresh", "{keyB}"}, testpki.Fault500, nil},
		{"refresh all, responder refuses", []string{"cache", "refresh"}, testpki.FaultUnauthorized, nil},
		{"refresh, no such key", []string{"cache", "refresh", "00:1"}, 0, nil},
	}
	// What some messages must say, in both modes.
	wantMsg := map[string]string{
		"import, older than held": "the one held was produced at 2025-12-31T23:00:00Z (thisUpdate 2025-12-31T23:00:00Z good), " +
			"this one at 2025-12-31T21:00:00Z (thisUpdate 2025-12-31T21:00:00Z good)",
		"refresh, responder fails": "answered HTTP 500",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			offline := p.runMode(t, dir, tc.setup, tc.args, tc.fault, false)
			live := p.runMode(t, dir, tc.setup, tc.args, tc.fault, true)
			if w := wantMsg[tc.name]; w != "" && (!strings.Contains(offline.msg, w) || offline.code == 0) {
				t.Errorf("message %q (exit %d), want one saying %q", offline.msg, offline.code, w)
			}
			if offline.out != live.out {
				t.Errorf("output differs\n--- no service\n%s\n--- through the service\n%s", offline.out, live.out)
			}
			if offline.code != live.code || offline.msg != live.msg {
				t.Errorf("exit differs: no service %d %q, through the service %d %q", offline.code, offline.msg, live.code, live.msg)
			}
			if offline.state != live.state {
				t.Errorf("state afterwards differs\n--- no service\n%s\n--- through the service\n%s", offline.state, live.state)
			}
			if offline.files != live.files {
				t.Errorf("files written differ: %q, %q", offline.files, live.files)
			}
		})
	}
}

// TestCacheRmServed: `cache rm` of a certificate a running service serves does not stop its stapling. The
// service drops the response and its history, keeps the certificate, fetches a fresh response at once and
// staples it; the command says so. With no service running, rm forgets the certificate (the service fetches
// it afresh when it starts and its site watches it again).
func TestCacheRmServed(t *testing.T) {
	p := newModesPKI(t)
	dir := t.TempDir()
	p.now = p.now.Add(time.Minute) // the fresh response differs from the one the fixture imported
	var stapled []byte
	var dialErr error
	p.whileServing = func() {
		c, err := tls.Dial("tcp", p.tlsAddr, &tls.Config{ServerName: "a.modes.test", InsecureSkipVerify: true})
		if err != nil {
			dialErr = err
			return
		}
		stapled = c.ConnectionState().OCSPResponse
		c.Close()
	}
	live := p.runMode(t, dir, nil, []string{"cache", "rm", "{keyA}"}, 0, true)
	p.whileServing = nil
	keyA := certs.NewKey(p.ca.Cert, p.a.Cert).String()
	if live.code != 0 || !strings.HasPrefix(live.out, "removed the response of "+keyA+"; the running service serves it") ||
		!strings.Contains(live.out, " good ") {
		t.Errorf("rm through the service: exit %d %q\n%s", live.code, live.msg, live.out)
	}
	if dialErr != nil || stapled == nil {
		t.Fatalf("after rm, the service staples nothing for the site: %v", dialErr)
	}
	// (x/crypto/ocsp does not verify Ed25519: the service verified it, and the fetch's thisUpdate tells.)
	if r, err := ocsp.ParseResponse(stapled, nil); err != nil || !r.ThisUpdate.Equal(p.now) {
		t.Errorf("after rm, the staple is not the fresh response: %v", err)
	}
	if !strings.Contains(live.state, "cert "+keyA) || strings.Count(live.state, "history "+keyA) != 1 ||
		!strings.Contains(live.state, "response "+keyA) {
		t.Errorf("after rm through the service, the cache lacks A's certificate, fresh response or history:\n%s", live.state)
	}
	offline := p.runMode(t, dir, nil, []string{"cache", "rm", "{keyA}"}, 0, false)
	if offline.code != 0 || offline.out != "removed "+keyA+"\n" || strings.Contains(offline.state, keyA) {
		t.Errorf("rm with no service: exit %d %q, state:\n%s", offline.code, offline.out, offline.state)
	}
}

// modesPKI is what both modes share: an Ed25519 CA (its signatures are deterministic, so both modes fetch
// the same bytes), its responder on a fixed clock, and the certificates of the fixture.
type modesPKI struct {
	ca        *testpki.CA
	responder *testpki.Responder
	a, b, c   *testpki.Leaf
	now       time.Time
	// stopServing stops the service serve started, and waits for it; tlsAddr is where it serves TLS.
	stopServing func()
	tlsAddr     string
	// whileServing, when set, runs after the command and before the service stops.
	whileServing func()
}

func newModesPKI(t *testing.T) *modesPKI {
	root := testpki.NewRoot(t, "Modes Root", testpki.Ed25519)
	ca := root.NewIntermediate(t, "Modes CA", testpki.Ed25519)
	p := &modesPKI{ca: ca, now: testpki.Epoch().Add(time.Hour)}
	p.responder = testpki.NewResponder(t, ca, testpki.ResponderOptions{Now: func() time.Time { return p.now }})
	issue := func(name string) *testpki.Leaf {
		return ca.Issue(t, testpki.LeafOptions{DNSNames: []string{name}, OCSPURLs: []string{p.responder.URL}, KeyType: testpki.Ed25519})
	}
	p.a, p.b, p.c = issue("a.modes.test"), issue("b.modes.test"), issue("c.modes.test")
	return p
}

// modeResult is what one command did in one mode.
type modeResult struct {
	out, msg, state, files string
	code                   int
}

// runMode makes the fixture in dir (a cache holding A and B as a service left them, their certificate files,
// and C's certificate and response), runs args through a service when live, else with none, and returns
// what the command printed and what the cache holds afterwards.
func (p *modesPKI) runMode(t *testing.T, dir string, setup, args []string, fault testpki.Fault, live bool) modeResult {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
	data := filepath.Join(dir, "data")
	env := Env{Now: func() time.Time { return p.now }, Rand: func() float64 { return 0.5 }}
	files := map[string]string{"{dir}": dir, "{data}": data}
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for name, l := range map[string]*testpki.Leaf{"A": p.a, "B": p.b, "C": p.c} {
		files["{cert"+name+"}"] = write(name+".pem", l.ChainPEM())
		write(name+".key", l.KeyPEM())
		key := certs.NewKey(p.ca.Cert, l.Cert)
		files["{key"+name+"}"] = key.String()
		files["{short"+name+"}"] = key.String()[:4] + key.String()[16:]
	}
	files["{respC}"] = write("C.der", p.ca.Respond(t, p.c.Cert, testpki.ResponseOptions{}))
	files["{olderA}"] = write("A-older.der", p.ca.Respond(t, p.a.Cert, testpki.ResponseOptions{ThisUpdate: testpki.Epoch().Add(-3 * time.Hour)}))
	store, err := cache.Open(filepath.Join(data, config.DatabaseName), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	for _, name := range []string{"A", "B"} {
		der := write(name+".der", p.ca.Respond(t, map[string]*testpki.Leaf{"A": p.a, "B": p.b}[name].Cert, testpki.ResponseOptions{}))
		if err := runEnv(env, "cache", "import", der, "--cert", files["{cert"+name+"}"], "--data-dir", data); err != nil {
			t.Fatalf("making the fixture: %v", err)
		}
	}

	if live {
		stop := p.serve(t, dir, data, files)
		defer stop()
	}
	if fault != 0 {
		p.responder.Fail(fault)
		defer p.responder.Fail(testpki.FaultNone)
	}
	expand := func(args []string) []string {
		expanded := []string{}
		for _, a := range append(args, "--data-dir", data) {
			for k, v := range files {
				a = strings.ReplaceAll(a, k, v)
			}
			expanded = append(expanded, a)
		}
		return expanded
	}
	if setup != nil {
		if err := runEnv(env, expand(setup)...); err != nil {
			t.Fatalf("%v: %v", setup, err)
		}
	}
	var out, errOut bytes.Buffer
	env.Stdout, env.Stderr = &out, &errOut
	err = Run(context.Background(), env, expand(args))
	r := modeResult{out: out.String() + errOut.String(), code: ExitCode(err), msg: Message(err)}
	if live && p.whileServing != nil {
		p.whileServing()
	}
	if live {
		// The service's engine writes what it holds when it stops; the state is read after that.
		p.stopServing()
	}
	r.state = dumpCache(t, filepath.Join(data, config.DatabaseName))
	if b, err := os.ReadFile(filepath.Join(dir, "a.ocsp")); err == nil {
		r.files = fmt.Sprintf("a.ocsp: %x", b)
	}
	return r
}

// serve starts staple serve in process on dir's fixture, with the sites A and B, on the test's clock.
func (p *modesPKI) serve(t *testing.T, dir, data string, files map[string]string) (stop func()) {
	t.Helper()
	cfg := &config.Config{DataDir: data, Listen: "127.0.0.1:0", Sites: []config.Site{
		{Names: []string{"a.modes.test"}, Cert: files["{certA}"], Key: filepath.Join(dir, "A.key")},
		{Names: []string{"b.modes.test"}, Cert: files["{certB}"], Key: filepath.Join(dir, "B.key")},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- service.Run(ctx, cfg, service.Options{Version: "test", Log: zerolog.New(zerolog.NewTestWriter(t)),
			Now: func() time.Time { return p.now }, Rand: func() float64 { return 0.5 },
			Started: func(a service.Addrs) { p.tlsAddr = a.TLS; close(started) }})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("staple serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("staple serve did not start within 30 s")
	}
	p.stopServing = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("staple serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("staple serve did not stop within 30 s")
		}
		p.stopServing = func() {}
	}
	return func() { p.stopServing() }
}

// runEnv runs a command line with env's clock and jitter, discarding its output.
func runEnv(env Env, args ...string) error {
	var discard bytes.Buffer
	env.Stdout, env.Stderr = &discard, &discard
	return Run(context.Background(), env, args)
}

// dumpCache renders everything the cache file holds about certificates, in key order.
func dumpCache(t *testing.T, path string) string {
	t.Helper()
	store, err := cache.Open(path, cache.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var b strings.Builder
	store.Certs(func(key certs.Key, c cache.Cert, err error) error {
		fmt.Fprintf(&b, "cert %s %v %v %v %x %x\n", key, c.URLs, c.MustStaple, c.Added, c.Leaf, c.Issuer)
		return err
	})
	store.Responses(func(key certs.Key, r cache.Response, err error) error {
		fmt.Fprintf(&b, "response %s %+v\n", key, r)
		return err
	})
	store.Histories(func(key certs.Key, h []cache.Attempt, err error) error {
		fmt.Fprintf(&b, "history %s %+v\n", key, h)
		return err
	})
	return b.String()
}
