package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"staple/e2e/harness"
)

// binary is the staple binary TestMain built, for the tests that run it as a process.
var binary string

// staple runs binary and returns its stdout, stderr and exit code.
func staple(tb testing.TB, args ...string) (string, string, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// mustStaple runs binary, fails the test unless it exits 0, and returns its stdout.
func mustStaple(tb testing.TB, args ...string) string {
	tb.Helper()
	out, errOut, code := staple(tb, args...)
	if code != 0 {
		tb.Fatalf("staple %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// labFixture is a lab made by staple with one leaf, site.test, and a configuration serving it.
type labFixture struct {
	Dir, DataDir, Config, Root, Cert, Key string
	TLSAddr                               string
	OCSPPort                              int
}

// newLabFixture makes the lab, with its responder URL on a free port, and the configuration.
func newLabFixture(tb testing.TB, sweep string) *labFixture {
	tb.Helper()
	base := tb.TempDir()
	f := &labFixture{Dir: filepath.Join(base, "lab"), DataDir: filepath.Join(base, "data"), Config: filepath.Join(base, "staple.toml")}
	f.OCSPPort = harness.FreePort(tb)
	f.TLSAddr = "127.0.0.1:" + strconv.Itoa(harness.FreePort(tb))
	mustStaple(tb, "lab", "init", f.Dir, "--responder-url", "http://127.0.0.1:"+strconv.Itoa(f.OCSPPort))
	mustStaple(tb, "lab", "issue", f.Dir, "site.test", "--ip", "127.0.0.1")
	f.Root = filepath.Join(f.Dir, "root.pem")
	f.Cert, f.Key = filepath.Join(f.Dir, "certs", "site.test.pem"), filepath.Join(f.Dir, "certs", "site.test.key")
	conf := fmt.Sprintf(`# staple serve configuration written by the end-to-end test
data_dir = %q
listen = %q
log_format = "json"
drain_timeout = "5s"

[fetch]
sweep = %q

[[site]]
cert = %q
key = %q
`, f.DataDir, f.TLSAddr, sweep, f.Cert, f.Key)
	if err := os.WriteFile(f.Config, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

// sClientResult is what openssl s_client -status saw.
type sClientResult struct {
	Out    string
	Status string // "good", "revoked", "unknown", or "" when no staple was sent
	Serial string // the server certificate's serial
}

var certStatusRe = regexp.MustCompile(`Cert Status: (\w+)`)

// sClient connects with openssl s_client -status, verifying the chain against caFile.
func sClient(tb testing.TB, addr, caFile, serverName string, extra ...string) sClientResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"s_client", "-connect", addr, "-servername", serverName, "-status", "-CAfile", caFile,
		"-verify_return_error", "-showcerts"}, extra...)
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	r := sClientResult{Out: string(out)}
	if err != nil {
		tb.Fatalf("openssl s_client %s: %v\n%s", addr, err, out)
	}
	if !strings.Contains(r.Out, "Verify return code: 0 (ok)") {
		tb.Fatalf("openssl s_client %s: the chain did not verify:\n%s", addr, out)
	}
	if m := certStatusRe.FindStringSubmatch(r.Out); m != nil {
		r.Status = m[1]
	}
	// the server certificate, decoded for its serial
	chain := r.Out[max(strings.Index(r.Out, "Certificate chain"), 0):] // the OCSP response's signer comes before it
	if i := strings.Index(chain, "-----BEGIN CERTIFICATE-----"); i >= 0 {
		pem := chain[i : strings.Index(chain, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----")]
		x := exec.Command("openssl", "x509", "-noout", "-serial")
		x.Stdin = strings.NewReader(pem)
		if s, err := x.Output(); err == nil {
			r.Serial = strings.TrimPrefix(strings.TrimSpace(string(s)), "serial=")
		}
	}
	return r
}

// readCert reads the first certificate of a PEM file.
func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM block in %s", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}
