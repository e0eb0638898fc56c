// Command staticserver is make bench's baseline: a bare crypto/tls server with one certificate and a static
// OCSP staple read from a file, and nothing else (no hooks, no SNI contexts, no session store, no HTTP). Each
// connection is handshaken, then read until the client closes or sends anything, then closed, as a web
// server waiting for a request would.
//
//	staticserver -cert CHAIN.pem -key KEY.pem -staple RESPONSE.der -listen 127.0.0.1:8443
//
// It serves until SIGTERM or SIGINT. Go's own session tickets stay on, with keys random at start.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "staticserver:", err)
		os.Exit(1)
	}
}

func run() error {
	certFile := flag.String("cert", "", "certificate chain (PEM)")
	keyFile := flag.String("key", "", "private key (PEM)")
	stapleFile := flag.String("staple", "", "DER OCSP response to staple on every handshake that asks")
	listen := flag.String("listen", "127.0.0.1:8443", "address")
	flag.Parse()
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	if *stapleFile != "" {
		if cert.OCSPStaple, err = os.ReadFile(*stapleFile); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and friends
			continue
		}
		go serve(tls.Server(c, cfg))
	}
}

func serve(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	var b [512]byte
	c.Read(b[:])
}
