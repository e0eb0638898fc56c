package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"staple/e2e/harness"
)

// TestServeDrainsRequestsInFlight: on SIGTERM, staple serve takes no more connections, lets the HTTP
// requests in flight (here a proxied one; the status page goes the same way) finish within drain_timeout,
// and cuts what is left once it has passed. Before, the drain ended as soon as the TLS server had handed
// its connections to the HTTP side, and cut every request in flight at once.
func TestServeDrainsRequestsInFlight(t *testing.T) {
	harness.RequireTool(t, "openssl")
	f := newLabFixture(t, "@every 1s")
	opensslResponder(t, f.Dir, f.OCSPPort)

	// The upstream answers /slow after 1.5 s and /stuck after a minute; it says when a request arrived.
	arrived := make(chan string, 4)
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		d := 1500 * time.Millisecond
		if r.URL.Path == "/stuck" {
			d = time.Minute
		}
		select {
		case <-time.After(d):
			io.WriteString(w, "done "+r.URL.Path)
		case <-r.Context().Done():
		}
	})}
	go upstream.Serve(up)
	defer upstream.Close()
	conf, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	const drain = 3 * time.Second
	text := strings.Replace(string(conf), `drain_timeout = "5s"`, fmt.Sprintf("drain_timeout = %q", drain.String()), 1)
	text += fmt.Sprintf("upstream = %q\n", "http://"+up.Addr().String())
	if err := os.WriteFile(f.Config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, f.Root))
	get := func(path string) (string, error) {
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "site.test"},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", f.TLSAddr)
			},
		}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://site.test" + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b), err
	}
	type result struct {
		body string
		err  error
		at   time.Time
	}
	start := func(path string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			body, err := get(path)
			ch <- result{body, err, time.Now()}
		}()
		if got := <-arrived; got != path {
			t.Fatalf("the upstream got %s, want %s", got, path)
		}
		return ch
	}

	for _, tc := range []struct {
		name, path string
		// finishes: the request completes during the drain; else it is cut when drain_timeout has passed.
		finishes bool
	}{
		{"a proxied request finishes", "/slow", true},
		{"a request longer than drain_timeout is cut when it passes", "/stuck", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := harness.Start(t, binary, "serve", "--config", f.Config)
			srv.WaitLog("staple serving", harness.Timeout)
			inFlight := start(tc.path)
			termAt := time.Now()
			srv.Cmd.Process.Signal(syscall.SIGTERM)
			srv.WaitLog("shutting down: draining connections", 5*time.Second)
			// The log line comes just before the listener closes: connections are refused from then on.
			refused := false
			for deadline := time.Now().Add(time.Second); !refused && time.Now().Before(deadline); {
				c, err := net.DialTimeout("tcp", f.TLSAddr, time.Second)
				if refused = err != nil; !refused {
					c.Close()
					time.Sleep(20 * time.Millisecond)
				}
			}
			if !refused {
				t.Error("new connections still accepted a second into the drain")
			}
			r := <-inFlight
			switch {
			case tc.finishes && (r.err != nil || r.body != "200 done "+tc.path):
				t.Errorf("the request in flight at SIGTERM: %q, %v; want it answered", r.body, r.err)
			case !tc.finishes && r.err == nil && r.body == "200 done "+tc.path:
				t.Error("a request longer than drain_timeout was answered")
			case !tc.finishes && r.at.Sub(termAt) < drain-200*time.Millisecond:
				t.Errorf("the request was cut %v after SIGTERM, before drain_timeout (%v)", r.at.Sub(termAt), drain)
			}
			select {
			case <-srv.Done():
			case <-time.After(drain + 10*time.Second):
				t.Fatal("staple serve did not exit after the drain")
			}
			if err := srv.Err(); err != nil {
				t.Errorf("staple serve exited with %v after SIGTERM", err)
			}
		})
	}
}
