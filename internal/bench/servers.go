package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"staple/internal/loadgen"
	"staple/lab"
)

// Env is where and how the servers run: the binaries, the work directory, and the CPU the servers are
// pinned to (the load generator runs on another).
type Env struct {
	Dir          string // work directory: one subdirectory per server
	Staple       string // staple binary
	StapleBoring string // staple built with GOEXPERIMENT=boringcrypto; "" skips it
	// StapleOpenSSL is staple built with -tags openssl (RSA signatures through libcrypto); "" skips it. It
	// differs from Staple for RSA certificates only, so it is measured with those.
	StapleOpenSSL string
	StaticServer  string // the bare crypto/tls server (internal/bench/staticserver)
	Nginx         string
	OpenSSL       string
	ServerCPU     int // -1: no pinning
	Procs         *Procs
}

// goEnv is the environment of a Go server: one P, as the one CPU it is pinned to.
var goEnv = []string{"GOMAXPROCS=1"}

func (e *Env) subdir(name string) (string, error) {
	d := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return d, nil
}

// StartStapleServe runs staple serve (bin) for leaf with its own data directory, and waits until a
// handshake is stapled: its first response comes from the lab's responder, every later one from its cache.
// responderListen, when not empty, also serves the caching responder there.
func (e *Env) StartStapleServe(name, bin string, leaf *Leaf, responderListen string) (*Proc, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{bin, "serve", "--cert", leaf.CertFile, "--key", leaf.KeyFile, "--listen", addr,
		"--data-dir", filepath.Join(dir, "data"), "--log-level", "warn", "--log-format", "text"}
	if responderListen != "" {
		args = append(args, "--responder-listen", responderListen)
	}
	return e.startStapling(name, dir, goEnv, addr, leaf, 30*time.Second, args...)
}

// startStapling runs a TLS server (argv) in dir and waits, up to timeout each, until it listens on addr and
// staples leaf.
func (e *Env) startStapling(name, dir string, env []string, addr string, leaf *Leaf, timeout time.Duration, argv ...string) (*Proc, error) {
	p, err := StartProc(name, dir, e.ServerCPU, env, argv...)
	if err != nil {
		return nil, err
	}
	e.Procs.Add(p)
	if err := p.WaitListening(addr, timeout); err != nil {
		return nil, err
	}
	return p, WaitStapled(context.Background(), p, leaf, timeout)
}

// StartStatic runs the bare crypto/tls server with leaf's response as its static staple.
func (e *Env) StartStatic(name string, leaf *Leaf) (*Proc, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return e.startStapling(name, dir, goEnv, addr, leaf, 10*time.Second, e.StaticServer, "-cert", leaf.CertFile,
		"-key", leaf.KeyFile, "-staple", leaf.StapleFile, "-listen", addr)
}

var nginxConf = template.Must(template.New("nginx.conf").Parse(`# make bench: nginx with stapling from a file, one worker.
worker_processes 1;
daemon off;
master_process on;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path {{.Dir}}/tmp/body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;
    server {
        listen {{.Addr}} ssl;
        server_name {{.Name}};
        ssl_certificate {{.Cert}};
        ssl_certificate_key {{.Key}};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_stapling on;
        ssl_stapling_file {{.Staple}};
        ssl_session_tickets on;
        location / {
            return 200 "ok\n";
        }
    }
}
`))

// StartNginx runs nginx with one worker, leaf's certificate and ssl_stapling_file, from a configuration
// written in its own directory.
func (e *Env) StartNginx(name string, leaf *Leaf) (*Proc, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	err = nginxConf.Execute(&b, map[string]string{"Dir": dir, "Addr": addr, "Name": leaf.Name, "Cert": leaf.CertFile,
		"Key": leaf.KeyFile, "Staple": leaf.StapleFile})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return e.startStapling(name, dir, nil, addr, leaf, 10*time.Second, e.Nginx, "-p", dir, "-c", conf, "-e",
		filepath.Join(dir, "error.log"))
}

// errNoStaple: a full handshake that asked for status got none.
var errNoStaple = errors.New("no OCSP staple")

// WaitStapled handshakes with p until one carries a staple, or timeout passes.
func WaitStapled(ctx context.Context, p *Proc, leaf *Leaf, timeout time.Duration) error {
	var last error
	err := waitUntil(ctx, timeout, 50*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, p.failure(errors.New("exited"))
		}
		res, err := loadgen.Run(ctx, loadgen.Options{Addr: p.Addr, ServerName: leaf.Name, Count: 1, DialTimeout: 5 * time.Second})
		if err != nil {
			return false, err
		}
		switch {
		case res.Errors > 0:
			last = res.FirstError
		case res.Stapled == 0:
			last = errNoStaple
		default:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return p.failure(fmt.Errorf("no stapled handshake within %v (last: %v): %w", timeout, last, err))
	}
	return nil
}

// tlsVersionName is "TLS 1.3" or "TLS 1.2".
func tlsVersionName(v uint16) string {
	if v == tls.VersionTLS12 {
		return "TLS 1.2"
	}
	return "TLS 1.3"
}

// StartStapleResponder runs staple responder on the lab (every serial pre-signed at start) on addr.
func (e *Env) StartStapleResponder(name string, l *Lab, addr string) (*Proc, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	p, err := StartProc(name, dir, e.ServerCPU, goEnv, e.Staple, "responder", "--lab", l.Dir, "--listen", addr,
		"--fault-api=false", "--log-level", "warn", "--log-format", "text")
	if err != nil {
		return nil, err
	}
	e.Procs.Add(p)
	return p, p.WaitListening(addr, 60*time.Second)
}

// StartOpenSSLResponder runs openssl ocsp -index on the lab, answering from its delegated signer with a
// one-hour nextUpdate, and waits until it answers path. It is probed with a real request only: openssl
// ocsp 3.0 spins, at 100% CPU and answering nobody, on a connection closed before a request came.
func (e *Env) StartOpenSSLResponder(name string, l *Lab, path string) (*Proc, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := StartProc(name, dir, e.ServerCPU, nil, e.OpenSSL, "ocsp", "-index", l.Path(lab.IndexFile), "-port", port,
		"-rsigner", l.Path(lab.SignerCertFile), "-rkey", l.Path(lab.SignerKeyFile), "-CA", l.Path(lab.CACertFile),
		"-nmin", "60", "-ignore_err")
	if err != nil {
		return nil, err
	}
	e.Procs.Add(p)
	p.Addr = addr
	var last error
	err = waitUntil(context.Background(), 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, p.failure(errors.New("exited"))
		}
		c, err := dialRaw(addr)
		if err != nil {
			last = err
			return false, nil
		}
		defer c.close()
		if _, err := c.get(path, false); err != nil {
			return false, p.failure(err)
		}
		return true, nil
	})
	if err != nil {
		return nil, p.failure(fmt.Errorf("not answering on %s (last: %v): %w", addr, last, err))
	}
	return p, nil
}
