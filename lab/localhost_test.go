package lab

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/ocspwire"
	"staple/responder"
)

// TestOpenLocalhost: the embedded default makes its lab once, issues a localhost certificate pointing at the
// lab's responder, keeps it while it is valid for more than a day and renews it after, keeping the old files.
func TestOpenLocalhost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	const url = "http://127.0.0.1:18889"
	now := time.Now()
	h, err := OpenLocalhost(dir, url, now, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	chain, err := certs.LoadChain(h.CertFile, h.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	if h.Addr != "127.0.0.1:18889" || !slices.Equal(chain.Leaf.OCSPServer, []string{url}) ||
		!slices.Contains(chain.Leaf.DNSNames, "localhost") || chain.Issuer == nil {
		t.Errorf("addr %s, AIA %v, names %v, issuer %v", h.Addr, chain.Leaf.OCSPServer, chain.Leaf.DNSNames, chain.Issuer != nil)
	}
	if st, err := os.Stat(h.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v", st.Mode(), err)
	}

	again, err := OpenLocalhost(dir, "http://ignored.test:1", now.Add(time.Hour), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := certs.LoadChain(again.CertFile, again.KeyFile, ""); !c2.Leaf.Equal(chain.Leaf) || again.Addr != h.Addr {
		t.Error("a second start issued a new certificate or changed the responder")
	}

	renewed, err := OpenLocalhost(dir, url, chain.Leaf.NotAfter.Add(-time.Hour), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c3, err := certs.LoadChain(renewed.CertFile, renewed.KeyFile, "")
	if err != nil || c3.Leaf.SerialNumber.Cmp(chain.Leaf.SerialNumber) == 0 {
		t.Fatalf("not renewed within a day of expiry: %v", err)
	}
	old := filepath.Join(dir, CertsDir, LocalhostName+"-"+chain.Leaf.SerialNumber.Text(16)+".pem")
	if _, err := os.Stat(old); err != nil {
		t.Errorf("the old certificate was not kept: %v", err)
	}

	src, err := renewed.Source(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	id, err := ocspwire.NewCertID(c3.Issuer, c3.Leaf.SerialNumber, crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Response(context.Background(), &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{id}}}); err != nil {
		t.Errorf("the lab's responder does not answer for its localhost certificate: %v", err)
	}
}

// TestOpenLocalhostConcurrent: staples starting at once on one data directory share the one lab and the
// one localhost certificate that the first made.
func TestOpenLocalhostConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	const n = 4
	got := make([]*Localhost, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if got[i], err = OpenLocalhost(dir, "http://127.0.0.1:18889", time.Now(), zerolog.Nop()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	first, err := certs.LoadChain(got[0].CertFile, got[0].KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range got[1:] {
		if !h.Lab.CA.Equal(got[0].Lab.CA) {
			t.Error("two staples made two labs")
		}
	}
	if entries, _ := got[0].Lab.Entries(); len(entries) != 2 || entries[1].Serial.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Errorf("index.txt has %d rows, want the signer and the one localhost certificate", len(entries))
	}
}

func TestOpenLocalhostErrors(t *testing.T) {
	notLab := t.TempDir()
	os.WriteFile(filepath.Join(notLab, ConfigFile), []byte("not a lab's configuration"), 0o600)
	if _, err := OpenLocalhost(notLab, "http://127.0.0.1:18889", time.Now(), zerolog.Nop()); err == nil {
		t.Error("a directory with a foreign lab.json: want an error")
	}
}
