package service

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"staple/certs"
	"staple/config"
	"staple/internal/testpki"
	"staple/stapler"
)

// siteFiles writes leaf as a chain file (with its issuer unless alone) and a key file in dir.
func siteFiles(t *testing.T, dir, name string, l *testpki.Leaf, alone bool) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	chain := l.ChainPEM()
	if alone {
		chain = l.CertPEM()
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestLoadSites: each [[site]] becomes a secure context and a lookup by its leaf's bytes; what cannot be
// stapled says why; the first site in the file that matches a name serves it.
func TestLoadSites(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewRoot(t, "sites root", testpki.ECDSAP256).NewIntermediate(t, "sites CA", testpki.ECDSAP256)
	url := []string{"http://ocsp.sites.test/"}
	a, _ := siteFiles(t, dir, "a", ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, OCSPURLs: url}), false)
	aKey := filepath.Join(dir, "a.key")
	b, bKey := siteFiles(t, dir, "b", ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"b.test"}, OCSPURLs: url}), true)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.CertPEM(), 0o600)
	noURL, noURLKey := siteFiles(t, dir, "nourl", ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"nourl.test"}}), false)
	cfg := &config.Config{Sites: []config.Site{
		{Names: []string{"*.test"}, Cert: a, Key: aKey},
		{Names: []string{"b.test"}, Cert: b, Key: bKey},                 // alone: no issuer, nothing to staple
		{Names: []string{"b.test"}, Cert: b, Key: bKey, Issuer: caFile}, // a later site for the same name
		{Cert: noURL, Key: noURLKey},                                    // the default
	}}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	set, err := loadSites(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if set.def != set.all[3] {
		t.Errorf("default site %s, want site[4]", set.def.name)
	}
	for i, want := range []struct {
		watched  bool
		noStaple string
	}{{true, ""}, {false, NoStapleNoIssuer}, {true, ""}, {true, NoStapleNoURL}} {
		st := set.all[i]
		if st.watched != want.watched || st.noStaple != want.noStaple {
			t.Errorf("%s: watched %v (%q), want %v (%q)", st.name, st.watched, st.noStaple, want.watched, want.noStaple)
		}
		if set.byLeaf[string(st.chain.Leaf.Raw)] == nil {
			t.Errorf("%s: not found by its leaf's bytes", st.name)
		}
	}
	// The last context added wins in Node's SNI lookup: the first site in the file must be added last.
	last := set.named[len(set.named)-1]
	if last.Hostname != "*.test" || last.Context != set.all[0].context {
		t.Errorf("the first site's names are not added last: %+v", last)
	}
}

func TestLoadSitesErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewRoot(t, "site errors CA", testpki.ECDSAP256)
	cert, _ := siteFiles(t, dir, "a", ca.Issue(t, testpki.LeafOptions{}), false)
	_, otherKey := siteFiles(t, dir, "b", ca.Issue(t, testpki.LeafOptions{}), false)
	tests := []struct {
		name string
		site config.Site
		want string
	}{
		{"missing file", config.Site{Cert: filepath.Join(dir, "absent.pem")}, "site[1].cert"},
		{"key of another certificate", config.Site{Cert: cert, Key: otherKey}, "site[1].key"},
		{"no key", config.Site{Cert: cert}, "site[1].key"},
		{"client CA without certificates", config.Site{Cert: cert, Key: filepath.Join(dir, "a.key"), ClientCA: otherKey}, "site[1].client_ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Sites: []config.Site{tt.site}}
			_, err := loadSites(cfg, zerolog.Nop())
			if !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), tt.want+":") {
				t.Errorf("loadSites: %v, want config.ErrConfig at %s", err, tt.want)
			}
		})
	}
}

// TestFrontStaplesByLeafBytes: the OCSPRequest hook finds the site by the bytes of the leaf the handshake
// presents, not by the certificate pointer the sites were loaded with, and a leaf no site serves (a
// handshake that began before a reload) gets no staple.
func TestFrontStaplesByLeafBytes(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewRoot(t, "front root", testpki.ECDSAP256).NewIntermediate(t, "front CA", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"front.test"}, OCSPURLs: []string{"http://ocsp.front.test/"}})
	cert, key := siteFiles(t, dir, "front", leaf, false)
	cfg := &config.Config{Sites: []config.Site{{Cert: cert, Key: key}}}
	cfg.Check()
	set, err := loadSites(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	staple := &stapler.Staple{Raw: []byte{0x30, 0x03, 0x0a, 0x01, 0x00}, Expires: time.Now().Add(time.Hour)}
	want, _ := set.all[0].chain.CacheKey()
	current := func(k certs.Key) *stapler.Staple {
		if k == want {
			return staple
		}
		return nil
	}
	m := NewMetrics(nil, nil, nil)
	f := newFront(cfg, set, current, m, Options{})
	again, err := x509.ParseCertificate(leaf.Cert.Raw) // another pointer to the same certificate
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.ocspRequest(context.Background(), again, nil); err != nil || string(got) != string(staple.Raw) {
		t.Errorf("staple for the site's leaf parsed again: %x, %v", got, err)
	}
	other := ca.Issue(t, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.front.test/"}})
	if got, _ := f.ocspRequest(context.Background(), other.Cert, nil); got != nil {
		t.Error("a leaf no site serves got a staple")
	}
	var counted dto.Metric
	m.notStapled[NoStapleNoResponse].Write(&counted)
	if n := counted.GetCounter().GetValue(); n != 1 {
		t.Errorf("handshakes without a response counted %v, want 1", n)
	}
}
