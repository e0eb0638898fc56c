package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPLoad sends GET path to addr from Workers connections for Window: HTTP/1.1 on kept-alive connections,
// or HTTP/1.0 with a new connection per request (the only way openssl ocsp, one request per connection, can
// be driven). It is leaner than net/http's client, so that the client's CPU stays well below the server's.
//
// A worker never leaves a request half sent: openssl ocsp 3.0 spins on a connection closed before its
// request arrived (which is also why wrk, which closes its connections mid-request at the end of a run,
// cannot drive it).
type HTTPLoad struct {
	Addr, Path string
	KeepAlive  bool
	Workers    int
	Window     time.Duration
}

// Run applies the load; it returns the answered requests, the failures and the first failure.
func (h HTTPLoad) Run(ctx context.Context) (ok, failed int64, elapsed time.Duration, firstErr error) {
	ctx, cancel := context.WithTimeout(ctx, h.Window)
	defer cancel()
	var okN, failedN atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(h.Window) // read off the clock as well as from ctx: see loadgen.Run
	for range max(h.Workers, 1) {
		wg.Go(func() {
			var c *rawConn
			for ctx.Err() == nil && time.Now().Before(end) {
				var err error
				if c == nil {
					if c, err = dialRaw(h.Addr); err != nil {
						failedN.Add(1)
						once.Do(func() { firstErr = err })
						continue
					}
				}
				reusable, err := c.get(h.Path, h.KeepAlive)
				if err != nil {
					failedN.Add(1)
					once.Do(func() { firstErr = err })
				} else {
					okN.Add(1)
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
	return okN.Load(), failedN.Load(), time.Since(start), firstErr
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

// close resets the connection rather than leaving it in TIME_WAIT: hundreds of thousands of short
// connections would otherwise exhaust the ephemeral ports.
func (c *rawConn) close() {
	c.conn.SetLinger(0)
	c.conn.Close()
}

var errStatus = errors.New("bench: not HTTP 200")

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
		return false, errors.New("bench: no Content-Length")
	}
	if _, err := c.br.Discard(length); err != nil {
		return false, err
	}
	return reusable, nil
}

// HTTPTarget measures p's CPU around one HTTPLoad run (its Window set by the round). More than 1% failed
// requests is an error.
func HTTPTarget(name string, p *Proc, h HTTPLoad) Target {
	return Target{Name: name, Run: func(ctx context.Context, d time.Duration) (Sample, error) {
		cpu0, err := p.CPU()
		if err != nil {
			return Sample{}, err
		}
		h.Window = d
		ok, failed, elapsed, first := h.Run(ctx)
		cpu1, err := p.CPU()
		if err != nil {
			return Sample{}, err
		}
		if ok == 0 && failed == 0 {
			return Sample{}, ErrNothingDone
		}
		if ok == 0 || failed*100 > ok {
			return Sample{}, p.failure(fmt.Errorf("%d of %d GETs failed, first: %v", failed, ok+failed, first))
		}
		return Sample{Ops: ok, Elapsed: elapsed, CPU: cpu1 - cpu0, Errors: failed}, nil
	}}
}
