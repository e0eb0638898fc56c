//go:build interop

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"staple/cache"
	"staple/e2e/harness"
)

// TestInteropFileModes: with a umask of 0, so that nothing is 0600 by luck, every file that holds a secret
// is 0600 and every directory that holds them 0700: the keys of a lab made by staple lab (root, issuing CA,
// OCSP signer, leaf) and of the embedded default's lab, the cache file (responses, sessions and ticket keys)
// and the admin socket.
func TestInteropFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	t.Run("configured lab", func(t *testing.T) {
		row := outcome(t, "files: lab keys, cache and admin socket 0600 (umask 0)", "Linux permissions")
		f := newLabFixture(t, "@every 30s") // staple lab init and issue, under umask 0
		labResponder(t, f, time.Hour)
		srv := harness.Start(t, binary, "serve", "--config", f.Config)
		srv.WaitLog("staple serving", harness.Timeout)
		newStapleClient(t, f, "site.test").waitGoodStaple(t, f.TLSAddr, 20*time.Second)
		n := checkModes(t, f.Dir, f.DataDir)
		srv.Stop()
		row.Note("%d secret files and directories checked", n)
	})
	t.Run("embedded default", func(t *testing.T) {
		row := outcome(t, "files: embedded lab keys, cache and admin socket 0600 (umask 0)", "Linux permissions")
		e := newEmbedded(t, "info")
		srv := harness.Start(t, binary, "serve", "--config", e.config, "--data-dir", e.dataDir, "--log-format", "json")
		srv.WaitLog("staple serving", harness.Timeout)
		e.client(t).waitGoodStaple(t, e.tlsAddr, 20*time.Second)
		n := checkModes(t, filepath.Join(e.dataDir, "lab"), e.dataDir)
		srv.Stop()
		row.Note("%d secret files and directories checked", n)
	})
}

// checkModes checks the modes of the secrets under a lab directory and a data directory and returns how
// many it checked. Certificates, index.txt and the like are public; keys, the cache file and the admin
// socket must be 0600, and the data directory and the lab's key directories 0700.
func checkModes(t *testing.T, labDir, dataDir string) int {
	t.Helper()
	n := 0
	want := func(path string, mode fs.FileMode) {
		t.Helper()
		st, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		n++
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	keys := 0
	filepath.WalkDir(labDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".key") {
			want(p, 0o600)
			keys++
		}
		return nil
	})
	if keys < 4 {
		t.Errorf("%d keys under %s, want at least the root's, the CA's, the OCSP signer's and a leaf's", keys, labDir)
	}
	want(filepath.Join(dataDir, "cache.db"), 0o600)
	want(filepath.Join(dataDir, "admin.sock"), 0o600)
	want(dataDir, 0o700)
	return n
}

// TestInteropNoSecretsInLogs runs serve at --log-level debug, configured and as the embedded default, through
// full and resumed handshakes (TLS 1.2 and 1.3), a failed handshake, the status page, forced refreshes, a
// ticket key rotation and a reload, then stops it and greps everything it printed for its secrets: the
// private keys (PEM body and its lines, DER and the private scalar in hex and base64), the session ticket
// keys (read from the cache file after the stop), the TLS sessions (the secret inside each session the
// server stored, found from the client's tickets, and the client's own copy) and the master and traffic
// secrets of every handshake (from the client's KeyLogWriter).
func TestInteropNoSecretsInLogs(t *testing.T) {
	t.Run("configured", func(t *testing.T) {
		row := outcome(t, "secrets: none in serve's debug log (configured site)", "Go crypto/tls client")
		f := newLabFixture(t, "@every 1s")
		resp := labResponder(t, f, time.Hour, "--log-level", "debug")
		// sessions = "store": the sessions go to the cache file, where the test finds their secrets.
		writeServeConfig(t, f, serveConfig{top: []string{`log_level = "debug"`, `sessions = "store"`,
			fmt.Sprintf("responder_listen = %q", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t))),
			fmt.Sprintf("metrics_listen = %q", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)))},
			tables: []string{"[tickets]\nrotate = \"@every 2s\""},
		})
		srv := harness.Start(t, binary, "serve", "--config", f.Config)
		srv.WaitLog("staple serving", harness.Timeout)
		ex := exercise(t, srv, f.TLSAddr, newStapleClient(t, f, "site.test"), f.DataDir)
		srv.Stop()
		resp.Stop()

		var s secrets
		keys := []string{f.Key, filepath.Join(f.Dir, "ocsp.key"), filepath.Join(f.Dir, "ca.key"), filepath.Join(f.Dir, "root.key")}
		for _, k := range keys {
			s.addKeyFile(t, k)
		}
		ex.addFromCache(t, &s, filepath.Join(f.DataDir, "cache.db"), true)
		s.addAll(ex.clientSecrets)
		s.control(t, keys, ex)
		s.report(t, row, ex, srv.Output()+"\n"+resp.Output())
	})
	t.Run("embedded default", func(t *testing.T) {
		row := outcome(t, "secrets: none in serve's debug log (embedded default)", "Go crypto/tls client")
		e := newEmbedded(t, "debug")
		srv := harness.Start(t, binary, "serve", "--config", e.config, "--data-dir", e.dataDir, "--log-format", "json")
		srv.WaitLog("staple serving", harness.Timeout)
		ex := exercise(t, srv, e.tlsAddr, e.client(t), e.dataDir)
		srv.Stop()

		var s secrets
		var keys []string
		filepath.WalkDir(filepath.Join(e.dataDir, "lab"), func(p string, _ fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".key") {
				s.addKeyFile(t, p)
				keys = append(keys, p)
			}
			return nil
		})
		ex.addFromCache(t, &s, filepath.Join(e.dataDir, "cache.db"), false) // tickets: no session stored
		s.addAll(ex.clientSecrets)
		s.control(t, keys, ex)
		s.report(t, row, ex, srv.Output())
	})
}

