package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"staple/certs"
	"staple/internal/testpki"
)

// opensslOut runs openssl in dir and returns the file it wrote.
func opensslOut(t *testing.T, dir, out string, args ...string) []byte {
	t.Helper()
	needBinary(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %q: %v\n%s", args, err, b)
	}
	b, err := os.ReadFile(filepath.Join(dir, out))
	must(t, err)
	return b
}

// TestCreateServerOptions checks each option of Node's createServer that CreateServer takes: implemented with
// Node's meaning (what the Server and its TLSConfig become), or refused with an *OptionError naming it,
// wrapping ErrUnsupportedOption where crypto/tls cannot do it and the parse error where the value is wrong.
func TestCreateServerOptions(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	certFile, keyFile := writeLeaf(t, f.dir, "server", f.leaf)
	key, chain := f.leaf.KeyPEM(), f.leaf.ChainPEM()
	encrypted := opensslOut(t, f.dir, "enc.key", "pkey", "-in", keyFile, "-aes256", "-passout", "pass:s3cret", "-out", "enc.key")
	pfx := opensslOut(t, f.dir, "legacy.pfx", "pkcs12", "-export", "-in", certFile, "-inkey", keyFile, "-passout", "pass:s3cret",
		"-out", "legacy.pfx", "-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1")
	modernPFX := opensslOut(t, f.dir, "modern.pfx", "pkcs12", "-export", "-in", certFile, "-inkey", keyFile, "-passout", "pass:s3cret", "-out", "modern.pfx")
	other := f.issue(t, "other.test")
	base := Options{Key: key, Cert: chain}
	with := func(change func(*Options)) Options { o := base; change(&o); return o }
	tests := []struct {
		name   string
		opts   Options
		option string // the *OptionError's Option; "" for success
		is     error  // what the error wraps
		check  func(t *testing.T, s *Server)
	}{
		{"key and cert", base, "", nil, func(t *testing.T, s *Server) {
			if got := s.SecureContext.Certificate.Leaf; !got.Equal(f.leaf.Cert) || len(s.SecureContext.Certificate.Certificate) != 2 {
				t.Errorf("leaf %v, chain of %d", got.Subject, len(s.SecureContext.Certificate.Certificate))
			}
		}},
		{"encrypted key", Options{Key: encrypted, Cert: chain, Passphrase: "s3cret"}, "", nil, nil},
		{"encrypted key, wrong passphrase", Options{Key: encrypted, Cert: chain, Passphrase: "wrong"}, "key", certs.ErrBadPassphrase, nil},
		{"encrypted key, no passphrase", Options{Key: encrypted, Cert: chain}, "key", certs.ErrBadPassphrase, nil},
		{"key of another certificate", Options{Key: other.KeyPEM(), Cert: chain}, "key", certs.ErrKeyMismatch, nil},
		{"pfx", Options{PFX: pfx, Passphrase: "s3cret"}, "", nil, func(t *testing.T, s *Server) {
			if !s.SecureContext.Certificate.Leaf.Equal(f.leaf.Cert) || !slices.ContainsFunc(s.SecureContext.CA, f.inter.Cert.Equal) {
				t.Errorf("pfx: leaf %v, CA %d certificates (want the intermediate among them, as in Node)", s.SecureContext.Certificate.Leaf.Subject, len(s.SecureContext.CA))
			}
		}},
		{"pfx, wrong passphrase", Options{PFX: pfx, Passphrase: "wrong"}, "pfx", certs.ErrBadPassphrase, nil},
		{"pfx, OpenSSL 3 default", Options{PFX: modernPFX, Passphrase: "s3cret"}, "pfx", certs.ErrUnsupportedEncryption, nil},
		{"pfx and key", Options{PFX: pfx, Key: key, Cert: chain}, "pfx", ErrUnsupportedOption, nil},
		{"ca", with(func(o *Options) { o.CA = f.root.CertPEM() }), "", nil, func(t *testing.T, s *Server) {
			if len(s.SecureContext.CA) != 1 || !s.SecureContext.CA[0].Equal(f.root.Cert) {
				t.Errorf("CA %v", s.SecureContext.CA)
			}
		}},
		{"ciphers", with(func(o *Options) { o.Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305" }), "", nil, func(t *testing.T, s *Server) {
			if want := []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}; !slices.Equal(s.TLSConfig.CipherSuites, want) {
				t.Errorf("CipherSuites %x", s.TLSConfig.CipherSuites)
			}
		}},
		{"ciphers, TLS 1.3 only", with(func(o *Options) {
			o.Ciphers = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
		}), "", nil, func(t *testing.T, s *Server) {
			if s.TLSConfig.MinVersion != tls.VersionTLS13 {
				t.Errorf("MinVersion %x, want TLS 1.3 as Node makes it", s.TLSConfig.MinVersion)
			}
		}},
		{"ciphers, DHE", with(func(o *Options) { o.Ciphers = "DHE-RSA-AES128-GCM-SHA256" }), "ciphers", ErrUnsupportedOption, nil},
		{"ecdhCurve", with(func(o *Options) { o.ECDHCurve = "prime256v1:X25519" }), "", nil, func(t *testing.T, s *Server) {
			if !slices.Equal(s.TLSConfig.CurvePreferences, []tls.CurveID{tls.CurveP256, tls.X25519}) {
				t.Errorf("CurvePreferences %v", s.TLSConfig.CurvePreferences)
			}
		}},
		{"ecdhCurve auto", with(func(o *Options) { o.ECDHCurve = "auto" }), "", nil, func(t *testing.T, s *Server) {
			if s.TLSConfig.CurvePreferences != nil {
				t.Errorf("CurvePreferences %v", s.TLSConfig.CurvePreferences)
			}
		}},
		{"ecdhCurve X448", with(func(o *Options) { o.ECDHCurve = "X448" }), "ecdhCurve", ErrUnsupportedOption, nil},
		{"honorCipherOrder false", with(func(o *Options) { o.ClientCipherOrder = true }), "honorCipherOrder", ErrUnsupportedOption, nil},
		{"dhparam", with(func(o *Options) { o.DHParam = []byte("auto") }), "dhparam", ErrUnsupportedOption, nil},
		{"NPNProtocols", with(func(o *Options) { o.NPNProtocols = []string{"http/1.1"} }), "NPNProtocols", ErrUnsupportedOption, nil},
		{"secureProtocol", with(func(o *Options) { o.SecureProtocol = "TLSv1_2_method" }), "", nil, bounds(tls.VersionTLS12, tls.VersionTLS12)},
		{"secureProtocol TLS_method", with(func(o *Options) { o.SecureProtocol = "TLS_method" }), "", nil, bounds(tls.VersionTLS12, tls.VersionTLS13)},
		{"secureProtocol, a client method", with(func(o *Options) { o.SecureProtocol = "TLSv1_2_client_method" }), "secureProtocol", ErrUnsupportedOption, nil},
		{"secureProtocol and minVersion", with(func(o *Options) { o.SecureProtocol = "TLSv1_2_method"; o.MinVersion = "TLSv1.2" }), "secureProtocol", nil, nil},
		{"minVersion", with(func(o *Options) { o.MinVersion = "TLSv1.3" }), "", nil, bounds(tls.VersionTLS13, tls.VersionTLS13)},
		{"maxVersion", with(func(o *Options) { o.MaxVersion = "TLSv1.2"; o.MinVersion = "TLSv1" }), "", nil, bounds(tls.VersionTLS10, tls.VersionTLS12)},
		{"maxVersion unknown", with(func(o *Options) { o.MaxVersion = "TLSv1.4" }), "maxVersion", nil, nil},
		{"secureOptions NO_TLSv1_3", with(func(o *Options) { o.SecureOptions = 0x20000000 }), "", nil, bounds(tls.VersionTLS12, tls.VersionTLS12)},
		{"secureOptions NO_TICKET, NO_SSLv3, NO_COMPRESSION", with(func(o *Options) { o.SecureOptions = 0x4000 | 0x2000000 | 0x20000 }), "", nil, func(t *testing.T, s *Server) {
			if !s.TLSConfig.SessionTicketsDisabled {
				t.Error("tickets still on")
			}
		}},
		{"secureOptions SSL_OP_ALL", with(func(o *Options) { o.SecureOptions = 0x80000850 }), "secureOptions", ErrUnsupportedOption, nil},
		{"secureOptions leaving a gap", with(func(o *Options) { o.MinVersion = "TLSv1"; o.SecureOptions = 0x10000000 }), "secureOptions", ErrUnsupportedOption, nil},
		{"ticketKeys", with(func(o *Options) { o.TicketKeys = bytes.Repeat([]byte{7}, 48) }), "", nil, func(t *testing.T, s *Server) {
			if !bytes.Equal(s.GetTicketKeys(), bytes.Repeat([]byte{7}, 48)) {
				t.Error("GetTicketKeys is not ticketKeys")
			}
		}},
		{"ticketKeys of 47 bytes", with(func(o *Options) { o.TicketKeys = make([]byte, 47) }), "ticketKeys", ErrTicketKeysLength, nil},
		{"sessionIdContext", with(func(o *Options) { o.SessionIDContext = "app" }), "", nil, func(t *testing.T, s *Server) {
			if s.SessionIDContext != "app" {
				t.Errorf("SessionIDContext %q", s.SessionIDContext)
			}
		}},
		{"sessionIdContext of 33 bytes", with(func(o *Options) { o.SessionIDContext = strings.Repeat("x", 33) }), "sessionIdContext", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := CreateServer(tt.opts, nil)
			if tt.option == "" {
				must(t, err)
				if tt.check != nil {
					tt.check(t, s)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tt.option || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want an *OptionError for %s wrapping %v", err, tt.option, tt.is)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error quotes the passphrase: %v", err)
			}
		})
	}
}

