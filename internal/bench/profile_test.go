//go:build bench

package bench

// Profiles of what make bench measures, in one process, for the goals it misses. The server side runs under
// the pprof label side=server, the client under side=client, so that a profile shows one side:
//
//	go test -tags bench -run '^$' -bench 'Serve/ecdsa/tls13' -benchtime 5000x -cpuprofile cpu.out ./internal/bench/
//	go tool pprof -tagfocus side=server -top cpu.out
//
// GOMAXPROCS is whatever the test has; the figures here are for reading profiles, make bench's are the ones
// to quote.

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/config"
	"staple/internal/loadgen"
	"staple/lab"
	"staple/responder"
	"staple/service"
)

// side runs fn in a goroutine labelled side=name; goroutines it starts inherit the label.
func side(ctx context.Context, name string, fn func(context.Context)) {
	go pprof.Do(ctx, pprof.Labels("side", name), fn)
}

// profLab is a lab with its responder served in process, labelled side=responder.
func profLab(b *testing.B, sweep int) (*Lab, *responder.Responder, string) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l, err := MakeLab(filepath.Join(b.TempDir(), "lab"), "http://"+ln.Addr().String(), sweep)
	if err != nil {
		b.Fatal(err)
	}
	src, err := lab.NewSource(l.SourceConfig())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := src.Presign(context.Background()); err != nil {
		b.Fatal(err)
	}
	rs := &responder.Responder{Source: src}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	side(ctx, "responder", func(ctx context.Context) { rs.Serve(ctx, ln) })
	dir := b.TempDir()
	for _, leaf := range l.Leaves {
		if err := FetchStaple(context.Background(), leaf, dir); err != nil {
			b.Fatal(err)
		}
	}
	return l, rs, ln.Addr().String()
}

// serveInProcess runs the service for leaf, labelled side=server, and returns its TLS and caching
// responder addresses once a handshake is stapled.
func serveInProcess(b *testing.B, leaf *Leaf) (string, string) {
	b.Helper()
	respLn, _ := FreeAddr()
	cfg := &config.Config{DataDir: filepath.Join(b.TempDir(), "data"), Listen: "127.0.0.1:0", ResponderListen: respLn,
		LogLevel: "warn", LogFormat: "json", Sites: []config.Site{{Cert: leaf.CertFile, Key: leaf.KeyFile}}}
	started := make(chan service.Addrs, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	side(ctx, "server", func(ctx context.Context) {
		done <- service.Run(ctx, cfg, service.Options{Log: zerolog.Nop(), Started: func(a service.Addrs) { started <- a }})
	})
	var a service.Addrs
	select {
	case a = <-started:
	case err := <-done:
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); <-done })
	p := &Proc{Addr: a.TLS}
	waitStapledInProcess(b, p, leaf)
	return a.TLS, a.Responder
}

func waitStapledInProcess(b *testing.B, p *Proc, leaf *Leaf) {
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, _ := loadgen.Run(context.Background(), loadgen.Options{Addr: p.Addr, ServerName: leaf.Name, Count: 1})
		if res.Stapled > 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("no staple")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// staticInProcess runs a crypto/tls server as internal/bench/staticserver does, labelled side=server.
func staticInProcess(b *testing.B, leaf *Leaf) string {
	b.Helper()
	cert, err := tls.LoadX509KeyPair(leaf.CertFile, leaf.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	cert.OCSPStaple = leaf.Staple
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	side(context.Background(), "server", func(context.Context) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					var buf [512]byte
					c.Read(buf[:])
				}
			}()
		}
	})
	return ln.Addr().String()
}

func driveHandshakes(b *testing.B, addr string, leaf *Leaf, version uint16, resume bool) {
	b.Helper()
	var res loadgen.Result
	b.ResetTimer()
	pprof.Do(context.Background(), pprof.Labels("side", "client"), func(ctx context.Context) {
		res, _ = loadgen.Run(ctx, loadgen.Options{Addr: addr, ServerName: leaf.Name, Version: version, Workers: 16,
			Count: int64(b.N), Resume: resume, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}})
	})
	b.StopTimer()
	if res.Errors > 0 {
		b.Fatalf("%d errors, first %v", res.Errors, res.FirstError)
	}
	if !resume && res.Stapled != res.Handshakes {
		b.Fatalf("%d of %d stapled", res.Stapled, res.Handshakes)
	}
}

var versions = []struct {
	name string
	v    uint16
}{{"tls13", tls.VersionTLS13}, {"tls12", tls.VersionTLS12}}

