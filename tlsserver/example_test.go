package tlsserver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/certs"
	"staple/ocspfetch"
	"staple/stapler"
	"staple/tlsserver"
)

// Session resumption with an external store, as in Node's documentation:
//
//	const tlsSessionStore = {};
//	server.on('newSession', (id, data, cb) => {
//	  tlsSessionStore[id.toString('hex')] = data;
//	  cb();
//	});
//	server.on('resumeSession', (id, cb) => {
//	  cb(null, tlsSessionStore[id.toString('hex')] || null);
//	});
//
// The hooks return instead of calling back; the handshake waits for them all the same.
func Example_sessionResumption() {
	cert, err := tls.LoadX509KeyPair("testdata/example.crt", "testdata/example.key")
	if err != nil {
		log.Fatal(err)
	}

	var mu sync.Mutex
	tlsSessionStore := map[string][]byte{}
	srv := &tlsserver.Server{
		SecureContext: &tlsserver.SecureContext{Certificate: &cert},
		NewSession: func(_ context.Context, id, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			tlsSessionStore[hex.EncodeToString(id)] = data
			return nil
		},
		ResumeSession: func(_ context.Context, id []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			return tlsSessionStore[hex.EncodeToString(id)], nil // nil: not found, a full handshake
		},
		SecureConnection: func(c *tlsserver.Conn) {
			fmt.Fprintf(c, "resumed: %v\n", c.Resumed())
		},
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	addr, _ := srv.Address()

	// A client that keeps its sessions connects twice.
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	config := &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	for range 2 {
		conn, err := tls.Dial("tcp", net.JoinHostPort(addr.Address, strconv.Itoa(addr.Port)), config)
		if err != nil {
			log.Fatal(err)
		}
		greeting, _ := io.ReadAll(conn)
		fmt.Print(string(greeting))
		conn.Close()
	}
	// Output:
	// resumed: false
	// resumed: true
}

// Stapling from an in-memory map keyed by serial number, filled by whatever fetches responses: a response
// is stapled on every full handshake of a client that asks; a certificate without one gets no staple.
func ExampleServer_OCSPRequest() {
	cert, err := tls.LoadX509KeyPair("testdata/example.crt", "testdata/example.key")
	if err != nil {
		log.Fatal(err)
	}
	response, err := os.ReadFile("testdata/example.ocsp")
	if err != nil {
		log.Fatal(err)
	}
	staples := map[string][]byte{cert.Leaf.SerialNumber.String(): response}
	srv := &tlsserver.Server{
		SecureContext: &tlsserver.SecureContext{Certificate: &cert},
		OCSPRequest: func(_ context.Context, leaf, issuer *x509.Certificate) ([]byte, error) {
			return staples[leaf.SerialNumber.String()], nil // nil: no staple
		},
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	addr, _ := srv.Address()

	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	conn, err := tls.Dial("tcp", net.JoinHostPort(addr.Address, strconv.Itoa(addr.Port)), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("stapled:", bytes.Equal(conn.ConnectionState().OCSPResponse, response))
	// Output:
	// stapled: true
}

// A Node program moved to tlsserver name for name:
//
//	const server = tls.createServer({key, cert, secureProtocol: 'TLSv1_2_method'}, (socket) => {
//	  socket.end(`hello over ${socket.getProtocol()}\n`);
//	});
//	server.listen(0, '127.0.0.1');
//
// Options in Node's formats the Go server cannot honour are refused with an *OptionError, never ignored.
func ExampleCreateServer() {
	key, _ := os.ReadFile("testdata/example.key")
	cert, _ := os.ReadFile("testdata/example.crt")
	srv, err := tlsserver.CreateServer(tlsserver.Options{Key: key, Cert: cert, SecureProtocol: "TLSv1_2_method"}, func(c *tlsserver.Conn) {
		fmt.Fprintf(c, "hello over %s\n", tls.VersionName(c.ConnectionState().Version))
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	leaf, _ := x509.ParseCertificate(mustPEM(cert))
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	fmt.Print(greeting(srv, &tls.Config{RootCAs: roots, ServerName: "localhost"}))

	_, err = tlsserver.CreateServer(tlsserver.Options{Key: key, Cert: cert, DHParam: []byte("auto")}, nil)
	fmt.Println("dhparam refused:", errors.Is(err, tlsserver.ErrUnsupportedOption))
	// Output:
	// hello over TLS 1.2
	// dhparam refused: true
}

// Node's 'secureConnection' event, with the socket's authorized and authorizationError: the server asks every
// client for a certificate (requestCert) and lets unverified ones through (rejectUnauthorized: false).
func ExampleServer_SecureConnection() {
	ca := newExampleCA()
	srv := &tlsserver.Server{
		SecureContext:     &tlsserver.SecureContext{Certificate: ca.issue("localhost"), CA: []*x509.Certificate{ca.cert}},
		RequestCert:       true,
		AllowUnauthorized: true,
		SecureConnection: func(c *tlsserver.Conn) {
			fmt.Fprintf(c, "servername %q, authorized %v, authorizationError %q\n", c.ServerName(), c.Authorized(), c.AuthorizationError())
		},
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	client := ca.client("localhost")
	fmt.Print(greeting(srv, client))
	client.Certificates = []tls.Certificate{*ca.issue("client")}
	fmt.Print(greeting(srv, client))
	// Output:
	// servername "localhost", authorized false, authorizationError "UNABLE_TO_GET_ISSUER_CERT"
	// servername "localhost", authorized true, authorizationError ""
}

// Stapling from staple's engine: the stapler keeps a fresh, verified response for each certificate it
// watches, and the hook hands its bytes out from memory (no I/O in the handshake). Here the response is
// imported rather than fetched.
func ExampleServer_OCSPRequest_stapler() {
	ca := newExampleCA()
	cert := ca.issue("localhost")
	engine, err := stapler.New(stapler.Config{Fetcher: &ocspfetch.Client{}, Manual: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	defer engine.Close(context.Background())
	chain, err := certs.NewChain([]*x509.Certificate{cert.Leaf, ca.cert}, cert.PrivateKey.(*ecdsa.PrivateKey), nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := engine.Import(chain, ca.respond(cert.Leaf)); err != nil {
		log.Fatal(err)
	}

	srv := &tlsserver.Server{
		// The issuer comes from the chain or, as here, from CA (Node's ca option).
		SecureContext: &tlsserver.SecureContext{Certificate: cert, CA: []*x509.Certificate{ca.cert}},
		OCSPRequest: func(_ context.Context, leaf, issuer *x509.Certificate) ([]byte, error) {
			if issuer == nil {
				return nil, nil // no issuer, no CertID: nothing to staple
			}
			return engine.Staple(certs.NewKey(issuer, leaf)), nil // nil: none that may be stapled now
		},
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	conn := dial(srv, ca.client("localhost"))
	defer conn.Close()
	resp, err := ocsp.ParseResponseForCert(conn.ConnectionState().OCSPResponse, cert.Leaf, ca.cert)
	fmt.Println("stapled:", err == nil && resp.Status == ocsp.Good)
	// Output:
	// stapled: true
}

// Node's 'tlsClientError': every connection that ends before secureConnection, with a typed error. Here a
// client whose ALPN protocols the server does not offer.
func ExampleServer_ClientError() {
	ca := newExampleCA()
	errs := make(chan error, 1)
	srv := &tlsserver.Server{
		SecureContext: &tlsserver.SecureContext{Certificate: ca.issue("localhost")},
		ALPNProtocols: []string{"h2"},
		ClientError:   func(_ *tlsserver.Conn, err error) { errs <- err },
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	client := ca.client("localhost")
	client.NextProtos = []string{"spdy/3"}
	_, err := tls.Dial("tcp", address(srv), client)
	fmt.Println("client:", err)
	fmt.Println("ErrNoApplicationProtocol:", errors.Is(<-errs, tlsserver.ErrNoApplicationProtocol))
	// Output:
	// client: remote error: tls: no application protocol
	// ErrNoApplicationProtocol: true
}

// Node's maxConnections: a connection over the cap is accepted and closed at once, never queued.
func ExampleServer_MaxConnections() {
	ca := newExampleCA()
	release := make(chan struct{})
	srv := &tlsserver.Server{
		SecureContext:    &tlsserver.SecureContext{Certificate: ca.issue("localhost")},
		MaxConnections:   1,
		SecureConnection: func(c *tlsserver.Conn) { <-release; io.WriteString(c, "hello\n") },
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	first := dial(srv, ca.client("localhost"))
	defer first.Close()
	fmt.Println("connections:", srv.Connections())
	_, err := tls.Dial("tcp", address(srv), ca.client("localhost"))
	fmt.Println("second refused:", err != nil)
	close(release)
	// Output:
	// connections: 1
	// second refused: true
}

// Node's addContext: a secure context for the clients whose SNI name matches; '*' stands for one label.
// requestCert, rejectUnauthorized and ALPNProtocols stay the server's, in every context.
func ExampleServer_AddContext() {
	ca := newExampleCA()
	srv := &tlsserver.Server{
		SecureContext: &tlsserver.SecureContext{Certificate: ca.issue("localhost")},
		ALPNProtocols: []string{"h2", "http/1.1"},
		SecureConnection: func(c *tlsserver.Conn) {
			fmt.Fprintf(c, "%s (ALPN %s)\n", c.Leaf().Subject.CommonName, c.ALPNProtocol())
		},
	}
	if err := srv.AddContext("*.example.com", &tlsserver.SecureContext{Certificate: ca.issue("*.example.com")}); err != nil {
		log.Fatal(err)
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	for _, name := range []string{"www.example.com", "localhost"} {
		client := ca.client(name)
		client.NextProtos = []string{"h2"}
		fmt.Print(greeting(srv, client))
	}
	// Output:
	// *.example.com (ALPN h2)
	// localhost (ALPN h2)
}

// Node's SNICallback: the context for a name, chosen as the handshake arrives (from a map a reload
// replaces, a database, …). nil falls back to the AddContext patterns, then the default context; an error
// drops the connection and reaches ClientError.
func ExampleServer_SNICallback() {
	ca := newExampleCA()
	tenants := map[string]*tlsserver.SecureContext{"a.example.com": {Certificate: ca.issue("a.example.com")}}
	srv := &tlsserver.Server{
		SecureContext: &tlsserver.SecureContext{Certificate: ca.issue("localhost")},
		SNICallback: func(_ context.Context, name string) (*tlsserver.SecureContext, error) {
			return tenants[name], nil
		},
		SecureConnection: func(c *tlsserver.Conn) { fmt.Fprintln(c, c.Leaf().Subject.CommonName) },
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	fmt.Print(greeting(srv, ca.client("a.example.com")))
	client := ca.client("localhost")
	client.ServerName = "b.example.com"
	client.InsecureSkipVerify = true // the default certificate is not for b.example.com
	fmt.Print(greeting(srv, client))
	// Output:
	// a.example.com
	// localhost
}

// Node's setTicketKeys: the 48 bytes two servers share so that a session from one resumes on the other; new
// keys end every earlier session.
func ExampleServer_SetTicketKeys() {
	ca := newExampleCA()
	srv := &tlsserver.Server{
		SecureContext:    &tlsserver.SecureContext{Certificate: ca.issue("localhost")},
		SecureConnection: func(c *tlsserver.Conn) { fmt.Fprintf(c, "resumed: %v\n", c.Resumed()) },
	}
	keys := make([]byte, tlsserver.TicketKeyLen)
	rand.Read(keys)
	if err := srv.SetTicketKeys(keys); err != nil {
		log.Fatal(err)
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	defer srv.Close(nil)
	client := ca.client("localhost")
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	fmt.Print(greeting(srv, client), greeting(srv, client))
	rand.Read(keys)
	srv.SetTicketKeys(keys)
	fmt.Print(greeting(srv, client))
	// Output:
	// resumed: false
	// resumed: true
	// resumed: false
}

// Node's server.close(cb): no new connections; cb runs once the live ones have ended. Shutdown is the
// net/http form, which waits with a context.
func ExampleServer_Close() {
	ca := newExampleCA()
	release := make(chan struct{})
	srv := &tlsserver.Server{
		SecureContext:    &tlsserver.SecureContext{Certificate: ca.issue("localhost")},
		SecureConnection: func(c *tlsserver.Conn) { <-release; io.WriteString(c, "bye\n") },
	}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	live := dial(srv, ca.client("localhost"))
	addr := address(srv)
	closed := make(chan struct{})
	srv.Close(func() { close(closed) })
	_, err := net.DialTimeout("tcp", addr, time.Second)
	fmt.Println("new connections refused:", err != nil)
	close(release)
	b, _ := io.ReadAll(live)
	<-closed
	fmt.Printf("the live one got %q, then the callback ran\n", b)
	// Output:
	// new connections refused: true
	// the live one got "bye\n", then the callback ran
}

// Shutdown stops accepting and waits for the live connections, or for ctx.
func ExampleServer_Shutdown() {
	ca := newExampleCA()
	srv := &tlsserver.Server{SecureContext: &tlsserver.SecureContext{Certificate: ca.issue("localhost")}}
	if err := srv.Listen(0, "127.0.0.1", nil); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx), srv.Connections())
	// Output:
	// <nil> 0
}

// exampleCA issues the examples' certificates: a root the client trusts, valid around now.
type exampleCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	next int64
}

func newExampleCA() *exampleCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &exampleCA{cert: cert, key: key, pool: pool, next: 2}
}

// issue returns a leaf for name, for a server or a client.
func (ca *exampleCA) issue(name string) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.next++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.next), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// respond returns a good OCSP response for leaf, valid now.
func (ca *exampleCA) respond(leaf *x509.Certificate) []byte {
	der, _ := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{Status: ocsp.Good, SerialNumber: leaf.SerialNumber,
		ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}, ca.key)
	return der
}

// client is a client configuration that trusts the CA and asks for name.
func (ca *exampleCA) client(name string) *tls.Config {
	return &tls.Config{RootCAs: ca.pool, ServerName: name}
}

func mustPEM(b []byte) []byte {
	blk, _ := pem.Decode(b)
	return blk.Bytes
}

func address(srv *tlsserver.Server) string {
	a, _ := srv.Address()
	return net.JoinHostPort(a.Address, strconv.Itoa(a.Port))
}

func dial(srv *tlsserver.Server, cfg *tls.Config) *tls.Conn {
	conn, err := tls.Dial("tcp", address(srv), cfg)
	if err != nil {
		log.Fatal(err)
	}
	return conn
}

// greeting connects and returns what the server wrote before it closed.
func greeting(srv *tlsserver.Server, cfg *tls.Config) string {
	conn := dial(srv, cfg)
	defer conn.Close()
	b, _ := io.ReadAll(conn)
	return string(b)
}
