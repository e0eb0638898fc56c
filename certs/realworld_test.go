package certs

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func realWorld(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := LoadFile(filepath.Join("..", "testdata", "certs", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Certs) != 1 {
		t.Fatalf("%s: %d certificates, want 1", name, len(b.Certs))
	}
	return b.Certs[0]
}

// bundleFile writes the named real-world certificates, in the given order, into one PEM file.
func bundleFile(t *testing.T, names ...string) string {
	t.Helper()
	var data []byte
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "certs", n))
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	p := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRealWorldURLs(t *testing.T) {
	tests := []struct {
		file              string
		ocsp, issuers, cr []string
		mustStaple        bool
	}{
		{"google-leaf.pem", []string{"http://ocsp.pki.goog/gts1c3"}, []string{"http://pki.goog/repo/certs/gts1c3.der"},
			[]string{"http://crls.pki.goog/gts1c3/QOvJ0N1sT2A.crl"}, false},
		{"gts-1c3-intermediate.pem", []string{"http://ocsp.pki.goog/gtsr1"}, []string{"http://pki.goog/repo/certs/gtsr1.der"},
			[]string{"http://crl.pki.goog/gtsr1/gtsr1.crl"}, false},
		{"smime-intermediate.pem", []string{"http://ocsp.izenpe.com:8094"}, nil, []string{"http://crl.izenpe.com/cgi-bin/arl2"}, false},
		{"trustasia-leaf.pem", []string{"http://ocsp.digicert-cn.com"}, []string{"http://cacerts.digicert-cn.com/TrustAsiaECCOVTLSProCA.crt"},
			[]string{"http://crl.digicert-cn.com/TrustAsiaECCOVTLSProCA.crl"}, false},
		{"gts-root-r1.pem", nil, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := realWorld(t, tt.file)
			if got := OCSPURLs(c); !slices.Equal(got, tt.ocsp) {
				t.Errorf("OCSPURLs = %q, want %q", got, tt.ocsp)
			}
			if got := CAIssuerURLs(c); !slices.Equal(got, tt.issuers) {
				t.Errorf("CAIssuerURLs = %q, want %q", got, tt.issuers)
			}
			if got := CRLURLs(c); !slices.Equal(got, tt.cr) {
				t.Errorf("CRLURLs = %q, want %q", got, tt.cr)
			}
			if got := MustStaple(c); got != tt.mustStaple {
				t.Errorf("MustStaple = %v, want %v", got, tt.mustStaple)
			}
		})
	}
}

func TestRealWorldChains(t *testing.T) {
	tests := []struct {
		name          string
		files         []string
		issuerFile    string
		wantLeaf      string // common name or first DNS name
		wantInter     []string
		wantUnrelated int
		wantIssuer    string // "" = none
	}{
		{name: "leaf then intermediate", files: []string{"google-leaf.pem", "gts-1c3-intermediate.pem"},
			wantLeaf: "www.google.com", wantInter: []string{"GTS CA 1C3"}, wantIssuer: "GTS CA 1C3"},
		{name: "reversed order with root", files: []string{"gts-root-r1.pem", "gts-1c3-intermediate.pem", "google-leaf.pem"},
			wantLeaf: "www.google.com", wantInter: []string{"GTS CA 1C3", "GTS Root R1"}, wantIssuer: "GTS CA 1C3"},
		{name: "unrelated certificate ignored", files: []string{"digicert-root.pem", "google-leaf.pem", "gts-1c3-intermediate.pem"},
			wantLeaf: "www.google.com", wantInter: []string{"GTS CA 1C3"}, wantUnrelated: 1, wantIssuer: "GTS CA 1C3"},
		{name: "issuer from issuer file", files: []string{"google-leaf.pem"}, issuerFile: "gts-1c3-intermediate.pem",
			wantLeaf: "www.google.com", wantIssuer: "GTS CA 1C3"},
		{name: "wrong issuer file gives none", files: []string{"google-leaf.pem"}, issuerFile: "digicert-root.pem",
			wantLeaf: "www.google.com"},
		{name: "s/mime chain", files: []string{"smime-intermediate.pem", "smime-leaf.pem"},
			wantLeaf: "CORPORATIVO FICTICIO ACTIVO", wantInter: []string{"EAEko Herri Administrazioen CA - CA AAPP Vascas (2)"},
			wantIssuer: "EAEko Herri Administrazioen CA - CA AAPP Vascas (2)"},
		{name: "leaf alone", files: []string{"trustasia-leaf.pem"}, wantLeaf: "*.tm.cn"},
		{name: "self-signed", files: []string{"self-signed.pem"}, wantLeaf: "Acme Co"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuerFile := ""
			if tt.issuerFile != "" {
				issuerFile = filepath.Join("..", "testdata", "certs", tt.issuerFile)
			}
			c, err := LoadChain(bundleFile(t, tt.files...), "", issuerFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := displayName(c.Leaf); got != tt.wantLeaf {
				t.Errorf("leaf = %q, want %q", got, tt.wantLeaf)
			}
			var inter []string
			for _, x := range c.Intermediates {
				inter = append(inter, displayName(x))
			}
			if !slices.Equal(inter, tt.wantInter) {
				t.Errorf("intermediates = %q, want %q", inter, tt.wantInter)
			}
			if len(c.Unrelated) != tt.wantUnrelated {
				t.Errorf("%d unrelated, want %d", len(c.Unrelated), tt.wantUnrelated)
			}
			got := ""
			if c.Issuer != nil {
				got = displayName(c.Issuer)
			}
			if got != tt.wantIssuer {
				t.Errorf("issuer = %q, want %q", got, tt.wantIssuer)
			}
			if _, ok := c.CacheKey(); ok != (tt.wantIssuer != "") {
				t.Errorf("CacheKey ok = %v with issuer %q", ok, tt.wantIssuer)
			}
			if c.Key != nil {
				t.Error("a key appeared from nowhere")
			}
			if _, err := c.TLSCertificate(); err == nil {
				t.Error("TLSCertificate without a key: want an error")
			}
		})
	}
}

func displayName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	if len(c.Subject.Organization) > 0 {
		return c.Subject.Organization[0]
	}
	return c.Subject.String()
}

func TestRealWorldCacheKey(t *testing.T) {
	leaf, issuer := realWorld(t, "google-leaf.pem"), realWorld(t, "gts-1c3-intermediate.pem")
	k := NewKey(issuer, leaf)
	// The serial as `openssl x509 -serial` prints it for google-leaf.pem.
	if got, want := k.SerialHex(), "111991593CD5A33D1231EA33C3644CDC"; got != want {
		t.Errorf("SerialHex = %s, want %s", got, want)
	}
	if k.Serial().Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("Serial = %v, want %v", k.Serial(), leaf.SerialNumber)
	}
	ref, err := ParseKey(k.String())
	if err != nil {
		t.Fatal(err)
	}
	if !ref.Matches(k) {
		t.Errorf("ParseKey(%q) does not match its key", k.String())
	}
	other := NewKey(realWorld(t, "digicert-root.pem"), leaf)
	if ref.Matches(other) {
		t.Error("a key of another issuer matched")
	}
	if !errors.Is(func() error { _, err := ParseKey("nonsense"); return err }(), ErrBadKey) {
		t.Error("ParseKey(nonsense): want ErrBadKey")
	}
}
