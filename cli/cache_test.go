package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/admin"
	"staple/cache"
	"staple/certs"
	"staple/config"
	"staple/internal/testpki"
	"staple/ocspwire"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/NAME.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// run runs one command line in-process at a fixed time and returns stdout and the error.
func run(t *testing.T, now time.Time, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Now: func() time.Time { return now }, Rand: func() float64 { return 0.5 }}
	err := Run(context.Background(), env, args)
	return out.String(), err
}

type cacheFixture struct {
	dir             string
	good, revoked   *testpki.Leaf
	ca              *testpki.CA
	goodKey, revKey certs.Key
}

// newCacheFixture makes a data directory whose cache holds a good and a revoked response, and a watched
// certificate with no OCSP URL, the way the stapler writes them.
func newCacheFixture(t *testing.T) *cacheFixture {
	t.Helper()
	root := testpki.NewRoot(t, "Golden Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "Golden CA", testpki.ECDSAP256)
	f := &cacheFixture{dir: t.TempDir(), ca: ca,
		good:    ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"good.test"}, OCSPURLs: []string{"http://ocsp.golden.test"}, MustStaple: true}),
		revoked: ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"revoked.test", "www.revoked.test"}, OCSPURLs: []string{"http://ocsp.golden.test"}}),
	}
	noURL := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"nourl.test"}})
	store, err := cache.Open(filepath.Join(f.dir, config.DatabaseName), cache.Options{Now: testpki.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	files := t.TempDir()
	for i, tt := range []struct {
		leaf *testpki.Leaf
		o    testpki.ResponseOptions
	}{
		{f.good, testpki.ResponseOptions{}},
		{f.revoked, testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 1}},
	} {
		resp := filepath.Join(files, fmt.Sprintf("%d.der", i))
		chain := filepath.Join(files, fmt.Sprintf("%d.pem", i))
		os.WriteFile(resp, ca.Respond(t, tt.leaf.Cert, tt.o), 0o600)
		os.WriteFile(chain, tt.leaf.ChainPEM(), 0o600)
		if _, err := run(t, testpki.Epoch(), "cache", "import", resp, "--cert", chain, "--data-dir", f.dir); err != nil {
			t.Fatal(err)
		}
	}
	if store, err = cache.Open(filepath.Join(f.dir, config.DatabaseName), cache.Options{Now: testpki.Epoch}); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	f.goodKey, f.revKey = certs.NewKey(ca.Cert, f.good.Cert), certs.NewKey(ca.Cert, f.revoked.Cert)
	nk := certs.NewKey(ca.Cert, noURL.Cert)
	if err := store.PutCert(nk, cache.Cert{Leaf: noURL.Cert.Raw, Issuer: ca.Cert.Raw, Added: testpki.Epoch()}); err != nil {
		t.Fatal(err)
	}
	fail := cache.Attempt{Time: testpki.Epoch().Add(-time.Minute), Reason: "http_503", Error: "ocspfetch: http://ocsp.golden.test answered HTTP 503", URL: "http://ocsp.golden.test", Latency: 12 * time.Millisecond}
	if err := store.AddAttempt(f.revKey, fail); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCacheCommandsGolden(t *testing.T) {
	f := newCacheFixture(t)
	now := testpki.Epoch().Add(time.Hour)
	out, err := run(t, now, "cache", "ls", "--data-dir", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cache-ls", out)

	out, err = run(t, now, "cache", "show", f.revKey.String(), "--data-dir", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cache-show-revoked", out)

	// After nextUpdate the same entry lists as expired.
	out, err = run(t, now.Add(48*time.Hour), "cache", "ls", "--data-dir", f.dir)
	if err != nil || strings.Count(out, " expired ") != 2 {
		t.Errorf("ls after nextUpdate: %v\n%s", err, out)
	}
}

func TestCacheExportAndShowByCertificate(t *testing.T) {
	f := newCacheFixture(t)
	now := testpki.Epoch().Add(time.Hour)
	certFile, _ := f.good.WriteFiles(t, t.TempDir())
	out, err := run(t, now, "cache", "export", certFile, "--format", "base64", "--data-dir", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "good.ocsp")
	if _, err := run(t, now, "cache", "export", f.goodKey.String()[:6]+":"+f.goodKey.SerialHex(), "--out", file, "--data-dir", f.dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, der) {
		t.Error("--out and base64 exports differ")
	}
	out, err = run(t, now, "cache", "show", certFile, "--json", "--data-dir", f.dir)
	if err != nil || !strings.Contains(out, `"status": "good"`) || !strings.Contains(out, `"must_staple": true`) {
		t.Errorf("show --json: %v\n%s", err, out)
	}
}

func TestCacheRmAndImport(t *testing.T) {
	f := newCacheFixture(t)
	now := testpki.Epoch().Add(time.Hour)
	out, err := run(t, now, "cache", "rm", f.revKey.String(), "--data-dir", f.dir)
	if err != nil || !strings.HasPrefix(out, "removed ") {
		t.Fatalf("rm: %v %q", err, out)
	}
	if _, err := run(t, now, "cache", "show", f.revKey.String(), "--data-dir", f.dir); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("show after rm: %v, want ErrNotFound", err)
	}
	dir := t.TempDir()
	resp := filepath.Join(dir, "r.der")
	os.WriteFile(resp, f.ca.Respond(t, f.revoked.Cert, testpki.ResponseOptions{Status: ocspwire.Revoked}), 0o600)
	certFile, _ := f.revoked.WriteFiles(t, dir)
	out, err = run(t, now, "cache", "import", resp, "--cert", certFile, "--data-dir", f.dir)
	if err != nil || !strings.Contains(out, ": revoked, nextUpdate ") {
		t.Errorf("import: %v %q", err, out)
	}
	// A response for another certificate is refused with the verifier's reason.
	goodCert, _ := f.good.WriteFiles(t, t.TempDir())
	if _, err := run(t, now, "cache", "import", resp, "--cert", goodCert, "--data-dir", f.dir); err == nil || !strings.Contains(err.Error(), "no SingleResponse for this certificate") {
		t.Errorf("import of a mismatched response: %v", err)
	}
}

func TestCacheErrors(t *testing.T) {
	f := newCacheFixture(t)
	now := testpki.Epoch()
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"cache"}, ExitUsage, "cache: a subcommand is needed"},
		{"unknown subcommand", []string{"cache", "list"}, ExitUsage, `cache: unknown subcommand "list"`},
		{"neither key nor file", []string{"cache", "show", "nonsense", "--data-dir", f.dir}, ExitUsage, `"nonsense" is neither a cache key`},
		{"two operands", []string{"cache", "show", "a:1", "b:2", "--data-dir", f.dir}, ExitUsage, "cache show: give exactly one KEY"},
		{"missing entry", []string{"cache", "show", "00:01", "--data-dir", f.dir}, ExitFailure, "admin: no cached certificate matches"},
		{"no cache", []string{"cache", "ls", "--data-dir", empty}, ExitFailure, "no cache at " + filepath.Join(empty, config.DatabaseName)},
		{"bad format", []string{"cache", "export", "00:01", "--format", "pem", "--data-dir", f.dir}, ExitUsage, `--format "pem"`},
		{"import without cert", []string{"cache", "import", "r.der", "--data-dir", f.dir}, ExitUsage, "cache import: give one RESP.der and --cert"},
		{"refresh offline, responder unreachable", []string{"cache", "refresh", "00:01", "--data-dir", f.dir}, ExitFailure, "admin: no cached certificate matches"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, now, tt.args...)
			if ExitCode(err) != tt.code || !strings.Contains(Message(err), tt.want) {
				t.Errorf("exit %d %q; want %d and %q", ExitCode(err), Message(err), tt.code, tt.want)
			}
		})
	}
}

