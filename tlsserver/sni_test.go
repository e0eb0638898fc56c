package tlsserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"staple/internal/testpki"
)

// sniCases are host name patterns (in AddContext order) and a server name, with the index of the context
// Node picks (-1: the default) or "error" when Node's addContext throws.
var sniCases = []struct {
	patterns []string
	name     string
	want     any // int or "error"
}{
	{[]string{"*.example.com", "a.example.com"}, "a.example.com", 1},
	{[]string{"*.example.com", "a.example.com"}, "b.example.com", 0},
	{[]string{"*.example.com", "a.example.com"}, "B.EXAMPLE.COM", -1},
	{[]string{"*.example.com", "a.example.com"}, "x.y.example.com", -1},
	{[]string{"*.example.com", "a.example.com"}, "example.com", -1},
	{[]string{"*.example.com", "a.example.com"}, ".example.com", 0},
	{[]string{"a.example.com", "*.example.com"}, "a.example.com", 1},
	{[]string{"*"}, "localhost", 0},
	{[]string{"*"}, "a.b", -1},
	{[]string{"*.*.com"}, "a.b.com", 0},
	{[]string{"*.*.com"}, "..com", 0},
	{[]string{"a*b.test"}, "ab.test", 0},
	{[]string{"a*b.test"}, "axxb.test", 0},
	{[]string{"a*b.test"}, "a.b.test", -1},
	{[]string{"*-*"}, "a-b", 0},
	{[]string{"www.example.com"}, "wwwXexample.com", -1},
	{[]string{"www.example.com"}, "www.example.com.", -1},
	{[]string{"a+b.test"}, "a+b.test", 0},
	{[]string{"a+b.test"}, "aab.test", -1},
	{[]string{"a?"}, "a?", 0},
	{[]string{"a?"}, "a", -1},
	{[]string{"a{2}"}, "a{2}", 0},
	{[]string{"a{2}"}, "aa", -1},
	{[]string{"[x]"}, "[x]", 0},
	{[]string{"[x]"}, "x", -1},
	{[]string{"$^"}, "$^", 0},
	{[]string{`\`}, `\`, 0},
	{[]string{`a\*`}, `a\bc`, 0},
	{[]string{"a|b"}, "a", 0},
	{[]string{"a|b"}, "xb", 0}, // Node leaves '|' unescaped: ^a|b$
	{[]string{"a|b"}, "ax", 0},
	{[]string{"a|b"}, "x", -1},
	{[]string{"a|"}, "anything", 0}, // ^a|$ matches at the end of any name
	{[]string{"(a)"}, "a", 0},
	{[]string{"(a)"}, "(a)", -1},
	{[]string{"a(b"}, "a(b", "error"},
	{[]string{"a)b"}, "a)b", "error"},
	{[]string{"ok.test", ""}, "ok.test", "error"},
	{[]string{"bücher.example"}, "bücher.example", 0},
	{[]string{"*.example"}, "bücher.example", 0},
	{[]string{"xn--bcher-kva.example"}, "bücher.example", -1},
	{[]string{"*.a.test", "*.b.test", "x.*"}, "x.b.test", 1},
	{[]string{"*.a.test", "*.b.test", "x.*"}, "x.c.test", -1},
	{[]string{"*.a.test", "*.b.test", "x.*"}, "x.test", 2},
	{[]string{"*.a.test", "*.b.test", "*.*.test"}, "x.b.test", 2},
}

// goSNI runs the cases through this package's matcher.
func goSNI(patterns []string, name string) any {
	var contexts []*secureContext
	for _, p := range patterns {
		re, err := compilePattern(p)
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				return fmt.Sprintf("unwrapped error %v", err)
			}
			return "error"
		}
		contexts = append(contexts, &secureContext{pattern: p, re: re})
	}
	def := &secureContext{}
	got := match(contexts, name, def)
	for i, c := range contexts {
		if c == got {
			return i
		}
	}
	return -1
}

// TestSNIMatchesNode checks the SNI matching case by case against the table, and the table against Node's
// own addContext regular expressions and SNICallback order (testdata/sni.js).
func TestSNIMatchesNode(t *testing.T) {
	for _, c := range sniCases {
		if got := goSNI(c.patterns, c.name); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("patterns %q, name %q: got %v, want %v", c.patterns, c.name, got, c.want)
		}
	}
	needBinary(t, "node")
	type nodeCase struct {
		Patterns []string `json:"patterns"`
		Name     string   `json:"name"`
	}
	var in []nodeCase
	for _, c := range sniCases {
		in = append(in, nodeCase{c.patterns, c.name})
	}
	plan, err := json.Marshal(in)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", "testdata/sni.js", string(plan)).Output()
	must(t, err)
	var node []any
	must(t, json.Unmarshal(out, &node))
	if len(node) != len(sniCases) {
		t.Fatalf("node answered %d cases of %d", len(node), len(sniCases))
	}
	for i, c := range sniCases {
		n := node[i]
		if f, ok := n.(float64); ok {
			n = int(f)
		} else if s, ok := n.(string); ok && strings.HasPrefix(s, "error") {
			n = "error"
		}
		if fmt.Sprint(n) != fmt.Sprint(c.want) {
			t.Errorf("patterns %q, name %q: node picks %v, the table says %v", c.patterns, c.name, n, c.want)
		}
	}
}

// TestNoSNIGetsDefault checks that a client without SNI gets the default context even when a pattern would
// match the empty name (Node runs no SNICallback then).
func TestNoSNIGetsDefault(t *testing.T) {
	re, err := compilePattern("*")
	must(t, err)
	def := &secureContext{}
	if got := match([]*secureContext{{re: re}}, "", def); got != def {
		t.Error("the empty server name matched a context")
	}
}

// TestSecureContexts serves three names from three contexts and checks, with each client, which
// certificate, ALPN protocol, staple and client-certificate policy each handshake got.
func TestSecureContexts(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	wild := f.issue(t, "*.example.test")
	exact := f.issue(t, "a.example.test")
	rec := newRecorder()
	staples := map[string][]byte{"localhost": f.staple}
	for _, l := range []*testpki.Leaf{wild, exact} {
		staples[l.Cert.Subject.CommonName] = f.inter.Respond(t, l.Cert, testpki.ResponseOptions{})
	}
	srv := &Server{
		SecureContext: f.context(f.leaf),
		OCSPRequest: func(ctx context.Context, cert, issuer *x509.Certificate) ([]byte, error) {
			rec.stapleFrom(nil, nil)(ctx, cert, issuer)
			return staples[cert.Subject.CommonName], nil
		},
	}
	rec.hook(srv)
	wildTLS, exactTLS := wild.TLSCertificate(), exact.TLSCertificate()
	must(t, srv.AddContext("*.example.test", &SecureContext{Certificate: &wildTLS, ALPNProtocols: []string{"h2", "http/1.1"}}))
	must(t, srv.AddContext("a.example.test", &SecureContext{
		Certificate: &exactTLS, ALPNProtocols: []string{"http/1.1"},
		CA: []*x509.Certificate{f.root.Cert}, ClientAuth: &ClientAuth{RequestCert: true, AllowUnauthorized: true},
	}))
	addr, port := start(t, srv)

	tests := []struct {
		sni        string
		cn         string // the certificate's CN
		alpn       string // negotiated when the client offers h2 and http/1.1
		authorized bool   // with the client certificate
	}{
		{"", "localhost", "", false},
		{"localhost", "localhost", "", false},
		{"b.example.test", "*.example.test", "h2", false},
		{"a.example.test", "a.example.test", "http/1.1", true},
		{"b.EXAMPLE.test", "localhost", "", false}, // case-sensitive, as in Node
		{"x.a.example.test", "localhost", "", false},
	}
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(fmt.Sprintf("%q/%s", tt.sni, versionName(v)), func(t *testing.T) {
				check := func(client, cn, alpn string) {
					t.Helper()
					s := rec.nextSecure(t)
					if cn != tt.cn || alpn != tt.alpn || s.alpn != tt.alpn || s.serverName != tt.sni || s.authorized != tt.authorized {
						t.Errorf("%s: certificate %q ALPN %q (server: %q), server name %q, authorized %v; want %q %q %q %v",
							client, cn, alpn, s.alpn, s.serverName, s.authorized, tt.cn, tt.alpn, tt.sni, tt.authorized)
					}
					if c := rec.lastOCSP(t); c.cert.Subject.CommonName != tt.cn {
						t.Errorf("%s: OCSPRequest got the certificate of %q", client, c.cert.Subject.CommonName)
					}
				}
				args := []string{sslFlag(v), "-status", "-alpn", "h2,http/1.1", "-cert", f.clientCert, "-key", f.clientKey}
				if tt.sni == "" {
					args = append(args, "-noservername")
				} else {
					args = append(args, "-servername", tt.sni)
				}
				r := sClient(t, addr, f, args...)
				cn := ""
				if i := strings.Index(r.out, "subject=CN = "); i >= 0 {
					cn, _, _ = strings.Cut(r.out[i+len("subject=CN = "):], "\n")
				}
				if serial := fmt.Sprintf("Serial Number: %X\n", rec.lastOCSP(t).cert.SerialNumber); !r.staple || !strings.Contains(r.out, serial) {
					t.Errorf("openssl: no staple for %q", tt.cn)
				}
				check("openssl", cn, r.alpn)

				cfg := &tls.Config{RootCAs: f.rootPool(), ServerName: tt.sni, NextProtos: []string{"h2", "http/1.1"},
					GetClientCertificate: sendCert(ptr(f.client.TLSCertificate())), MinVersion: v, MaxVersion: v,
					InsecureSkipVerify: true}
				g := goDial(t, addr, cfg)
				must(t, g.err)
				if !bytes.Equal(g.state.OCSPResponse, staples[tt.cn]) {
					t.Errorf("go: not the staple for %q", tt.cn)
				}
				check("go", g.state.PeerCertificates[0].Subject.CommonName, g.state.NegotiatedProtocol)

				n := nodeClient(t, port, f, nodeConn{Version: versionName(v), ServerName: str(tt.sni), RequestOCSP: true,
					ALPN: []string{"h2", "http/1.1"}, Cert: f.clientCert, Key: f.clientKey})[0]
				alpn := ""
				json.Unmarshal(n.ALPN, &alpn) // false stays ""
				if resp, _ := n.staple(t); !bytes.Equal(resp, staples[tt.cn]) {
					t.Errorf("node: not the staple for %q", tt.cn)
				}
				check("node", n.Subject, alpn)
			})
		}
	}
	rec.noError(t)
}

// TestALPNMismatch checks that a client whose protocols the context does not offer gets no_application_protocol
// and the server a ClientError with ErrNoApplicationProtocol.
func TestALPNMismatch(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	sc := f.context(f.leaf)
	sc.ALPNProtocols = []string{"h2"}
	srv := &Server{SecureContext: sc}
	rec.hook(srv)
	addr, port := start(t, srv)
	for _, v := range versions {
		r := sClient(t, addr, f, sslFlag(v), "-servername", "localhost", "-alpn", "foo")
		if r.hello || !strings.Contains(r.out, "no application protocol") {
			t.Errorf("openssl %s: want alert no_application_protocol:\n%s", versionName(v), r.out)
		}
		cfg := f.goConfig(v)
		cfg.NextProtos = []string{"foo"}
		g := goDial(t, addr, cfg)
		if g.err == nil || !strings.Contains(g.err.Error(), "no application protocol") {
			t.Errorf("go %s: %v", versionName(v), g.err)
		}
		n := nodeClient(t, port, f, nodeConn{Version: versionName(v), ALPN: []string{"foo"}})[0]
		if n.Connected || n.Error != "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL" {
			t.Errorf("node %s: connected=%v error %q", versionName(v), n.Connected, n.Error)
		}
		for _, client := range []string{"openssl", "go", "node"} {
			if e := rec.nextError(t); !errors.Is(e.err, ErrNoApplicationProtocol) {
				t.Errorf("%s %s: ClientError got %v, want ErrNoApplicationProtocol", client, versionName(v), e.err)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestSNICallback checks Node's SNICallback and how it composes with AddContext: it is asked only for a
// client that sent a name; its context serves that handshake (certificate, staple, client CA); nil falls back
// to the AddContext patterns, then to the default; its error destroys the connection with no alert and
// reaches ClientError as a *HookError.
func TestSNICallback(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	errNoSuchHost := errors.New("no such host")
	x, wild := f.context(f.issue(t, "x.test")), f.context(f.issue(t, "*.test"))
	x.CA = []*x509.Certificate{f.root.Cert}
	tests := []struct {
		sni    string
		cn     string // the certificate served; "" when the connection is destroyed
		asked  bool   // SNICallback was called
		authed bool
	}{
		{"", "localhost", false, false},
		{"x.test", "x.test", true, true},
		{"y.test", "*.test", true, false},
		{"other", "localhost", true, false},
		{"bad.test", "", true, false},
	}
	for _, tt := range tests {
		for _, v := range versions {
			t.Run(fmt.Sprintf("%q/%s", tt.sni, versionName(v)), func(t *testing.T) {
				rec := newRecorder()
				asked := make(chan string, 4)
				srv := &Server{SecureContext: f.context(f.leaf), RequestCert: true, AllowUnauthorized: true,
					OCSPRequest: rec.stapleFrom(nil, nil),
					SNICallback: func(_ context.Context, name string) (*SecureContext, error) {
						asked <- name
						switch name {
						case "x.test":
							return x, nil
						case "bad.test":
							return nil, errNoSuchHost
						}
						return nil, nil
					}}
				must(t, srv.AddContext("*.test", wild))
				rec.hook(srv)
				addr, _ := start(t, srv)
				cfg := &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true, MinVersion: v, MaxVersion: v,
					GetClientCertificate: sendCert(ptr(f.client.TLSCertificate()))}
				g := goDial(t, addr, cfg)
				select {
				case name := <-asked:
					if !tt.asked || name != tt.sni {
						t.Errorf("SNICallback asked for %q", name)
					}
				default:
					if tt.asked {
						t.Error("SNICallback not asked")
					}
				}
				if tt.cn == "" {
					e := rec.nextError(t)
					var he *HookError
					if !errors.As(e.err, &he) || he.Hook != "SNICallback" || !errors.Is(e.err, errNoSuchHost) {
						t.Errorf("ClientError got %v, want the callback's error in an SNICallback *HookError", e.err)
					}
					if _, alert := peerAlert(g.err); g.err == nil || alert {
						t.Errorf("the client got %v, want the connection dropped with no alert", g.err)
					}
					return
				}
				must(t, g.err)
				s := rec.nextSecure(t)
				if cn := g.state.PeerCertificates[0].Subject.CommonName; cn != tt.cn || rec.lastOCSP(t).cert.Subject.CommonName != tt.cn {
					t.Errorf("served %q, OCSPRequest for %q; want %q", cn, rec.lastOCSP(t).cert.Subject.CommonName, tt.cn)
				}
				if s.authorized != tt.authed {
					t.Errorf("authorized %v (%s), want %v: the client CA is the chosen context's", s.authorized, s.authErr, tt.authed)
				}
			})
		}
	}
}
