package lab

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"staple/certs"
	"staple/ocspwire"
)

// labNow is the fixed clock of the tests' labs.
var labNow = date("2026-11-25T12:00:00Z")

func newTestLab(t testing.TB, kt KeyType) *Lab {
	t.Helper()
	l, err := Init(filepath.Join(t.TempDir(), "lab"), InitOptions{KeyType: kt, ResponderURL: "http://127.0.0.1:18888",
		Now: func() time.Time { return labNow }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestInitLayout(t *testing.T) {
	l := newTestLab(t, KeyECDSA)
	for name, perm := range map[string]os.FileMode{
		RootCertFile: 0o644, RootKeyFile: 0o600, CACertFile: 0o644, CAKeyFile: 0o600, SignerCertFile: 0o644,
		SignerKeyFile: 0o600, IndexFile: 0o644, SerialFile: 0o644, IndexAttrFile: 0o644, OpenSSLConfigFile: 0o644,
		ConfigFile: 0o644,
	} {
		st, err := os.Stat(l.Path(name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if st.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), perm)
		}
	}
	for _, d := range []string{CertsDir, NewCertsDir} {
		if st, err := os.Stat(l.Path(d)); err != nil || !st.IsDir() {
			t.Errorf("%s is not a directory: %v", d, err)
		}
	}
	if err := l.CA.CheckSignatureFrom(l.Root); err != nil {
		t.Errorf("issuing CA not signed by the root: %v", err)
	}
	if !l.CA.IsCA || !l.CA.MaxPathLenZero || !l.Root.IsCA {
		t.Errorf("CA flags: root %v, issuing %v pathlen0 %v", l.Root.IsCA, l.CA.IsCA, l.CA.MaxPathLenZero)
	}
	s := l.Signer
	if err := s.CheckSignatureFrom(l.CA); err != nil {
		t.Errorf("signer not signed by the issuing CA: %v", err)
	}
	if !slices.Equal(s.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || s.IsCA {
		t.Errorf("signer EKU %v, CA %v", s.ExtKeyUsage, s.IsCA)
	}
	if !slices.ContainsFunc(s.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(ocspwire.OIDNoCheck) }) {
		t.Error("signer lacks ocsp-nocheck")
	}
	if s.SerialNumber.Cmp(big.NewInt(0x1000)) != 0 {
		t.Errorf("signer serial %x", s.SerialNumber)
	}
	entries, err := l.Entries()
	if err != nil || len(entries) != 1 || entries[0].Status != Valid || entries[0].Serial.Cmp(s.SerialNumber) != 0 {
		t.Fatalf("index after init: %+v, %v", entries, err)
	}
	if entries[0].Subject != "/O=staple lab/CN="+s.Subject.CommonName {
		t.Errorf("subject column %q", entries[0].Subject)
	}
	if serial, err := readSerial(l.Path(SerialFile)); err != nil || serial.Cmp(big.NewInt(0x1001)) != 0 {
		t.Errorf("serial file: %v, %v", serial, err)
	}

	// The lab reopens with the same certificates, and a second init refuses.
	o, err := Open(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !o.CA.Equal(l.CA) || !o.Signer.Equal(l.Signer) || o.ResponderURL != l.ResponderURL || o.KeyType != KeyECDSA {
		t.Error("Open does not give back what Init made")
	}
	if _, err := Init(l.Dir, InitOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("second Init: %v, want ErrExists", err)
	}
}

func TestInitErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{ResponderURL: "ftp://x"}); !errors.Is(err, ErrBadURL) {
		t.Errorf("ftp URL: %v", err)
	}
	if _, err := Init(dir, InitOptions{KeyType: "dsa"}); !errors.Is(err, ErrBadKeyType) {
		t.Errorf("dsa: %v", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrNotLab) {
		t.Errorf("Open of an empty directory: %v", err)
	}
}

func TestIssue(t *testing.T) {
	l := newTestLab(t, KeyECDSA)
	is, err := l.Issue(IssueOptions{Names: []string{"leaf.test", "*.leaf.test", "127.0.0.1"}, IPs: []net.IP{net.ParseIP("::1")},
		MustStaple: true, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	c := is.Cert
	if c.Subject.CommonName != "leaf.test" || !slices.Equal(c.DNSNames, []string{"leaf.test", "*.leaf.test"}) {
		t.Errorf("CN %q, DNS %v", c.Subject.CommonName, c.DNSNames)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !c.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("IPs %v", c.IPAddresses)
	}
	if !slices.Equal(c.OCSPServer, []string{"http://127.0.0.1:18888"}) || !certs.MustStaple(c) {
		t.Errorf("AIA %v, must-staple %v", c.OCSPServer, certs.MustStaple(c))
	}
	if got := c.NotAfter.Sub(labNow); got != 30*24*time.Hour {
		t.Errorf("validity %v", got)
	}
	if c.SerialNumber.Cmp(big.NewInt(0x1001)) != 0 || is.Entry.SerialHex() != "1001" {
		t.Errorf("serial %x / %s", c.SerialNumber, is.Entry.SerialHex())
	}
	chain, err := certs.LoadChain(is.CertFile, is.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	if !chain.Leaf.Equal(c) || len(chain.Intermediates) != 1 || !chain.Intermediates[0].Equal(l.CA) || chain.Issuer == nil {
		t.Errorf("chain file: leaf %v, intermediates %d", chain.Leaf.Subject, len(chain.Intermediates))
	}
	if st, err := os.Stat(is.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", st.Mode(), err)
	}
	if filepath.Base(is.CertFile) != "leaf.test.pem" {
		t.Errorf("cert file %s", is.CertFile)
	}
	pool := x509.NewCertPool()
	pool.AddCert(l.Root)
	inter := x509.NewCertPool()
	inter.AddCert(l.CA)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: "x.leaf.test",
		CurrentTime: labNow}); err != nil {
		t.Errorf("leaf does not verify to the root: %v", err)
	}

	w, err := l.Issue(IssueOptions{Names: []string{"*.wild.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(w.CertFile) != "_wildcard.wild.test.pem" || w.Cert.SerialNumber.Cmp(big.NewInt(0x1002)) != 0 {
		t.Errorf("wildcard: %s serial %x", w.CertFile, w.Cert.SerialNumber)
	}
	if got := w.Cert.NotAfter.Sub(labNow); got != DefaultLeafDays*24*time.Hour {
		t.Errorf("default validity %v", got)
	}
	entries, _ := l.Entries()
	if len(entries) != 3 || entries[1].Subject != "/CN=leaf.test" || entries[2].Subject != "/CN=*.wild.test" {
		t.Errorf("index: %+v", entries)
	}
}

func TestIssueErrors(t *testing.T) {
	l := newTestLab(t, KeyECDSA)
	if _, err := l.Issue(IssueOptions{Names: []string{"dup.test"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		opts  IssueOptions
		isErr error
	}{
		{"no name", IssueOptions{}, ErrBadName},
		{"slash", IssueOptions{Names: []string{"../evil"}}, ErrBadName},
		{"space", IssueOptions{Names: []string{"a b.test"}}, ErrBadName},
		{"empty label", IssueOptions{Names: []string{"a..test"}}, ErrBadName},
		{"negative days", IssueOptions{Names: []string{"ok.test"}, Days: -1}, nil},
		{"exists", IssueOptions{Names: []string{"dup.test"}}, ErrExists},
		{"key type", IssueOptions{Names: []string{"k.test"}, KeyType: "dsa"}, ErrBadKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Issue(tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Fatalf("err = %v, want %v", err, tt.isErr)
			}
		})
	}
	entries, _ := l.Entries()
	if len(entries) != 2 {
		t.Errorf("failed issues left rows: %d", len(entries))
	}
}

func TestRevoke(t *testing.T) {
	l := newTestLab(t, KeyECDSA)
	var serials []*big.Int
	for _, n := range []string{"a.test", "b.test", "c.test", "d.test", "e.test"} {
		is, err := l.Issue(IssueOptions{Names: []string{n}})
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, is.Cert.SerialNumber)
	}
	at := date("2026-11-24T10:00:00Z")
	tests := []struct {
		name string
		opts RevokeOptions
		line string // revocation column
	}{
		{"no reason", RevokeOptions{Reason: ocspwire.ReasonNone}, "261125120000Z"},
		{"superseded at a time", RevokeOptions{Reason: ocspwire.ReasonSuperseded, Time: at}, "261124100000Z,superseded"},
		{"hold", RevokeOptions{Reason: ocspwire.ReasonCertificateHold, HoldInstruction: ocspwire.HoldInstructionCallIssuer}, "261125120000Z,holdInstruction,holdInstructionCallIssuer"},
		{"key compromise with date", RevokeOptions{Reason: ocspwire.ReasonKeyCompromise, InvalidityDate: at}, "261125120000Z,keyTime,20261124100000Z"},
		{"zero value", RevokeOptions{}, "261125120000Z,unspecified"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := l.Revoke(serials[i], tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.revocationColumn(); got != tt.line {
				t.Errorf("column %q, want %q", got, tt.line)
			}
			entries, _ := l.Entries()
			if !entries[i+1].Equal(e) {
				t.Errorf("index row %+v, returned %+v", entries[i+1], e)
			}
		})
	}
	if _, err := l.Revoke(serials[0], RevokeOptions{}); !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := l.Revoke(big.NewInt(0x9999), RevokeOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown serial: %v", err)
	}
	if _, err := l.Revoke(big.NewInt(0x1000), RevokeOptions{Reason: ocspwire.ReasonSuperseded, HoldInstruction: ocspwire.HoldInstructionReject}); err == nil {
		t.Error("a hold instruction without certificateHold was accepted")
	}
	if entries, _ := l.Entries(); entries[0].Status != Valid {
		t.Error("a refused revoke changed the index")
	}
}

func TestSerialOf(t *testing.T) {
	l := newTestLab(t, KeyECDSA)
	is, err := l.Issue(IssueOptions{Names: []string{"mine.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := l.SerialOf(is.CertFile); err != nil || n.Cmp(is.Cert.SerialNumber) != 0 {
		t.Errorf("SerialOf = %v, %v", n, err)
	}
	other := newTestLab(t, KeyECDSA)
	foreign, err := other.Issue(IssueOptions{Names: []string{"theirs.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SerialOf(foreign.CertFile); !errors.Is(err, ErrNotIssuer) {
		t.Errorf("foreign certificate: %v", err)
	}
}

// TestConcurrentIssue issues from several Lab values at once, as separate staple processes would: the lock
// keeps every row and hands out every serial once.
func TestConcurrentIssue(t *testing.T) {
	l := newTestLab(t, KeyECDSA)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			o, err := Open(l.Dir)
			if err != nil {
				errs <- err
				return
			}
			if _, err := o.Issue(IssueOptions{Names: []string{fmt.Sprintf("c%d.test", i)}}); err != nil {
				errs <- err
			}
			if i%3 == 0 {
				if _, err := o.Revoke(big.NewInt(0x1000), RevokeOptions{}); err != nil && !errors.Is(err, ErrAlreadyRevoked) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n+1 {
		t.Fatalf("%d rows, want %d", len(entries), n+1)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.SerialHex()] {
			t.Errorf("serial %s twice", e.SerialHex())
		}
		seen[e.SerialHex()] = true
	}
	if entries[0].Status != Revoked {
		t.Error("the revoke was lost")
	}
	if next, _ := readSerial(l.Path(SerialFile)); next.Cmp(big.NewInt(0x1001+n)) != 0 {
		t.Errorf("serial file %X", next)
	}
}

// TestConcurrentInit: of several inits of one directory at once, one makes the lab and every other fails with
// ErrExists, leaving it whole: its CA key matches its certificate (Open checks), and it issues.
func TestConcurrentInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	const n = 6
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := Init(dir, InitOptions{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	made := 0
	for err := range errs {
		switch {
		case err == nil:
			made++
		case !errors.Is(err, ErrExists):
			t.Errorf("a losing init: %v, want ErrExists", err)
		}
	}
	if made != 1 {
		t.Errorf("%d inits made the lab, want 1", made)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Issue(IssueOptions{Names: []string{"after.test"}}); err != nil {
		t.Error(err)
	}
}

func TestKeyTypes(t *testing.T) {
	for _, kt := range []KeyType{KeyECDSA, KeyRSA, KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			l := newTestLab(t, kt)
			is, err := l.Issue(IssueOptions{Names: []string{"k.test"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := keyTypeOf(is.Cert.PublicKey); got != kt {
				t.Errorf("leaf key %v", got)
			}
			if got := keyTypeOf(l.Signer.PublicKey); got != kt {
				t.Errorf("signer key %v", got)
			}
			data, _ := os.ReadFile(l.Path(CAKeyFile))
			if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
				t.Errorf("CA key is not PKCS#8: %.40q", data)
			}
		})
	}
}

// keyTypeOf is the KeyType of a public key.
func keyTypeOf(k crypto.PublicKey) KeyType {
	switch k.(type) {
	case *rsa.PublicKey:
		return KeyRSA
	case ed25519.PublicKey:
		return KeyEd25519
	}
	return KeyECDSA
}