// BenchmarkServe is staple serve's full and resumed handshakes, in process.
func BenchmarkServe(b *testing.B) {
	l, _, _ := profLab(b, 0)
	for _, kt := range []lab.KeyType{lab.KeyECDSA, lab.KeyRSA} {
		leaf := l.Leaves[kt]
		addr, _ := serveInProcess(b, leaf)
		for _, v := range versions {
			b.Run(string(kt)+"/"+v.name, func(b *testing.B) { driveHandshakes(b, addr, leaf, v.v, false) })
			b.Run(string(kt)+"/"+v.name+"-resumed", func(b *testing.B) { driveHandshakes(b, addr, leaf, v.v, true) })
		}
	}
}

// BenchmarkStatic is the bare crypto/tls server's full handshakes, in process.
func BenchmarkStatic(b *testing.B) {
	l, _, _ := profLab(b, 0)
	for _, kt := range []lab.KeyType{lab.KeyECDSA, lab.KeyRSA} {
		leaf := l.Leaves[kt]
		addr := staticInProcess(b, leaf)
		for _, v := range versions {
			b.Run(string(kt)+"/"+v.name, func(b *testing.B) { driveHandshakes(b, addr, leaf, v.v, false) })
		}
	}
}

// BenchmarkResponder is GETs on one pre-signed serial: staple responder's (side=responder) and staple serve's
// caching responder (side=server), kept alive and on new connections.
func BenchmarkResponder(b *testing.B) {
	l, _, respAddr := profLab(b, 0)
	leaf := l.Leaves[lab.KeyECDSA]
	_, cachingAddr := serveInProcess(b, leaf)
	path, err := GetPath(leaf.Cert, leaf.Issuer)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr string
		keepAlive  bool
	}{{"responder/keepalive", respAddr, true}, {"responder/newconn", respAddr, false},
		{"caching/keepalive", cachingAddr, true}, {"caching/newconn", cachingAddr, false}} {
		b.Run(tc.name, func(b *testing.B) {
			var ok, failed int64
			var elapsed time.Duration
			pprof.Do(context.Background(), pprof.Labels("side", "client"), func(ctx context.Context) {
				ok, failed, elapsed, _ = HTTPLoad{Addr: tc.addr, Path: path, KeepAlive: tc.keepAlive, Workers: 16,
					Window: time.Duration(b.N) * 20 * time.Microsecond}.Run(ctx)
			})
			if failed > 0 {
				b.Fatalf("%d failed", failed)
			}
			b.ReportMetric(float64(ok)/elapsed.Seconds(), "GET/s")
		})
	}
}

// BenchmarkSweep refreshes sweep certificates through the stapler (side=client), with a bbolt cache and in
// memory, against the in-process responder (side=responder), b.N sweeps.
func BenchmarkSweep(b *testing.B) {
	n := 2000
	l, _, _ := profLab(b, n)
	r := &Run{Lab: l, Env: &Env{Dir: b.TempDir()}, Report: &Report{}}
	for _, tc := range []struct{ name, dir string }{{"bbolt", b.TempDir()}, {"memory", ""}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := r.newSweep(context.Background(), tc.dir)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			b.ResetTimer()
			pprof.Do(context.Background(), pprof.Labels("side", "client"), func(ctx context.Context) {
				for range b.N {
					if _, err := s.refreshAll(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "responses/s")
		})
	}
}

// BenchmarkServeWarmStart starts staple serve in process on a cache file holding its own entry and 20,000
// entries of certificates no site serves, to its first stapled handshake (b.N starts).
func BenchmarkServeWarmStart(b *testing.B) {
	l, _, _ := profLab(b, 0)
	leaf := l.Leaves[lab.KeyECDSA]
	tmpl := filepath.Join(b.TempDir(), "many.db")
	if _, err := fillCache(tmpl, leaf, 20000); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		data := filepath.Join(b.TempDir(), "data")
		os.MkdirAll(data, 0o700)
		if err := copyFile(filepath.Join(data, config.DatabaseName), tmpl); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cfg := &config.Config{DataDir: data, Listen: "127.0.0.1:0", LogLevel: "warn", LogFormat: "json",
			Sites: []config.Site{{Cert: leaf.CertFile, Key: leaf.KeyFile}}}
		started := make(chan service.Addrs, 1)
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		side(ctx, "server", func(ctx context.Context) {
			done <- service.Run(ctx, cfg, service.Options{Log: zerolog.Nop(), Started: func(a service.Addrs) { started <- a }})
		})
		a := <-started
		waitStapledInProcess(b, &Proc{Addr: a.TLS}, leaf)
		b.StopTimer()
		cancel()
		<-done
	}
}