// embedded is staple serve with no site: the embedded default, on free ports.
type embedded struct {
	dataDir, config, tlsAddr string
}

func newEmbedded(t *testing.T, level string) *embedded {
	t.Helper()
	dir := t.TempDir()
	e := &embedded{dataDir: filepath.Join(dir, "staple-data"), config: filepath.Join(dir, "ports.toml"),
		tlsAddr: "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))}
	conf := fmt.Sprintf("listen = %q\nlab_responder_url = \"http://127.0.0.1:%d\"\nlog_level = %q\n\n[tickets]\nrotate = \"@every 2s\"\n",
		e.tlsAddr, harness.FreePort(t), level)
	if err := os.WriteFile(e.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *embedded) client(t *testing.T) *stapleClient {
	t.Helper()
	lab := filepath.Join(e.dataDir, "lab")
	return &stapleClient{roots: certPool(t, filepath.Join(lab, "root.pem")), issuer: readCert(t, filepath.Join(lab, "ca.pem")), serverName: "localhost"}
}

// exercised is what exercise did and what it learnt of the secrets on the client's side.
type exercised struct {
	handshakes, resumed, debugLines int
	tickets                         [][]byte // the session IDs the server gave, to find its sessions by
	clientSecrets                   map[string][]byte
	keyLog                          string // the client's key log, where the secrets are in hex
}

// exercise drives a running serve through everything that might log: full and resumed handshakes with
// TLS 1.2 and 1.3, a handshake that fails, the status page, forced refreshes, ticket rotations (every 2 s)
// and a reload.
func exercise(t *testing.T, srv *harness.Process, addr string, client *stapleClient, dataDir string) *exercised {
	t.Helper()
	ex := &exercised{clientSecrets: map[string][]byte{}}
	var keylog keyLog
	sessions := &recordingCache{ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	round := func() {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			for range 3 { // a full handshake, then resumptions
				cfg := client.config()
				cfg.MinVersion, cfg.MaxVersion = v, v
				cfg.ClientSessionCache = sessions
				cfg.KeyLogWriter = &keylog
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
				cancel()
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				tc := conn.(*tls.Conn)
				if err := statusPage(tc); err != nil { // also reads the TLS 1.3 tickets
					t.Fatal(err)
				}
				ex.handshakes++
				if tc.ConnectionState().DidResume {
					ex.resumed++
				}
				conn.Close()
			}
		}
	}
	client.waitGoodStaple(t, addr, 20*time.Second)
	round()
	if c, err := net.Dial("tcp", addr); err == nil { // a handshake that does not complete
		c.Write([]byte("\x16\x03\x01\x00\x05hello"))
		c.Close()
	}
	mustStaple(t, "cache", "refresh", "--data-dir", dataDir)
	mustStaple(t, "cache", "ls", "--data-dir", dataDir)
	time.Sleep(2500 * time.Millisecond) // a ticket key rotation
	srv.Cmd.Process.Signal(syscall.SIGHUP)
	srv.WaitLog("configuration reloaded", harness.Timeout)
	round()
	mustStaple(t, "cache", "refresh", "--data-dir", dataDir)
	time.Sleep(time.Second) // the session store writes behind

	if ex.resumed == 0 {
		t.Fatal("no handshake resumed: the sessions were not exercised")
	}
	ex.keyLog = strings.Join(keylog.lines(), "\n")
	for i, line := range keylog.lines() {
		f := strings.Fields(line) // LABEL CLIENT_RANDOM SECRET
		if len(f) != 3 {
			continue
		}
		secret, err := hex.DecodeString(f[2])
		if err != nil {
			t.Fatalf("key log line %q: %v", line, err)
		}
		ex.clientSecrets[fmt.Sprintf("%s #%d (key log)", f[0], i)] = secret
	}
	for i, cs := range sessions.all() {
		id, state, err := cs.ResumptionState()
		if err != nil || state == nil {
			continue
		}
		ex.tickets = append(ex.tickets, id)
		data, err := state.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		ex.clientSecrets[fmt.Sprintf("client session #%d: secret", i)] = sessionSecret(t, data)
	}
	if len(ex.clientSecrets) == 0 || len(ex.tickets) == 0 {
		t.Fatalf("%d secrets from the key log and the client's sessions, %d tickets: nothing to look for", len(ex.clientSecrets), len(ex.tickets))
	}
	for _, l := range strings.Split(srv.Output(), "\n") {
		if strings.Contains(l, `"level":"debug"`) {
			ex.debugLines++
		}
	}
	if ex.debugLines == 0 {
		t.Error("no debug line in the log: was it at debug level?")
	}
	return ex
}

// addFromCache adds the ticket keys and, when the service stored sessions (sessions = "store"), the stored
// sessions of a cache file (serve stopped).
func (ex *exercised) addFromCache(t *testing.T, s *secrets, path string, sessionsStored bool) {
	t.Helper()
	st, err := cache.Open(path, cache.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.TicketKeys()
	if err != nil {
		t.Fatalf("ticket keys: %v", err)
	}
	s.add("ticket key (current)", k.Current)
	if len(k.Previous) > 0 {
		s.add("ticket key (previous)", k.Previous)
	}
	found := 0
	for i, id := range ex.tickets {
		data, err := st.LookupSession(id, time.Now())
		if err != nil || data == nil {
			continue // an earlier session that a later handshake replaced
		}
		found++
		s.add(fmt.Sprintf("stored session #%d: secret", i), sessionSecret(t, data))
		s.add(fmt.Sprintf("stored session #%d: whole", i), data)
	}
	switch {
	case sessionsStored && found == 0:
		t.Errorf("none of the %d sessions the client holds is in the cache file", len(ex.tickets))
	case !sessionsStored && found > 0:
		t.Errorf("%d sessions in the cache file of a service that seals them in tickets", found)
	}
}

// sessionSecret returns the secret of an encoded tls.SessionState (the master secret in TLS 1.2, the
// resumption PSK in TLS 1.3). The encoding is crypto/tls's (version, type, suite, created_at, secret<1..255>,
// ...): it fails the test if that no longer holds.
func sessionSecret(t *testing.T, data []byte) []byte {
	t.Helper()
	s := cryptobyte.String(data)
	var version, suite uint16
	var typ uint8
	var created uint64
	var secret cryptobyte.String
	if !s.ReadUint16(&version) || !s.ReadUint8(&typ) || !s.ReadUint16(&suite) || !s.ReadUint64(&created) ||
		!s.ReadUint8LengthPrefixed(&secret) || (version != tls.VersionTLS12 && version != tls.VersionTLS13) ||
		(typ != 1 && typ != 2) || tls.CipherSuiteName(suite) == fmt.Sprintf("0x%04X", suite) || len(secret) < 32 {
		t.Fatalf("crypto/tls's SessionState encoding is not the one this test knows (version %x, type %d, suite %x, %d-byte secret)",
			version, typ, suite, len(secret))
	}
	return secret
}

// secrets are byte strings that must not appear in a log, each in the encodings a log line could carry.
type secrets struct {
	names   []string
	needles map[string][]string // encoded → what it is (two secrets may be one: a TLS 1.2 session's is its master secret)
}

func (s *secrets) add(name string, b []byte) {
	if len(b) < 16 {
		return
	}
	if s.needles == nil {
		s.needles = map[string][]string{}
	}
	s.names = append(s.names, name)
	enc := map[string]string{
		"hex":              hex.EncodeToString(b),
		"HEX":              strings.ToUpper(hex.EncodeToString(b)),
		"base64":           base64.StdEncoding.EncodeToString(b),
		"base64url":        base64.RawURLEncoding.EncodeToString(b),
		"hex, 16 bytes":    hex.EncodeToString(b[:16]),
		"base64, 15 bytes": base64.RawStdEncoding.EncodeToString(b[:15]),
		"Go %v, 16 bytes":  strings.TrimSuffix(fmt.Sprint(b[:16]), "]"),
	}
	for how, e := range enc {
		s.needles[e] = append(s.needles[e], name+" ("+how+")")
	}
}

func (s *secrets) addAll(m map[string][]byte) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.add(k, m[k])
	}
}

// addKeyFile adds a PEM private key: the base64 body whole and line by line, its DER, and the private scalar.
func (s *secrets) addKeyFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	name := filepath.Base(path)
	s.add(name+" DER", blk.Bytes)
	body := strings.SplitN(strings.SplitN(string(b), "-----\n", 2)[1], "\n-----", 2)[0]
	if s.needles == nil {
		s.needles = map[string][]string{}
	}
	s.needles[strings.ReplaceAll(body, "\n", "")] = []string{name + " (PEM body)"}
	for i, line := range strings.Split(body, "\n") {
		if len(line) >= 40 {
			s.needles[line] = []string{fmt.Sprintf("%s (PEM line %d)", name, i+1)}
		}
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
				t.Fatalf("%s: not a key this test parses: %v", path, err)
			}
		}
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		s.add(name+" private scalar", d)
	case *rsa.PrivateKey:
		s.add(name+" private exponent", k.D.Bytes())
		s.add(name+" prime p", k.Primes[0].Bytes())
	case ed25519.PrivateKey:
		s.add(name+" seed", k.Seed())
	default:
		t.Fatalf("%s: key of type %T", path, key)
	}
}

