package testpki

import (
	"crypto"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"staple/ocspwire"
)

// openssl checks the encoding and the signatures of what x/crypto cannot parse: RSA-PSS, Ed25519, byKey
// without certificates, the issuer embedding itself.
func TestResponsesVerifyWithOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	root := NewRoot(t, "OpenSSL Root", ECDSAP256)
	rsaCA := root.NewIntermediate(t, "OpenSSL RSA CA", RSA2048)
	edCA := root.NewIntermediate(t, "OpenSSL Ed25519 CA", Ed25519)
	tests := []struct {
		name string
		ca   *CA
		o    func(ca *CA) ResponseOptions
		want string
	}{
		{"rsa pss issuer", rsaCA, func(*CA) ResponseOptions { return ResponseOptions{Algorithm: x509.SHA256WithRSAPSS} }, "good"},
		{"rsa pss max salt", rsaCA, func(*CA) ResponseOptions {
			return ResponseOptions{Algorithm: x509.SHA256WithRSAPSS, PSSSaltLength: 222}
		}, "good"},
		{"ed25519 issuer embedded", edCA, func(ca *CA) ResponseOptions {
			return ResponseOptions{Certs: []*x509.Certificate{ca.Cert}, Status: ocspwire.Revoked, Reason: 1}
		}, "revoked"},
		{"ed25519 delegated by key", edCA, func(ca *CA) ResponseOptions {
			return ResponseOptions{Signer: ca.NewSigner(t, SignerOptions{KeyType: Ed25519}), ResponderIDByKey: true}
		}, "good"},
		{"unknown sha256", rsaCA, func(*CA) ResponseOptions { return ResponseOptions{Status: ocspwire.Unknown, Hash: crypto.SHA256} }, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			leaf := tt.ca.Issue(t, LeafOptions{})
			o := tt.o(tt.ca)
			der := tt.ca.Respond(t, leaf.Cert, o)
			w := func(name string, data []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			cafile := w("chain.pem", append(tt.ca.CertPEM(), root.CertPEM()...))
			args := []string{"ocsp", "-respin", w("r.der", der), "-issuer", w("ca.pem", tt.ca.CertPEM()),
				"-cert", w("leaf.pem", leaf.CertPEM()), "-CAfile", cafile,
				"-attime", strconv.FormatInt(Epoch().Unix(), 10), "-validity_period", "100000000"}
			if o.Hash == crypto.SHA256 {
				args = append([]string{"ocsp", "-sha256"}, args[1:]...)
			}
			if o.Signer != nil {
				args = append(args, "-verify_other", w("signer.pem", o.Signer.CertPEM()))
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Response verify OK") || !strings.Contains(string(out), "leaf.pem: "+tt.want+"\n") {
				t.Fatalf("openssl: %v\n%s", err, out)
			}
		})
	}
}
