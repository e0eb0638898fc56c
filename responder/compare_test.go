//go:build bench

package responder_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"staple/lab"
)

// TestThroughputVsOpenSSL measures RFC 5019 GETs per second for one pre-signed serial, staple responder
// against openssl ocsp -index on the same lab, in interleaved rounds so that both see the same machine load.
// It is a measurement, not a test: it fails only when a server answers wrongly. Run it with
//
//	go test -tags bench -run TestThroughputVsOpenSSL -v ./responder/
//
// staple is measured with keep-alive (how caches and staplers talk to it) and with a new connection per
// request (the only way openssl ocsp, HTTP/1.0 and one request per connection, can be driven).
func TestThroughputVsOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	lr := startLab(t, "bench.test")
	target := getURLFor(t, lr, lr.leaves["bench.test"].Cert)
	path := target[len(lr.url):]
	stapleAddr := strings.TrimPrefix(lr.url, "http://")
	opensslAddr := startOpenSSLResponder(t, lr.lab)

	// Both answer correctly before anything is timed.
	for _, addr := range []string{stapleAddr, opensslAddr} {
		if _, err := rawGet(addr, path, false); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
	}
	const (
		rounds  = 5
		window  = time.Second
		workers = 16
	)
	targets := []struct {
		name      string
		addr      string
		keepAlive bool
	}{
		{"staple keep-alive", stapleAddr, true},
		{"staple new conn", stapleAddr, false},
		{"openssl ocsp", opensslAddr, false},
	}
	rates := make([][]float64, len(targets))
	for range rounds {
		for i, tg := range targets {
			rate, errs, err := rawLoad(context.Background(), tg.addr, path, tg.keepAlive, workers, window)
			if errs > 0 {
				t.Logf("%s: %d errors, first: %v", tg.name, errs, err)
			}
			rates[i] = append(rates[i], rate)
		}
	}
	med := make([]float64, len(targets))
	for i, tg := range targets {
		med[i] = median(rates[i])
		t.Logf("%-18s median %8.0f req/s  rounds %s", tg.name, med[i], formatRates(rates[i]))
	}
	t.Logf("ratio staple keep-alive / openssl: %.1fx; staple new conn / openssl: %.1fx (%d workers, %d rounds of %v, GOMAXPROCS-bound client in the same process)",
		med[0]/med[2], med[1]/med[2], workers, rounds, window)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func formatRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(int(x))
	}
	return strings.Join(parts, " ")
}

// startOpenSSLResponder runs openssl ocsp -index on the lab, answering from its delegated signer with a
// one-hour nextUpdate, and returns its address once it listens. openssl says when it does: probing the port
// instead would wedge it, as the single-threaded responder then waits forever on the probe's connection.
func startOpenSSLResponder(t *testing.T, l *lab.Lab) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // openssl binds [::]:port itself; the port stays free in between on a test machine
	cmd := exec.Command("openssl", "ocsp", "-index", l.Path(lab.IndexFile), "-port", port, "-rsigner",
		l.Path(lab.SignerCertFile), "-rkey", l.Path(lab.SignerKeyFile), "-CA", l.Path(lab.CACertFile), "-nmin", "60", "-ignore_err")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		ready := listening
		for sc.Scan() { // read to the end, so that openssl never blocks on a full pipe
			if ready != nil && strings.Contains(sc.Text(), "waiting for OCSP client connections") {
				close(ready)
				ready = nil
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("openssl ocsp did not start listening")
	}
	return "127.0.0.1:" + port
}

// rawLoad sends GET path to addr from workers connections for d: HTTP/1.1 on kept-alive connections, or
// HTTP/1.0 with a new connection per request. It is leaner than net/http's client, so that the client
// takes less of the CPU the servers share with it. It returns answered requests per second.
func rawLoad(ctx context.Context, addr, path string, keepAlive bool, workers int, d time.Duration) (float64, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok, failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var c *rawConn
			for ctx.Err() == nil {
				var err error
				if c == nil {
					if c, err = dialRaw(addr); err != nil {
						failed.Add(1)
						once.Do(func() { firstErr = err })
						continue
					}
				}
				reusable, err := c.get(path, keepAlive)
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				} else {
					ok.Add(1)
				}
				if err != nil || !reusable {
					c.close()
					c = nil
				}
			}
			if c != nil {
				c.close()
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), failed.Load(), firstErr
}

type rawConn struct {
	conn *net.TCPConn
	br   *bufio.Reader
}

func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	return &rawConn{conn: tc, br: bufio.NewReaderSize(tc, 4096)}, nil
}

// close resets the connection rather than leaving it in TIME_WAIT: tens of thousands of short connections
// would otherwise exhaust the ephemeral ports.
func (c *rawConn) close() {
	c.conn.SetLinger(0)
	c.conn.Close()
}

var errStatus = errors.New("not HTTP 200")

// get sends one GET and reads the answer; it reports whether the connection can carry another request.
func (c *rawConn) get(path string, keepAlive bool) (bool, error) {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	proto := "HTTP/1.0"
	if keepAlive {
		proto = "HTTP/1.1"
	}
	if _, err := c.conn.Write([]byte("GET " + path + " " + proto + "\r\nHost: bench\r\n\r\n")); err != nil {
		return false, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	if !bytes.Contains(line, []byte(" 200 ")) {
		return false, fmt.Errorf("%w: %q", errStatus, line)
	}
	reusable := keepAlive && bytes.HasPrefix(line, []byte("HTTP/1.1"))
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(bytes.TrimSpace(value)))
			if err != nil {
				return false, err
			}
		case bytes.EqualFold(name, []byte("Connection")) && bytes.Contains(bytes.ToLower(value), []byte("close")):
			reusable = false
		}
	}
	if length < 0 {
		return false, errors.New("no Content-Length")
	}
	if _, err := c.br.Discard(length); err != nil {
		return false, err
	}
	return reusable, nil
}

// rawGet is one request on a fresh connection, for checking a server before timing it.
func rawGet(addr, path string, keepAlive bool) (bool, error) {
	c, err := dialRaw(addr)
	if err != nil {
		return false, err
	}
	defer c.close()
	return c.get(path, keepAlive)
}