// control checks that grep finds the secrets where they are: every key's PEM body in the key files, every
// key-log secret in the key log. Without it, a grep that cannot match would pass.
func (s *secrets) control(t *testing.T, keyFiles []string, ex *exercised) {
	t.Helper()
	var text strings.Builder
	for _, k := range keyFiles {
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	text.WriteString(ex.keyLog)
	pemKeys := map[string]bool{}
	keyLog := 0
	for _, what := range s.grep(text.String()) {
		switch {
		case strings.Contains(what, "(PEM line"):
			pemKeys[strings.Fields(what)[0]] = true
		case strings.Contains(what, "(key log) (hex)"):
			keyLog++
		}
	}
	distinct := map[string]bool{} // a resumed TLS 1.2 session logs its master secret again
	for name, b := range ex.clientSecrets {
		if strings.HasSuffix(name, "(key log)") {
			distinct[string(b)] = true
		}
	}
	pem, wantKeyLog := len(pemKeys), len(distinct)
	if pem != len(keyFiles) || keyLog != wantKeyLog {
		t.Fatalf("the grep found %d of %d keys in their own files and %d of %d secrets in the key log: it cannot be trusted",
			pem, len(keyFiles), keyLog, wantKeyLog)
	}
}

// report fails t for every secret found in log, and notes on row what was exercised and searched.
func (s *secrets) report(t *testing.T, row *outcomeRow, ex *exercised, log string) {
	t.Helper()
	found := s.grep(log)
	for _, leak := range found {
		t.Errorf("a secret in the log: %s", leak)
	}
	row.Note("%d debug lines, %d handshakes (%d resumed); %d secrets × encodings (%d needles) found 0 times",
		ex.debugLines, ex.handshakes, ex.resumed, len(s.names), len(s.needles))
	if len(found) > 0 {
		row.Note("%d secrets found in the log", len(found))
	}
}

// grep returns the secrets found in out, one description each.
func (s *secrets) grep(out string) []string {
	var found []string
	for needle, what := range s.needles {
		if strings.Contains(out, needle) {
			found = append(found, strings.Join(what, " = "))
		}
	}
	sort.Strings(found)
	return found
}

// keyLog is a KeyLogWriter that keeps the lines.
type keyLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.buf.Write(p)
}

func (k *keyLog) lines() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return strings.Split(strings.TrimSpace(k.buf.String()), "\n")
}

// recordingCache is a client session cache that keeps every session it was given.
type recordingCache struct {
	tls.ClientSessionCache
	mu     sync.Mutex
	states []*tls.ClientSessionState
}

func (c *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.mu.Lock()
		c.states = append(c.states, cs)
		c.mu.Unlock()
	}
	c.ClientSessionCache.Put(key, cs)
}

func (c *recordingCache) all() []*tls.ClientSessionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tls.ClientSessionState(nil), c.states...)
}
