package service

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// serveVia serves h on a connListener fed from a real TCP listener, the way the service feeds handshaken
// TLS connections to its http.Server, and returns the address to dial.
func serveVia(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := newConnListener(ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(cl)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go cl.hand(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); srv.Close(); cl.Close() })
	return ln.Addr().String()
}

func TestReverseProxyHeadersAndStreaming(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Host", r.Host)
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release // the client must see "first" before the upstream finishes
		io.WriteString(w, "second\n")
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	addr := serveVia(t, newReverseProxy(u, zerolog.Nop()))

	req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
	req.Host = "site.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Seen-For") != "127.0.0.1" || resp.Header.Get("X-Seen-Proto") != "http" || resp.Header.Get("X-Seen-Host") != "site.test" {
		t.Errorf("upstream saw %v", resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestReverseProxyUpstreamDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	u, _ := url.Parse("http://" + ln.Addr().String())
	ln.Close()
	addr := serveVia(t, newReverseProxy(u, zerolog.Nop()))
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

// TestReverseProxyWebSocket upgrades through the proxy and echoes bytes both ways on the upgraded stream.
func TestReverseProxyWebSocket(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	addr := serveVia(t, newReverseProxy(u, zerolog.Nop()))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Errorf("echo %q, %v", line, err)
	}
}

func TestForwardTCP(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		c, err := backend.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c) // until the client half-closes
		io.WriteString(c, strings.ToUpper(string(b)))
	}()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	done := make(chan error, 1)
	go func() {
		c, err := front.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- forwardTCP(context.Background(), c, backend.Addr().String(), time.Second)
	}()
	client, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(client, "ping")
	client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "PING" {
		t.Errorf("relayed %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Errorf("forwardTCP: %v", err)
	}
}

func TestForwardTCPBackendDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	a, b := net.Pipe()
	defer a.Close()
	if err := forwardTCP(context.Background(), b, addr, time.Second); err == nil {
		t.Error("forwardTCP to a closed port: want an error")
	}
}
