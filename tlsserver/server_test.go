package tlsserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"staple/internal/testpki"
)

func ipv6Available() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TestListenAddress checks Listen's host rules and Address, with each client connecting over each family
// the listener should (and should not) accept.
func TestListenAddress(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	v6 := ipv6Available()
	tests := []struct {
		host       string
		address    string
		family     string
		v4, v6     bool // reachable on 127.0.0.1, on ::1
		needsIPv6  bool
		listenable bool
	}{
		{host: "", address: "::", family: "IPv6", v4: true, v6: true, needsIPv6: true},
		{host: "0.0.0.0", address: "0.0.0.0", family: "IPv4", v4: true},
		{host: "127.0.0.1", address: "127.0.0.1", family: "IPv4", v4: true},
		{host: "::1", address: "::1", family: "IPv6", v6: true, needsIPv6: true},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.host), func(t *testing.T) {
			if tt.needsIPv6 && !v6 {
				t.Skip("no IPv6 on this machine")
			}
			rec := newRecorder()
			srv := &Server{SecureContext: f.context(f.leaf)}
			rec.hook(srv)
			called := false
			must(t, srv.Listen(0, tt.host, func() { called = true }))
			t.Cleanup(func() { stop(t, srv) })
			if !called {
				t.Error("Listen did not call its callback")
			}
			a, err := srv.Address()
			must(t, err)
			if a.Address != tt.address || a.Family != tt.family || a.Port == 0 {
				t.Errorf("Address() = %+v, want %s %s and a port", a, tt.address, tt.family)
			}
			for _, ip := range []string{"127.0.0.1", "::1"} {
				want := tt.v4
				if ip == "::1" {
					want = tt.v6
					if !v6 {
						continue
					}
				}
				addr := net.JoinHostPort(ip, strconv.Itoa(a.Port))
				r := sClient(t, addr, f, "-servername", "localhost")
				g := goDial(t, addr, f.goConfig(tls.VersionTLS13))
				n := nodeClient(t, a.Port, f, nodeConn{Host: ip})[0]
				if r.hello != want || (g.err == nil) != want || n.Connected != want {
					t.Errorf("%s: openssl %v, go %v, node %v (%s); want reachable=%v", addr, r.hello, g.err, n.Connected, n.Error, want)
				}
				if want {
					for range 3 {
						rec.nextSecure(t)
					}
				}
			}
			if err := srv.Listen(0, tt.host, nil); !errors.Is(err, ErrAlreadyListening) {
				t.Errorf("second Listen: %v, want ErrAlreadyListening", err)
			}
		})
	}
}

// TestListenErrors checks that binding a port in use fails, and that a server that never listened cannot
// be closed, shut down or asked its address.
func TestListenErrors(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	must(t, err)
	defer busy.Close()
	srv := &Server{SecureContext: f.context(f.leaf)}
	port := busy.Addr().(*net.TCPAddr).Port
	if err := srv.Listen(port, "127.0.0.1", func() { t.Error("callback on a failed Listen") }); err == nil {
		t.Error("Listen on a busy port succeeded")
	}
	if err := srv.Close(func() { t.Error("callback of a failed Close") }); !errors.Is(err, ErrNotListening) {
		t.Errorf("Close: %v, want ErrNotListening", err)
	}
	if err := srv.Shutdown(context.Background()); !errors.Is(err, ErrNotListening) {
		t.Errorf("Shutdown: %v, want ErrNotListening", err)
	}
	if _, err := srv.Address(); !errors.Is(err, ErrNotListening) {
		t.Errorf("Address: %v, want ErrNotListening", err)
	}
	var empty Server
	if err := empty.Listen(0, "127.0.0.1", nil); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("Listen without a certificate: %v, want ErrNoCertificate", err)
	}
}

// held is a SecureConnection hook that keeps each connection open until released, then writes "bye".
type held struct {
	in      chan *Conn
	release chan struct{}
}

func newHeld() *held { return &held{in: make(chan *Conn, 8), release: make(chan struct{})} }

func (h *held) hook(c *Conn) {
	h.in <- c
	<-h.release
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "bye\n")
}

