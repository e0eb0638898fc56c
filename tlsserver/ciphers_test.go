package tlsserver

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseCiphersMatchesOpenSSL checks that a cipher string selects the suites OpenSSL 3 (Node 20's) selects
// for it, among those crypto/tls implements: openssl ciphers -s -tls1_2 is the reference.
func TestParseCiphersMatchesOpenSSL(t *testing.T) {
	needBinary(t, "openssl")
	tests := []string{
		"ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
		"HIGH:!aNULL:!eNULL:!EXPORT:!DES:!RC4:!MD5:!PSK:!SRP:!CAMELLIA",
		"DEFAULT",
		"ALL:!kRSA",
		"ECDHE+AESGCM",
		"EECDH+AESGCM:EECDH+CHACHA20",
		"aECDSA:-AES256",
		"AES:!SHA1",
		"AES128:!aRSA:AES256",
		"HIGH:!SHA256:!SHA1",
		"ALL:!ECDHE:ECDHE-RSA-AES128-SHA",
		"ALL:-ECDHE:ECDHE-RSA-AES128-SHA",
		"CHACHA20,AES128-GCM-SHA256 AES256-GCM-SHA384",
		"TLSv1.2+aRSA",
		"kRSA:+AES128:@STRENGTH",
	}
	for _, cs := range tests {
		t.Run(cs, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "openssl", "ciphers", "-s", "-tls1_2", cs).Output()
			if err != nil {
				t.Fatalf("openssl ciphers %q: %v", cs, err)
			}
			var want []string
			for _, name := range strings.Split(strings.TrimSpace(string(out)), ":") {
				if slices.ContainsFunc(openSSLSuites, func(s openSSLSuite) bool { return s.name == name }) {
					want = append(want, name)
				}
			}
			ids, err := parseCiphers(cs)
			must(t, err)
			var got []string
			for _, s := range openSSLSuites {
				if slices.Contains(ids, s.id) {
					got = append(got, s.name)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("selects %q\nOpenSSL: %q", got, want)
			}
		})
	}
}

// TestParseCiphersRefuses checks the strings refused, and that each refusal is an *OptionError for
// "ciphers", wrapping ErrUnsupportedOption where crypto/tls cannot do what was asked.
func TestParseCiphersRefuses(t *testing.T) {
	tests := []struct {
		name, ciphers string
		unsupported   bool
	}{
		{"unknown name", "FOO", true},
		{"unknown among known", "FOO:ECDHE-RSA-AES128-GCM-SHA256", true},
		{"DHE suite", "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256", true},
		{"a suite crypto/tls lacks", "ECDHE-RSA-AES256-SHA384", true},
		{"Node's default list", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:HIGH", true},
		{"one TLS 1.3 suite", "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256", true},
		{"TLS 1.3 CCM", "TLS_AES_128_CCM_SHA256", true},
		{"removing a TLS 1.3 suite", "HIGH:!TLS_AES_128_GCM_SHA256", true},
		{"security level", "HIGH:@SECLEVEL=0", true},
		{"nothing selected", "!ALL:aNULL", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCiphers(tt.ciphers)
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != "ciphers" || errors.Is(err, ErrUnsupportedOption) != tt.unsupported {
				t.Errorf("got %v, want an *OptionError for ciphers (unsupported: %v)", err, tt.unsupported)
			}
		})
	}
}
