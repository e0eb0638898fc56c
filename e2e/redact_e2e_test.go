package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"staple/e2e/harness"
)

// credentials are in the responder URL of the certificate TestResponderCredentialsRedacted issues: user
// information and a token in the query. No surface a person sees may show any of them.
var credentials = []string{"alice", "s3cret", "t0ken"}

func noCredentials(t *testing.T, surface, text string) {
	t.Helper()
	for _, c := range credentials {
		if strings.Contains(text, c) {
			t.Errorf("%s shows %q:\n%s", surface, c, text)
		}
	}
}

// credCert issues, with openssl ca over the lab, a certificate whose AIA OCSP URL carries credentials and
// points at the lab's responder port; the file holds the leaf then the issuing CA, the key beside it.
func credCert(t *testing.T, f *labFixture) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cred.pem"), filepath.Join(dir, "cred.key")
	ext := filepath.Join(dir, "ext.cnf")
	os.WriteFile(ext, []byte(fmt.Sprintf(`basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:cred.test,IP:127.0.0.1
authorityInfoAccess = OCSP;URI:http://alice:s3cret@127.0.0.1:%d/?token=t0ken
`, f.OCSPPort)), 0o600)
	csr := filepath.Join(dir, "cred.csr")
	for _, args := range [][]string{
		{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-subj", "/CN=cred.test", "-out", csr},
		{"ca", "-batch", "-config", filepath.Join(f.Dir, "openssl.cnf"), "-in", csr, "-out", certFile, "-notext", "-extfile", ext},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	leaf, _ := os.ReadFile(certFile)
	ca, _ := os.ReadFile(filepath.Join(f.Dir, "ca.pem"))
	os.WriteFile(certFile, append(leaf, ca...), 0o644)
	return certFile, keyFile
}

// TestResponderCredentialsRedacted: a certificate whose responder URL carries user information and a token,
// fetched by staple fetch and by staple serve, first with the responder down, then up. The credentials reach
// no surface: fetch's output and error (text and JSON), serve's log, cache ls and show (text and JSON, through
// the service and with none), cache refresh's error, the status page, the metrics.
func TestResponderCredentialsRedacted(t *testing.T) {
	harness.RequireTool(t, "openssl")
	f := newLabFixture(t, "@every 1h")
	cert, keyFile := credCert(t, f)
	metrics := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	conf := filepath.Join(t.TempDir(), "staple.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`data_dir = %q
listen = %q
metrics_listen = %q
log_format = "json"

[[site]]
cert = %q
key = %q
`, f.DataDir, f.TLSAddr, metrics, cert, keyFile)), 0o600)

	fetch := func(when string, wantCode int) {
		t.Helper()
		for _, asJSON := range []bool{false, true} {
			args := []string{"fetch", cert, "--data-dir", f.DataDir}
			if asJSON {
				args = append(args, "--json")
			}
			out, errOut, code := staple(t, args...)
			if code != wantCode {
				t.Errorf("fetch %s: exit %d, want %d: %s%s", when, code, wantCode, out, errOut)
			}
			noCredentials(t, "fetch "+when, out+errOut)
			if wantCode == 0 && !strings.Contains(out, "REDACTED@127.0.0.1") {
				t.Errorf("fetch %s does not show the responder:\n%s", when, out)
			}
		}
	}
	web := func(url string, accept string) string {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", accept)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var key string
	cacheSurfaces := func(when string) {
		t.Helper()
		out := mustStaple(t, "cache", "ls", "--json", "--data-dir", f.DataDir)
		noCredentials(t, "cache ls --json "+when, out)
		if i := strings.Index(out, `"key": "`); i >= 0 && key == "" {
			key = out[i+8 : i+8+strings.Index(out[i+8:], `"`)]
		}
		for _, args := range [][]string{{"ls"}, {"show", key}, {"show", key, "--json"}} {
			out, errOut, _ := staple(t, append(append([]string{"cache"}, args...), "--data-dir", f.DataDir)...)
			noCredentials(t, "cache "+strings.Join(args, " ")+" "+when, out+errOut)
			if args[0] == "show" && !strings.Contains(out, "REDACTED@127.0.0.1") {
				t.Errorf("cache %s %s does not show the responder:\n%s", strings.Join(args, " "), when, out)
			}
		}
	}
	serviceSurfaces := func(when string) {
		t.Helper()
		cacheSurfaces("through the service " + when)
		noCredentials(t, "the status page "+when, web("https://"+f.TLSAddr+"/", "text/html"))
		noCredentials(t, "the status page's JSON "+when, web("https://"+f.TLSAddr+"/", "application/json"))
		noCredentials(t, "the metrics "+when, web("http://"+metrics+"/metrics", "text/plain"))
	}

	// The responder is down: every fetch fails, and says why.
	fetch("with the responder down", 1)
	srv := harness.Start(t, binary, "serve", "--config", conf)
	srv.WaitLog("staple serving", harness.Timeout)
	srv.WaitLog("OCSP fetch failed; keeping the response held", harness.Timeout)
	serviceSurfaces("after a failed fetch")
	_, errOut, _ := staple(t, "cache", "refresh", key, "--data-dir", f.DataDir)
	noCredentials(t, "cache refresh's error", errOut)

	// The responder is up: the fetches succeed.
	rs := harness.Start(t, binary, "responder", "--lab", f.Dir, "--listen", "127.0.0.1:"+strconv.Itoa(f.OCSPPort), "--log-format", "json")
	rs.WaitLog("listening", harness.Timeout)
	if out := mustStaple(t, "cache", "refresh", key, "--data-dir", f.DataDir); !strings.Contains(out, "good") {
		t.Errorf("cache refresh with the responder up:\n%s", out)
	}
	serviceSurfaces("after a fetch that succeeded")
	srv.Stop()
	noCredentials(t, "serve's log", srv.Output())
	cacheSurfaces("with no service")
	fetch("with the responder up", 0)
}