func bounds(lo, hi uint16) func(*testing.T, *Server) {
	return func(t *testing.T, s *Server) {
		t.Helper()
		if s.TLSConfig.MinVersion != lo || s.TLSConfig.MaxVersion != hi {
			t.Errorf("versions %x..%x, want %x..%x", s.TLSConfig.MinVersion, s.TLSConfig.MaxVersion, lo, hi)
		}
	}
}

// TestCreateSecureContext checks that an added context takes Node's key, cert, pfx, passphrase and ca, and
// refuses the server's options, and that a server made by CreateServer serves what it was given.
func TestCreateSecureContext(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	b := f.issue(t, "b.test")
	sc, err := CreateSecureContext(Options{Key: b.KeyPEM(), Cert: b.ChainPEM(), CA: f.root.CertPEM()})
	must(t, err)
	if _, err := CreateSecureContext(Options{Key: b.KeyPEM(), Cert: b.ChainPEM(), Ciphers: "HIGH"}); !errors.Is(err, ErrUnsupportedOption) {
		t.Errorf("ciphers on an added context: %v, want ErrUnsupportedOption", err)
	}
	rec := newRecorder()
	srv, err := CreateServer(Options{Key: f.leaf.KeyPEM(), Cert: f.leaf.ChainPEM(), SecureProtocol: "TLSv1_2_method"}, nil)
	must(t, err)
	rec.hook(srv)
	must(t, srv.AddContext("b.test", sc))
	addr, _ := start(t, srv)
	g := goDial(t, addr, &tls.Config{RootCAs: f.rootPool(), ServerName: "b.test"})
	must(t, g.err)
	if g.state.Version != tls.VersionTLS12 || g.state.PeerCertificates[0].Subject.CommonName != "b.test" {
		t.Errorf("version %x, certificate %q", g.state.Version, g.state.PeerCertificates[0].Subject.CommonName)
	}
	rec.nextSecure(t)
}
