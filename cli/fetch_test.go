package cli

import (
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/internal/testpki"
)

// fetchFixture is a CA with a fake responder and certificate files of every kind.
type fetchFixture struct {
	ca                *testpki.CA
	r                 *testpki.Responder
	dir               string
	good, rev, unk    string // leaf + issuer chains whose AIA points at r
	leafOnly, noAIA   string // a leaf without its issuer; a chain without an OCSP URL
	issuer            string // the issuer alone
	goodLeaf, revLeaf *testpki.Leaf
}

func newFetchFixture(t *testing.T) *fetchFixture {
	t.Helper()
	root := testpki.NewRoot(t, "Fetch Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "Fetch CA", testpki.ECDSAP256)
	r := testpki.NewResponder(t, ca, testpki.ResponderOptions{MaxAge: 2 * time.Hour})
	f := &fetchFixture{ca: ca, r: r, dir: t.TempDir()}
	write := func(name string, data []byte) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(name string, urls []string) *testpki.Leaf {
		return ca.Issue(t, testpki.LeafOptions{DNSNames: []string{name}, OCSPURLs: urls})
	}
	f.goodLeaf = issue("good.test", []string{r.URL})
	f.revLeaf = issue("revoked.test", []string{r.URL})
	unk := issue("unknown.test", []string{r.URL})
	r.Revoke(f.revLeaf.Cert.SerialNumber, testpki.Epoch().Add(-3*time.Hour), 1)
	r.Forget(unk.Cert.SerialNumber)
	f.good = write("good.pem", f.goodLeaf.ChainPEM())
	f.rev = write("revoked.pem", f.revLeaf.ChainPEM())
	f.unk = write("unknown.pem", unk.ChainPEM())
	f.leafOnly = write("leaf-only.pem", f.goodLeaf.CertPEM())
	f.noAIA = write("no-aia.pem", issue("noaia.test", nil).ChainPEM())
	f.issuer = write("issuer.pem", ca.CertPEM())
	return f
}

func TestFetch(t *testing.T) {
	f := newFetchFixture(t)
	now := testpki.Epoch()
	tests := []struct {
		name   string
		args   []string
		fault  testpki.Fault
		code   int
		want   []string // in stdout
		errMsg string   // in the error line
		golden string
	}{
		{name: "good", args: []string{f.good}, code: ExitOK, golden: "fetch-good",
			want: []string{"good.pem: good", "(issuer)", "Refresh at:", "Max-age:       2h0m0s"}},
		{name: "revoked", args: []string{f.rev}, code: ExitRevoked, want: []string{"revoked.pem: revoked", "Reason:", "keyCompromise", "2025-12-31T21:00:00Z"}},
		{name: "unknown", args: []string{f.unk}, code: ExitUnknown, want: []string{"unknown.pem: unknown"}},
		{name: "issuer from --issuer", args: []string{f.leafOnly, "--issuer", f.issuer}, code: ExitOK, want: []string{"leaf-only.pem: good"}},
		{name: "no issuer", args: []string{f.leafOnly}, code: ExitFailure, errMsg: "no_issuer", want: []string{"leaf-only.pem: error (no_issuer)"}},
		{name: "no OCSP URL", args: []string{f.noAIA}, code: ExitFailure, errMsg: "no_responder_url"},
		{name: "no OCSP URL, --url", args: []string{f.noAIA, "--url", f.r.URL}, code: ExitOK, want: []string{"no-aia.pem: good"}},
		{name: "bad signature", args: []string{f.good}, fault: testpki.FaultWrongKey, code: ExitFailure, errMsg: "fetch " + f.good + ": bad_signature: "},
		{name: "expired", args: []string{f.good}, fault: testpki.FaultExpired, code: ExitFailure, errMsg: ": expired: "},
		{name: "HTTP 503", args: []string{f.good}, fault: testpki.Fault503, code: ExitFailure, errMsg: ": http_503: "},
		{name: "tryLater", args: []string{f.good}, fault: testpki.FaultTryLater, code: ExitFailure, errMsg: ": try_later: "},
		{name: "good and revoked", args: []string{f.good, f.rev}, code: ExitRevoked, want: []string{"good.pem: good", "revoked.pem: revoked"}},
		{name: "unknown and revoked", args: []string{f.unk, f.rev}, code: ExitRevoked},
		{name: "revoked and an error", args: []string{f.rev, f.noAIA}, code: ExitFailure, errMsg: "no-aia.pem"},
		{name: "no nextUpdate", args: []string{f.good}, fault: testpki.FaultNoNextUpdate, code: ExitOK, want: []string{"Warning:", "no nextUpdate", "Stapled until: 2026-01-01T01:00:00Z"}},
		{name: "missing file", args: []string{filepath.Join(f.dir, "nope.pem")}, code: ExitFailure, errMsg: "nope.pem"},
		{name: "no file", args: nil, code: ExitUsage, errMsg: "fetch: give at least one certificate file"},
		{name: "bad flag", args: []string{f.good, "--bogus"}, code: ExitUsage, errMsg: "bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != testpki.FaultNone {
				f.r.FailNext(tt.fault) // none of these faults makes the client retry

			}
			args := append([]string{"fetch", "--data-dir", filepath.Join(f.dir, "data")}, tt.args...)
			out, err := run(t, now, args...)
			if code := ExitCode(err); code != tt.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, tt.code, out)
			}
			msg := Message(err)
			if !strings.Contains(msg, tt.errMsg) || strings.Contains(msg, "\n") {
				t.Errorf("error line %q, want one line with %q", msg, tt.errMsg)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.golden != "" {
				out = strings.ReplaceAll(out, f.dir, "DIR")
				out = strings.ReplaceAll(out, f.r.URL, "http://RESPONDER/ocsp")
				golden(t, tt.golden, out)
			}
		})
	}
}

