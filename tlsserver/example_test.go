package tlsserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"sync"

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