// TestCacheRefreshOffline: with no service running, refresh fetches itself, stores what verifies and
// records the attempt; revocation at the responder shows at once.
func TestCacheRefreshOffline(t *testing.T) {
	root := testpki.NewRoot(t, "Refresh Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "Refresh CA", testpki.ECDSAP256)
	resp := testpki.NewResponder(t, ca, testpki.ResponderOptions{Now: testpki.Epoch})
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"fresh.test"}, OCSPURLs: []string{resp.URL}})
	dir := t.TempDir()
	store, err := cache.Open(filepath.Join(dir, config.DatabaseName), cache.Options{Now: testpki.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	key := certs.NewKey(ca.Cert, leaf.Cert)
	store.PutCert(key, cache.Cert{Leaf: leaf.Cert.Raw, Issuer: ca.Cert.Raw, URLs: leaf.Cert.OCSPServer, Added: testpki.Epoch()})
	store.Close()

	now := testpki.Epoch()
	out, err := run(t, now, "cache", "refresh", "--data-dir", dir)
	if err != nil || !strings.Contains(out, key.String()+"  good") {
		t.Fatalf("refresh: %v\n%s", err, out)
	}
	resp.Revoke(leaf.Cert.SerialNumber, now.Add(-time.Minute), 1)
	resp.FailNext(testpki.Fault500)
	if _, err := run(t, now, "cache", "refresh", key.String(), "--data-dir", dir); err == nil {
		t.Error("refresh through a 500: want an error")
	}
	out, err = run(t, now, "cache", "show", key.String(), "--data-dir", dir)
	if err != nil || !strings.Contains(out, "Status:        good") || !strings.Contains(out, "http_500") {
		t.Errorf("after a failed refresh the good response stays and the failure is in the history: %v\n%s", err, out)
	}
	if _, err := run(t, now.Add(time.Second), "cache", "refresh", key.String(), "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	out, _ = run(t, now.Add(time.Second), "cache", "ls", "--data-dir", dir)
	if !strings.Contains(out, "revoked") {
		t.Errorf("revocation not seen:\n%s", out)
	}
}

// TestShowServedBy: in a fleet, show names the nodes that serve the certificate, says when none does, and
// says why when etcd could not tell; outside a fleet it says nothing of it.
func TestShowServedBy(t *testing.T) {
	for _, tt := range []struct {
		d    admin.Detail
		want string
	}{
		{admin.Detail{Fleet: true, ServedBy: []string{"node0", "node2"}}, "node0, node2"},
		{admin.Detail{Fleet: true}, "no node (the fleet's leader removes it once unserved for unserved_after)"},
		{admin.Detail{Fleet: true, ServedByError: "fleet: etcd is unreachable"}, "unknown: fleet: etcd is unreachable"},
		{admin.Detail{}, ""},
	} {
		var b strings.Builder
		tt.d.Key = "0011223344556677:01"
		writeDetail(&b, tt.d)
		got := ""
		for _, line := range strings.SplitAfter(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "Served by:"); ok {
				got = strings.TrimSpace(v)
			}
		}
		if got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.d, got, tt.want)
		}
	}
}
