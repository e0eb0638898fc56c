package lab

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/ocspwire"
	"staple/responder"
)

// openssl runs the openssl binary in dir and returns its combined output; it skips the test when openssl
// is absent and fails it when openssl fails.
func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := opensslErr(t, dir, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func opensslErr(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// realLab is a lab on the real clock: openssl compares certificate dates with its own.
func realLab(t *testing.T, kt KeyType) *Lab {
	t.Helper()
	l, err := Init(filepath.Join(t.TempDir(), "lab"), InitOptions{KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// opensslIssue makes a key and CSR for cn and has `openssl ca` issue it into the lab with extra args.
func opensslIssue(t *testing.T, l *Lab, cn string, extra ...string) string {
	t.Helper()
	dir := filepath.Dir(l.Dir)
	openssl(t, dir, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", cn+".key", "-out", cn+".csr", "-subj", "/CN="+cn, "-addext", "subjectAltName=DNS:"+cn)
	args := append([]string{"ca", "-batch", "-config", l.Path(OpenSSLConfigFile), "-in", cn + ".csr", "-out", cn + ".pem", "-notext"}, extra...)
	openssl(t, dir, args...)
	return filepath.Join(dir, cn+".pem")
}

func loadLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, _, err := loadCert(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOpenSSLCAWritesStapleReads: `openssl ca` issues, revokes (every form) and expires certificates in a
// lab made by staple, and staple's index reader and Source understand each row.
func TestOpenSSLCAWritesStapleReads(t *testing.T) {
	l := realLab(t, KeyECDSA)
	cnf := l.Path(OpenSSLConfigFile)
	dir := filepath.Dir(l.Dir)
	certs := map[string]*x509.Certificate{}
	for _, cn := range []string{"good.test", "key.test", "hold.test", "compromised.test", "ca-compromised.test"} {
		certs[cn] = loadLeaf(t, opensslIssue(t, l, cn))
	}
	certs["old.test"] = loadLeaf(t, opensslIssue(t, l, "old.test", "-startdate", "20200101000000Z", "-enddate", "20210101000000Z"))
	openssl(t, dir, "ca", "-config", cnf, "-revoke", "key.test.pem", "-crl_reason", "keyCompromise")
	openssl(t, dir, "ca", "-config", cnf, "-revoke", "hold.test.pem", "-crl_hold", "holdInstructionCallIssuer")
	openssl(t, dir, "ca", "-config", cnf, "-revoke", "compromised.test.pem", "-crl_compromise", "20261120120000Z")
	openssl(t, dir, "ca", "-config", cnf, "-revoke", "ca-compromised.test.pem", "-crl_CA_compromise", "20261121120000Z")
	openssl(t, dir, "ca", "-config", cnf, "-updatedb")

	if c := certs["good.test"]; !strings.HasPrefix(c.OCSPServer[0], DefaultResponderURL) || len(c.DNSNames) != 1 {
		t.Errorf("openssl.cnf extensions: AIA %v, SANs %v", c.OCSPServer, c.DNSNames)
	}
	src, err := NewSource(l.SourceConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cn     string
		status int
		reason int
		ext    asn1.ObjectIdentifier
	}{
		{"good.test", ocsp.Good, 0, nil},
		{"key.test", ocsp.Revoked, ocsp.KeyCompromise, nil},
		{"hold.test", ocsp.Revoked, ocsp.CertificateHold, ocspwire.OIDHoldInstructionCode},
		{"compromised.test", ocsp.Revoked, ocsp.KeyCompromise, ocspwire.OIDInvalidityDate},
		{"ca-compromised.test", ocsp.Revoked, ocsp.CACompromise, ocspwire.OIDInvalidityDate},
		{"old.test", ocsp.Unknown, 0, nil}, // an E row after -updatedb
	}
	for _, tt := range tests {
		t.Run(tt.cn, func(t *testing.T) {
			c := certs[tt.cn]
			req := &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{certIDFor(t, l.CA, c.SerialNumber, crypto.SHA1)}}}
			resp, err := src.Response(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ocsp.ParseResponseForCert(resp.Raw, c, l.CA)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tt.status || (tt.status == ocsp.Revoked && r.RevocationReason != tt.reason) {
				t.Errorf("status %d reason %d, want %d %d", r.Status, r.RevocationReason, tt.status, tt.reason)
			}
			if tt.ext != nil && (len(r.Extensions) != 1 || !r.Extensions[0].Id.Equal(tt.ext)) {
				t.Errorf("singleExtensions %v, want %v", r.Extensions, tt.ext)
			}
		})
	}
	entries, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	byCN := map[string]Entry{}
	for _, e := range entries {
		byCN[strings.TrimPrefix(e.Subject, "/CN=")] = e
	}
	if e := byCN["hold.test"]; !e.HoldInstruction.Equal(ocspwire.HoldInstructionCallIssuer) {
		t.Errorf("hold row: %+v", e)
	}
	if e := byCN["ca-compromised.test"]; !e.InvalidityDate.Equal(date("2026-11-21T12:00:00Z")) {
		t.Errorf("CAkeyTime row: %+v", e)
	}
	if e := byCN["old.test"]; e.Status != Expired {
		t.Errorf("old row: %+v", e)
	}

	// staple carries on from openssl's serial, and openssl from staple's.
	is, err := l.Issue(IssueOptions{Names: []string{"after.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := new(big.Int).Add(certs["old.test"].SerialNumber, big.NewInt(1)); is.Cert.SerialNumber.Cmp(want) != 0 {
		t.Errorf("staple's serial %x after openssl's %x", is.Cert.SerialNumber, certs["old.test"].SerialNumber)
	}
	next := loadLeaf(t, opensslIssue(t, l, "next.test"))
	if want := new(big.Int).Add(is.Cert.SerialNumber, big.NewInt(1)); next.SerialNumber.Cmp(want) != 0 {
		t.Errorf("openssl's serial %x after staple's %x", next.SerialNumber, is.Cert.SerialNumber)
	}
	// openssl ca -status exits 1 whatever it finds; its output is what counts.
	if out, _ := opensslErr(t, dir, "ca", "-config", cnf, "-status", is.Entry.SerialHex()); !strings.Contains(out, is.Entry.SerialHex()+"=Valid") {
		t.Errorf("openssl ca -status on staple's row: %s", out)
	}
}

// TestOpenSSLOCSPReadsStapleIndex: `openssl ocsp -index` answers from rows staple wrote, every revocation
// form included, and `openssl ca` revokes a certificate staple issued.
func TestOpenSSLOCSPReadsStapleIndex(t *testing.T) {
	l := realLab(t, KeyECDSA)
	dir := filepath.Dir(l.Dir)
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	revocations := []struct {
		cn     string
		opts   *RevokeOptions
		status string
	}{
		{"good.test", nil, " good"},
		{"none.test", &RevokeOptions{Reason: ocspwire.ReasonNone, Time: at}, " revoked"},
		{"superseded.test", &RevokeOptions{Reason: ocspwire.ReasonSuperseded}, "Reason: superseded"},
		{"hold.test", &RevokeOptions{Reason: ocspwire.ReasonCertificateHold, HoldInstruction: ocspwire.HoldInstructionReject}, "Reason: certificateHold"},
		{"key.test", &RevokeOptions{Reason: ocspwire.ReasonKeyCompromise, InvalidityDate: at}, "Reason: keyCompromise"},
		{"ca.test", &RevokeOptions{Reason: ocspwire.ReasonCACompromise, InvalidityDate: at}, "Reason: cACompromise"},
		{"openssl-revokes.test", nil, "Reason: affiliationChanged"},
	}
	var certArgs []string
	for _, r := range revocations {
		is, err := l.Issue(IssueOptions{Names: []string{r.cn}})
		if err != nil {
			t.Fatal(err)
		}
		if r.opts != nil {
			if _, err := l.Revoke(is.Cert.SerialNumber, *r.opts); err != nil {
				t.Fatal(err)
			}
		}
		certArgs = append(certArgs, "-cert", is.CertFile)
	}
	openssl(t, dir, "ca", "-config", l.Path(OpenSSLConfigFile), "-revoke", l.Path(CertsDir, "openssl-revokes.test.pem"),
		"-crl_reason", "affiliationChanged")
	openssl(t, dir, append([]string{"ocsp", "-issuer", l.Path(CACertFile), "-no_nonce", "-reqout", "req.der"}, certArgs...)...)
	openssl(t, dir, "ocsp", "-index", l.Path(IndexFile), "-CA", l.Path(CACertFile), "-rsigner", l.Path(SignerCertFile),
		"-rkey", l.Path(SignerKeyFile), "-reqin", "req.der", "-respout", "resp.der", "-nmin", "5")
	out := openssl(t, dir, append([]string{"ocsp", "-respin", "resp.der", "-issuer", l.Path(CACertFile), "-CAfile",
		l.Path(RootCertFile), "-no_nonce", "-resp_text"}, certArgs...)...)
	for _, r := range revocations {
		section := statusSection(out, l.Path(CertsDir, r.cn+".pem"))
		if !strings.Contains(section, r.status) {
			t.Errorf("%s: openssl says %q, want %q", r.cn, section, r.status)
		}
		if r.opts != nil && r.opts.Reason == ocspwire.ReasonNone && strings.Contains(section, "Reason") {
			t.Errorf("%s: a reason appeared: %q", r.cn, section)
		}
	}
	if !strings.Contains(out, "Hold Instruction Reject") || strings.Count(out, "Invalidity Date") != 2 {
		t.Errorf("openssl lost the hold instruction or an invalidity date:\n%s", out)
	}
}

// statusSection returns what openssl ocsp prints for one certificate file: its line and the indented ones
// after it.
func statusSection(out, file string) string {
	_, after, ok := strings.Cut(out, file+":")
	if !ok {
		return ""
	}
	lines := strings.Split(after, "\n")
	section := lines[0]
	for _, line := range lines[1:] {
		if !strings.HasPrefix(line, "\t") {
			break
		}
		section += "\n" + line
	}
	return section
}

// TestSignResponseOpenSSL has openssl verify responses ocspwire.Sign writes with a lab's keys, of every key
// type and ResponderID form, with several SingleResponses and a nonce.
func TestSignResponseOpenSSL(t *testing.T) {
	for _, kt := range []KeyType{KeyECDSA, KeyRSA, KeyEd25519} {
		for _, byKey := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s byKey=%v", kt, byKey), func(t *testing.T) {
				l := realLab(t, kt)
				dir := filepath.Dir(l.Dir)
				good, err := l.Issue(IssueOptions{Names: []string{"good.test"}})
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now().UTC().Truncate(time.Second)
				rid, err := ocspwire.NewResponderID(l.Signer, byKey)
				if err != nil {
					t.Fatal(err)
				}
				data := ocspwire.ResponseData{ProducedAt: now, ResponderID: rid,
					Extensions: []pkix.Extension{{Id: ocspwire.OIDNonce, Value: []byte{0x04, 0x02, 0xca, 0xfe}}},
					Responses: []ocspwire.SingleResponse{
						{CertID: certIDFor(t, l.CA, good.Cert.SerialNumber, crypto.SHA1), Status: ocspwire.Good, ThisUpdate: now, NextUpdate: now.Add(time.Hour)},
						{CertID: certIDFor(t, l.CA, big.NewInt(0x4242), crypto.SHA256), Status: ocspwire.Revoked, RevokedAt: now.Add(-time.Hour),
							Reason: ocspwire.ReasonKeyCompromise, Extensions: []pkix.Extension{ocspwire.InvalidityDateExtension(now.Add(-2 * time.Hour))},
							ThisUpdate: now, NextUpdate: now.Add(time.Hour)},
						{CertID: certIDFor(t, l.CA, big.NewInt(0x4343), crypto.SHA1), Status: ocspwire.Unknown, ThisUpdate: now},
					}}
				raw, err := ocspwire.Sign(data, ocspwire.SignOptions{Key: l.SignerKey, Certs: []*x509.Certificate{l.Signer}})
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "resp.der"), raw, 0o644); err != nil {
					t.Fatal(err)
				}
				out := openssl(t, dir, "ocsp", "-respin", "resp.der", "-issuer", l.Path(CACertFile), "-CAfile",
					l.Path(RootCertFile), "-cert", good.CertFile, "-no_nonce", "-resp_text")
				for _, want := range []string{"Response verify OK", good.CertFile + ": good", "Serial Number: 4242",
					"Cert Status: revoked", "Revocation Reason: keyCompromise", "Invalidity Date", "Cert Status: unknown",
					"OCSP Nonce", "0402CAFE"} {
					if !strings.Contains(out, want) {
						t.Errorf("openssl output lacks %q:\n%s", want, out)
					}
				}
			})
		}
	}
}