func TestFetchJSONAndRequestOptions(t *testing.T) {
	f := newFetchFixture(t)
	out, err := run(t, testpki.Epoch(), "fetch", "--no-store", "--json", "--sha256", "--nonce", f.good, f.rev)
	if ExitCode(err) != ExitRevoked {
		t.Fatalf("exit %d: %v", ExitCode(err), err)
	}
	var res []fetchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res) != 2 || res[0].Status != "good" || res[1].Status != "revoked" || res[1].Revocation != "keyCompromise" ||
		res[0].CertIDHash != crypto.SHA256.String() || res[0].SignerKind != "issuer" || res[0].Method != "GET" ||
		!res[0].NextUpdate.Equal(testpki.Epoch().Add(24*time.Hour)) || res[0].RefreshAt.IsZero() {
		t.Errorf("JSON %+v", res)
	}
	seen := f.r.Seen()
	if len(seen) != 2 || seen[0].Request == nil || seen[0].Request.CertIDs[0].Hash != crypto.SHA256 ||
		seen[0].Request.Nonce == nil || !strings.HasPrefix(seen[0].UserAgent, "staple/") {
		t.Errorf("requests %+v", seen)
	}
}

// TestFetchStores checks that fetch keeps what it verified in the data directory's cache, where cache ls
// finds it, and that --no-store keeps nothing.
func TestFetchStores(t *testing.T) {
	f := newFetchFixture(t)
	data := filepath.Join(f.dir, "data")
	if _, err := run(t, testpki.Epoch(), "fetch", "--no-store", "--data-dir", data, f.good); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("--no-store made the data directory (%v)", err)
	}
	if _, err := run(t, testpki.Epoch(), "fetch", "--data-dir", data, f.good, f.rev); ExitCode(err) != ExitRevoked {
		t.Fatalf("fetch good and revoked: %v", err)
	}
	if st, err := os.Stat(filepath.Join(data, "cache.db")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache.db: %v, %v", err, st)
	}
	out, err := run(t, testpki.Epoch(), "cache", "ls", "--data-dir", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"good.test", "revoked.test", " good ", " revoked "} {
		if !strings.Contains(out, want) {
			t.Errorf("cache ls after fetch lacks %q:\n%s", want, out)
		}
	}
}