// eventually polls cond until it holds or a deadline passes (for states that real peers move through).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestCloseLeavesConnections checks Node's close(cb): no more connections are accepted, the live one keeps
// working, cb runs when it ends, and no goroutine is left.
func TestCloseLeavesConnections(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	h := newHeld()
	srv := &Server{SecureContext: f.context(f.leaf), SecureConnection: h.hook}
	addr, port := start(t, srv)

	// A live, established connection (Go) and a handshaking one (raw TCP).
	raw, err := net.Dial("tcp", addr)
	must(t, err)
	defer raw.Close()
	conn, err := tls.Dial("tcp", addr, f.goConfig(tls.VersionTLS13))
	must(t, err)
	defer conn.Close()
	<-h.in
	eventually(t, "2 connections", func() bool { return srv.Connections() == 2 })

	closed := make(chan struct{})
	must(t, srv.Close(func() { close(closed) }))
	if err := srv.Close(nil); !errors.Is(err, ErrNotListening) {
		t.Errorf("second Close: %v, want ErrNotListening", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a connection was accepted after Close")
	}
	if r := sClient(t, addr, f); r.hello {
		t.Error("openssl got through after Close")
	}
	if n := nodeClient(t, port, f, nodeConn{})[0]; n.Connected || n.Error != "ECONNREFUSED" {
		t.Errorf("node after Close: connected=%v error %q, want ECONNREFUSED", n.Connected, n.Error)
	}
	select {
	case <-closed:
		t.Fatal("close callback before the connections ended")
	default:
	}
	raw.Close()
	eventually(t, "the handshaking connection to end", func() bool { return srv.Connections() == 1 })
	close(h.release)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(conn); string(b) != "bye\n" {
		t.Errorf("the live connection read %q, %v after Close", b, err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close callback not called after the last connection ended")
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("Connections() = %d after the last one ended", n)
	}
	waitNoServerGoroutines(t)

	// The server can listen again.
	must(t, srv.Listen(0, "127.0.0.1", nil))
	h2 := newHeld()
	close(h2.release)
	srv.SecureConnection = nil
	a, _ := srv.Address()
	must(t, goDial(t, net.JoinHostPort(a.Address, strconv.Itoa(a.Port)), f.goConfig(tls.VersionTLS12)).err)
	called := false
	eventually(t, "no connections", func() bool { return srv.Connections() == 0 })
	must(t, srv.Close(func() { called = true }))
	if !called {
		t.Error("Close with no connections did not call back at once")
	}
	waitNoServerGoroutines(t)
}

// TestShutdown checks the net/http-style Shutdown: it waits for live connections, and gives up with the
// context's error, leaving them open.
func TestShutdown(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	h := newHeld()
	srv := &Server{SecureContext: f.context(f.leaf), SecureConnection: h.hook}
	addr, _ := start(t, srv)
	conn, err := tls.Dial("tcp", addr, f.goConfig(tls.VersionTLS13))
	must(t, err)
	defer conn.Close()
	<-h.in
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with a live connection and a done context: %v", err)
	}
	if srv.Connections() != 1 {
		t.Errorf("Connections() = %d after Shutdown gave up", srv.Connections())
	}
	close(h.release)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(conn); string(b) != "bye\n" {
		t.Errorf("read %q after Shutdown gave up", b)
	}
	eventually(t, "no connections", func() bool { return srv.Connections() == 0 })

	// Shutdown that waits.
	srv.SecureConnection = nil
	must(t, srv.Listen(0, "127.0.0.1", nil))
	h2 := newHeld()
	srv.SecureConnection = h2.hook
	a, _ := srv.Address()
	conn2, err := tls.Dial("tcp", net.JoinHostPort(a.Address, strconv.Itoa(a.Port)), f.goConfig(tls.VersionTLS12))
	must(t, err)
	defer conn2.Close()
	<-h2.in
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	eventually(t, "Shutdown to stop listening", func() bool { _, err := srv.Address(); return err != nil })
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a live connection", err)
	default:
	}
	close(h2.release)
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last connection ended")
	}
	waitNoServerGoroutines(t)
}

// TestMaxConnections checks that handshaking connections count, that a connection over the limit is
// accepted and closed at once with no TLS event for each client, and that the count goes back down.
func TestMaxConnections(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	rec := newRecorder()
	srv := &Server{SecureContext: f.context(f.leaf), MaxConnections: 1}
	rec.hook(srv)
	addr, port := start(t, srv)

	raw, err := net.Dial("tcp", addr) // handshaking: sends nothing
	must(t, err)
	eventually(t, "the handshaking connection to count", func() bool { return srv.Connections() == 1 })

	start := time.Now()
	r := sClient(t, addr, f, "-servername", "localhost")
	g := goDial(t, addr, f.goConfig(tls.VersionTLS13))
	n := nodeClient(t, port, f, nodeConn{})[0]
	if r.hello || g.err == nil || n.Connected {
		t.Errorf("over the limit: openssl greeting %v, go %v, node connected %v", r.hello, g.err, n.Connected)
	}
	if !strings.Contains(r.out, "errno") && !strings.Contains(r.out, "unexpected eof") && !strings.Contains(r.out, "reset") {
		t.Errorf("openssl: want the connection closed at once:\n%s", r.out)
	}
	if n.Error != "ECONNRESET" {
		t.Errorf("node: error %q, want ECONNRESET", n.Error)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rejecting three clients took %v: queued?", d)
	}
	rec.noError(t)
	if srv.Connections() != 1 {
		t.Errorf("Connections() = %d with one live connection", srv.Connections())
	}

	raw.Close()
	if e := rec.nextError(t); !errors.Is(e.err, io.EOF) {
		t.Errorf("the handshaking connection ended with %v, want EOF", e.err)
	}
	eventually(t, "no connections", func() bool { return srv.Connections() == 0 })
	must(t, goDial(t, addr, f.goConfig(tls.VersionTLS13)).err)
	rec.nextSecure(t)
}
