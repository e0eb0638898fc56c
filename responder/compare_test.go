//go:build bench

package responder_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"staple/lab"
)

// TestThroughputVsOpenSSL measures RFC 5019 GETs per second for one pre-signed serial, the staple responder
// against openssl ocsp -index on the same lab, in interleaved rounds so that both see the same machine load.
// It is a measurement, not a test: it fails only when a server answers wrongly. Run it with
//
//	go test -tags bench -run TestThroughputVsOpenSSL -v ./responder/
//
// Both servers run as processes of their own (the staple binary is built for it) and face the same client,
// in the test process, on the same cores; besides requests per second, the servers' own CPU time per
// request is read from /proc, which no client placement skews. staple is measured with keep-alive (how
// caches and staplers talk to it) and with a new connection per request (the only way openssl ocsp,
// HTTP/1.0 and one request per connection, can be driven).
func TestThroughputVsOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	lr := startLab(t, "bench.test")
	target := getURLFor(t, lr, lr.leaves["bench.test"].Cert)
	path := target[len(lr.url):]
	staple := startStapleResponder(t, lr.lab)
	openssl := startOpenSSLResponder(t, lr.lab)

	// Both answer correctly before anything is timed.
	for _, p := range []serverProcess{staple, openssl} {
		if _, err := rawGet(p.addr, path, false); err != nil {
			t.Fatalf("%s: %v", p.addr, err)
		}
	}
	const (
		rounds  = 5
		window  = time.Second
		workers = 16
	)
	targets := []struct {
		name      string
		server    serverProcess
		keepAlive bool
	}{
		{"staple keep-alive", staple, true},
		{"staple new conn", staple, false},
		{"openssl ocsp", openssl, false},
	}
	rates := make([][]float64, len(targets))
	cpuPer := make([][]float64, len(targets)) // server CPU µs per answered request
	for range rounds {
		for i, tg := range targets {
			cpu0 := tg.server.cpu(t)
			rate, ok, errs, err := rawLoad(context.Background(), tg.server.addr, path, tg.keepAlive, workers, window)
			cpu := tg.server.cpu(t) - cpu0
			if errs > 0 {
				t.Logf("%s: %d errors, first: %v", tg.name, errs, err)
			}
			rates[i] = append(rates[i], rate)
			if ok > 0 {
				cpuPer[i] = append(cpuPer[i], float64(cpu.Microseconds())/float64(ok))
			}
		}
	}
	med, cpuMed := make([]float64, len(targets)), make([]float64, len(targets))
	for i, tg := range targets {
		med[i], cpuMed[i] = median(rates[i]), median(cpuPer[i])
		t.Logf("%-18s median %8.0f req/s  rounds %s;  server CPU %6.1f µs/req", tg.name, med[i], formatRates(rates[i]), cpuMed[i])
	}
	t.Logf("req/s ratio to openssl: staple keep-alive %.1fx, staple new conn %.1fx (%d workers, %d rounds of %v, client in the test process)",
		med[0]/med[2], med[1]/med[2], workers, rounds, window)
	t.Logf("server CPU per request, openssl / staple: keep-alive %.1fx, new conn %.1fx", cpuMed[2]/cpuMed[0], cpuMed[2]/cpuMed[1])
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

// serverProcess is a responder running as a process of its own.
type serverProcess struct {
	addr string
	pid  int
}

// cpu returns the CPU time, user and system, the process has used so far, from /proc/PID/stat (Linux; the
// test is skipped elsewhere). The kernel counts it in USER_HZ ticks, 100 a second.
func (p serverProcess) cpu(t *testing.T) time.Duration {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
	if err != nil {
		t.Skipf("no per-process CPU time here: %v", err)
	}
	_, rest, ok := strings.Cut(string(data), ") ") // the command name may hold spaces
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		t.Fatalf("/proc/%d/stat: %q", p.pid, data)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime and stime, fields 14 and 15 of stat(5)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", p.pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100)
}

// startStapleResponder builds the staple binary and runs `staple responder --lab` on the lab, and returns it
// once it listens (it logs its URL).
func startStapleResponder(t *testing.T, l *lab.Lab) serverProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "staple")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = ".." // the module root: package main
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "responder", "--lab", l.Dir, "--listen", "127.0.0.1:0", "--log-format", "json", "--fault-api=false")
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() { // read to the end, so that the responder never blocks on a full pipe
			var ev struct {
				Message string `json:"message"`
				URL     string `json:"url"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Message == "listening" {
				urls <- ev.URL
			}
		}
	}()
	select {
	case u := <-urls:
		return serverProcess{addr: strings.TrimPrefix(u, "http://"), pid: cmd.Process.Pid}
	case <-time.After(20 * time.Second):
		t.Fatal("staple responder did not start listening")
	}
	return serverProcess{}
}

// startOpenSSLResponder runs openssl ocsp -index on the lab, answering from its delegated signer with a
// one-hour nextUpdate, and returns its address once it listens. openssl says when it does: probing the port
// instead would wedge it, as the single-threaded responder then waits forever on the probe's connection.
func startOpenSSLResponder(t *testing.T, l *lab.Lab) serverProcess {
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
	return serverProcess{addr: "127.0.0.1:" + port, pid: cmd.Process.Pid}
}

// rawLoad sends GET path to addr from workers connections for d: HTTP/1.1 on kept-alive connections, or
// HTTP/1.0 with a new connection per request. It is leaner than net/http's client, so that the client
// takes less of the CPU the servers share with it. It returns answered requests per second and their number,
// and the failures.
func rawLoad(ctx context.Context, addr, path string, keepAlive bool, workers int, d time.Duration) (float64, int64, int64, error) {
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
	return float64(ok.Load()) / time.Since(start).Seconds(), ok.Load(), failed.Load(), firstErr
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
