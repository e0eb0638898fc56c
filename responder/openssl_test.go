package responder_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/lab"
	"staple/ocspwire"
	"staple/responder"
)

// runTool runs a real peer (openssl, curl) in dir with a deadline and returns its combined output and
// error; the test is skipped when the tool is absent.
func runTool(t *testing.T, dir, tool string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustTool(t *testing.T, dir, tool string, args ...string) string {
	t.Helper()
	out, err := runTool(t, dir, tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return out
}

func wantAll(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// chainFile writes the lab's issuing CA and root into one file for -CAfile.
func chainFile(t *testing.T, l *lab.Lab) string {
	t.Helper()
	var data []byte
	for _, f := range []string{lab.CACertFile, lab.RootCertFile} {
		b, err := os.ReadFile(l.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	path := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpenSSLClient is openssl ocsp as the client: POST with and without nonce, GET through Go and curl,
// several certificates, a SHA-256 CertID, revocation seen by the first request after it, and a certificate
// that openssl ca issued into the lab.
func TestOpenSSLClient(t *testing.T) {
	lr := startLab(t, "good.test", "revoked.test")
	dir := t.TempDir()
	chain := chainFile(t, lr.lab)
	ca := lr.lab.Path(lab.CACertFile)
	good, revoked := lr.leaves["good.test"].CertFile, lr.leaves["revoked.test"].CertFile
	query := func(t *testing.T, args ...string) string {
		return mustTool(t, dir, "openssl", append([]string{"ocsp", "-issuer", ca, "-url", lr.url, "-CAfile", chain, "-timeout", "5"}, args...)...)
	}

	t.Run("POST with nonce", func(t *testing.T) {
		out := query(t, "-cert", good)
		wantAll(t, out, "Response verify OK", good+": good")
		if strings.Contains(out, "no nonce") {
			t.Errorf("nonce not echoed:\n%s", out)
		}
	})
	t.Run("POST without nonce", func(t *testing.T) {
		wantAll(t, query(t, "-cert", good, "-no_nonce"), "Response verify OK", good+": good")
	})
	t.Run("SHA-256 CertID", func(t *testing.T) {
		wantAll(t, query(t, "-sha256", "-cert", good, "-resp_text"), "Response verify OK", "Hash Algorithm: sha256", good+": good")
	})
	t.Run("three certificates", func(t *testing.T) {
		out := query(t, "-cert", good, "-cert", revoked, "-serial", "0x9999")
		wantAll(t, out, "Response verify OK", good+": good", revoked+": good", "0x9999: unknown")
	})
	t.Run("GET", func(t *testing.T) {
		for _, nonce := range []string{"-no_nonce", "-nonce"} {
			mustTool(t, dir, "openssl", "ocsp", "-issuer", ca, "-cert", good, nonce, "-reqout", "req.der")
			der, err := os.ReadFile(filepath.Join(dir, "req.der"))
			if err != nil {
				t.Fatal(err)
			}
			enc := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(der))
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(lr.url + "/" + enc)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := os.WriteFile(filepath.Join(dir, "resp.der"), body, 0o644); err != nil {
				t.Fatal(err)
			}
			// -reqin makes openssl check the nonce of the request it read against the response.
			out := mustTool(t, dir, "openssl", "ocsp", "-reqin", "req.der", "-respin", "resp.der", "-CAfile", chain, "-resp_text")
			wantAll(t, out, "Response verify OK", "Cert Status: good")
			if nonce == "-nonce" && strings.Contains(out, "no nonce") {
				t.Errorf("GET with nonce: %s", out)
			}
		}
		out := mustTool(t, dir, "curl", "-sS", "--max-time", "5", "-D", "headers.txt", "-o", "curl.der",
			lr.url+"//"+base64.StdEncoding.EncodeToString(mustRead(t, filepath.Join(dir, "req.der"))))
		headers := mustRead(t, filepath.Join(dir, "headers.txt"))
		wantAll(t, out+string(headers), "HTTP/1.1 200", "Cache-Control: max-age=", "public, no-transform, must-revalidate",
			"Last-Modified: ", "Expires: ", "Etag: ")
		wantAll(t, mustTool(t, dir, "openssl", "ocsp", "-respin", "curl.der", "-issuer", ca, "-cert", good, "-CAfile", chain, "-no_nonce"),
			"Response verify OK", good+": good")
	})
	t.Run("revoked at the first request", func(t *testing.T) {
		wantAll(t, query(t, "-cert", revoked), revoked+": good")
		if _, err := lr.lab.Revoke(lr.leaves["revoked.test"].Cert.SerialNumber, lab.RevokeOptions{Reason: ocspwire.ReasonKeyCompromise}); err != nil {
			t.Fatal(err)
		}
		wantAll(t, query(t, "-cert", revoked), "Response verify OK", revoked+": revoked", "Reason: keyCompromise")
	})
	t.Run("issued and revoked by openssl ca", func(t *testing.T) {
		mustTool(t, dir, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "o.key", "-out", "o.csr", "-subj", "/CN=openssl.test")
		cnf := lr.lab.Path(lab.OpenSSLConfigFile)
		mustTool(t, dir, "openssl", "ca", "-batch", "-config", cnf, "-in", "o.csr", "-out", "o.pem", "-notext")
		wantAll(t, query(t, "-cert", "o.pem"), "Response verify OK", "o.pem: good")
		mustTool(t, dir, "openssl", "ca", "-config", cnf, "-revoke", "o.pem", "-crl_hold", "holdInstructionReject")
		wantAll(t, query(t, "-cert", "o.pem", "-resp_text"), "o.pem: revoked", "Reason: certificateHold", "Hold Instruction Reject")
	})
	t.Run("another CA's certificate", func(t *testing.T) {
		out, err := runTool(t, dir, "openssl", "ocsp", "-issuer", lr.lab.Path(lab.RootCertFile), "-serial", "0x1001",
			"-url", lr.url, "-CAfile", chain, "-timeout", "5")
		if err == nil {
			t.Error("openssl accepted an unauthorized answer")
		}
		wantAll(t, out, "Responder Error: unauthorized (6)")
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestOpenSSLSeesFaults is every fault as openssl ocsp, a client staple does not control, reports it.
func TestOpenSSLSeesFaults(t *testing.T) {
	lr := startLab(t, "victim.test")
	dir := t.TempDir()
	chain := chainFile(t, lr.lab)
	victim := lr.leaves["victim.test"]
	tests := []struct {
		fault string
		ok    bool // openssl exits 0
		want  string
	}{
		{"delay=3s", false, "Error querying OCSP responder"}, // -timeout 1
		{"http500", false, "code=500"},
		{"http503", false, "code=503"},
		{"garbage", false, "Error querying OCSP responder"},
		{"empty", false, "Error querying OCSP responder"},
		{"drop", false, "Error querying OCSP responder"},
		{"redirect-loop", false, "code=307"},
		{"oversize", false, "Error querying OCSP responder"},
		{"wrong-content-type", false, "unexpected content type"},
		{"malformed", false, "Responder Error: malformedrequest (1)"},
		{"internal-error", false, "Responder Error: internalerror (2)"},
		{"try-later", false, "Responder Error: trylater (3)"},
		{"sig-required", false, "Responder Error: sigrequired (5)"},
		{"unauthorized", false, "Responder Error: unauthorized (6)"},
		{"expired", true, "status expired"},
		{"not-yet-valid", true, "status not yet valid"},
		{"no-next-update", true, victim.CertFile + ": good"},
		{"wrong-signer", false, "Response Verify Failure"},
		{"bad-signature", false, "Response Verify Failure"},
		{"wrong-serial", false, "No Status found"},
		{"wrong-nonce", false, "Nonce Verify error"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			rule, err := responder.ParseFaultRule(tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			lr.rs.Faults.Set(nil, rule.Fault)
			defer lr.rs.Faults.Reset()
			timeout := "5"
			if rule.Fault.Kind == responder.FaultDelay {
				timeout = "1"
			}
			out, err := runTool(t, dir, "openssl", "ocsp", "-issuer", lr.lab.Path(lab.CACertFile), "-cert", victim.CertFile,
				"-url", lr.url, "-CAfile", chain, "-timeout", timeout)
			if (err == nil) != tt.ok {
				t.Errorf("exit error %v, want ok=%v", err, tt.ok)
			}
			wantAll(t, out, tt.want)
		})
	}
}
