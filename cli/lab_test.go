package cli

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"staple/certs"
	"staple/lab"
)

// TestLabCommands drives staple lab init, issue, revoke and ls as a user would, and checks the fixed layout,
// the certificates and index.txt through the lab package.
func TestLabCommands(t *testing.T) {
	for _, kt := range []string{"ecdsa", "rsa", "ed25519"} {
		t.Run(kt, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "lab")
			url := "http://127.0.0.1:18888/ocsp"
			now := time.Now()
			out, err := run(t, now, "lab", "init", dir, "--key-type", kt, "--responder-url", url)
			if err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			for _, f := range []string{lab.RootCertFile, lab.CACertFile, lab.CAKeyFile, lab.SignerCertFile, lab.SignerKeyFile, lab.IndexFile, lab.SerialFile} {
				st, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Fatalf("layout: %v", err)
				}
				if strings.HasSuffix(f, ".key") && st.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
				}
			}

			out, err = run(t, now, "lab", "issue", dir, "www.example.test", "*.example.test", "--ip", "127.0.0.1", "--must-staple", "--days", "7")
			if err != nil {
				t.Fatalf("issue: %v\n%s", err, out)
			}
			chain, err := certs.LoadChain(filepath.Join(dir, "certs", "www.example.test.pem"), filepath.Join(dir, "certs", "www.example.test.key"), "")
			if err != nil {
				t.Fatal(err)
			}
			leaf := chain.Leaf
			if !slices.Equal(leaf.DNSNames, []string{"www.example.test", "*.example.test"}) || len(leaf.IPAddresses) != 1 ||
				!slices.Equal(certs.OCSPURLs(leaf), []string{url}) || !certs.MustStaple(leaf) || chain.Issuer == nil {
				t.Errorf("leaf: names %v %v, OCSP %v, must-staple %v, issuer %v", leaf.DNSNames, leaf.IPAddresses,
					certs.OCSPURLs(leaf), certs.MustStaple(leaf), chain.Issuer)
			}
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 7*24*time.Hour || d > 8*24*time.Hour {
				t.Errorf("validity %v, want 7 days", d)
			}
			if st, err := os.Stat(filepath.Join(dir, "certs", "www.example.test.key")); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("leaf key: %v %v", st.Mode(), err)
			}
			if _, err := run(t, now, "lab", "issue", dir, "other.test"); err != nil {
				t.Fatal(err)
			}
			other := readCert(t, filepath.Join(dir, "certs", "other.test.pem"))
			if certs.MustStaple(other) {
				t.Error("Must-Staple without --must-staple")
			}

			// Revoke one by serial with every detail, the other by its file.
			serial := certs.NewKey(chain.Issuer, leaf).SerialHex()
			if out, err := run(t, now, "lab", "revoke", dir, "0x"+serial, "--reason", "certificateHold", "--hold-instruction", "reject",
				"--time", "2026-11-20T12:00:00Z"); err != nil {
				t.Fatalf("revoke: %v\n%s", err, out)
			}
			if out, err := run(t, now, "lab", "revoke", dir, filepath.Join(dir, "certs", "other.test.pem"), "--compromised-at", "20261119000000Z"); err != nil {
				t.Fatalf("revoke by file: %v\n%s", err, out)
			}
			if _, err := run(t, now, "lab", "revoke", dir, serial); !errors.Is(err, lab.ErrAlreadyRevoked) {
				t.Errorf("revoking twice: %v, want ErrAlreadyRevoked", err)
			}

			out, err = run(t, now, "lab", "ls", dir, "--json")
			if err != nil {
				t.Fatal(err)
			}
			var rows []lsEntry
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			bySerial := map[string]lsEntry{}
			for _, r := range rows {
				bySerial[r.Serial] = r
			}
			hold := bySerial[serial]
			if hold.Status != "revoked" || hold.Reason != "certificateHold" || hold.HoldInstruction == "" || hold.RevokedAt == nil ||
				!hold.RevokedAt.Equal(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)) || hold.Subject != "/CN=www.example.test" {
				t.Errorf("held row %+v", hold)
			}
			key := bySerial[certs.NewKey(chain.Issuer, other).SerialHex()]
			if key.Status != "revoked" || key.Reason != "keyCompromise" || key.InvalidityDate == nil ||
				!key.InvalidityDate.Equal(time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("compromised row %+v", key)
			}
			text, err := run(t, now, "lab", "ls", dir)
			if err != nil || !strings.HasPrefix(text, "STATUS") || !strings.Contains(text, serial) || strings.Count(text, "\n") != len(rows)+1 {
				t.Errorf("ls: %v\n%s", err, text)
			}
		})
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := certs.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b.Certs[0]
}

// TestLabErrors checks that bad command lines exit 2 and that what the lab refuses keeps its typed error.
func TestLabErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	now := time.Now()
	if _, err := run(t, now, "lab", "init", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, now, "lab", "issue", dir, "a.test"); err != nil {
		t.Fatal(err)
	}
	usage := []struct {
		name string
		args []string
	}{
		{"no subcommand", []string{"lab"}},
		{"unknown subcommand", []string{"lab", "frob"}},
		{"init without DIR", []string{"lab", "init"}},
		{"init bad key type", []string{"lab", "init", dir + "2", "--key-type", "dsa"}},
		{"init bad flag", []string{"lab", "init", dir + "2", "--bogus"}},
		{"issue without a name", []string{"lab", "issue", dir}},
		{"issue bad days", []string{"lab", "issue", dir, "b.test", "--days", "0"}},
		{"issue bad ip", []string{"lab", "issue", dir, "b.test", "--ip", "300.1.1.1"}},
		{"issue bad name", []string{"lab", "issue", dir, "bad name"}},
		{"revoke bad reason", []string{"lab", "revoke", dir, "1000", "--reason", "boredom"}},
		{"revoke hold without hold", []string{"lab", "revoke", dir, "1000", "--hold-instruction", "reject"}},
		{"revoke compromised with superseded", []string{"lab", "revoke", dir, "1000", "--reason", "superseded", "--compromised-at", "2026-11-20"}},
		{"revoke bad time", []string{"lab", "revoke", dir, "1000", "--time", "yesterday"}},
		{"revoke not a serial", []string{"lab", "revoke", dir, "xyz"}},
		{"ls two dirs", []string{"lab", "ls", dir, dir}},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, now, tt.args...)
			if code := ExitCode(err); code != ExitUsage {
				t.Errorf("exit %d (%v), want %d", code, err, ExitUsage)
			}
			if msg := Message(err); msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("error line %q, want one line", msg)
			}
		})
	}
	failures := []struct {
		name string
		args []string
		want error
	}{
		{"init over a lab", []string{"lab", "init", dir}, lab.ErrExists},
		{"issue outside a lab", []string{"lab", "issue", t.TempDir(), "a.test"}, lab.ErrNotLab},
		{"revoke an unknown serial", []string{"lab", "revoke", dir, "ABCDEF"}, lab.ErrNotFound},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, now, tt.args...)
			if !errors.Is(err, tt.want) || ExitCode(err) != ExitFailure {
				t.Errorf("err = %v (exit %d), want %v and exit 1", err, ExitCode(err), tt.want)
			}
		})
	}
}
