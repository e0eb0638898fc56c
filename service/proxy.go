package service

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// newReverseProxy returns a handler that relays HTTP to upstream: X-Forwarded-For, -Host and -Proto set from
// the client's connection, responses streamed as they come (FlushInterval -1), and protocol upgrades
// (WebSocket) relayed, which httputil.ReverseProxy does when the upstream answers 101.
func newReverseProxy(upstream *url.URL, log zerolog.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.SetXForwarded()
			r.Out.Host = r.In.Host // name-based virtual hosts upstream see the name the client asked for
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn().Err(err).Str("upstream", upstream.Redacted()).Str("path", r.URL.Path).Msg("upstream request failed")
			http.Error(w, "502 bad gateway: the upstream server did not answer", http.StatusBadGateway)
		},
	}
}

// forwardTCP relays raw bytes between conn and addr until both directions end, half-closing each side when
// the other finishes writing. It closes conn.
func forwardTCP(ctx context.Context, conn net.Conn, addr string, dialTimeout time.Duration) error {
	defer conn.Close()
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close(); up.Close() })
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	relay := func(i int, dst, src net.Conn) {
		defer wg.Done()
		_, errs[i] = io.Copy(dst, src)
		closeWrite(dst)
	}
	wg.Add(2)
	go relay(0, up, conn)
	go relay(1, conn, up)
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

// closeWrite half-closes c when it can (TCP and TLS connections), else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}

// connListener is a net.Listener fed with connections that are already accepted (and TLS-handshaken) by
// the TLS server, so that an http.Server can serve them.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// hand passes c to the server and reports true, or closes c and reports false when the listener is closed.
func (l *connListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		c.Close()
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
