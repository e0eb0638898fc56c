//go:build unix

package tlsserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"staple/certs"
	"staple/internal/testpki"
)

// benchPair holds a tlsserver.Server and a plain crypto/tls server serving the same certificate, each with
// its own accept loop over a pipe listener (net.Pipe), so that the kernel stays out of the measure and both
// sides pay for accepting a connection and starting its goroutine.
type benchPair struct {
	srv    *Server
	l      *pipeListener
	pl     *pipeListener
	plain  *tls.Config
	client *tls.Config
}

// newBenchPair serves leaf both ways. The tlsserver side staples from an in-memory map through OCSPRequest;
// the plain side, tls.Server on each accepted connection as a plain crypto/tls server does, has the same
// response as its static OCSPStaple.
func newBenchPair(b *testing.B, f *fixture, configure func(s *Server, plain *tls.Config)) *benchPair {
	b.Helper()
	staples := map[certs.Key][]byte{certs.NewKey(f.inter.Cert, f.leaf.Cert): f.staple}
	srv := &Server{
		SecureContext: f.context(f.leaf),
		OCSPRequest: func(_ context.Context, leaf, issuer *x509.Certificate) ([]byte, error) {
			return staples[certs.NewKey(issuer, leaf)], nil
		},
	}
	cert := f.leaf.TLSCertificate()
	cert.OCSPStaple = f.staple
	plain := &tls.Config{Certificates: []tls.Certificate{cert}}
	if configure != nil {
		configure(srv, plain)
	}
	l := newPipeListener()
	go srv.Serve(l)
	pl := newPipeListener()
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, plain)
				tc.Handshake()
				tc.Close()
			}()
		}
	}()
	b.Cleanup(func() {
		pl.Close()
		done := make(chan struct{})
		srv.Close(func() { close(done) })
		<-done
	})
	return &benchPair{srv: srv, l: l, pl: pl, plain: plain, client: f.goConfig(tls.VersionTLS13)}
}

// dialTLSServer does one handshake with the tlsserver side and reads until the server closes.
func (p *benchPair) dialTLSServer(b *testing.B, cfg *tls.Config) tls.ConnectionState {
	raw, err := p.l.Dial()
	if err != nil {
		b.Fatal(err)
	}
	return clientRound(b, raw, cfg)
}

// dialPlain does the same with the plain crypto/tls server, which closes after its handshake.
func (p *benchPair) dialPlain(b *testing.B, cfg *tls.Config) tls.ConnectionState {
	raw, err := p.pl.Dial()
	if err != nil {
		b.Fatal(err)
	}
	return clientRound(b, raw, cfg)
}

func clientRound(b *testing.B, raw net.Conn, cfg *tls.Config) tls.ConnectionState {
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	io.ReadAll(c) // to the server's close: the server's handshake has ended, TLS 1.3 tickets have arrived
	c.Close()
	return c.ConnectionState()
}

// interleave runs both sides alternately in batches, b.N handshakes each, and reports handshakes per second
// for each side and their ratio (tlsserver / plain). Both the process's CPU time and wall time are measured
// around each batch: the machine running the benchmarks is shared, so wall time carries other processes'
// load, while CPU time counts only the work done here (client and server alike, the client being the same
// on both sides). Alternating batches lets drift hit both sides alike.
func interleave(b *testing.B, tlsserverRound, plainRound func()) {
	const batch = 4
	var ours, theirs, oursWall, theirsWall time.Duration
	run := func(round func(), cpu, wall *time.Duration) {
		c0, w0 := cpuTime(b), time.Now()
		for range batch {
			round()
		}
		*wall += time.Since(w0)
		*cpu += cpuTime(b) - c0
	}
	n := 0
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			run(tlsserverRound, &ours, &oursWall)
			run(plainRound, &theirs, &theirsWall)
		} else {
			run(plainRound, &theirs, &theirsWall)
			run(tlsserverRound, &ours, &oursWall)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/ours.Seconds(), "tlsserver-hs/cpu-s")
	b.ReportMetric(float64(n)/theirs.Seconds(), "plain-hs/cpu-s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "ratio")
	b.ReportMetric(float64(n)/oursWall.Seconds(), "tlsserver-hs/s")
	b.ReportMetric(float64(n)/theirsWall.Seconds(), "plain-hs/s")
	b.ReportMetric(theirsWall.Seconds()/oursWall.Seconds(), "wall-ratio")
}

// cpuTime is the CPU time, user and system, the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFullHandshake compares full TLS 1.3 handshakes through tlsserver, stapling from an in-memory map
// through OCSPRequest, with a plain crypto/tls server that has a static OCSPStaple.
func BenchmarkFullHandshake(b *testing.B) {
	for _, kt := range []testpki.KeyType{testpki.ECDSAP256, testpki.RSA2048} {
		b.Run(kt.String(), func(b *testing.B) {
			f := newFixture(b, kt)
			p := newBenchPair(b, f, nil)
			check := func(cs tls.ConnectionState) {
				if cs.DidResume || len(cs.OCSPResponse) == 0 {
					b.Fatalf("resumed %v, staple %d bytes: not a full stapled handshake", cs.DidResume, len(cs.OCSPResponse))
				}
			}
			check(p.dialTLSServer(b, p.client))
			check(p.dialPlain(b, p.client))
			interleave(b, func() { p.dialTLSServer(b, p.client) }, func() { p.dialPlain(b, p.client) })
		})
	}
}

// BenchmarkResumedHandshake compares resumed TLS 1.3 handshakes through tlsserver's session store hooks
// (MemorySessionStore) with a plain crypto/tls server's built-in tickets.
func BenchmarkResumedHandshake(b *testing.B) {
	f := newFixture(b, testpki.ECDSAP256)
	store := &MemorySessionStore{}
	p := newBenchPair(b, f, func(s *Server, _ *tls.Config) {
		s.NewSession, s.ResumeSession = store.NewSession, store.ResumeSession
	})
	ours, theirs := p.client.Clone(), p.client.Clone()
	ours.ClientSessionCache, theirs.ClientSessionCache = tls.NewLRUClientSessionCache(1), tls.NewLRUClientSessionCache(1)
	p.dialTLSServer(b, ours)
	p.dialPlain(b, theirs)
	if !p.dialTLSServer(b, ours).DidResume || !p.dialPlain(b, theirs).DidResume {
		b.Fatal("not resuming")
	}
	interleave(b, func() { p.dialTLSServer(b, ours) }, func() { p.dialPlain(b, theirs) })
}
