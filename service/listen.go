package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"staple/admin"
	"staple/config"
)

// listeners are every address the service binds, bound before anything starts, so that a port in use is one
// clear error and nothing half-started is left behind.
type listeners struct {
	tls, metrics, responder, lab, admin net.Listener
	adminPath                           string
}

// listen binds the TLS address, the optional metrics, caching responder and lab responder addresses, and the
// admin socket. What it binds is closed by closing.
func listen(cfg *config.Config, lab *LabResponder, closing *closers) (*listeners, error) {
	ln := &listeners{adminPath: filepath.Join(cfg.DataDir, admin.SocketName)}
	bind := func(dst *net.Listener, what, addr string) error {
		l, err := listenTCP(what, addr)
		if err != nil {
			return err
		}
		*dst = l
		closing.add(func() { l.Close() })
		return nil
	}
	if err := bind(&ln.tls, "listen", cfg.Listen); err != nil {
		return nil, err
	}
	type listener struct {
		dst        *net.Listener
		what, addr string
	}
	optional := []listener{{&ln.metrics, "metrics_listen", cfg.MetricsListen}, {&ln.responder, "responder_listen", cfg.ResponderListen}}
	if lab != nil {
		optional = append(optional, listener{&ln.lab, "the embedded lab's responder", lab.Addr})
	}
	for _, o := range optional {
		if o.addr == "" {
			continue
		}
		if err := bind(o.dst, o.what, o.addr); err != nil {
			return nil, err
		}
	}
	a, err := admin.Listen(ln.adminPath)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	ln.admin = a
	closing.add(func() { a.Close(); os.Remove(ln.adminPath) })
	return ln, nil
}

// addrs returns the addresses bound.
func (ln *listeners) addrs() Addrs {
	a := Addrs{TLS: ln.tls.Addr().String(), AdminSocket: ln.adminPath}
	for _, l := range []struct {
		ln  net.Listener
		dst *string
	}{{ln.metrics, &a.Metrics}, {ln.responder, &a.Responder}, {ln.lab, &a.LabResponder}} {
		if l.ln != nil {
			*l.dst = l.ln.Addr().String()
		}
	}
	return a
}

// listenTCP binds addr, with an error that names the setting and says what to do when the port is taken.
func listenTCP(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("service: %s %s: the address is in use (another server listens there; choose another or stop it)", what, addr)
		}
		return nil, fmt.Errorf("service: %s %s: %w", what, addr, err)
	}
	return ln, nil
}

// serveHTTP serves h on ln until ctx ends.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// EnsureDataDir creates the data directory (0700) and checks that it can be written.
func EnsureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("service: data directory %s: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("service: data directory %s is not writable: %w", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
